"""The scheduler: starts runs of `trigger: {type: schedule, cron: …}` flows at their times.

Every `interlink serve` runs one. Each fire time of a flow becomes a run keyed by the flow and
the time (`FlowRunner.start_once(key=…)`), and the store keeps that key unique, so any number
of schedulers on one store start exactly one run per fire time, with no lock to lose (and the
run's id is as random as any other). A fire time missed while no scheduler ran (the engine
was down) is not made up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from interlink.cron import Cron
from interlink.flows.runner import FlowRunner
from interlink.spec.flow import FlowSpec, ScheduleTrigger

__all__ = ["Scheduler"]

log = logging.getLogger("interlink.schedule")

#: longest sleep between checks (so a changed clock is noticed within a minute)
MAX_SLEEP_S = 60.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Starts the runs of schedule-triggered flows when their cron expressions fire."""

    def __init__(self, runner: FlowRunner, flows: Mapping[str, FlowSpec],
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.runner = runner
        self.clock = clock
        self.crons = {name: Cron.parse(flow.trigger.cron) for name, flow in flows.items()
                      if isinstance(flow.trigger, ScheduleTrigger)}
        self._since: datetime | None = None

    async def tick(self) -> list[str]:
        """Start the runs whose fire times passed since the last tick; returns the ids of those
        this scheduler started (not those another one started first).

        The first tick only marks the time: times before the scheduler started are not run.
        """
        now, since = self.clock(), self._since
        if since is None:
            self._since = now
            return []
        started = []
        for name, cron in self.crons.items():
            fire = cron.next_after(since)
            while fire <= now:
                at = fire.timestamp()
                run_id = await self.runner.start_once(
                    name, None, key=f"schedule:{name}:{at:.0f}", trigger="schedule", run_at=at)
                if run_id is not None:
                    started.append(run_id)
                fire = cron.next_after(fire)
        # Only now: a tick that failed half-way is retried from the same time (the runs it
        # did start are not started twice: their keys are the fire times).
        self._since = now
        return started

    async def run(self, stop: asyncio.Event) -> None:
        """Tick at every fire time until `stop` is set."""
        if not self.crons:
            return
        await self.tick()
        while not stop.is_set():
            since = self._since or self.clock()
            upcoming = min(cron.next_after(since) for cron in self.crons.values())
            delay = min(max((upcoming - self.clock()).total_seconds(), 0.0), MAX_SLEEP_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # a store hiccup must not stop the schedule
                    log.exception("starting scheduled runs failed; trying again")
