"""`Store.attempts_after`: the failure-rate watch's walk of the attempts, on both backends."""

from __future__ import annotations

from tests.integration.test_store import a_run

from interlink.store import AttemptRecord, InsertRun, SaveAttempt, Store


def attempt(run_id: str, n: int, code: int, decision: str, at: float) -> AttemptRecord:
    return AttemptRecord(run_id, "push", n, {"url": "http://x/"}, None, code, decision, at,
                         message=f"attempt {n}")


async def test_attempts_after_walks_in_insertion_order_with_the_runs_flow(store: Store) -> None:
    """From 0 every attempt, from a seq the later ones, None the last `limit`; a re-saved
    attempt keeps its place and shows its outcome."""
    await store.write(InsertRun(a_run("r1", flow="orders")), InsertRun(a_run("r2", flow="stock")))
    await store.write(SaveAttempt(attempt("r1", 1, 0, "unknown", 1.0)))
    await store.write(SaveAttempt(attempt("r2", 1, 3, "fail", 2.0)),
                      SaveAttempt(attempt("r1", 2, 1, "retry", 3.0)))
    await store.write(SaveAttempt(attempt("r1", 1, 1, "retry", 1.0)))  # its outcome
    every = await store.attempts_after(0)
    later = await store.attempts_after(every[0].seq)
    last = await store.attempts_after(None, limit=2)
    assert [(a.run_id, a.flow, a.decision, a.created_at) for a in every] == [
        ("r1", "orders", "retry", 1.0), ("r2", "stock", "fail", 2.0),
        ("r1", "orders", "retry", 3.0)]
    assert [a.seq for a in every] == sorted(a.seq for a in every)
    assert later == every[1:]
    assert last == every[1:]
    assert every[1].message == "attempt 1" and every[1].code == 3
    assert await store.attempts_after(every[-1].seq) == []
