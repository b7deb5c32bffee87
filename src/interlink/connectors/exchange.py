"""One request to a connector and what came back: the `Exchange`.

An exchange never raises for an HTTP status and carries network failures as `error`, so the
caller (a flow step) can hand it to a response script or the default classifier and decide.

The request side is recorded already redacted (credential headers masked, secrets replaced,
body cut to an excerpt). The response keeps its full text, because it becomes the step's
payload; `record()` gives the redacted excerpt that is safe to store in a run's attempts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from interlink.connectors.retry import parse_retry_after

__all__ = ["EXCERPT_LIMIT", "Exchange", "ExchangeRequest", "ExchangeResponse", "excerpt"]

#: Longest body kept in an attempt record (characters).
EXCERPT_LIMIT = 2048


def excerpt(text: str | None, limit: int = EXCERPT_LIMIT) -> str | None:
    """`text` cut to at most `limit` characters, the cut marked."""
    if text is None or len(text) <= limit:
        return text
    marker = f"… [{len(text)} characters]"
    return text[: max(0, limit - len(marker))] + marker


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """The request as sent, redacted: method, full URL, headers and a body excerpt."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready form for an attempt record."""
        return {"method": self.method, "url": self.url, "headers": self.headers,
                "body": self.body}


@dataclass(frozen=True, slots=True)
class ExchangeResponse:
    """The response as received: status, headers, body text and its JSON when it parses."""

    status: int
    headers: dict[str, str]
    body: str
    json: Any = None
    #: False when the body is not JSON (then `json` is None)
    has_json: bool = False

    def script_view(self) -> dict[str, Any]:
        """The `response` a response script sees: `status`, `headers`, `body` (+ `json`)."""
        view: dict[str, Any] = {"status": self.status, "headers": dict(self.headers),
                                "body": self.body}
        if self.has_json:
            view["json"] = self.json
        return view


@dataclass(frozen=True, slots=True)
class Exchange:
    """One attempt's request and response (or the error that stopped it)."""

    connector: str
    endpoint: str
    request: ExchangeRequest
    response: ExchangeResponse | None = None
    #: why no response came: `timed out after 10s`, `connection refused (…)`, …
    error: str | None = None
    #: the kind of that failure: `timeout`, `dns`, `connect`, `disconnected`, `protocol`,
    #: `network`, or `auth` (credentials could not be obtained, nothing was sent)
    error_type: str | None = None
    #: seconds from sending the request to reading the whole response (or failing)
    elapsed: float = 0.0
    #: seconds spent waiting for the rate limit and the concurrency cap before sending
    waited: float = 0.0
    #: version of the shared credential the request was sent with (None: static auth)
    credential_version: int | None = None
    #: the response as safe to record: redacted headers and body excerpt
    response_record: dict[str, Any] | None = None
    #: wall-clock time the exchange finished (epoch seconds), for Retry-After dates
    finished_at: float = field(default_factory=time.time)

    @property
    def status(self) -> int | None:
        """The HTTP status, or None when no response came."""
        return self.response.status if self.response is not None else None

    @property
    def ok(self) -> bool:
        """True for a 2xx response."""
        return self.response is not None and 200 <= self.response.status < 300

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (`Retry-After`), if it did."""
        if self.response is None:
            return None
        for name, value in self.response.headers.items():
            if name.lower() == "retry-after":
                return parse_retry_after(value, self.finished_at)
        return None

    def script_error(self) -> dict[str, Any] | None:
        """The `error` a response script sees when no response came: `type` and `message`."""
        if self.error is None:
            return None
        return {"type": self.error_type or "network", "message": self.error}

    def record(self) -> dict[str, Any]:
        """JSON-ready, redacted form: `request`, `response` (or None), `error`, `elapsed`."""
        return {
            "request": self.request.record(),
            "response": self.response_record,
            "error": self.error,
            "elapsed": round(self.elapsed, 6),
            "waited": round(self.waited, 6),
        }
