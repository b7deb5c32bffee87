"""The store's reads behind the UI's overview and run→item links, on both backends."""

from __future__ import annotations

from interlink.store import AttemptRecord, Enqueue, InsertRun, RunRecord, SaveAttempt, Store

NOW = 1_800_000_000.0


def run(n: int, flow: str, status: str, ago: float, took: float | None) -> RunRecord:
    """A run created `ago` seconds before NOW that took `took` seconds (None: not ended)."""
    at = NOW - ago
    return RunRecord(id=f"r_{n:03}", flow=flow, status=status, trigger="api", input={"n": n},
                     flow_spec={"name": flow}, created_at=at, started_at=at,
                     finished_at=None if took is None else at + took)


def attempt(run_id: str, n: int, decision: str, ago: float) -> AttemptRecord:
    """An attempt of step `push` made `ago` seconds before NOW."""
    return AttemptRecord(run_id=run_id, step_id="push", n=n, request={"method": "POST"},
                         response=None, code=0, decision=decision, created_at=NOW - ago)


async def test_runs_are_counted_per_slot_status_and_duration(store: Store) -> None:
    """Slots of 60 s from `since`, outcomes per flow and status, the newest durations; runs
    before `since` are left out."""
    await store.write(
        InsertRun(run(1, "a", "succeeded", 3500, 2.0)),
        InsertRun(run(2, "a", "failed", 3500, 4.0)),
        InsertRun(run(3, "a", "succeeded", 30, 1.0)),
        InsertRun(run(4, "b", "running", 10, None)),
        InsertRun(run(5, "a", "failed", 7200, 9.0)))  # outside the hour
    since = NOW - 3600
    assert sorted(await store.run_slots(since, 60)) == [
        ("a", 1, "failed", 1), ("a", 1, "succeeded", 1), ("a", 59, "succeeded", 1),
        ("b", 59, "running", 1)]
    assert sorted(await store.run_outcomes(since)) == [
        ("a", "failed", 1), ("a", "succeeded", 2), ("b", "running", 1)]
    assert sorted(await store.run_durations(since, 10)) == [("a", 1.0), ("a", 2.0), ("a", 4.0)]
    assert await store.run_durations(since, 1) == [("a", 1.0)]  # the newest


async def test_attempts_are_counted_per_flow_step_and_decision(store: Store) -> None:
    """Attempts since a time, by the flow of their run, their step and their decision."""
    await store.write(InsertRun(run(1, "a", "failed", 100, 1.0)),
                      SaveAttempt(attempt("r_001", 1, "retry_step", 90)),
                      SaveAttempt(attempt("r_001", 2, "fail", 80)),
                      SaveAttempt(attempt("r_001", 3, "fail", 5000)))  # before `since`
    assert sorted(await store.attempt_decisions(NOW - 3600)) == [
        ("a", "push", "fail", 1), ("a", "push", "retry_step", 1)]


async def test_a_runs_queue_items_are_found_by_its_id(store: Store) -> None:
    """Items whose payload names the run, oldest first; others are not."""
    await store.write(Enqueue("q_1", "kept", {"run_id": "r_x"}),
                      Enqueue("q_2", "kept", {"run_id": "r_y"}),
                      Enqueue("q_3", "kept", {"run_id": "r_x", "service": "s"}))
    assert [item.id for item in await store.run_items("r_x")] == ["q_1", "q_3"]
    assert await store.run_items("r_none") == []
