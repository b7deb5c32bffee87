"""What a step kind receives and returns.

A step kind is one module in this package with a `run(ctx, step, bucket)` coroutine. It gets a
`StepContext` (the run, its flow, the engine services it may use, a resume cursor) and the
*bucket* of payloads the previous step produced, and returns one of three outcomes: `Done` with
the next bucket, `Wait` to be resumed later from a cursor (a durable wait), or `Failed`.

Steps see the engine through `StepServices`, a narrow protocol the flow runner implements, so
this package never imports the runner. A composite step (`route`, `try`) runs nested steps
with `services.run_steps(ctx, steps, bucket)`; each nested step gets `ctx.child(step)`, which
shares the writes and log lines its parent will write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from interlink.errors import Conflict, StoreError, StoreUnavailable
from interlink.store import (
    AttemptRecord,
    HoldLease,
    InsertLogs,
    LogLine,
    RunRecord,
    SaveAttempt,
    Store,
    WriteOp,
)

if TYPE_CHECKING:
    import aiohttp

    from interlink.connectors.client import ConnectorClient
    from interlink.expressions import Template
    from interlink.metrics import Metrics
    from interlink.notifications import Sender
    from interlink.redaction import Redactor
    from interlink.scripts import ScriptOutcome
    from interlink.spec.flow import FlowSpec
    from interlink.spec.step import StepSpec

__all__ = ["INLINE_WAIT_S", "Done", "Failed", "StepContext", "StepOutcome", "StepServices",
           "Wait"]

#: waits up to this long are slept in place (a connector's retry, a short `delay`); longer
#: ones are durable queue items
INLINE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class Done:
    """The step finished; `bucket` goes to the next step."""

    bucket: list[Any]
    #: for each output, the index of the input payload it came from, when the step does not
    #: give exactly one output per input, in order (a filter, a split, a batch)
    origins: list[int] | None = None
    #: run variables the step set: written with the step, seen by every later step
    variables: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Resume this step at `until` (epoch seconds) from `cursor`; nothing in memory survives."""

    until: float
    cursor: dict[str, Any]
    reason: str
    #: the run log's level for `reason`: a wait after a failed attempt is a warning, a wait
    #: the flow asked for (a delay, a child run) is not
    level: Literal["info", "warning"] = "warning"
    #: the id of the step that waits, when it is nested in the one reporting it
    step: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The step failed; the run fails. `retry_flow` queues a new run (response code 2)."""

    reason: str
    retry_flow: bool = False
    #: the id of the step that failed, when it is nested in the one reporting it
    step: str | None = None


StepOutcome = Done | Wait | Failed


class StepServices(Protocol):
    """What the engine lends a step: the store, connectors, scripts, redaction, metrics."""

    @property
    def store(self) -> Store:
        """The durable store."""

    @property
    def redactor(self) -> Redactor:
        """The project's redactor."""

    @property
    def lease_s(self) -> float:
        """How long a queue item's lease lasts past its last renewal (`worker.lease`)."""

    @property
    def metrics(self) -> Metrics:
        """The engine's metrics."""

    def connector(self, name: str) -> ConnectorClient:
        """The client of a connector the project defines (`RunError` if it does not)."""

    @property
    def http(self) -> aiohttp.ClientSession:
        """The engine's HTTP client session (for calls that are not a connector's)."""

    async def run_script(self, script: str, data: dict[str, Any], *, isolation: str = "process",
                         time_limit: float | None = None) -> ScriptOutcome:
        """Run `handle(data)` of a project script."""

    def template(self, path: str) -> Template:
        """A template of the project, compiled (`templates/x.json`)."""

    def channel(self, name: str) -> Sender:
        """A notification channel of interlink.yaml (`RunError` if there is none)."""

    def child_run(self, flow: str, input: Any, *, trigger: str, run_id: str) -> RunRecord:
        """A queued run record of the project's flow `flow` (`RunError` if there is none)."""

    async def run_steps(self, ctx: StepContext, steps: list[Any],
                        bucket: list[Any]) -> StepOutcome:
        """Run nested steps in order on `bucket` (a composite step's body)."""


@dataclass(slots=True)
class _Calls:
    """Calls of one step's execution that hold the lease (`StepContext.hold_lease`) and have
    not ended: its nested steps and concurrent payloads share the count."""

    in_flight: int = 0


@dataclass(slots=True)
class StepContext:
    """Everything a step needs: the run, the flow it runs, the engine's services, a cursor."""

    services: StepServices
    run: RunRecord
    flow: FlowSpec
    #: the index of the (top-level) step the run is at
    index: int
    #: the step being run: `flow.steps[index]`, or a step nested in it
    step: StepSpec
    #: where a resumed step picks up (what its `Wait` returned), or None on a first start
    cursor: dict[str, Any] | None = None
    #: writes that can wait for the step's next write (the run's `running` status, the
    #: outcome of the attempt before); shared with nested steps, so changed in place
    pending: list[WriteOp] = field(default_factory=list)
    #: True when an earlier execution may have begun this step (after a crash, a durable
    #: wait or a re-drive): what it did is in the store, and `attempts()` reads it
    resumed: bool = False
    #: the run's variables as set by earlier steps (`set`), over the flow's own
    variables: dict[str, Any] = field(default_factory=dict)
    #: more names for expressions and scripts (`error` in a `try` step's `catch`)
    extra: dict[str, Any] = field(default_factory=dict)
    _logs: list[LogLine] = field(default_factory=list)
    _calls: _Calls = field(default_factory=_Calls)
    #: the queue item this execution of the run holds (a child run wakes it), and who holds
    #: it (empty outside a worker: nothing to fence)
    item_id: str = ""
    owner: str = ""

    @property
    def step_id(self) -> str:
        """The id of the step being run."""
        return self.step.id

    @property
    def nested(self) -> bool:
        """True inside a composite step: what this step did is not checkpointed by itself
        (the composite runs again on resume), so its outputs must be kept with its records."""
        return self.step is not self.flow.steps[self.index]

    def child(self, step: StepSpec) -> StepContext:
        """The context of a step nested in this one (same run, writes and log); its cursor
        is the one it left under its id in this step's (see `FlowRunner.run_steps`)."""
        return replace(self, step=step, cursor=(self.cursor or {}).get(step.id))

    def with_names(self, **extra: Any) -> StepContext:
        """This context with more names for expressions and scripts (`error` in a catch)."""
        return replace(self, extra={**self.extra, **extra})

    def data(self, payload: Any, **extra: Any) -> dict[str, Any]:
        """The `data` a script or expression sees: payload, variables, meta, flow."""
        variables = {**self.flow.variables, **self.variables}
        data = {
            "payload": payload,
            "variables": variables,
            "meta": {"run_id": self.run.id, "step_id": self.step_id, "trigger": self.run.trigger,
                     "retry_of": self.run.retry_of, "retry_count": self.run.retry_count,
                     **extra},
            "flow": {"name": self.flow.name, "variables": variables},
        }
        if self.extra:
            data.update(self.extra)
        return data

    def log(self, message: str, level: str = "info", *, step: str | None = None) -> None:
        """Add a line to the run log (written with the next record, redacted), under this
        step's id or `step`'s (a nested step that reported through this one)."""
        text = self.services.redactor.text(message)
        self._logs.append(LogLine(self.run.id, text, time.time(), level, step or self.step_id))

    def hold_lease(self, call_s: float) -> list[WriteOp]:
        """The op fencing a call of up to `call_s` seconds, to write with its attempt before
        it is sent: the write fails `LeaseLost` if another worker has taken the run over,
        and no other worker can take it over until the call has ended and the usual lease
        has run out after it (renewed or not). Say `call_ended` when it has."""
        if not self.owner:
            return []
        self._calls.in_flight += 1
        return [HoldLease(self.item_id, self.owner, call_s + self.services.lease_s)]

    def call_ended(self) -> None:
        """A call `hold_lease` was for has ended: once none is in flight, the hold gives way
        to the usual lease with the step's next write (a crash from then on is taken over
        after the lease, not after the calls' timeouts)."""
        if not self.owner:
            return
        self._calls.in_flight -= 1
        if not self._calls.in_flight:
            self.defer(HoldLease(self.item_id, self.owner, self.services.lease_s, exact=True))

    def defer(self, *ops: WriteOp) -> None:
        """Write `ops` with the step's next write (they must not be needed durably before)."""
        self.pending.extend(ops)

    def take_writes(self) -> list[WriteOp]:
        """The pending writes and the lines logged since the last call, as write ops."""
        ops = list(self.pending)
        self.pending.clear()
        if self._logs:
            ops.append(InsertLogs(list(self._logs)))
            self._logs.clear()
        return ops

    def drop_attempts(self) -> None:
        """Forget the attempt records waiting for the next write (their outcomes stay
        unknown in the store, as after a crash)."""
        self.pending[:] = [op for op in self.pending if not isinstance(op, SaveAttempt)]

    async def flush(self, *ops: WriteOp) -> list[Any]:
        """Write the pending writes, the log lines and `ops` to the store now, atomically;
        the results of `ops`.

        If the store refuses the write, nothing of it was written: the pending writes and
        lines go with the next write (the step's failure), so the run's start and its log
        are not dropped with the refused op."""
        taken = self.take_writes()
        try:
            results = await self.services.store.write(*taken, *ops)
        except (Conflict, StoreUnavailable):
            raise  # the run is another's, or may have been written: it resumes from the store
        except StoreError:
            self.pending[:0] = taken
            raise
        return results[len(taken):]

    async def attempts(self) -> list[AttemptRecord]:
        """This step's attempts made by earlier executions of the run (none on a first start:
        then nothing is read)."""
        if not self.resumed:
            return []
        step_id = self.step_id
        return [a for a in await self.services.store.get_attempts(self.run.id)
                if a.step_id == step_id]
