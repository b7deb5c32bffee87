"""Secrets never reach what a person reads: text, headers and data are redacted."""

from __future__ import annotations

import orjson

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


def test_secrets_added_later_are_masked() -> None:
    """A static secret added after construction is redacted from the moment it is added."""
    redactor = Redactor()
    assert redactor.text("Session tok-12345") == "Session tok-12345"
    redactor.add("tok-12345")
    redactor.add(None)
    assert redactor.text("Session tok-12345") == f"Session {MASK}"
    assert "tok-12345" in redactor


def test_json_escaped_form_is_masked() -> None:
    """A secret with a quote or backslash is masked inside JSON text, where it is escaped."""
    secret = 'pa"ss\\word'
    redactor = Redactor([secret])
    document = orjson.dumps({"password": secret}).decode()
    assert secret not in document  # the escaped form is what the JSON holds
    assert redactor.text(document) == f'{{"password":"{MASK}"}}'


def test_replace_keeps_the_current_and_the_previous_token_only() -> None:
    """After a refresh the previous token is still masked; the one before it is not."""
    redactor = Redactor(["static-secret"])
    redactor.replace("wh", ["token-1"])
    redactor.replace("wh", ["token-2"])
    redactor.replace("wh", ["token-2"])  # the same token again: nothing moves
    redactor.replace("wh", ["token-3"])
    assert redactor.text("token-3 token-2 token-1") == f"{MASK} {MASK} token-1"
    assert redactor.text("static-secret") == MASK


def test_sources_keep_their_tokens_apart() -> None:
    """A refresh of one connector's token does not forget another connector's."""
    redactor = Redactor()
    redactor.replace("wh", ["wh-token-1"])
    redactor.replace("crm", ["crm-token-1"])
    redactor.replace("crm", ["crm-token-2"])
    redactor.replace("crm", ["crm-token-3"])
    assert redactor.text("wh-token-1 crm-token-1") == f"{MASK} crm-token-1"


def test_size_stays_bounded_after_many_logins() -> None:
    """10,000 logins leave the static secrets and the last two tokens, nothing more."""
    static = [f"static-secret-{n}" for n in range(10)]
    redactor = Redactor(static)
    for n in range(10_000):
        redactor.replace("wh", [f"token-{n}"])
        if n % 1000 == 0:
            redactor.text("a log line")  # the pattern is rebuilt when used
    assert redactor.size == Redactor([*static, "token-9999", "token-9998"]).size
    assert redactor.text("token-9999 token-9998 token-9997") == f"{MASK} {MASK} token-9997"
    assert "token-0" not in redactor


def test_found_tells_whether_text_holds_a_secret() -> None:
    """found() is True exactly when text() would mask something."""
    redactor = Redactor(["hunter22"])
    assert redactor.found('{"pw": "hunter22"}')
    assert not redactor.found('{"pw": "hunter2"}')
    assert not redactor.found("")
    assert not Redactor().found("hunter22")
    redactor.replace("wh", ["tok-abcd"])
    assert redactor.found("Bearer tok-abcd")


def test_data_redacts_nested_strings() -> None:
    """Strings anywhere in JSON-like data are redacted; other values are copied."""
    redactor = Redactor(["p4ssword"])
    data = {"user": "amy", "p4ssword": ["x p4ssword", 3, None, {"k": "p4ssword"}]}
    assert redactor.data(data) == {"user": "amy", MASK: [f"x {MASK}", 3, None, {"k": MASK}]}
