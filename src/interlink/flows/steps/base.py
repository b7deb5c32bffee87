"""What a step kind receives and returns.

A step kind is one module in this package with a `run(ctx, step, bucket)` coroutine. It gets a
`StepContext` (the run, its flow, the engine's services, a resume cursor) and the *bucket* of
payloads the previous step produced, and returns one of three outcomes: `Done` with the next
bucket, `Wait` to be resumed later from a cursor (a durable wait), or `Failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interlink.store.base import (
    AttemptRecord,
    InsertAttempt,
    InsertLogs,
    LogLine,
    RunRecord,
    WriteOp,
)

if TYPE_CHECKING:
    from interlink.flows.runner import FlowRunner
    from interlink.spec.flow import FlowSpec

__all__ = ["Done", "Failed", "StepContext", "StepOutcome", "Wait"]


@dataclass(frozen=True, slots=True)
class Done:
    """The step finished; `bucket` goes to the next step."""

    bucket: list[Any]


@dataclass(frozen=True, slots=True)
class Wait:
    """Resume this step at `until` (epoch seconds) from `cursor`; nothing in memory survives."""

    until: float
    cursor: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The step failed; the run fails. `retry_flow` queues a new run (response code 2)."""

    reason: str
    retry_flow: bool = False


StepOutcome = Done | Wait | Failed


@dataclass(slots=True)
class StepContext:
    """Everything a step needs: the run, the flow it runs, the engine's services, a cursor."""

    runner: FlowRunner
    run: RunRecord
    flow: FlowSpec
    index: int
    #: where a resumed step picks up (what its `Wait` returned), or None on a first start
    cursor: dict[str, Any] | None = None
    #: writes that can wait for the step's next write (the run's `running` status)
    pending: list[WriteOp] = field(default_factory=list)
    _logs: list[LogLine] = field(default_factory=list)

    @property
    def step_id(self) -> str:
        """The id of the step being run."""
        return self.flow.steps[self.index].id

    def data(self, payload: Any, **extra: Any) -> dict[str, Any]:
        """The `data` a script or expression sees: payload, variables, meta, flow."""
        variables = dict(self.flow.variables)
        return {
            "payload": payload,
            "variables": variables,
            "meta": {"run_id": self.run.id, "step_id": self.step_id, "trigger": self.run.trigger,
                     "retry_of": self.run.retry_of, "retry_count": self.run.retry_count,
                     **extra},
            "flow": {"name": self.flow.name, "variables": variables},
        }

    def log(self, message: str, level: str = "info") -> None:
        """Add a line to the run log (written with the next record, redacted)."""
        text = self.runner.redactor.text(message)
        self._logs.append(LogLine(self.run.id, text, time.time(), level, self.step_id))

    def take_writes(self) -> list[WriteOp]:
        """The pending writes and the lines logged since the last call, as write ops."""
        ops, self.pending = self.pending, []
        if self._logs:
            ops.append(InsertLogs(self._logs))
            self._logs = []
        return ops

    async def record_attempt(self, attempt: AttemptRecord) -> None:
        """Write an attempt (with the pending writes and log lines) to the store now."""
        await self.runner.store.write(*self.take_writes(), InsertAttempt(attempt))
