"""Why a service request stopped early, as data the response phase can answer from.

```
InterlinkError
└── ServiceError              building the services app failed (a configuration problem)
PhaseFailure                  a request failed in one phase (not an InterlinkError: expected)
├── SecurityFailure           the caller did not authenticate
├── MappingFailure            the body could not be parsed or `request.map` failed
│   └── BodyTooLarge          the body is larger than `request.max_body` (always 413)
└── ActivityFailure           the activity raised, timed out or ended failed
```

A failure's `message` is written by the engine and is safe to show the caller: it never holds
a traceback, a file path or a secret. `detail` may hold more (an exception's text, redacted of
the project's secrets) and reaches a response only when a rule maps `error.detail`.
"""

from __future__ import annotations

from typing import Any

from interlink.errors import InterlinkError

__all__ = [
    "ActivityFailure",
    "BodyTooLarge",
    "MappingFailure",
    "PhaseFailure",
    "SecurityFailure",
    "ServiceError",
]


class ServiceError(InterlinkError):
    """The services app could not be built from the project (names the service)."""


class PhaseFailure(Exception):
    """A request failed in `phase`; `kind` names the failure, `message` is caller-safe."""

    phase = ""
    outcome = ""

    def __init__(self, kind: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail if detail is not None else message

    def as_context(self) -> dict[str, Any]:
        """The `error` entry of the request context."""
        return {"phase": self.phase, "type": self.kind, "message": self.message,
                "detail": self.detail}


class SecurityFailure(PhaseFailure):
    """Authentication failed; `challenge` is a `WWW-Authenticate` value to send, if any."""

    phase = "security"
    outcome = "security_error"

    def __init__(self, kind: str, message: str, challenge: str | None = None, *,
                 detail: str | None = None) -> None:
        super().__init__(kind, message, detail)
        self.challenge = challenge


class MappingFailure(PhaseFailure):
    """The request body could not be parsed, or a `request.map` entry failed."""

    phase = "mapping"
    outcome = "mapping_error"


class BodyTooLarge(MappingFailure):
    """The request body is larger than the service accepts; answered 413, no rule applies."""

    def __init__(self, limit: int) -> None:
        super().__init__("body_too_large", f"request body larger than {limit} bytes")
        self.limit = limit


class ActivityFailure(PhaseFailure):
    """The activity raised, timed out, or its run ended failed (a service error)."""

    phase = "activity"
    outcome = "service_error"
