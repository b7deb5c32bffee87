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
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from tests.projects import push_to, write_project
from tests.upstream import Upstream

from interlink import worker as worker_module
from interlink.engine import Engine
from interlink.errors import StoreUnavailable, ValueRefused
from interlink.store import UNKNOWN_DECISION, RunRecord, SaveAttempt, SaveStep

#: a flow sending each item of its input, two at once
TWO_AT_ONCE = """
    name: push
    steps:
      - {id: each, type: split, items: payload}
      - {id: push, type: connector, connector: wh, endpoint: create_order, concurrency: 2}
    """
#: a lease far shorter than the calls and backoffs below; polls often, so takeovers are quick
CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\nworker: {lease: 200ms, poll: 20ms}\n"


def renewals_fail(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store accepts `engine`'s writes but not its lease renewals (as when it answers
    too slowly for them, or the process is paused between them)."""

    async def failing(*args: object, **kwargs: object) -> set[str]:
        raise StoreUnavailable("the store is away")

    monkeypatch.setattr(engine.store, "extend_leases", failing)


def with_connector(files: dict[str, str], settings: str) -> dict[str, str]:
    """`files` (from `push_to`) with the connector's `timeout: 5s` line replaced by
    `settings` (its indentation: 12 spaces)."""
    wh = files["connectors/wh.yaml"]
    return {**files, "connectors/wh.yaml": wh.replace("timeout: 5s", settings)}


async def taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, up: Upstream,
                     files: dict[str, str], inputs: list[object], settle_s: float,
                     ) -> list[RunRecord]:
    """Two engines on one store: the first starts a run per input and its worker sends the
    first call, its renewals failing; then the second one's worker starts and takes over
    what lapses. Waits until every run ended and `settle_s` more (for a copy that might
    still go); returns the runs as they ended."""
    project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
    async with Engine(project) as first, Engine(project) as second:
        renewals_fail(first, monkeypatch)
        stop = asyncio.Event()
        workers = [asyncio.create_task(first.worker().run(stop))]
        ids = [await first.runner.start("push", value) for value in inputs]
        await sent(up, 1)  # by the first worker: the second starts only now
        workers.append(asyncio.create_task(second.worker().run(stop)))
        ended = [await second.runner.wait_for(run_id, 30) for run_id in ids]
        await asyncio.sleep(settle_s)
        stop.set()
        await asyncio.gather(*workers)
    return ended


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
        files = with_connector(push_to(up.url, retry="{max_attempts: 2}"), "timeout: 3s")
        # 0.3 s more: a second call, had one gone, would have arrived
        [ended] = await taken_over(tmp_path, monkeypatch, up, files, [{"id": 1}], 0.3)
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
        files = with_connector(
            push_to(up.url, retry="{max_attempts: 3, initial: 900ms, jitter: none}"),
            "timeout: 100ms")
        # 1.2 s more: past the first worker's backoff
        [ended] = await taken_over(tmp_path, monkeypatch, up, files, [{"id": 2}], 1.2)
    assert ended.status == "succeeded"
    # The 503 (from the first worker) and the 200 (from the second); never a third.
    assert len(up.requests_to("/orders")) == 2


async def test_a_call_waiting_for_its_connectors_slot_is_fenced_when_it_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`concurrency: 1`: four runs' calls queue behind each other for longer than their
    hold. The attempt is saved (and the lease held) once its call has the slot, not before
    the wait: none is sent twice, none beside another copy (found by review: 3 of 4 keys
    were sent twice, overlapping, when the hold began before the wait)."""
    async with Upstream() as up:
        up.route("/orders", delay=1.0)
        files = with_connector(push_to(up.url, retry="{max_attempts: 2}"),
                               "timeout: 1500ms\n            concurrency: 1")
        # 1.2 s more: a copy still queued behind the slot would go then
        ended = await taken_over(tmp_path, monkeypatch, up, files,
                                 [{"id": n} for n in range(4)], 1.2)
    assert [run.status for run in ended] == ["succeeded"] * 4
    keys = [r.request_id for r in up.requests_to("/orders")]
    # Each sent once (the second worker sends those whose leases lapsed while they waited:
    # the first one's fence then refuses them).
    assert len(keys) == len(set(keys)) == 4


@pytest.mark.parametrize("failing", ["once", "always"])
async def test_a_run_executed_here_is_not_run_again_by_this_process_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """A service's run executed at once (`run_now`) holds its item under the process's
    owner, the one its worker claims with. Its lease lapsing (one renewal failed and the
    renewals stopped for good; or they keep failing) let the worker claim it back and run
    it a second time beside the first, both passing the fence (same owner): 4 calls where
    `max_attempts: 3` allows 3 (found by review)."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 503, 503, 503, 200])
        files = push_to(up.url, retry="{max_attempts: 3, initial: 900ms, jitter: none, "
                                      "multiplier: 1}")
        files = with_connector(files, "timeout: 100ms")
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            renew = engine.store.extend_leases
            renewals: list[str] = []

            async def renewal(*args: Any, **kwargs: Any) -> set[str]:
                renewals.append(failing)
                if failing == "always" or len(renewals) == 1:
                    raise StoreUnavailable("the store is away")
                return await renew(*args, **kwargs)

            monkeypatch.setattr(engine.store, "extend_leases", renewal)
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            await asyncio.sleep(0.05)
            run = await engine.runner.run_now("push", {"id": 9}, trigger="test")
            await asyncio.sleep(1.0)  # a second execution's next attempt would go meanwhile
            stop.set()
            await worker
    assert run.status == "failed"
    assert "no attempts left" in (run.error or "")
    assert len(up.requests_to("/orders")) == 3


async def test_payloads_beside_one_the_store_failed_under_stop_before_the_item_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two payloads at once; the store fails under the second one's attempt. The worker
    gives the item back to be tried again shortly — the first payload's call, in flight,
    must be stopped and its hold kept, or the item is claimed again and the call sent again
    beside itself (found by review: two copies 0.3 s apart with a 1.5 s call)."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.1)
    async with Upstream() as up:
        up.route("/orders", delay=1.5)
        files = push_to(up.url, retry="{max_attempts: 2}")
        files["flows/push.yaml"] = TWO_AT_ONCE
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            write = engine.store.write
            failed: list[bool] = []

            async def blip(*ops: Any) -> list[Any]:
                if not failed and any(isinstance(op, SaveAttempt) and op.attempt.item == 1
                                      for op in ops):
                    failed.append(True)
                    await asyncio.sleep(0.2)  # the first payload's call is out by now
                    raise StoreUnavailable("the store is away")
                return await write(*ops)

            monkeypatch.setattr(engine.store, "write", blip)
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            run_id = await engine.runner.start("push", [{"id": 0}, {"id": 1}])
            ended = await engine.runner.wait_for(run_id, 20)
            stop.set()
            await worker
    assert ended.status == "succeeded"
    assert up.max_in_flight <= 2  # the two payloads, never a copy beside one of them
    by_key: dict[str | None, list[float]] = {}
    for request in up.requests_to("/orders"):
        by_key.setdefault(request.request_id, []).append(request.at)
    for key, times in by_key.items():
        assert all(b - a >= 1.5 for a, b in pairwise(times)), (key, times)


async def test_the_hold_gives_way_to_the_lease_once_the_call_has_ended(tmp_path: Path) -> None:
    """The hold lasts while a call may be in flight, not after: the step's next write sets
    the usual lease again, so a crash after the call is taken over after the lease, not
    after the call's 10 s timeout (else every crash within a timeout of a call waits for it)."""
    async with Upstream() as up:
        up.route("/orders")
        files = push_to(up.url)
        files = with_connector(files, "timeout: 10s")
        files["flows/push.yaml"] = """
            name: push
            steps:
              - {id: push, type: connector, connector: wh, endpoint: create_order}
              - {id: pause, type: delay, for: 600ms}
            """
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            run_id = await engine.runner.start("push", {"id": 3})
            await sent(up, 1)
            await asyncio.sleep(0.2)  # the connector step's outcome is written: in the delay
            leased = await engine.store.list_items(status="leased")
            ended = await engine.runner.wait_for(run_id, 10)
            stop.set()
            await worker
    assert ended.status == "succeeded"
    assert len(leased) == 1 and leased[0].lease_expires_at is not None
    assert leased[0].lease_expires_at < time.time() + 2  # the 0.2 s lease, not 10 s


async def test_a_store_failure_after_the_calls_does_not_wait_for_their_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call is over in milliseconds and the step's outcome write fails (the store away a
    moment): the item is given back due after the usual pause, not after the call's 10 s
    timeout (found by review, when the give-back waited out the hold)."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.1)
    async with Upstream() as up:
        up.route("/orders")
        files = push_to(up.url, retry="{max_attempts: 2}")
        files = with_connector(files, "timeout: 10s")
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            write = engine.store.write
            failed: list[float] = []

            async def blip(*ops: Any) -> list[Any]:
                if not failed and any(isinstance(op, SaveStep) for op in ops):
                    failed.append(time.time())
                    raise StoreUnavailable("the store is away")
                return await write(*ops)

            monkeypatch.setattr(engine.store, "write", blip)
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            run_id = await engine.runner.start("push", {"id": 1})
            ended = await engine.runner.wait_for(run_id, 20)
            stop.set()
            await worker
    assert failed and ended.status == "succeeded"
    assert ended.finished_at is not None and ended.finished_at - failed[0] < 5  # not 10 s


async def test_a_refused_attempt_save_does_not_keep_the_hold_for_the_rest_of_the_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `try`'s call whose save the store refuses was never sent: it is not left counted
    as in flight, so once the `catch`'s call has ended the usual lease is back (found by
    review: 10 s of hold left during the next step)."""
    async with Upstream() as up:
        up.route("/orders")
        files = push_to(up.url)
        files = with_connector(files, "timeout: 10s")
        files["flows/push.yaml"] = """
            name: push
            steps:
              - id: attempt
                type: try
                steps:
                  - {id: push, type: connector, connector: wh, endpoint: create_order}
                catch:
                  - {id: park, type: connector, connector: wh, endpoint: create_order}
              - {id: pause, type: delay, for: 600ms}
            """
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            write = engine.store.write
            refused: list[bool] = []

            async def refuse(*ops: Any) -> list[Any]:
                if not refused and any(isinstance(op, SaveAttempt)
                                       and op.attempt.step_id == "push" for op in ops):
                    refused.append(True)
                    raise ValueRefused("a value the store cannot hold")
                return await write(*ops)

            monkeypatch.setattr(engine.store, "write", refuse)
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            run_id = await engine.runner.start("push", {"id": 3})
            await sent(up, 1)  # the catch's call
            await asyncio.sleep(0.2)  # its step's outcome is written: in the delay
            leased = await engine.store.list_items(status="leased")
            ended = await engine.runner.wait_for(run_id, 10)
            stop.set()
            await worker
    assert ended.status == "succeeded", ended.error
    assert len(leased) == 1 and leased[0].lease_expires_at is not None
    assert leased[0].lease_expires_at < time.time() + 2  # the 0.2 s lease, not 10 s


async def test_the_rate_limit_counts_a_call_from_when_it_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rate_limit: {requests: 1, per: 1s}` with the attempt's save between the slot and the
    send: the first save slower than the second must not bring the two calls closer than
    the window (found by review: 0.6 s apart)."""
    async with Upstream() as up:
        up.route("/orders")
        files = push_to(up.url, retry="{max_attempts: 2}")
        files = with_connector(files, "timeout: 5s\n            rate_limit: {requests: 1, per: 1s}")
        files["flows/push.yaml"] = TWO_AT_ONCE
        project = write_project(tmp_path, {**files, "interlink.yaml": CONFIG})
        async with Engine(project) as engine:
            write = engine.store.write
            saves: list[bool] = []

            async def slow_first(*ops: Any) -> list[Any]:
                if any(isinstance(op, SaveAttempt) and op.attempt.decision == UNKNOWN_DECISION
                       for op in ops):
                    saves.append(True)
                    if len(saves) == 1:
                        await asyncio.sleep(0.4)  # a slow batch (the store busy)
                return await write(*ops)

            monkeypatch.setattr(engine.store, "write", slow_first)
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            run_id = await engine.runner.start("push", [{"id": 0}, {"id": 1}])
            ended = await engine.runner.wait_for(run_id, 20)
            stop.set()
            await worker
    assert ended.status == "succeeded"
    first, second = sorted(r.at for r in up.requests_to("/orders"))
    assert second - first >= 0.95
