"""Housekeeping: one worker at a time deletes finished queue items older than
`worker.keep_finished` and whatever expired (nonces, sessions …); runs stay."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from tests.integration.test_store import a_run
from tests.projects import write_project

from interlink import housekeeping
from interlink.engine import Engine
from interlink.errors import Conflict
from interlink.housekeeping import EXPIRED_MARGIN_S, Housekeeping
from interlink.store import Complete, Enqueue, InsertRun, RecordNonce, Store, open_store
from interlink.store._sqlfiles import load_queries


async def finished(store: Store, *ids: str) -> None:
    """Queue items `ids`, claimed and completed but kept (as a service request's are)."""
    await store.write(*(Enqueue(i, "k", None) for i in ids))
    await store.claim("w", limit=len(ids))
    await store.write(*(Complete(i, "w", keep=True) for i in ids))


async def test_finished_items_go_after_keep_finished_expired_rows_at_once(store: Store) -> None:
    await finished(store, "q1", "q2")
    # Expired past the margin (a process whose clock lags still refuses its timestamp), and
    # expired but within it.
    await store.write(RecordNonce("hmac:old", time.time() - EXPIRED_MARGIN_S - 1),
                      RecordNonce("hmac:recent", time.time() - 1), InsertRun(a_run("r1")))
    keeper = Housekeeping(store, "w1", keep_finished_s=3600)
    assert await keeper.once() == 0  # finished just now: kept for an hour
    assert {i.id for i in await store.list_items()} == {"q1", "q2"}
    await store.write(RecordNonce("hmac:old", time.time() + 60))  # expired, so it was deleted
    with pytest.raises(Conflict):
        await store.write(RecordNonce("hmac:old", time.time() + 60))
    with pytest.raises(Conflict):  # still there: a replay of it is still caught
        await store.write(RecordNonce("hmac:recent", time.time() + 60))
    assert await Housekeeping(store, "w1", keep_finished_s=0).once() == 2
    assert await store.list_items() == []
    assert await store.get_run("r1") is not None  # the run log is never housekeeping's


async def test_one_worker_purges_at_a_time(store: Store) -> None:
    await finished(store, "q1")
    first, second = (Housekeeping(store, owner, keep_finished_s=0) for owner in ("w1", "w2"))
    assert await first.once() == 1
    await finished(store, "q2")
    assert await second.once() is None  # w1 holds the lock
    assert {i.id for i in await store.list_items()} == {"q2"}
    assert await first.once() == 1
    # A worker that stops lets go: the next one purges at once, not 15 minutes later.
    stop = asyncio.Event()
    stop.set()
    await first.run(stop)
    await finished(store, "q3")
    assert await second.once() == 1


async def test_the_engines_worker_keeps_house(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` and `interlink worker` run it: with `worker.keep_finished: 0s`, a kept item is
    gone within a purge period."""
    monkeypatch.setattr(housekeeping, "EVERY_S", 0.05)
    project = write_project(tmp_path, {"interlink.yaml": f"""
        name: test
        store: {store_url}
        worker: {{keep_finished: 0s}}
        """})
    async with Engine(project) as engine:
        await finished(engine.store, "q1")
        stop = asyncio.Event()
        worker = engine.worker()
        task = asyncio.create_task(worker.run(stop))
        try:
            for _ in range(200):
                if not await engine.store.list_items():
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
        assert await engine.store.list_items() == []
        # Stopped, it let go of the lock: another worker purges at its next period.
        assert await engine.store.lock_owners(housekeeping.LOCK) == []


async def test_a_backlog_is_purged_a_batch_at_a_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five finished items with batches of two: three statements (or writer jobs), all five
    deleted, the items still in work kept."""
    from interlink.store import base

    monkeypatch.setattr(base, "PURGE_BATCH", 2)
    batches: list[int] = []
    one_batch = store._purge_batch

    async def counted(name: str, before: float, limit: int) -> int:
        deleted = await one_batch(name, before, limit)
        if name == "purge_items":
            batches.append(deleted)
        return deleted

    monkeypatch.setattr(store, "_purge_batch", counted)
    await finished(store, *(f"q{n}" for n in range(5)))
    await store.write(Enqueue("ready", "k", None))
    assert await store.purge(before=time.time() + 1) == 5
    assert batches == [2, 2, 1]
    assert [i.id for i in await store.list_items()] == ["ready"]


async def test_the_sqlite_purge_walks_its_index(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN: finished items are found by `queue_finished`, not by reading every
    done row; expired rows by their `expires_at` index."""
    async with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path):
        pass
    queries = load_queries("sqlite")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for name, index in (("purge_items", "queue_finished"), ("purge_nonces", "nonces_expires"),
                            ("purge_sessions", "sessions_expires")):
            plan = "\n".join(str(row[-1]) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + queries[name], {"before": 1.0, "limit": 1000}))
            assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan


@pytest.mark.postgres
async def test_the_postgres_purge_walks_its_index(postgres_url: str, tmp_path: Path) -> None:
    """EXPLAIN with 3,000 kept items: `queue_finished` finds the old ones, no scan of the
    queue."""
    async with open_store(postgres_url, tmp_path) as store:
        await finished(store, *(f"q{n}" for n in range(3000)))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE queue")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN " + load_queries("postgres")["purge_items"],
            {"before": time.time() - 3600, "limit": 1000}))
    assert "queue_finished" in plan, plan
    assert "Seq Scan on queue" not in plan, plan


@pytest.mark.postgres
async def test_an_item_requeued_during_a_purge_is_kept(postgres_url: str, tmp_path: Path) -> None:
    """A finished item requeued by another transaction while a purge batch waits on its row:
    PostgreSQL rechecks the DELETE's own condition on the new row, which is `ready` now, so
    the item is kept (a condition only in the batch's subquery is not rechecked)."""
    async with open_store(postgres_url, tmp_path) as store:
        await finished(store, "q1")
        with psycopg.connect(postgres_url) as conn:  # one open transaction
            conn.execute("UPDATE queue SET status = 'ready' WHERE id = 'q1'")
            purge = asyncio.create_task(store.purge(before=time.time() + 1))
            await asyncio.sleep(0.5)
            assert not purge.done()  # waiting on q1's row lock
            conn.commit()
        assert await asyncio.wait_for(purge, 10) == 0
        assert [i.id for i in await store.list_items()] == ["q1"]
