"""Housekeeping: one worker at a time deletes finished queue items older than
`worker.keep_finished`, whatever expired (nonces, sessions …), and ended runs older than
`worker.keep_runs` / `worker.keep_failed_runs` with their steps, attempts and log lines."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.integration.test_store import a_run
from tests.projects import write_project

from interlink import housekeeping
from interlink.engine import Engine
from interlink.errors import Conflict
from interlink.housekeeping import EXPIRED_MARGIN_S, Housekeeping
from interlink.store import (
    AttemptRecord,
    Complete,
    Enqueue,
    InsertLogs,
    InsertRun,
    LogLine,
    RecordNonce,
    SaveAttempt,
    SaveStep,
    StepRecord,
    Store,
    UpdateRun,
    open_store,
)
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
    assert await store.get_run("r1") is not None  # a running run is never housekeeping's


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

    async def counted(name: str, params: dict[str, Any]) -> int:
        deleted = await one_batch(name, params)
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


# --- runs (worker.keep_runs, worker.keep_failed_runs) ------------------------------------------

DAY = 86_400.0


async def ended(store: Store, run_id: str, status: str, *, days_ago: float = 40,
                retry_of: str | None = None, parent: str | None = None) -> None:
    """A run created and ended `days_ago`, with a step, an attempt and a log line."""
    at = time.time() - days_ago * DAY
    run = replace(a_run(run_id, created_at=at), retry_of=retry_of)
    await store.write(
        InsertRun(run, parent=parent), SaveStep(StepRecord(run_id, 0, "s1", status, at, at)),
        SaveAttempt(AttemptRecord(run_id, "s1", 1, {"url": "http://x"}, {"status": 200}, 200,
                                  "continue", at)),
        InsertLogs([LogLine(run_id, "sent", at, step_id="s1")]))
    await store.write(UpdateRun(run_id, {"status": status, "finished_at": at,
                                         "updated_at": at}))


async def kept(store: Store, *run_ids: str) -> set[str]:
    """Which of `run_ids` are still there, each with all its rows or none of them."""
    found = set()
    for run_id in run_ids:
        rows = (await store.get_run(run_id) is not None, bool(await store.get_steps(run_id)),
                bool(await store.get_attempts(run_id)), bool(await store.get_logs(run_id)))
        assert len(set(rows)) == 1, (run_id, rows)  # a run goes with its rows, or stays whole
        if rows[0]:
            found.add(run_id)
    return found


async def test_ended_runs_go_after_their_keep_time_with_their_rows(store: Store) -> None:
    """Past the cut-off: succeeded and stopped runs go; failed ones stay (another setting);
    a running one, a recent one, one a queue item still waits for and the retry of a failed run
    still kept stay too."""
    for run_id, status in (("ok", "succeeded"), ("stopped", "stopped"), ("failed", "failed"),
                           ("partial", "partial"), ("busy", "running")):
        await ended(store, run_id, status)
    await ended(store, "recent", "succeeded", days_ago=1)
    await ended(store, "waited", "succeeded")
    await store.write(Enqueue("wake-waited", "run", {"run_id": "waited"}))
    await ended(store, "retry", "succeeded", retry_of="failed")
    # A run_flow child: kept while its parent is (a re-drive of the parent would start it
    # again, delivering what it delivered a second time).
    await ended(store, "child", "succeeded", parent="partial")
    everything = ("ok", "stopped", "failed", "partial", "busy", "recent", "waited", "retry",
                  "child")

    cut = time.time() - 30 * DAY
    assert await store.purge_runs(before=cut, statuses=("succeeded", "stopped")) == 2
    assert await kept(store, *everything) == set(everything) - {"ok", "stopped"}
    # Failed runs by their own setting; the retry and the child go once the run they hang
    # on has gone.
    assert await store.purge_runs(before=cut, statuses=("failed", "partial")) == 2
    assert await store.purge_runs(before=cut, statuses=("succeeded",)) == 2
    assert await kept(store, *everything) == {"busy", "recent", "waited"}
    with pytest.raises(ValueError, match="only ended runs"):
        await store.purge_runs(before=cut, statuses=("running",))


async def test_runs_are_purged_a_batch_at_a_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlink.store import base

    monkeypatch.setattr(base, "PURGE_BATCH", 2)
    for n in range(5):
        await ended(store, f"r{n}", "succeeded")
    await ended(store, "failed", "failed")
    assert await store.purge_runs(before=time.time(), statuses=("succeeded",)) == 5
    assert await kept(store, *(f"r{n}" for n in range(5)), "failed") == {"failed"}


async def test_the_engines_worker_purges_old_runs(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`worker.keep_runs: 1d`: the worker's housekeeping deletes a run that succeeded two days
    ago and keeps one from an hour ago and a failed one (`keep_failed_runs` is unset)."""
    monkeypatch.setattr(housekeeping, "EVERY_S", 0.05)
    project = write_project(tmp_path, {"interlink.yaml": f"""
        name: test
        store: {store_url}
        worker: {{keep_runs: 1d}}
        """})
    async with Engine(project) as engine:
        store = engine.store
        await ended(store, "old", "succeeded", days_ago=2)
        await ended(store, "new", "succeeded", days_ago=1 / 24)
        await ended(store, "failed", "failed", days_ago=2)
        stop = asyncio.Event()
        task = asyncio.create_task(engine.worker().run(stop))
        try:
            for _ in range(200):
                if await store.get_run("old") is None:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
        assert await kept(store, "old", "new", "failed") == {"new", "failed"}


async def test_the_sqlite_run_purge_walks_its_indexes(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN: candidates by `runs_status_created`, the queue check by `queue_run`,
    the run's rows by their run indexes."""
    async with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path):
        pass
    queries = load_queries("sqlite")
    params = {"before": 1.0, "limit": 1000, "statuses": '["succeeded"]', "ids": '["r1"]'}
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for name, indexes in (("purge_runs", ("runs_status_created", "queue_run")),
                              ("purge_run_steps", ("sqlite_autoindex_steps_1",)),
                              ("purge_run_attempts", ("attempts_run",)),
                              ("purge_run_logs", ("logs_run",))):
            plan = "\n".join(str(row[-1]) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + queries[name], params))
            for index in indexes:
                assert f"INDEX {index}" in plan, plan
            assert "SCAN runs" not in plan and "SCAN queue" not in plan, plan


@pytest.mark.postgres
async def test_the_postgres_run_purge_walks_its_indexes(postgres_url: str,
                                                        tmp_path: Path) -> None:
    """EXPLAIN with 3,000 runs (a tenth past the cut-off), each with a step, an attempt and a
    log line, and 2,000 queue items: no table is read whole."""
    now = time.time()
    async with open_store(postgres_url, tmp_path) as store:
        for chunk in range(0, 3000, 500):
            ops: list[Any] = []
            for n in range(chunk, chunk + 500):
                at, run_id = now - (40 if n % 10 == 0 else 1) * DAY, f"r{n}"
                ops += [InsertRun(replace(a_run(run_id, created_at=at), status="succeeded",
                                          updated_at=at)),
                        SaveStep(StepRecord(run_id, 0, "s1", "succeeded", at, at)),
                        SaveAttempt(AttemptRecord(run_id, "s1", 1, {}, None, 200, "continue",
                                                  at)),
                        InsertLogs([LogLine(run_id, "sent", at)])]
            await store.write(*ops)
        await store.write(*(Enqueue(f"q{n}", "run", {"run_id": f"x{n}"}) for n in range(2000)))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("runs", "queue", "steps", "attempts", "logs"):
            conn.execute(f"ANALYZE {table}")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN " + load_queries("postgres")["purge_runs"],
            {"before": now - 30 * DAY, "limit": 1000, "statuses": ["succeeded"]}))
    assert "queue_run" in plan, plan
    for table in ("runs", "queue", "steps", "attempts", "logs"):
        assert f"Seq Scan on {table}" not in plan, plan


@pytest.mark.postgres
async def test_a_run_redriven_during_a_purge_is_kept(postgres_url: str, tmp_path: Path) -> None:
    """A failed run an operator re-drives while a purge batch waits on its row: the DELETE's
    own condition is checked anew on the new row (queued now), so the run stays."""
    async with open_store(postgres_url, tmp_path) as store:
        await ended(store, "r1", "failed")
        with psycopg.connect(postgres_url) as conn:  # one open transaction
            conn.execute("UPDATE runs SET status = 'queued' WHERE id = 'r1'")
            purge = asyncio.create_task(store.purge_runs(before=time.time(),
                                                         statuses=("failed",)))
            await asyncio.sleep(0.5)
            assert not purge.done()  # waiting on r1's row lock
            conn.commit()
        assert await asyncio.wait_for(purge, 10) == 0
        assert await kept(store, "r1") == {"r1"}
