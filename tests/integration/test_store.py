"""The durable store's contract, run on SQLite and on PostgreSQL (see `store` in conftest)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from interlink.errors import Conflict, LeaseLost, StoreError, StoreUnavailable, ValueRefused
from interlink.store import (
    AttemptRecord,
    Complete,
    DeleteSession,
    Enqueue,
    Fail,
    HoldLease,
    InsertLogs,
    InsertRun,
    LogLine,
    PutCredential,
    PutSession,
    RecordNonce,
    Release,
    Requeue,
    RunRecord,
    SaveAttempt,
    SaveStep,
    SessionRecord,
    StepRecord,
    Store,
    UpdateRun,
    open_store,
)
from interlink.store.sqlite import SqliteStore


def a_run(run_id: str = "r1", *, flow: str = "orders", created_at: float = 1000.0) -> RunRecord:
    """A run record with every JSON column filled."""
    return RunRecord(
        id=run_id, flow=flow, status="running", trigger="manual",
        input={"order": {"id": 7, "lines": [1, 2]}, "note": "ü"},
        flow_spec={"name": flow, "steps": [{"id": "s1", "type": "script"}]},
        created_at=created_at, bucket=[{"a": 1}], started_at=created_at,
    )


# --- runs, steps, attempts, logs ------------------------------------------------------------


async def test_insert_and_get_run_round_trips_every_field(store: Store) -> None:
    """A run reads back exactly as written, JSON columns included."""
    run = a_run()
    assert await store.write(InsertRun(run)) == [None]
    assert await store.get_run("r1") == run
    assert await store.get_run("missing") is None


async def test_values_that_look_like_sql_are_stored_as_they_are(store: Store) -> None:
    """Values go in as values, whatever they hold (PostgreSQL binds them client-side into one
    query per group commit: quotes, backslashes, placeholders and `;` must not leak out)."""
    tricky = "it's \\' \"; DROP TABLE runs; -- %(id)s $1 %s \u00fc \n;"
    run = replace(a_run("r-sql"), input={"text": tricky, tricky: [tricky]}, error=tricky)
    await store.write(InsertRun(run), InsertLogs([LogLine("r-sql", tricky, 1.0)]))
    assert await store.get_run("r-sql") == run
    assert [line.message for line in await store.get_logs("r-sql")] == [tricky]


async def test_update_run_changes_only_named_fields(store: Store) -> None:
    """UpdateRun sets the given columns (JSON ones encoded) and stamps updated_at."""
    await store.write(InsertRun(a_run()))
    await store.write(UpdateRun("r1", {"status": "succeeded", "bucket": [{"b": 2}],
                                       "finished_at": 1010.0, "step_index": 3}))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.bucket, run.finished_at, run.step_index) == (
        "succeeded", [{"b": 2}], 1010.0, 3)
    assert run.input == a_run().input
    assert run.updated_at is not None


async def test_update_run_rejects_unknown_fields(store: Store) -> None:
    """A field that is not a RunRecord column is refused before anything is written."""
    await store.write(InsertRun(a_run()))
    with pytest.raises(StoreError, match="unknown fields"):
        await store.write(UpdateRun("r1", {"status": "failed", "nope": 1}))
    run = await store.get_run("r1")
    assert run is not None
    assert run.status == "running"


async def test_list_runs_newest_first_with_filters(store: Store) -> None:
    """list_runs filters by flow and status and returns newest first, up to limit."""
    await store.write(
        InsertRun(a_run("r1", created_at=1.0)),
        InsertRun(a_run("r2", flow="billing", created_at=2.0)),
        InsertRun(a_run("r3", created_at=3.0)),
    )
    await store.write(UpdateRun("r3", {"status": "failed"}))
    assert [r.id for r in await store.list_runs()] == ["r3", "r2", "r1"]
    assert [r.id for r in await store.list_runs(flow="orders")] == ["r3", "r1"]
    assert [r.id for r in await store.list_runs(status="running")] == ["r2", "r1"]
    assert [r.id for r in await store.list_runs(limit=1)] == ["r3"]


async def test_save_step_upserts_by_run_and_index(store: Store) -> None:
    """Saving a step twice keeps the latest state; steps come back in index order."""
    await store.write(
        SaveStep(StepRecord("r1", 1, "s2", "running", 2.0)),
        SaveStep(StepRecord("r1", 0, "s1", "running", 1.0)),
    )
    await store.write(SaveStep(StepRecord("r1", 0, "s1", "succeeded", 1.0, 1.5, None, [{"x": 1}])))
    steps = await store.get_steps("r1")
    assert steps == [
        StepRecord("r1", 0, "s1", "succeeded", 1.0, 1.5, None, [{"x": 1}]),
        StepRecord("r1", 1, "s2", "running", 2.0),
    ]


async def test_attempts_and_logs_come_back_in_insertion_order(store: Store) -> None:
    """Attempts and log lines are returned in the order they were written."""
    first = AttemptRecord("r1", "s1", 1, {"method": "GET"}, {"status": 503}, 1, "retry", 1.0,
                          "busy", 0.5, None)
    second = AttemptRecord("r1", "s1", 2, {"method": "GET"}, None, 1, "retry", 2.0,
                           error="timed out")
    lines = [LogLine("r1", f"line {i}", float(i), "info", "s1") for i in range(5)]
    await store.write(SaveAttempt(first), InsertLogs(lines[:3]))
    await store.write(SaveAttempt(second), InsertLogs(lines[3:]), InsertLogs([]))
    assert await store.get_attempts("r1") == [first, second]
    assert await store.get_logs("r1") == lines
    assert await store.get_logs("other") == []


# --- queue --------------------------------------------------------------------------------


async def test_enqueue_then_get_and_list_items(store: Store) -> None:
    """An enqueued item is ready with zero attempts; list_items filters by status and kind."""
    now = time.time()
    assert await store.enqueue("flow", {"p": 1}, item_id="q1") == "q1"
    await store.write(Enqueue("q2", "service", [1, 2], run_at=now + 60, priority=3))
    item = await store.get_item("q1")
    assert item is not None
    assert (item.kind, item.payload, item.status, item.attempts, item.lease_owner) == (
        "flow", {"p": 1}, "ready", 0, None)
    assert abs(item.run_at - now) < 5
    assert [i.id for i in await store.list_items(kind="service")] == ["q2"]
    assert {i.id for i in await store.list_items(status="ready")} == {"q1", "q2"}
    assert await store.get_item("nope") is None


async def test_enqueue_is_idempotent_by_id(store: Store) -> None:
    """Enqueueing an existing id again changes nothing (a re-run step may do it)."""
    await store.enqueue("flow", {"v": 1}, item_id="q1")
    await store.enqueue("flow", {"v": 2}, item_id="q1")
    item = await store.get_item("q1")
    assert item is not None
    assert item.payload == {"v": 1}


async def test_claim_orders_by_priority_then_run_at(store: Store) -> None:
    """Claims take the highest priority first, then the oldest run_at."""
    now = time.time()
    await store.write(
        Enqueue("late-low", "k", None, run_at=now - 1, priority=0),
        Enqueue("early-low", "k", None, run_at=now - 5, priority=0),
        Enqueue("late-high", "k", None, run_at=now - 1, priority=9),
        Enqueue("early-high", "k", None, run_at=now - 3, priority=9),
    )
    first = await store.claim("w", limit=3)
    assert [i.id for i in first] == ["early-high", "late-high", "early-low"]
    assert all(i.status == "leased" and i.lease_owner == "w" and i.attempts == 1 for i in first)
    assert [i.id for i in await store.claim("w", limit=3)] == ["late-low"]
    assert await store.claim("w") == []


async def test_claimed_items_carry_the_run_they_name(store: Store) -> None:
    """A claim reads the run each item's payload names with the items (no read after it);
    items naming no run, or one that does not exist, carry none."""
    run = a_run("r9")
    await store.write(InsertRun(run), Enqueue("a", "run", {"run_id": "r9"}),
                      Enqueue("b", "run", {"run_id": "gone"}), Enqueue("c", "k", [1, 2]),
                      Enqueue("d", "k", None), Enqueue("e", "k", {"run_id": 9}))
    claimed = {item.id: item.run for item in await store.claim("w", limit=10)}
    assert claimed == {"a": run, "b": None, "c": None, "d": None, "e": None}


async def test_future_items_are_not_claimable(store: Store) -> None:
    """An item whose run_at is in the future stays in the queue."""
    await store.write(Enqueue("later", "k", None, run_at=time.time() + 3600))
    assert await store.claim("w", limit=10) == []


async def test_claim_filters_by_kind(store: Store) -> None:
    """Only items of the requested kinds are claimed."""
    await store.write(Enqueue("a", "flow", None), Enqueue("b", "service", None))
    assert [i.id for i in await store.claim("w", limit=5, kinds=["service"])] == ["b"]
    assert [i.id for i in await store.claim("w", limit=5, kinds=["flow", "x"])] == ["a"]


async def test_expired_lease_makes_item_claimable_again(store: Store) -> None:
    """When a lease runs out another worker claims the item; the first one has lost it."""
    await store.enqueue("k", None, item_id="q1")
    assert len(await store.claim("w1", lease_s=0.05)) == 1
    assert await store.claim("w2") == []
    await asyncio.sleep(0.1)
    [theirs] = await store.claim("w2", lease_s=30)
    assert (theirs.id, theirs.lease_owner, theirs.attempts) == ("q1", "w2", 2)
    with pytest.raises(LeaseLost) as lost:
        await store.write(Complete("q1", "w1"))
    assert (lost.value.item_id, lost.value.owner) == ("q1", "w1")
    await store.write(Complete("q1", "w2"))


async def test_enqueue_with_an_owner_starts_leased(store: Store) -> None:
    """An item enqueued with an owner is not claimable until its lease expires."""
    await store.write(Enqueue("mine", "k", {"x": 1}, owner="me", lease_s=0.3))
    item = await store.get_item("mine")
    assert item is not None
    assert (item.status, item.lease_owner, item.attempts) == ("leased", "me", 1)
    assert await store.claim("other", limit=5) == []
    await asyncio.sleep(0.4)
    taken = await store.claim("other", limit=5)
    assert [(i.id, i.attempts) for i in taken] == [("mine", 2)]
    await store.write(Complete("mine", "other", keep=False))
    assert await store.get_item("mine") is None


async def test_extend_leases_renews_only_leases_still_held(store: Store) -> None:
    """Only the owner's current leases are renewed, and their ids returned."""
    await store.write(Enqueue("a", "k", None), Enqueue("b", "k", None), Enqueue("c", "k", None))
    await store.claim("w1", limit=2, lease_s=0.05)
    await store.claim("w2", limit=1, lease_s=30)
    assert await store.extend_leases("w1", ["a", "b", "c", "zz"], 30) == {"a", "b"}
    await asyncio.sleep(0.1)
    assert await store.claim("w3", limit=3) == []  # renewed: nothing expired


async def test_hold_lease_fences_and_only_lengthens(store: Store) -> None:
    """`HoldLease` fails `LeaseLost` (applying nothing) for anybody but the lease's holder,
    and makes the lease last at least its time; neither it nor a renewal shortens one, but
    an `exact` one does."""
    await store.enqueue("k", None, item_id="q1")
    await store.claim("w1", lease_s=0.05)
    attempt = SaveStep(StepRecord("r1", 0, "s1", "running", 1.0))
    with pytest.raises(LeaseLost):
        await store.write(attempt, HoldLease("q1", "w2", 30))
    assert await store.get_steps("r1") == []
    await store.write(attempt, HoldLease("q1", "w1", 30))
    await store.write(HoldLease("q1", "w1", 0.01))  # shorter: the longer hold stays
    assert await store.extend_leases("w1", ["q1"], 0.01) == {"q1"}  # stays too
    await asyncio.sleep(0.1)
    assert await store.claim("w2") == []  # the 50 ms claim and the short ones are past
    item = await store.get_item("q1")
    assert item is not None and item.lease_owner == "w1"
    assert item.lease_expires_at is not None and item.lease_expires_at > time.time() + 25
    # `exact` (the calls have ended): the usual lease again, shorter than the hold.
    await store.write(HoldLease("q1", "w1", 0.01, exact=True))
    await asyncio.sleep(0.05)
    assert [i.id for i in await store.claim("w2")] == ["q1"]


async def test_lease_lost_rolls_back_the_whole_write(store: Store) -> None:
    """[SaveStep, Complete] with a lost lease leaves no step behind."""
    await store.enqueue("k", None, item_id="q1")
    await store.claim("w1")
    step = SaveStep(StepRecord("r1", 0, "s1", "succeeded", 1.0))
    with pytest.raises(LeaseLost):
        await store.write(step, Complete("q1", "not-the-owner"))
    assert await store.get_steps("r1") == []
    item = await store.get_item("q1")
    assert item is not None
    assert item.status == "leased"


async def test_a_failing_write_does_not_disturb_concurrent_writes(store: Store) -> None:
    """One write losing its lease rolls back alone; writes committed with it persist."""
    await store.enqueue("k", None, item_id="q1")
    await store.claim("w1")
    results = await asyncio.gather(
        *(store.write(InsertLogs([LogLine("r1", f"m{i}", float(i))])) for i in range(20)),
        store.write(InsertLogs([LogLine("r1", "doomed", 99.0)]), Complete("q1", "intruder")),
        return_exceptions=True,
    )
    assert isinstance(results[-1], LeaseLost)
    assert sorted(line.message for line in await store.get_logs("r1")) == sorted(
        f"m{i}" for i in range(20))


async def test_complete_keeps_result_or_deletes(store: Store) -> None:
    """Complete(keep=True) leaves a done item with its result; keep=False deletes it."""
    await store.write(Enqueue("keep", "k", None), Enqueue("drop", "k", None))
    await store.claim("w", limit=2)
    await store.write(Complete("keep", "w", result={"status": 201}),
                      Complete("drop", "w", keep=False))
    kept = await store.get_item("keep")
    assert kept is not None
    assert (kept.status, kept.result, kept.lease_owner, kept.lease_expires_at) == (
        "done", {"status": 201}, None, None)
    assert await store.get_item("drop") is None


async def test_release_makes_item_ready_later_with_error_and_payload(store: Store) -> None:
    """Release clears the lease, sets run_at and last_error, and may replace the payload."""
    later = time.time() + 3600
    await store.write(Enqueue("a", "k", {"v": 1}), Enqueue("b", "k", {"v": 1}))
    await store.claim("w", limit=2)
    await store.write(Release("a", "w", later, error="upstream 503"),
                      Release("b", "w", 0.0, payload={"v": 2}, replace_payload=True))
    a, b = await store.get_item("a"), await store.get_item("b")
    assert a is not None
    assert b is not None
    assert (a.status, a.run_at, a.last_error, a.payload, a.lease_owner) == (
        "ready", later, "upstream 503", {"v": 1}, None)
    assert (b.payload, b.run_at) == ({"v": 2}, 0.0)
    assert [i.id for i in await store.claim("w2", limit=5)] == ["b"]


async def test_fail_and_requeue(store: Store) -> None:
    """Fail ends an item failed or broken; Requeue makes it ready now with attempts reset."""
    await store.write(Enqueue("f", "k", None), Enqueue("b", "k", None), Enqueue("r", "k", None))
    await store.claim("w", limit=3)
    await store.write(Fail("f", "w", "bad request"),
                      Fail("b", "w", "gave up", status="broken", result={"code": 3}))
    failed, broken = await store.get_item("f"), await store.get_item("b")
    assert failed is not None
    assert broken is not None
    assert (failed.status, failed.last_error) == ("failed", "bad request")
    assert (broken.status, broken.result, broken.attempts) == ("broken", {"code": 3}, 1)
    assert await store.write(Requeue("b"), Requeue("r"), Requeue("missing")) == [
        True, False, False]
    requeued = await store.get_item("b")
    assert requeued is not None
    assert (requeued.status, requeued.attempts) == ("ready", 0)
    assert [i.id for i in await store.claim("w2", limit=5)] == ["b"]


async def test_outcomes_need_the_lease(store: Store) -> None:
    """Release and Fail on an item the caller does not hold raise LeaseLost."""
    await store.enqueue("k", None, item_id="q1")
    with pytest.raises(LeaseLost):
        await store.write(Release("q1", "w", 0.0))
    with pytest.raises(LeaseLost):
        await store.write(Fail("q1", "w", "x"))


async def test_wait_for_work_wakes_on_enqueue(store: Store) -> None:
    """A waiting worker is woken by an enqueue long before its timeout."""
    await store.wait_for_work(0.01)  # consume any wake-up left from opening
    waiter = asyncio.create_task(store.wait_for_work(30))
    await asyncio.sleep(0.05)
    await store.enqueue("k", None, item_id="q1")
    await asyncio.wait_for(waiter, 10)


async def test_wait_for_work_returns_after_timeout(store: Store) -> None:
    """With nothing happening, wait_for_work returns once the timeout has passed."""
    await store.wait_for_work(0.01)
    await asyncio.wait_for(store.wait_for_work(0.2), 10)


async def _commit_logs_until(store: Store, stop: asyncio.Event) -> None:
    """This process writing something else than queue work, every 20 ms."""
    while not stop.is_set():
        await store.write(InsertLogs([LogLine("r1", "busy", time.time())]))
        await asyncio.sleep(0.02)


async def test_own_commits_do_not_wake_a_sqlite_worker_but_due_work_does(
        tmp_path: Path) -> None:
    """SQLite notices other processes' work by its data version, which this process's own
    commits change too: those alone do not end the wait (a claim for nothing each poll);
    another connection's enqueue, or an item come due, does."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with open_store(url, tmp_path) as store, open_store(url, tmp_path) as other:
        await store.write(InsertRun(a_run("r1")))
        await store.wait_for_work(0.01)
        stop = asyncio.Event()
        busy = asyncio.create_task(_commit_logs_until(store, stop))
        try:
            started = time.monotonic()
            await store.wait_for_work(0.6)
            assert time.monotonic() - started >= 0.55  # the timeout, not a change of ours

            waiter = asyncio.create_task(store.wait_for_work(30))
            await asyncio.sleep(0.3)
            await other.enqueue("k", None, item_id="q-other")  # "another process"
            await asyncio.wait_for(waiter, 5)

            await other.claim("w", limit=1, lease_s=60)  # taken: nothing claimable now
            await store.write(Enqueue("q-later", "k", None, run_at=time.time() + 0.3))
            await store.wait_for_work(0.01)  # the local wake-up of that enqueue
            started = time.monotonic()
            await asyncio.wait_for(store.wait_for_work(30), 5)  # it comes due
            assert time.monotonic() - started >= 0.2
        finally:
            stop.set()
            await busy


async def test_purge_deletes_old_finished_items_and_expired_sessions(store: Store) -> None:
    """purge removes done and failed items, not ready or broken ones, and expired sessions."""
    await store.write(*(Enqueue(x, "k", None) for x in ("done", "failed", "broken", "ready")))
    await store.claim("w", limit=3)
    await store.write(Complete("done", "w"), Fail("failed", "w", "x"),
                      Fail("broken", "w", "x", status="broken"),
                      PutSession(SessionRecord("old", {}, 1.0)))
    assert await store.purge(before=time.time() + 1) == 2
    assert {i.id for i in await store.list_items()} == {"broken", "ready"}
    assert await store.get_session("old", 0.0) is None


async def test_a_nonce_is_recorded_once_until_purged(store: Store) -> None:
    """A second RecordNonce of one key is a Conflict; once expired and purged it is new again."""
    await store.write(RecordNonce("hmac:p:abc", 100.0))
    with pytest.raises(Conflict):
        await store.write(RecordNonce("hmac:p:abc", 200.0))
    await store.write(RecordNonce("hmac:p:def", 100.0))  # another signature is another nonce
    await store.purge(before=100.0)
    await store.write(RecordNonce("hmac:p:abc", 300.0))


async def test_one_run_per_start_key_whatever_its_id(store: Store) -> None:
    """A second run with the same key is a Conflict and its queue item is not written either."""
    await store.write(InsertRun(a_run("r1"), key="schedule:f:1000"),
                      Enqueue("q1", "run", {"run_id": "r1"}))
    with pytest.raises(Conflict):
        await store.write(InsertRun(a_run("r2"), key="schedule:f:1000"),
                          Enqueue("q2", "run", {"run_id": "r2"}))
    await store.write(InsertRun(a_run("r3"), key="schedule:f:2000"), InsertRun(a_run("r4")),
                      InsertRun(a_run("r5")))
    assert {r.id for r in await store.list_runs()} == {"r1", "r3", "r4", "r5"}
    assert [i.id for i in await store.list_items()] == ["q1"]
    assert await store.get_run_by_key("schedule:f:1000") == await store.get_run("r1")
    assert await store.get_run_by_key("schedule:f:3000") is None


# --- sessions, credentials, locks ------------------------------------------------------------


async def test_sessions_expire_and_can_be_deleted(store: Store) -> None:
    """A session is visible until its expiry, replaced by PutSession, gone after delete."""
    await store.write(PutSession(SessionRecord("s1", {"user": "a"}, 100.0)))
    assert await store.get_session("s1", 50.0) == SessionRecord("s1", {"user": "a"}, 100.0)
    assert await store.get_session("s1", 100.0) is None
    await store.write(PutSession(SessionRecord("s1", {"user": "b"}, 200.0, "h-alice")))
    record = await store.get_session("s1", 150.0)
    assert record is not None
    assert (record.data, record.principal) == ({"user": "b"}, "h-alice")
    await store.write(DeleteSession("s1"))
    assert await store.get_session("s1", 0.0) is None


async def test_credential_versions_grow_by_one(store: Store) -> None:
    """The first token is version 1; every refresh adds one."""
    assert await store.get_credential("crm") is None
    await store.write(PutCredential("crm", {"access_token": "t1"}, 10.0))
    await store.write(PutCredential("crm", {"access_token": "t2"}))
    await store.write(PutCredential("crm", {"access_token": "t3"}, 30.0))
    credential = await store.get_credential("crm")
    assert credential is not None
    assert (credential.token, credential.version, credential.expires_at) == (
        {"access_token": "t3"}, 3, 30.0)


async def test_try_lock_is_exclusive_until_unlock_or_expiry(store: Store) -> None:
    """A lock has one owner; it frees on unlock by the owner or when its TTL runs out."""
    assert await store.try_lock("auth:crm", "a", 0.05)
    assert await store.try_lock("auth:crm", "a", 0.05)  # the owner may renew
    assert not await store.try_lock("auth:crm", "b", 30)
    await asyncio.sleep(0.1)
    assert await store.try_lock("auth:crm", "b", 30)
    await store.unlock("auth:crm", "a")  # not the owner: no effect
    assert not await store.try_lock("auth:crm", "a", 30)
    await store.unlock("auth:crm", "b")
    assert await store.try_lock("auth:crm", "a", 30)


async def test_data_survives_reopening(store_url: str, tmp_path: Path) -> None:
    """What one store object wrote, a new one on the same URL reads."""
    async with open_store(store_url, tmp_path) as first:
        await first.write(InsertRun(a_run()), Enqueue("q1", "k", {"x": 1}))
    async with open_store(store_url, tmp_path) as second:
        assert await second.get_run("r1") == a_run()
        item = await second.get_item("q1")
        assert item is not None
        assert item.payload == {"x": 1}


# --- SQLite group commit -----------------------------------------------------------------------


async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    """1,000 concurrent write() calls are committed in far fewer transactions."""
    store = SqliteStore(tmp_path / "store.db")
    async with store:
        before = store.commits
        await asyncio.gather(*(store.enqueue("k", i, item_id=f"q{i}") for i in range(1000)))
        commits = store.commits - before
        assert len(await store.list_items(limit=2000)) == 1000
    assert 1 <= commits <= 100


async def test_a_database_locked_by_another_process_is_unavailable(tmp_path: Path) -> None:
    """Another process holding the write lock past the busy timeout: the write fails as
    `StoreUnavailable` (worth trying again), and works once the lock is let go."""
    path = tmp_path / "store.db"
    async with SqliteStore(path, busy_timeout_s=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="database is locked"):
            await store.write(InsertRun(a_run("r1")))
        other.execute("ROLLBACK")
        other.close()
        assert await store.write(InsertRun(a_run("r1"))) == [None]


async def test_lock_owners_lists_the_live_holders_of_a_prefix(store: Store) -> None:
    """Worker presence reads who holds `worker:*` locks that have not expired."""
    assert await store.lock_owners("worker:") == []
    assert await store.try_lock("worker:b", "b", 30)
    assert await store.try_lock("worker:a", "a", 0.05)
    assert await store.try_lock("auth:crm", "c", 30)  # another prefix
    assert await store.lock_owners("worker:") == ["a", "b"]
    await asyncio.sleep(0.1)
    assert await store.lock_owners("worker:") == ["b"]  # a's expired
    await store.unlock("worker:b", "b")
    assert await store.lock_owners("worker:") == []
    assert await store.lock_owners("auth:") == ["c"]


async def test_a_value_the_store_refuses_fails_its_write_alone(store: Store) -> None:
    """An integer past 64 bits (PostgreSQL's bigint, SQLite's INTEGER) in one of concurrent
    writes: that write is refused as a value (no use retrying it), the others commit."""
    results = await asyncio.gather(
        store.write(InsertRun(a_run("ok-1"))),
        store.write(InsertRun(replace(a_run("big"), retry_count=2**63))),
        store.write(InsertRun(a_run("ok-2"))), return_exceptions=True)
    assert results[0] == results[2] == [None]
    assert isinstance(results[1], ValueRefused)
    assert {r.id for r in await store.list_runs()} == {"ok-1", "ok-2"}


async def test_text_no_backend_could_hold_is_stored_as_near_as_it_can_be(store: Store) -> None:
    """A NUL (PostgreSQL refuses it in text) is kept as U+FFFD and a lone surrogate (an
    undecodable byte, as aiohttp decodes an upstream's Latin-1 header) as `?`, in text and
    JSON columns alike, on both backends: a log line or an attempt is never what fails a
    write."""
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")
    run = replace(a_run("odd"), input={"h": latin1, "t": "bin\x00ary"}, error=f"x\x00{latin1}")
    await store.write(InsertRun(run), InsertLogs([LogLine("odd", f"bin\x00ary {latin1}", 1.0)]))
    stored = await store.get_run("odd")
    assert stored is not None
    assert stored.input == {"h": "caf?", "t": "bin\x00ary"}  # JSON escapes a NUL: kept as is
    assert stored.error == "x\ufffdcaf?"
    assert [line.message for line in await store.get_logs("odd")] == ["bin\ufffdary caf?"]
