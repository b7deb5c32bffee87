"""The durable store's one interface: records, write operations, and the `Store` contract.

Writes are *data*: a caller hands `Store.write()` a few operations (`InsertRun`, `SaveStep`,
`Enqueue`, `Complete`, …) and they are applied atomically, all or none. Because writes are data,
a backend is free to batch many callers' writes into one transaction (group commit on SQLite)
without changing what any single caller sees.

Operations that act on a leased queue item name the `owner`; when the owner no longer holds the
lease (it expired and another worker claimed the item) the whole write is rolled back and
`LeaseLost` is raised, so a worker that lost its item cannot record a second outcome for it.

Times are Unix epoch seconds (floats) taken from the caller's clock.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from interlink.redaction import Redactor

__all__ = [
    "UNKNOWN_DECISION",
    "AttemptRecord",
    "Complete",
    "Credential",
    "DeleteSession",
    "Enqueue",
    "Fail",
    "InsertLogs",
    "InsertRun",
    "LogLine",
    "MarkSeen",
    "PutCache",
    "PutCredential",
    "PutSession",
    "QueueItem",
    "QueueStatus",
    "RecordNonce",
    "Release",
    "Requeue",
    "RunRecord",
    "RunStatus",
    "SaveAttempt",
    "SaveStep",
    "SessionRecord",
    "StepRecord",
    "Store",
    "UpdateRun",
    "Wake",
    "WriteOp",
]

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "stopped", "partial"]
QueueStatus = Literal["ready", "leased", "done", "failed", "broken"]


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of a flow, with the flow definition it started with."""

    id: str
    flow: str
    status: RunStatus
    trigger: str
    input: Any
    flow_spec: dict[str, Any]
    created_at: float
    retry_of: str | None = None
    retry_count: int = 0
    step_index: int = 0
    bucket: list[Any] | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    #: how many times the run was re-driven from its failed step (0: never); attempts made
    #: since the last re-drive are the ones that count against the retry policy
    redrive: int = 0
    #: variables set by its steps (`set`), over the flow's own
    variables: dict[str, Any] | None = None
    #: the queue item made due when this run ends (its parent run's, for `run_flow`)
    wake: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """The state of one step of a run (upserted by run id + index)."""

    run_id: str
    index: int
    step_id: str
    status: str
    started_at: float
    finished_at: float | None = None
    error: str | None = None
    output: list[Any] | None = None


#: `AttemptRecord.decision` of an attempt whose outcome is not recorded: it is being sent, or
#: the process stopped before its answer was written (it counts as made: it may have arrived)
UNKNOWN_DECISION = "unknown"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a connector step: request, response, the decision taken and why.

    An attempt is saved twice under the same key (run, step, item, n): before it is sent,
    with decision `unknown` (so a crash can never make it uncounted), then with its outcome.
    """

    run_id: str
    step_id: str
    n: int
    request: dict[str, Any]
    response: dict[str, Any] | None
    code: int
    decision: str
    created_at: float
    message: str | None = None
    wait_s: float = 0.0
    error: str | None = None
    #: index of the payload in the step's bucket
    item: int = 0
    #: the run's `redrive` when the attempt was made
    redrive: int = 0
    #: True when this attempt's refusal made the step log in again (counts against max_reauth)
    reauth: bool = False
    #: the step's output for this payload, on the accepted attempt (a resumed step reuses it)
    output: Any = None
    #: the page of a paginated call (0 for the first, or an unpaginated call)
    page: int = 0


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line of a run's log."""

    run_id: str
    message: str
    created_at: float
    level: str = "info"
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """Durable work: a run to start or resume, a queued service request, …"""

    id: str
    kind: str
    payload: Any
    status: QueueStatus
    priority: int
    run_at: float
    attempts: int
    created_at: float
    updated_at: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    last_error: str | None = None
    result: Any = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A stateful service session, bound to the caller that authenticated it."""

    id: str
    data: dict[str, Any]
    expires_at: float
    #: a hash of the principal that authenticated the session (never a secret); None for a
    #: session stored before sessions were bound, which then matches no caller
    principal: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """A connector's shared token; `version` grows by one at every refresh."""

    name: str
    token: dict[str, Any]
    version: int
    expires_at: float | None = None


# --- write operations --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsertRun:
    """Create a run. A run whose id exists already is left as it is; with `exclusive` the
    write raises `Conflict` instead (the caller is about to execute the run and must be the
    only one).

    With `key` (a scheduled flow's fire time) there is at most one run per key, whatever its
    id: when a run with that key exists, the write raises `Conflict` and applies nothing.
    """

    run: RunRecord
    exclusive: bool = False
    key: str | None = None


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


# --- the contract ------------------------------------------------------------------------------


class Store(abc.ABC):
    """Durable state of a project. Open with `await store.open()`, close with `close()`."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # writes

    @abc.abstractmethod
    def redact_with(self, redactor: Redactor | None) -> None:
        """Replace the secrets `redactor` knows with `***` in everything written from now on
        (every column but the connectors' own tokens)."""

    @abc.abstractmethod
    async def write(self, *ops: WriteOp) -> list[Any]:
        """Apply `ops` atomically; returns one result per op (`Requeue` → bool, else None).

        Raises `LeaseLost` (and applies nothing) when an op names a lease its owner lost.
        """

    async def enqueue(
        self, kind: str, payload: Any, *, item_id: str, run_at: float | None = None,
        priority: int = 0,
    ) -> str:
        """Add one queue item; returns its id."""
        await self.write(Enqueue(item_id, kind, payload, run_at, priority))
        return item_id

    # queue

    @abc.abstractmethod
    async def claim(
        self, owner: str, *, limit: int = 1, lease_s: float = 30.0,
        kinds: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        """Lease up to `limit` items that are due (or whose lease expired), highest priority
        first, then oldest `run_at`. Each claim increments the item's `attempts`."""

    @abc.abstractmethod
    async def extend_leases(self, owner: str, item_ids: Sequence[str], lease_s: float) -> set[str]:
        """Renew leases still held by `owner`; returns the ids renewed."""

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (part of the API)
        """Return when new work may be claimable, or after `timeout` seconds."""

    @abc.abstractmethod
    async def get_item(self, item_id: str) -> QueueItem | None:
        """One queue item, or None."""

    @abc.abstractmethod
    async def list_items(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[QueueItem]:
        """Queue items, newest first."""

    # runs

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

    @abc.abstractmethod
    async def list_runs(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs, newest first."""

    @abc.abstractmethod
    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in order."""

    @abc.abstractmethod
    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        """A run's attempts in the order they were made."""

    @abc.abstractmethod
    async def get_logs(self, run_id: str) -> list[LogLine]:
        """A run's log lines in order."""

    # sessions and credentials

    @abc.abstractmethod
    async def get_session(self, session_id: str, now: float) -> SessionRecord | None:
        """A session that has not expired at `now`, or None."""

    @abc.abstractmethod
    async def get_cached(self, scope: str, key: str, now: float) -> tuple[bool, Any]:
        """`(True, value)` for a value kept for `key` that has not expired at `now`, else
        `(False, None)`."""

    @abc.abstractmethod
    async def get_credential(self, name: str) -> Credential | None:
        """A connector's shared token, or None."""

    @abc.abstractmethod
    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the named lock if it is free or expired (cross-process single-flight)."""

    @abc.abstractmethod
    async def unlock(self, name: str, owner: str) -> None:
        """Release the named lock if `owner` holds it."""

    # housekeeping

    @abc.abstractmethod
    async def purge(self, *, before: float) -> int:
        """Delete queue items that ended `done` or `failed` (not `broken`: those wait for a
        requeue) last updated before `before`, and sessions, locks, nonces, dedupe keys and
        cached values expired by then.
        Returns the number of queue items deleted."""
