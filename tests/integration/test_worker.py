"""The worker against a real SQLite store: dispatch, crash handling, lease renewal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from tests.projects import push_to, write_project
from tests.upstream import Upstream

from interlink import worker as worker_module
from interlink.engine import Engine
from interlink.errors import StoreUnavailable
from interlink.store import Complete, QueueItem, open_store
from interlink.worker import MAX_CRASHES, Worker


async def run_until(worker: Worker, done: asyncio.Event, limit_s: float = 10) -> None:
    """Run `worker` until `done` is set (or the limit passes)."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(done.wait(), limit_s)
    finally:
        stop.set()
        await task


async def test_items_go_to_the_handler_of_their_kind(tmp_path: Path) -> None:
    """Each claimed item reaches its kind's handler, which completes it."""
    seen: list[tuple[str, str]] = []
    done = asyncio.Event()
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def handle(item: QueueItem, owner: str) -> None:
            seen.append((item.kind, item.payload))
            await store.write(Complete(item.id, owner, keep=False))
            if len(seen) == 3:
                done.set()

        for n, kind in enumerate(["a", "b", "a"]):
            await store.enqueue(kind, f"p{n}", item_id=f"q{n}")
        await run_until(Worker(store, {"a": handle, "b": handle}, poll_s=0.05), done)
        assert sorted(seen) == [("a", "p0"), ("a", "p2"), ("b", "p1")]
        assert await store.list_items() == []


async def test_a_crashing_handler_loses_nothing_and_ends_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that raises releases its item with the error; after MAX_CRASHES it is broken."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.0)
    calls = 0
    done = asyncio.Event()
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def crash(item: QueueItem, owner: str) -> None:
            nonlocal calls
            calls += 1
            if calls == MAX_CRASHES:
                asyncio.get_running_loop().call_later(0.2, done.set)
            raise RuntimeError("bug in a handler")

        await store.enqueue("k", None, item_id="q1")
        await run_until(Worker(store, {"k": crash}, poll_s=0.05), done)
        item = await store.get_item("q1")
        assert item is not None
        assert (item.status, item.attempts, calls) == ("broken", MAX_CRASHES, MAX_CRASHES)
        assert item.last_error == "handler crashed: RuntimeError: bug in a handler"


async def test_a_crash_the_store_cannot_record_is_left_to_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that failed because the store is away, whose crash cannot be recorded
    either: the worker logs it and goes on; the item is claimed again once its lease ends."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.0)
    calls = 0
    done = asyncio.Event()
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:
        write = store.write

        async def handle(item: QueueItem, owner: str) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                async def away(*ops: object) -> None:
                    monkeypatch.setattr(store, "write", write)  # back after this one
                    raise StoreUnavailable("writing to the store: the connection is lost")

                monkeypatch.setattr(store, "write", away)
                raise StoreUnavailable("writing to the store: the connection is lost")
            await store.write(Complete(item.id, owner, keep=False))
            done.set()

        await store.enqueue("k", None, item_id="q1")
        worker = Worker(store, {"k": handle}, poll_s=0.05, lease_s=0.3)
        await run_until(worker, done)
        assert calls == 2
        assert await store.list_items() == []
    assert "recording its outcome failed" in caplog.text


async def test_an_outage_is_never_counted_as_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that meets an unavailable store more times than `MAX_CRASHES` is released
    each time, saying why, and is never set aside as broken — nor do the outages count
    toward a later real crash, which is released as a first crash; it runs once the store
    and the handler are well."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.0)
    calls = 0
    errors: list[str | None] = []
    attempts: list[int] = []
    done = asyncio.Event()
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def handle(item: QueueItem, owner: str) -> None:
            nonlocal calls
            calls += 1
            errors.append(item.last_error)
            attempts.append(item.attempts)
            if calls <= MAX_CRASHES + 2:
                raise StoreUnavailable("writing to the store: database is locked")
            if calls == MAX_CRASHES + 3:
                raise RuntimeError("a bug, once")
            await store.write(Complete(item.id, owner, keep=True))
            done.set()

        await store.enqueue("k", None, item_id="q1")
        await run_until(Worker(store, {"k": handle}, poll_s=0.05), done)
        item = await store.get_item("q1")
    assert item is not None
    assert (item.status, calls) == ("done", MAX_CRASHES + 4)
    assert errors[-2] == "the store was unavailable: writing to the store: database is locked"
    assert errors[-1] == "handler crashed: RuntimeError: a bug, once"
    assert attempts == [1] * (MAX_CRASHES + 3) + [2]


async def test_leases_are_renewed_while_a_handler_runs(tmp_path: Path) -> None:
    """A handler running longer than the lease keeps its item: nobody else can claim it."""
    done = asyncio.Event()
    stolen: list[QueueItem] = []
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def slow(item: QueueItem, owner: str) -> None:
            await asyncio.sleep(1.0)  # the lease is 0.3 s: renewed three times a lease
            stolen.extend(await store.claim("thief", lease_s=10))
            await store.write(Complete(item.id, owner, keep=False))
            done.set()

        await store.enqueue("k", None, item_id="q1")
        await run_until(Worker(store, {"k": slow}, lease_s=0.3, poll_s=0.05), done)
    assert stolen == []


async def test_a_worker_never_runs_twice_an_item_it_is_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its renewals failing (the store slow or away) let its lease lapse; its own next claim
    gets the item back: it must keep running it once, not start it a second time beside
    the first (one process sending the same call twice)."""
    done = asyncio.Event()
    started: list[str] = []
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def failing_renewal(*args: object, **kwargs: object) -> None:
            raise StoreUnavailable("the store is away")

        monkeypatch.setattr(store, "extend_leases", failing_renewal)

        async def slow(item: QueueItem, owner: str) -> None:
            started.append(item.id)
            await asyncio.sleep(1.0)  # the lease is 0.2 s and never renewed
            await store.write(Complete(item.id, owner, keep=False))
            done.set()

        await store.enqueue("k", None, item_id="q1")
        await run_until(Worker(store, {"k": slow}, lease_s=0.2, poll_s=0.05, concurrency=4),
                        done)
        await asyncio.sleep(0.2)  # a second copy, had one started, would still be running
    assert started == ["q1"]


async def test_a_stopping_worker_keeps_its_leases_until_its_runs_end(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A worker told to stop finishes the runs it holds: it renews their leases until they
    end, so no other worker takes a run over and calls the upstream a second time (a newcomer
    saw it: SIGTERM during a call longer than the lease sent the order twice)."""
    caplog.set_level(logging.INFO, logger="interlink.worker")
    async with Upstream() as up:
        up.route("/orders", delay=2.0)
        project = write_project(tmp_path, {**push_to(up.url), "interlink.yaml":
                                           "name: test\nstore: sqlite:///.interlink/test.db\n"
                                           "worker: {lease: 600ms, poll: 50ms}\n"})
        async with Engine(project) as first, Engine(project) as second:
            stopping, other = asyncio.Event(), asyncio.Event()
            draining = asyncio.create_task(first.worker().run(stopping))
            run_id = await first.runner.start("push", {"id": 5})
            for _ in range(500):
                if up.requests_to("/orders"):
                    break
                await asyncio.sleep(0.01)
            stopping.set()  # SIGTERM: finish what it holds
            taking_over = asyncio.create_task(second.worker().run(other))
            await draining
            ended = await second.runner.wait_for(run_id, 20)
            other.set()
            await taking_over
    assert ended.status == "succeeded"
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 5}]
    # The drain says what it waits for.
    assert "stopping: finishing the 1 item it holds" in caplog.text
