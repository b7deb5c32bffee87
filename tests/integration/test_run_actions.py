"""What an operator does to runs (`FlowRunner.retry`, `retry_matching`, `redrive`, `stop`):
a real engine and worker, a real SQLite store, a real loopback upstream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.test_flows import finished, shop
from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.errors import RunError
from interlink.store import RunQuery

FLOW = """
name: order
steps:
  - {id: reserve, type: connector, connector: wh, endpoint: reserve}
  - {id: ship, type: connector, connector: wh, endpoint: ship}
"""


def two_steps(url: str) -> dict[str, str]:
    """A connector to `url` and a flow `order` calling /reserve, then /ship."""
    connector = (f"name: wh\nbase_url: {url}\n"
                 "retry: {max_attempts: 2, initial: 10ms, max: 20ms}\n"
                 "endpoints:\n  reserve: {method: POST, path: /reserve}\n"
                 "  ship: {method: POST, path: /ship}\n")
    return {"connectors/wh.yaml": connector, "flows/order.yaml": FLOW}


async def test_a_run_has_one_retry_however_often_it_is_asked_for(tmp_path: Path) -> None:
    """Retrying a failed run twice gives the same retry run, which succeeds; a run that has
    not ended cannot be retried."""
    async with Upstream() as up:
        up.route("/orders", statuses=[400])
        async with running_engine(shop(tmp_path, up)) as engine:
            failed = await finished(engine, await engine.runner.start("push", {"id": 1}))
            assert failed["status"] == "failed"
            up.route("/orders", statuses=[200])
            assert await engine.runner.retried_as(failed["id"]) is None
            first = await engine.runner.retry(failed["id"])
            assert await engine.runner.retried_as(failed["id"]) == first
            again = await engine.runner.retry(failed["id"])
            retried = await finished(engine, first)
            runs = await engine.store.list_runs()
    assert first == again
    assert (retried["status"], retried["retry_of"], retried["trigger"]) == (
        "succeeded", failed["id"], "retry")
    assert len(runs) == 2
    assert len(up.requests_to("/orders")) == 2


async def test_a_run_that_succeeded_is_not_retried(tmp_path: Path) -> None:
    """Its payloads were delivered; a retry (new keys) would deliver them a second time."""
    async with Upstream() as up:
        up.route("/orders", statuses=[200])
        async with running_engine(shop(tmp_path, up)) as engine:
            ok = await finished(engine, await engine.runner.start("push", {"id": 1}))
            assert ok["status"] == "succeeded"
            with pytest.raises(RunError, match="it succeeded; only a failed, stopped or "
                                               "partial run can be retried"):
                await engine.runner.retry(ok["id"])
            assert len(await engine.store.list_runs()) == 1
    assert len(up.requests_to("/orders")) == 1


async def test_retrying_a_run_that_has_not_ended_is_refused(tmp_path: Path) -> None:
    async with Upstream() as up, Engine(shop(tmp_path, up)) as engine:
        run_id = await engine.runner.start("push", {"id": 1})  # no worker: it stays queued
        with pytest.raises(RunError, match="it is queued"):
            await engine.runner.retry(run_id)
        with pytest.raises(RunError, match="no such run"):
            await engine.runner.retry("r_nope")


async def test_bulk_retry_takes_the_failed_runs_of_the_filter_once(tmp_path: Path) -> None:
    """`retry_matching` retries the failed runs its query matches that have no retry yet,
    across pages; asking again starts nothing new."""
    async with Upstream() as up:
        up.route("/orders", statuses=[400])
        async with running_engine(shop(tmp_path, up)) as engine:
            failed = [await finished(engine, await engine.runner.start("push", {"id": n}))
                      for n in range(5)]
            ok = [await engine.runner.start("push", {"id": 9})]
            up.route("/orders", statuses=[200])
            await finished(engine, ok[0])
            # A filter naming another status matches no failed run.
            assert await engine.runner.retry_matching(
                RunQuery(flow="push", status="succeeded")) == []
            ids = await engine.runner.retry_matching(RunQuery(flow="push"), limit=3)
            rest = await engine.runner.retry_matching(RunQuery(flow="push"))
            ended = [await finished(engine, run_id) for run_id in set(ids + rest)]
            assert await engine.runner.retry_matching(RunQuery(flow="push", until=0.0)) == []
            twice = await engine.runner.retry_matching(RunQuery(flow="push"))
            runs = await engine.store.list_runs(limit=100)
    assert len(ids) == 3 and len(rest) == 2  # the second call skipped the runs retried
    assert {run["retry_of"] for run in ended} == {run["id"] for run in failed}
    assert {run["status"] for run in ended} == {"succeeded"}
    assert len(runs) == 11  # 5 failed, 1 that succeeded, 5 retries: no more
    assert twice == []  # every failed run has its retry


async def test_redrive_queues_the_failed_run_from_its_failed_step(tmp_path: Path) -> None:
    """A re-driven run goes on from the step that failed, under its own id, in a worker: the
    step that succeeded is not sent again, the failed one goes with the same key."""
    async with Upstream() as up:
        up.route("/reserve", statuses=[200])
        up.route("/ship", statuses=[400, 200])
        async with running_engine(write_project(tmp_path, two_steps(up.url))) as engine:
            run_id = await engine.runner.start("order", {"order": 1042})
            failed = await finished(engine, run_id)
            assert await engine.runner.redrive(run_id) == run_id
            queued = await engine.store.get_run(run_id)
            assert queued is not None and queued.status in ("queued", "running", "succeeded")
            with pytest.raises(RunError, match="only a failed run"):
                await engine.runner.redrive(run_id)
            redriven = await finished(engine, run_id)
    assert failed["status"] == "failed"
    assert (redriven["status"], redriven["redrive"]) == ("succeeded", 1)
    ship_attempts = redriven["steps"][1]["attempts"]  # both kept in the run log
    assert [(a["redrive"], a["decision"]) for a in ship_attempts] == [
        (0, "fail"), (1, "continue")]
    assert len(up.requests_to("/reserve")) == 1
    ships = up.requests_to("/ship")
    assert len(ships) == 2
    assert ships[0].headers["Idempotency-Key"] == ships[1].headers["Idempotency-Key"]


async def test_a_stopped_queued_run_is_never_started(tmp_path: Path) -> None:
    """A run stopped before a worker took it ends `stopped`; the worker that claims its item
    later sends nothing and drops the item."""
    async with Upstream() as up:
        project = shop(tmp_path, up)
        async with Engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            await engine.runner.stop(run_id)
            with pytest.raises(RunError, match="it is stopped"):
                await engine.runner.stop(run_id)
        async with running_engine(project) as engine:
            for _ in range(200):
                if not await engine.store.list_items(kind="run"):
                    break
                await asyncio.sleep(0.05)
            run = await engine.store.get_run(run_id)
            items = await engine.store.list_items(kind="run")
    assert run is not None
    assert (run.status, run.error) == ("stopped", "stopped by an operator")
    assert items == []
    assert up.requests_to("/orders") == []


async def test_a_waiting_run_can_be_stopped(tmp_path: Path) -> None:
    """A run in a durable wait (a `delay` step) is stopped and never resumed."""
    files = {"flows/later.yaml": "name: later\nsteps:\n"
             "  - {id: pause, type: delay, for: 1h}\n"
             "  - {id: after, type: map, value: '\"resumed\"'}\n"}
    async with running_engine(write_project(tmp_path, files)) as engine:
        run_id = await engine.runner.start("later", None)
        for _ in range(200):
            run = await engine.store.get_run(run_id)
            if run is not None and run.status == "waiting":
                break
            await asyncio.sleep(0.05)
        await engine.runner.stop(run_id)
        ended = await engine.runner.wait_for(run_id, 5)
    assert (ended.status, ended.step_index) == ("stopped", 0)
