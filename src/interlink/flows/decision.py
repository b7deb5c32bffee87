"""The response-code decision taken after every connector attempt, as a value.

A response script and the default classifier both return a `Decision`; the flow runner acts on
it (continue, retry the step, queue the flow again, fail, re-authenticate) without looking at
statuses or exceptions itself.

| code | name         | runner behaviour                                          |
|------|--------------|-----------------------------------------------------------|
| 0    | `continue`   | accept the attempt; the response becomes the step output  |
| 1    | `retry_step` | retry the step under its retry policy                     |
| 2    | `retry_flow` | fail the run and queue a new run of the flow after a delay |
| 3    | `fail`       | fail the run, no retry                                    |
| 4    | `reauth`     | refresh the connector's credentials and send again        |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CODE_NAMES",
    "Decision",
    "ResponseCode",
    "classify",
    "decision_for",
]


class ResponseCode(IntEnum):
    """The response codes 0–4 of a response script (the source document's values)."""

    CONTINUE = 0
    RETRY_STEP = 1
    RETRY_FLOW = 2
    FAIL = 3
    REAUTHENTICATE = 4


#: Response code → the decision's name (the names of FORMAT.md).
CODE_NAMES: dict[int, str] = {
    ResponseCode.CONTINUE: "continue",
    ResponseCode.RETRY_STEP: "retry_step",
    ResponseCode.RETRY_FLOW: "retry_flow",
    ResponseCode.FAIL: "fail",
    ResponseCode.REAUTHENTICATE: "reauth",
}

#: Statuses worth retrying besides 5xx: the request may succeed if sent again later.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: Failures without an answer that sending again would only repeat (`Exchange.error_type`).
_FINAL_ERRORS = frozenset({"protocol", "tls"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after one attempt: a response code 0-4, its name, why, and a server hint."""

    code: ResponseCode
    name: str
    message: str | None = None
    #: seconds the server asked to wait (`Retry-After`), when it did
    retry_after: float | None = None

    @property
    def accepted(self) -> bool:
        """True when the attempt is accepted (code 0)."""
        return self.code == ResponseCode.CONTINUE


def decision_for(
    code: int, message: str | None = None, retry_after: float | None = None
) -> Decision:
    """The decision for a response code 0-4; any other code is a `ValueError`."""
    # bool is an int; a script returning True must not read as code 1
    if isinstance(code, bool) or not isinstance(code, int) or code not in CODE_NAMES:
        raise ValueError(f"response_code must be one of 0, 1, 2, 3, 4, not {code!r}")
    return Decision(ResponseCode(code), CODE_NAMES[code], message, retry_after)


def classify(
    status: int | None,
    error: str | None,
    reauths_done: int,
    max_reauth: int,
    retry_after: float | None = None,
    *,
    error_type: str | None = None,
    refreshable: bool = True,
) -> Decision:
    """The default classifier, used when a connector step has no response script.

    2xx → continue; 401 → reauth while `reauths_done < max_reauth` and the connector has
    credentials to refresh (`refreshable`), then fail; 408, 425, 429, 5xx, timeouts and
    network errors (`status` None) → retry_step, but for an answer refused as malformed or
    over a limit and a TLS refusal (`error_type` protocol or tls), which would come again →
    fail; anything else → fail.
    """
    if status is None:
        code = 3 if error_type in _FINAL_ERRORS else 1
        return decision_for(code, error or "no response", retry_after)
    if 200 <= status < 300:
        return decision_for(0, f"HTTP {status}")
    if status == 401:
        if not refreshable:
            return decision_for(3, "HTTP 401 (the connector's credentials are static or "
                                "none: there is nothing to refresh)")
        if reauths_done < max_reauth:
            return decision_for(4, "HTTP 401: re-authenticating")
        return decision_for(3, _exhausted_reauth(reauths_done))
    if status in _RETRYABLE_STATUSES or 500 <= status < 600:
        return decision_for(1, f"HTTP {status}", retry_after)
    return decision_for(3, f"HTTP {status}")


def _exhausted_reauth(reauths_done: int) -> str:
    if reauths_done == 0:
        return "HTTP 401 (re-authentication disabled)"
    plural = "" if reauths_done == 1 else "s"
    return f"HTTP 401 after {reauths_done} re-authentication{plural}"
