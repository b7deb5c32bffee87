"""What the store keeps, as records: runs, steps, attempts, log lines, queue items, sessions,
credentials. Times are Unix epoch seconds (floats) taken from the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "ENDED",
    "RUN_STATUSES",
    "UNKNOWN_DECISION",
    "AttemptOutcome",
    "AttemptRecord",
    "Credential",
    "LogLine",
    "QueueItem",
    "QueueStatus",
    "RunPage",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "SessionRecord",
    "StepRecord",
]

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "stopped", "partial"]
QueueStatus = Literal["ready", "leased", "done", "failed", "broken"]
#: every `RunStatus`, in the order a run goes through them
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
#: the statuses a run ends with (nothing runs it again unless someone retries it)
ENDED: frozenset[str] = frozenset({"succeeded", "failed", "stopped", "partial"})


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
class RunQuery:
    """Which runs a listing shows (every field given must match)."""

    flow: str | None = None
    status: str | None = None
    trigger: str | None = None
    #: created at or after (epoch seconds)
    since: float | None = None
    #: created before (epoch seconds)
    until: float | None = None
    #: a run id, a queue item id (its run), or text in the run's input
    search: str | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a listing, newest first, and the cursor of the next (older) page."""

    runs: list[RunRecord]
    #: opaque; None when this is the last page
    cursor: str | None


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
class AttemptOutcome:
    """What failure rates need of an attempt (`Store.attempts_after`): no request or body."""

    #: the attempt's row id: grows as attempts are inserted
    seq: int
    run_id: str
    flow: str
    step_id: str
    code: int
    decision: str
    created_at: float
    message: str | None = None


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
    #: the run the item names (`payload["run_id"]`), read with the claim (claimed items only):
    #: a worker starting a run needs no read of its own
    run: RunRecord | None = None


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
