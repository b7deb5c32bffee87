"""Secrets never reach what a person reads: text, headers and data are redacted."""

from __future__ import annotations

from interlink.redaction import MASK, Redactor


def test_text_replaces_every_occurrence() -> None:
    """Each secret is masked wherever it appears; short values are not secrets."""
    redactor = Redactor(["s3cr3t-pw", "abc"])
    assert redactor.text("pw=s3cr3t-pw and again s3cr3t-pw") == f"pw={MASK} and again {MASK}"
    assert redactor.text("abc stays") == "abc stays"
    assert redactor.text("") == ""
    assert Redactor().text("nothing to hide") == "nothing to hide"


def test_longest_secret_wins() -> None:
    """A secret that contains another is masked whole, leaving no tail."""
    redactor = Redactor(["token", "token-extended"])
    assert redactor.text("x token-extended y") == f"x {MASK} y"


def test_url_encoded_forms_are_masked() -> None:
    """An API key with reserved characters is masked inside a URL's query string too."""
    redactor = Redactor(["k3y/with+chars&="])
    url = "http://h/x?api_key=k3y%2Fwith%2Bchars%26%3D&b=1"
    assert redactor.text(url) == f"http://h/x?api_key={MASK}&b=1"


def test_headers_masks_credential_headers_and_secrets() -> None:
    """Credential headers are masked whatever their value; others lose only secrets."""
    redactor = Redactor(["hunter22"])
    headers = {
        "Authorization": "Basic Zm9vOmJhcg==",
        "proxy-authorization": "x",
        "Cookie": "a=b",
        "Set-Cookie": "sid=1",
        "X-API-Key": "short",
        "X-Custom": "prefix-hunter22",
        "Accept": "application/json",
    }
    assert redactor.headers(headers) == {
        "Authorization": MASK,
        "proxy-authorization": MASK,
        "Cookie": MASK,
        "Set-Cookie": MASK,
        "X-API-Key": MASK,
        "X-Custom": f"prefix-{MASK}",
        "Accept": "application/json",
    }


def test_tokens_added_at_runtime_are_masked() -> None:
    """A token obtained by logging in is redacted from the moment it is added."""
    redactor = Redactor()
    assert redactor.text("Session tok-12345") == "Session tok-12345"
    redactor.add("tok-12345")
    redactor.add(None)
    assert redactor.text("Session tok-12345") == f"Session {MASK}"
    assert "tok-12345" in redactor


def test_data_redacts_nested_strings() -> None:
    """Strings anywhere in JSON-like data are redacted; other values are copied."""
    redactor = Redactor(["p4ssword"])
    data = {"user": "amy", "p4ssword": ["x p4ssword", 3, None, {"k": "p4ssword"}]}
    assert redactor.data(data) == {"user": "amy", MASK: [f"x {MASK}", 3, None, {"k": MASK}]}
