"""`Store.attempts_after` and the failure-rate watch that walks it, on both backends."""

from __future__ import annotations

import time

from tests.integration.test_store import a_run

from interlink.notifications import NOTIFICATION_KIND, FailureRateWatch, Notices
from interlink.redaction import Redactor
from interlink.spec.flow import FlowSpec
from interlink.spec.project import ProjectConfig
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


async def test_the_watch_counts_an_attempt_once_when_its_outcome_is_in(store: Store) -> None:
    """An attempt still `unknown` is not counted; once its outcome is saved it is, once, and
    the alert over the threshold is one notification item."""
    config = ProjectConfig.model_validate({"name": "shop", "notify": {
        "channels": {"ops": {"webhook": {"url": "http://127.0.0.1:9/hook"}}},
        "connector_failure_rate": {"threshold": 0.5, "window": "1h", "min_attempts": 2}}})
    flow = FlowSpec.model_validate({"name": "orders", "steps": [
        {"id": "push", "type": "connector", "connector": "wh", "endpoint": "create"}]})
    assert config.notify.connector_failure_rate is not None
    watch = FailureRateWatch(store, config.notify.connector_failure_rate,
                             Notices(config, Redactor()), {"orders": flow}, "me")
    now = time.time()
    await store.write(InsertRun(a_run("r1", flow="orders")))
    await store.write(SaveAttempt(attempt("r1", 1, 1, "retry", now)),
                      SaveAttempt(attempt("r1", 2, 0, "unknown", now)))
    await watch.check(now)
    before = await store.list_items(kind=NOTIFICATION_KIND)
    await store.write(SaveAttempt(attempt("r1", 2, 3, "fail", now)))
    await watch.check(now)
    await watch.check(now)
    after = await store.list_items(kind=NOTIFICATION_KIND)
    assert before == []  # one failure of one counted attempt: under min_attempts
    assert len(after) == 1
    event = after[0].payload["event"]
    assert (event["connector"], event["facts"]["attempts"], event["facts"]["failures"]) == (
        "wh", 2, 2)
