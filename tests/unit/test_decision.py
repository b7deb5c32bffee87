"""The response-code decision and the default classifier (DESIGN.md §2)."""

from __future__ import annotations

import pytest

from interlink.flows.decision import CODE_NAMES, Decision, classify, decision_for


@pytest.mark.parametrize(
    ("status", "error", "reauths", "code", "message"),
    [
        (200, None, 0, 0, "HTTP 200"),
        (201, None, 0, 0, "HTTP 201"),
        (204, None, 1, 0, "HTTP 204"),
        (401, None, 0, 4, "HTTP 401: re-authenticating"),
        (401, None, 1, 3, "HTTP 401 after 1 re-authentication"),
        (408, None, 0, 1, "HTTP 408"),
        (425, None, 0, 1, "HTTP 425"),
        (429, None, 0, 1, "HTTP 429"),
        (500, None, 0, 1, "HTTP 500"),
        (503, None, 0, 1, "HTTP 503"),
        (599, None, 0, 1, "HTTP 599"),
        (None, "connection refused (127.0.0.1:1)", 0, 1, "connection refused (127.0.0.1:1)"),
        (None, "timed out after 10s", 0, 1, "timed out after 10s"),
        (None, None, 0, 1, "no response"),
        (301, None, 0, 3, "HTTP 301"),
        (400, None, 0, 3, "HTTP 400"),
        (403, None, 0, 3, "HTTP 403"),
        (404, None, 0, 3, "HTTP 404"),
        (409, None, 0, 3, "HTTP 409"),
        (422, None, 0, 3, "HTTP 422"),
    ],
)
def test_classifier_table(
    status: int | None, error: str | None, reauths: int, code: int, message: str
) -> None:
    """Each status or failure maps to the code and message of the default classifier."""
    decision = classify(status, error, reauths, 1, None)
    assert decision.code == code
    assert decision.name == CODE_NAMES[code]
    assert decision.message == message


def test_reauth_bounded_by_max_reauth() -> None:
    """401 asks for re-auth while fewer than max_reauth were done, then fails."""
    assert classify(401, None, 0, 2, None).name == "reauth"
    assert classify(401, None, 1, 2, None).name == "reauth"
    failed = classify(401, None, 2, 2, None)
    assert failed.name == "fail"
    assert failed.message == "HTTP 401 after 2 re-authentications"
    assert classify(401, None, 0, 0, None).message == "HTTP 401 (re-authentication disabled)"


@pytest.mark.parametrize(("kind", "code"), [
    ("timeout", 1), ("dns", 1), ("connect", 1), ("disconnected", 1), ("network", 1),
    ("auth", 1), ("protocol", 3), ("tls", 3)])
def test_a_failure_sending_again_would_repeat_is_final(kind: str, code: int) -> None:
    """A malformed or oversized answer, or a certificate refused, comes again on a retry."""
    decision = classify(None, "why", 0, 1, None, error_type=kind)
    assert (decision.code, decision.message) == (code, "why")


def test_a_401_with_nothing_to_refresh_fails() -> None:
    decision = classify(401, None, 0, 1, None, refreshable=False)
    assert decision.name == "fail"
    assert decision.message == ("HTTP 401 (the connector's credentials are static or none: "
                                "there is nothing to refresh)")


def test_retry_after_travels_with_a_retry() -> None:
    """A retry decision carries the server's Retry-After; a success does not need it."""
    assert classify(429, None, 0, 1, 7.0).retry_after == 7.0
    assert classify(None, "timed out after 1s", 0, 1, None).retry_after is None
    assert classify(200, None, 0, 1, 7.0).retry_after is None


def test_decision_for_names_every_code() -> None:
    """Codes 0-4 have the FORMAT.md names; the decision is a frozen value."""
    names = [decision_for(code).name for code in range(5)]
    assert names == ["continue", "retry_step", "retry_flow", "fail", "reauth"]
    decision = decision_for(2, "queue it", 3.0)
    assert decision == Decision(2, "retry_flow", "queue it", 3.0)
    assert not decision.accepted
    assert decision_for(0).accepted
    with pytest.raises(AttributeError):
        decision.code = 0  # type: ignore[misc]


@pytest.mark.parametrize("code", [-1, 5, True, "1", 1.0, None])
def test_decision_for_rejects_other_codes(code: object) -> None:
    """Anything but an int 0-4 (bools and strings included) is refused."""
    with pytest.raises(ValueError, match="response_code must be one of"):
        decision_for(code)  # type: ignore[arg-type]
