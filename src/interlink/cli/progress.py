"""What `interlink run` says on stderr while it waits: one line per change of the run.

It reads the run from the store (the run, its steps, its attempts) a few times a second, so
it tells the same whichever process executes the run, and needs nothing from the runner.
Lines: the run queued, each attempt sent and its outcome (with the wait it asked for), a
durable wait with its reason, each step's end, the run's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from interlink.flows.runner import TERMINAL
from interlink.store import UNKNOWN_DECISION, AttemptRecord, RunRecord, Store

__all__ = ["Progress"]

#: seconds between two looks at the run
POLL_S = 0.2


class Progress:
    """Tells `echo` what changed in run `run_id` since the last `look`."""

    def __init__(self, store: Store, run_id: str, echo: Callable[[str], None]) -> None:
        self.store = store
        self.run_id = run_id
        self.echo = echo
        self._status: str | None = None
        self._steps: set[tuple[str, str]] = set()
        #: attempts told, by key, with whether their outcome was told too
        self._attempts: dict[tuple[str, int, int, int], bool] = {}

    async def follow(self) -> None:
        """Look at the run until cancelled."""
        while True:
            await self.look()
            await asyncio.sleep(POLL_S)

    async def look(self) -> None:
        """Tell what changed since the last look."""
        run = await self.store.get_run(self.run_id)
        if run is None:
            return
        steps = await self.store.get_steps(self.run_id)
        attempts = await self.store.get_attempts(self.run_id)
        if run.status == "queued" and (steps or attempts):
            # Started between the reads: its `running` commits with its first step's write,
            # so a second read tells it before the attempts it led to.
            run = await self.store.get_run(self.run_id) or run
        first, changed = self._status is None, run.status != self._status
        self._status = run.status
        ended = run.status in TERMINAL
        # What one look found is told in the order it happened: the run's start before the
        # attempts it sent, a step's attempts before its end (a fast step is sent, answered
        # and ended between two looks; a run can be queued and started between two).
        told: list[tuple[float, int, str]] = []
        if first and run.status != "queued":
            told.append((run.created_at, 0, _state(run, "queued")))
            if run.status != "running" and run.started_at is not None:  # it ran, and more
                told.append((run.started_at, 1, _state(run, "running")))
        if changed and not ended:  # running, waiting
            told.append((_since(run), len(told), await self._run_line(run)))
        for step in steps:
            if step.status == "waiting" or (step.step_id, step.status) in self._steps:
                continue
            self._steps.add((step.step_id, step.status))
            took = f" in {step.finished_at - step.started_at:.2f}s" if step.finished_at else ""
            told.append((step.finished_at or step.started_at, len(told),
                         f"step {step.step_id}: {step.status}{took}"))
        for attempt in attempts:
            told += [(attempt.created_at, len(told) + n, line)
                     for n, line in enumerate(self._attempt(run, attempt))]
        for _, _, line in sorted(told):
            self.echo(line)
        if changed and ended:  # after the steps that led to it
            self.echo(await self._run_line(run))

    def _attempt(self, run: RunRecord, a: AttemptRecord) -> list[str]:
        """The lines not told yet of attempt `a`: it was sent, and what came of it."""
        key = (a.step_id, a.item, a.page, a.n)
        decided = a.decision != UNKNOWN_DECISION
        told = self._attempts.get(key)
        lines = []
        if told is None:
            steps = run.flow_spec.get("steps", [])
            where = next((f" ({i + 1} of {len(steps)})" for i, s in enumerate(steps)
                          if s.get("id") == a.step_id), "")
            lines.append(f"step {a.step_id}{where}: attempt {a.n}{_item(a)}: "
                         f"{a.request.get('method', '-')} {a.request.get('url', '-')}")
        if decided and not told:
            self._attempts[key] = True
            answer = f"HTTP {a.response['status']}" if a.response else (a.error or "no answer")
            wait = f", waiting {a.wait_s:g}s" if a.wait_s else ""
            lines.append(f"step {a.step_id}: attempt {a.n}{_item(a)}: {answer} → "
                         f"{a.decision}{wait}")
        else:
            self._attempts.setdefault(key, False)
        return lines

    async def _run_line(self, run: RunRecord) -> str:
        if run.status == "waiting":
            logs = await self.store.get_logs(run.id)
            # The line the wait was logged with is the run's last: nothing runs while it waits.
            why = logs[-1].message if logs else None
            return f"run {run.id} waiting" + (f": {why}" if why else "")
        if run.status in ("queued", "running"):
            return _state(run, run.status)
        took = ""
        if run.finished_at is not None:
            took = f" in {run.finished_at - (run.started_at or run.created_at):.2f}s"
        return f"run {run.id} {run.status}{took}"


def _state(run: RunRecord, status: str) -> str:
    return f"run {run.id} {status} (flow {run.flow})"


def _since(run: RunRecord) -> float:
    """When the run's current status began (as near as the record says)."""
    if run.status == "queued":
        return run.created_at
    if run.status == "running" and run.started_at is not None:
        return run.started_at
    return run.updated_at or run.created_at


def _item(a: AttemptRecord) -> str:
    """Which payload (and page) an attempt is for, when the step has several."""
    if not a.item and not a.page:
        return ""
    return f" (payload {a.item + 1}" + (f", page {a.page + 1})" if a.page else ")")
