"""A run started in a process whose worker has a free slot (and an empty queue) goes straight
to that worker: its queue item is written already leased to it, with no claim and no read —
and it is still durable work any worker takes over if this process dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tests.projects import push_to, running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.errors import Conflict
from interlink.store import Enqueue, InsertRun, Store
from interlink.worker import Worker


class Claims:
    """Counts the store's claims (wrapping the engine's store)."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        original = store.claim

        async def claim(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        store.claim = claim  # type: ignore[method-assign]


async def idle(worker: Worker) -> None:
    """Until the worker's last claim found the queue empty."""
    for _ in range(500):
        if worker.reserve():
            worker.unreserve()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never came to an empty queue")


async def test_a_run_started_here_goes_to_an_idle_worker_without_a_claim(
        tmp_path: Path, store_url: str) -> None:
    async with Upstream() as up:
        project = write_project(tmp_path, push_to(up.url))
        async with running_engine(project, store_url=store_url) as engine:
            [worker] = engine.runner.workers
            await idle(worker)
            claims = Claims(engine.store)
            ids = [await engine.runner.start("push", {"id": n}) for n in range(5)]
            ended = [await engine.runner.wait_for(i, 20) for i in ids]
    assert [run.status for run in ended] == ["succeeded"] * 5
    assert claims.count == 0
    assert sorted(r.json["id"] for r in up.requests_to("/orders")) == [0, 1, 2, 3, 4]


async def test_queued_work_is_not_overtaken(tmp_path: Path) -> None:
    """While the last claim took as many items as it could, there may be more waiting: a new
    run then goes to the queue behind them."""
    async with Upstream() as up:
        project = write_project(tmp_path, push_to(up.url))
        async with Engine(project) as engine:
            worker = engine.worker()
            worker.concurrency = 1
            assert not worker.reserve()  # not started: nothing is handed over
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            try:
                await idle(worker)
                up.route("/orders", delay=0.3)
                first = await engine.runner.start("push", {"id": 1})  # handed over, slow
                second = await engine.runner.start("push", {"id": 2})  # no free slot: queued
                ready = await engine.store.list_items(status="ready")
                assert [item.payload["run_id"] for item in ready] == [second]
                await asyncio.sleep(0.05)
                third = await engine.runner.start("push", {"id": 3})
                for run_id in (first, second, third):
                    await engine.runner.wait_for(run_id, 20)
            finally:
                stop.set()
                await running
    assert [r.json["id"] for r in up.requests_to("/orders")] == [1, 2, 3]


async def test_a_start_that_is_refused_gives_its_slot_back(tmp_path: Path) -> None:
    async with Upstream() as up:
        project = write_project(tmp_path, push_to(up.url))
        async with running_engine(project) as engine:
            [worker] = engine.runner.workers
            await idle(worker)
            await engine.runner.start("push", {"id": 1}, key="once")
            with pytest.raises(Conflict):
                await engine.runner.start("push", {"id": 1}, key="once")
            assert worker._reserved == 0
            await idle(worker)


async def test_an_item_written_leased_to_a_worker_that_died_is_taken_over(
        tmp_path: Path, store_url: str) -> None:
    """What a handed-over run leaves in the store if its process is killed before it runs: an
    item leased to a worker that renews nothing. Its lease runs out; another worker runs it."""
    async with Upstream() as up:
        project = write_project(tmp_path, push_to(up.url))
        async with Engine(project, store_url=store_url) as engine:
            run = engine.runner.new_run(engine.runner.flow("push"), {"id": 9}, trigger="api")
            await engine.store.write(InsertRun(run), Enqueue(
                "q_dead", "run", {"run_id": run.id}, owner="dead-host:1:abc", lease_s=0.5))
        async with running_engine(project, store_url=store_url) as engine:
            started = time.monotonic()
            ended = await engine.runner.wait_for(run.id, 20)
    assert ended.status == "succeeded"
    assert time.monotonic() - started >= 0.2  # not before the dead worker's lease ran out
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 9}]


async def test_a_start_whose_caller_is_cancelled_mid_write_is_still_run_here(
        tmp_path: Path) -> None:
    """The caller (a webhook whose client hung up) is cancelled while the run's write is in
    flight: the write commits anyway, leased to this worker, and the worker runs it — it does
    not wait, leased to nobody running it, for its lease to run out (an hour here)."""
    async with Upstream() as up:
        project = write_project(tmp_path, {**push_to(up.url),
                                           "interlink.yaml": "name: test\nstore: "
                                           "sqlite:///.interlink/test.db\nworker: {lease: 1h}\n"})
        async with running_engine(project) as engine:
            [worker] = engine.runner.workers
            await idle(worker)
            start = asyncio.create_task(engine.runner.start("push", {"id": 7}))
            await asyncio.sleep(0)  # the write is submitted to the store's writer
            start.cancel()
            with pytest.raises(asyncio.CancelledError):
                await start
            for _ in range(1000):
                if up.requests_to("/orders"):
                    break
                await asyncio.sleep(0.01)
            [run] = await engine.store.list_runs(flow="push")
            ended = await engine.runner.wait_for(run.id, 20)
            assert worker._reserved == 0
    assert ended.status == "succeeded"
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 7}]
