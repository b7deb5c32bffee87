"""Two workers on one store, the first one's lease lapsing (its renewals fail: the store slow
or unreachable from it, the process paused): neither may send a call beside the other.

A worker's lease is renewed in the background; when renewals fail for longer than the lease,
another worker claims the item and resumes the run. Each attempt's pre-send write is its
fence: it commits only while the item is still leased to the sender, and it makes the lease
last until the call must have ended (the call's timeout), so the item cannot be taken over
while the call is in flight, and a worker that lost the item sends nothing more.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.projects import push_to, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.errors import StoreUnavailable

#: a lease far shorter than the calls and backoffs below; polls often, so takeovers are quick
CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\nworker: {lease: 200ms, poll: 20ms}\n"


def renewals_fail(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store accepts `engine`'s writes but not its lease renewals (as when it answers
    too slowly for them, or the process is paused between them)."""

    async def failing(*args: object, **kwargs: object) -> set[str]:
        raise StoreUnavailable("the store is away")

    monkeypatch.setattr(engine.store, "extend_leases", failing)


async def sent(up: Upstream, n: int) -> None:
    """Wait until the upstream has received `n` calls."""
    for _ in range(500):
        if len(up.requests_to("/orders")) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the upstream received {len(up.requests_to('/orders'))} calls")


async def test_no_worker_takes_over_a_call_in_flight(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call takes 1 s, five leases: the lease its attempt's write extended to the call's
    timeout keeps the second worker from sending it again meanwhile."""
    async with Upstream() as up:
        up.route("/orders", delay=1.0)
        files = push_to(up.url, retry="{max_attempts: 2}")
        files["connectors/wh.yaml"] = files["connectors/wh.yaml"].replace("timeout: 5s",
                                                                          "timeout: 3s")
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as first, Engine(project) as second:
            renewals_fail(first, monkeypatch)
            stop = asyncio.Event()
            workers = [asyncio.create_task(first.worker().run(stop))]
            run_id = await first.runner.start("push", {"id": 1})
            await sent(up, 1)  # by the first worker: the second starts only now
            workers.append(asyncio.create_task(second.worker().run(stop)))
            ended = await second.runner.wait_for(run_id, 20)
            await asyncio.sleep(0.3)  # a second call, had one gone, would have arrived
            stop.set()
            await asyncio.gather(*workers)
    assert ended.status == "succeeded"
    assert len(up.requests_to("/orders")) == 1
    assert up.max_in_flight == 1


async def test_a_worker_that_lost_its_lease_sends_nothing_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its lease lapsed during a backoff longer than the call's timeout and the lease; the
    second worker resumed the run and delivered it. The first one's next attempt must not
    go: its pre-send write finds the item is no longer its own."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200])
        files = push_to(up.url, retry="{max_attempts: 3, initial: 900ms, jitter: none}")
        files["connectors/wh.yaml"] = files["connectors/wh.yaml"].replace("timeout: 5s",
                                                                          "timeout: 100ms")
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as first, Engine(project) as second:
            renewals_fail(first, monkeypatch)
            stop = asyncio.Event()
            workers = [asyncio.create_task(first.worker().run(stop))]
            run_id = await first.runner.start("push", {"id": 2})
            await sent(up, 1)  # by the first worker: the second starts only now
            workers.append(asyncio.create_task(second.worker().run(stop)))
            ended = await second.runner.wait_for(run_id, 20)
            await asyncio.sleep(1.2)  # past the first worker's backoff
            stop.set()
            await asyncio.gather(*workers)
    assert ended.status == "succeeded"
    # The 503 (from the first worker) and the 200 (from the second); never a third.
    assert len(up.requests_to("/orders")) == 2
