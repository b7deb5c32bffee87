"""The scheduler starts one run per fire time, however many schedulers share the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.projects import write_project

from interlink.engine import Engine
from interlink.flows.schedule import Scheduler

FILES = {
    "flows/nightly.yaml": "name: nightly\ntrigger: {type: schedule, cron: '*/5 * * * *'}\n"
                          "steps:\n  - {id: s, type: script, script: scripts/s.py}\n",
    "flows/manual.yaml": "name: manual\nsteps:\n  - {id: s, type: script, script: scripts/s.py}\n",
    "scripts/s.py": "def handle(data):\n    return data\n",
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_one_run_per_fire_time_across_schedulers(tmp_path: Path) -> None:
    """Two schedulers ticking over the same 12 minutes start runs at :05 and :10, once each."""
    project = write_project(tmp_path, FILES)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC))
    async with Engine(project) as first, Engine(project) as second:
        schedulers = [Scheduler(e.runner, project.flows, clock) for e in (first, second)]
        assert [await s.tick() for s in schedulers] == [[], []]  # the first tick marks the time
        clock.now += timedelta(minutes=12)
        started = [await s.tick() for s in schedulers]
        runs = await first.store.list_runs()
        items = await first.store.list_items()
    assert len(started[0]) == 2
    assert started[1] == []  # the second scheduler found both fire times taken
    assert {r.id for r in runs} == set(started[0])
    assert {r.flow for r in runs} == {"nightly"}
    assert {r.trigger for r in runs} == {"schedule"}
    fire_times = sorted(i.run_at for i in items)
    assert [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in fire_times] == [
        "10:05", "10:10"]


async def test_scheduled_run_ids_are_random_not_derived_from_the_fire_time(
        tmp_path: Path) -> None:
    """Two stores scheduling the same flow and fire time give the runs unrelated random ids."""
    project = write_project(tmp_path, FILES)
    ids = []
    for store in ("a.db", "b.db"):
        clock = Clock(datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC))
        async with Engine(project, store_url=f"sqlite:///{tmp_path / store}") as engine:
            scheduler = Scheduler(engine.runner, project.flows, clock)
            await scheduler.tick()
            clock.now += timedelta(minutes=5)
            ids += await scheduler.tick()
    assert len(ids) == 2
    assert ids[0] != ids[1]  # derived from the flow and the time they would be equal


async def test_a_project_without_schedules_has_nothing_to_do(tmp_path: Path) -> None:
    """Without schedule triggers the scheduler returns at once."""
    import asyncio

    project = write_project(tmp_path, {k: v for k, v in FILES.items() if "nightly" not in k})
    async with Engine(project) as engine:
        scheduler = Scheduler(engine.runner, project.flows)
        await asyncio.wait_for(scheduler.run(asyncio.Event()), 1)
    assert scheduler.crons == {}
