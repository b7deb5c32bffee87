"""How the store is changed: write operations, as data.

A caller hands `Store.write()` a few operations (`InsertRun`, `SaveStep`, `Enqueue`,
`Complete`, …) and they are applied atomically, all or none. Because writes are data, a
backend is free to batch many callers' writes into one transaction (group commit on SQLite)
without changing what any single caller sees. Operations that act on a leased queue item name
the `owner`; when the owner no longer holds the lease the whole write is rolled back and
`LeaseLost` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from interlink.store.records import (
    AttemptRecord,
    LogLine,
    RunRecord,
    SessionRecord,
    StepRecord,
)

__all__ = [
    "Complete",
    "DeleteSession",
    "Enqueue",
    "Fail",
    "HoldLease",
    "InsertLogs",
    "InsertRun",
    "MarkSeen",
    "PutCache",
    "PutCredential",
    "PutSession",
    "RecordNonce",
    "Release",
    "Requeue",
    "SaveAttempt",
    "SaveStep",
    "UpdateRun",
    "Wake",
    "WriteOp",
]


@dataclass(frozen=True, slots=True)
class InsertRun:
    """Create a run. A run whose id exists already is left as it is; with `exclusive` the
    write raises `Conflict` instead (the caller is about to execute the run and must be the
    only one).

    With `key` (a scheduled flow's fire time) there is at most one run per key, whatever its
    id: when a run with that key exists, the write raises `Conflict` and applies nothing.
    `parent` is the run that started it (a `run_flow` step's): retention keeps the run as long
    as its parent.
    """

    run: RunRecord
    exclusive: bool = False
    key: str | None = None
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateRun:
    """Change some columns of a run (names as in `RunRecord`, except `id`).

    With `expect` (column → value), the run is changed only while those columns hold those
    values; otherwise the write raises `Conflict` (another process got there first).
    """

    run_id: str
    fields: dict[str, Any]
    expect: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SaveStep:
    """Insert or replace the state of a step."""

    step: StepRecord


@dataclass(frozen=True, slots=True)
class SaveAttempt:
    """Insert an attempt, or replace the one with the same run, step, item and `n`."""

    attempt: AttemptRecord


@dataclass(frozen=True, slots=True)
class InsertLogs:
    """Append lines to run logs."""

    lines: Sequence[LogLine]


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Add a queue item, claimable from `run_at` (now when omitted).

    With `owner` the item starts leased to it for `lease_s`: the caller runs it at once, and
    if the caller dies the lease expires and a worker takes the item over.
    """

    id: str
    kind: str
    payload: Any
    run_at: float | None = None
    priority: int = 0
    owner: str | None = None
    lease_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Complete:
    """Finish a leased item: keep it as `done` (with `result`) or delete it."""

    item_id: str
    owner: str
    result: Any = None
    keep: bool = True


@dataclass(frozen=True, slots=True)
class HoldLease:
    """Check that `owner` still holds the lease on a queue item and make it last at least
    `for_s` from now (never shorter): the fence of a call that must not go twice at once.

    Written with an attempt before it is sent, it makes the write fail `LeaseLost` (and
    apply nothing) once another worker has taken the item over, and keeps the item from
    being taken over while the call may still be in flight, whatever the renewals do.
    `exact`: the lease lasts `for_s` from now, shorter or not (the calls have ended)."""

    id: str
    owner: str
    for_s: float
    exact: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    """Give a leased item back, claimable again from `run_at` (a retry or a durable wait).

    `count_attempt=False` takes back the attempt its claim counted: the item was not worked
    on (what it waits for is still in progress elsewhere).
    """

    item_id: str
    owner: str
    run_at: float
    error: str | None = None
    payload: Any = field(default=None)
    replace_payload: bool = False
    count_attempt: bool = True


@dataclass(frozen=True, slots=True)
class Fail:
    """End a leased item without success: `failed`, or `broken` (kept for requeue)."""

    item_id: str
    owner: str
    error: str
    status: Literal["failed", "broken"] = "failed"
    result: Any = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """Make a `broken` or `failed` item ready again now, with its attempts reset."""

    item_id: str


@dataclass(frozen=True, slots=True)
class MarkSeen:
    """Note a dedupe key as seen by `run_id` until `expires_at`. The op's result is True when
    the key is new to the scope (or expired, or already this run's), False when another run
    saw it first."""

    scope: str
    key: str
    run_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class PutCache:
    """Keep a value for a key until `expires_at` (a connector step's `cache`)."""

    scope: str
    key: str
    value: Any
    expires_at: float


@dataclass(frozen=True, slots=True)
class Wake:
    """Make a ready queue item due now (a parent run whose child ended)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class PutSession:
    """Create or replace a session."""

    session: SessionRecord


@dataclass(frozen=True, slots=True)
class DeleteSession:
    """Remove a session."""

    session_id: str


@dataclass(frozen=True, slots=True)
class RecordNonce:
    """Record that a request signature was seen, until `expires_at`; when it was recorded
    already (a replayed request, here or in another process) the write raises `Conflict`."""

    key: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class PutCredential:
    """Store a refreshed token; its version becomes the old one plus one."""

    name: str
    token: dict[str, Any]
    expires_at: float | None = None


WriteOp = (
    InsertRun
    | UpdateRun
    | SaveStep
    | SaveAttempt
    | InsertLogs
    | Enqueue
    | Complete
    | HoldLease
    | Release
    | Fail
    | Requeue
    | MarkSeen
    | PutCache
    | Wake
    | PutSession
    | DeleteSession
    | RecordNonce
    | PutCredential
)
