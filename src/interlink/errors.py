"""Every error Interlink raises on purpose has one root, `InterlinkError`.

```
InterlinkError
├── ProjectError          a project file is wrong; carries FILE and LINE
│   └── ProjectErrors     several ProjectErrors found in one load
├── ExpressionError       an expression or template failed while being evaluated
├── StoreError            the durable store could not do what was asked
│   ├── StoreUnavailable  unreachable, busy or closing: the same request may work later
│   ├── ValueRefused      a value the store cannot hold: refused again if sent again
│   ├── InvalidCursor     a listing cursor the store did not hand out (also a ValueError)
│   └── Conflict          a write found its record changed by another process (nothing applied)
│       └── LeaseLost     a queue item's lease expired and another worker took it
├── ConnectorError        an outbound call could not be made or answered
│   └── AuthError         logging in / fetching a token failed
├── ScriptError           a user script raised, timed out, ran out of memory or returned garbage
│   └── ScriptCallError   … with the script's name and the kind of failure (scripts.outcome)
├── ServiceError          the services app could not be built (services.failures)
├── ServerError           `serve` could not bind its port or keep its server processes running
├── RunError              a flow run could not go on (carries run and step ids)
└── NotificationError     a notification could not be delivered (carries channel and reason)
```

A request that fails one of its phases is not an error of the engine: it is a `PhaseFailure`
(`services.failures`), answered by the service's rules.

Errors carry facts (file, line, ids, attempt numbers); policies decide what to do with them.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthError",
    "Conflict",
    "ConnectorError",
    "ExpressionError",
    "InterlinkError",
    "InvalidCursor",
    "LeaseLost",
    "NotificationError",
    "ProjectError",
    "ProjectErrors",
    "RunError",
    "ScriptError",
    "ServerError",
    "StoreError",
    "StoreUnavailable",
    "ValueRefused",
]


class InterlinkError(Exception):
    """The root of every error Interlink raises on purpose."""


class ProjectError(InterlinkError):
    """A project file is invalid. `str()` is `FILE:LINE: message`."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}")


class ProjectErrors(ProjectError):
    """Several project errors found in one load, reported together, one per line."""

    def __init__(self, errors: Sequence[ProjectError]) -> None:
        first = errors[0]
        self.errors = list(errors)
        super().__init__(first.file, first.line, first.message)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ExpressionError(InterlinkError):
    """An expression or template raised while it was evaluated."""


class StoreError(InterlinkError):
    """The durable store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store could not be reached or was busy (a lost connection, an exhausted pool, a
    locked or full database, a store closing): the same request may succeed later.

    Work that meets it records no outcome of its own: it is claimed again and resumes from
    what the store has. Any other `StoreError` is the request's own fault (a value the store
    refuses) and fails the work that made it.
    """


class ValueRefused(StoreError):
    """A value the store cannot hold (one JSON cannot encode, one too large, one of the wrong
    type): the same write is refused again, and the value came from the work or its caller —
    a webhook answers it 422, where another refusal (a missing table, a permission) is the
    server's 500."""


class InvalidCursor(StoreError, ValueError):
    """A listing cursor that this store did not hand out (the caller's mistake: a 400)."""


class Conflict(StoreError):
    """A write expected a record in a state it is no longer in; the whole write was rolled back.

    Raised when two processes race for the same thing (running a run, re-driving it): the one
    that gets `Conflict` lost the race and must leave the work to the other.
    """


class LeaseLost(Conflict):
    """The worker no longer holds the lease of a queue item (it expired and was reclaimed)."""

    def __init__(self, item_id: str, owner: str) -> None:
        self.item_id = item_id
        self.owner = owner
        super().__init__(f"queue item {item_id}: lease no longer held by {owner}")


class ConnectorError(InterlinkError):
    """An outbound call could not be made or its answer could not be read."""


class AuthError(ConnectorError):
    """Authenticating a connector (login, token request) failed."""


class ScriptError(InterlinkError):
    """A user script raised, timed out, exhausted memory or returned something malformed."""


class ServerError(InterlinkError):
    """`interlink serve` could not bind a port, or its server processes could not start
    (`server_processes`); the message says which and why."""


class RunError(InterlinkError):
    """A flow run could not go on."""


class NotificationError(InterlinkError):
    """A notification could not be delivered to its channel (it is retried)."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"notifying {channel}: {reason}")
