"""Listing runs (`find_runs`, `count_runs`), on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.integration.test_store import a_run

from interlink.errors import InvalidCursor
from interlink.store import Enqueue, InsertRun, RunQuery, RunRecord, Store


def runs_at(times: list[float], **fields: object) -> list[RunRecord]:
    return [replace(a_run(f"r{n:03}", created_at=t), **fields)  # type: ignore[arg-type]
            for n, t in enumerate(times)]


async def walk(store: Store, query: RunQuery, limit: int) -> list[list[str]]:
    """Every page of `query`, following cursors."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.find_runs(query, cursor=cursor, limit=limit)
        pages.append([run.id for run in page.runs])
        if page.cursor is None:
            return pages
        cursor = page.cursor


async def test_pages_follow_each_other_newest_first_with_ties(store: Store) -> None:
    """Cursors walk every run once, newest first, runs created at the same instant included
    (ordered by id), and the last page says there is no next one."""
    times = [1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0]
    await store.write(*[InsertRun(run) for run in runs_at(times)])
    pages = await walk(store, RunQuery(), limit=2)
    assert pages == [["r006", "r005"], ["r004", "r003"], ["r002", "r001"], ["r000"]]


async def test_a_full_last_page_has_no_cursor(store: Store) -> None:
    """Exactly `limit` runs left: one page, no cursor to an empty one."""
    await store.write(*[InsertRun(run) for run in runs_at([1.0, 2.0])])
    page = await store.find_runs(RunQuery(), limit=2)
    assert ([r.id for r in page.runs], page.cursor) == (["r001", "r000"], None)


async def test_filters_combine(store: Store) -> None:
    """Flow, status, trigger and the time range each narrow the listing."""
    await store.write(
        InsertRun(replace(a_run("a", created_at=10.0), status="failed")),
        InsertRun(replace(a_run("b", flow="billing", created_at=20.0), status="failed")),
        InsertRun(replace(a_run("c", created_at=30.0), trigger="schedule")),
        InsertRun(replace(a_run("d", created_at=40.0), status="failed", trigger="schedule")),
    )

    async def ids(**fields: object) -> list[str]:
        page = await store.find_runs(RunQuery(**fields))  # type: ignore[arg-type]
        return [run.id for run in page.runs]

    assert await ids(status="failed") == ["d", "b", "a"]
    assert await ids(status="failed", flow="orders") == ["d", "a"]
    assert await ids(trigger="schedule") == ["d", "c"]
    assert await ids(since=20.0, until=40.0) == ["c", "b"]
    assert await ids(flow="orders", status="failed", trigger="schedule", since=40.0) == ["d"]
    assert await ids(flow="nope") == []


async def test_search_by_run_id_queue_item_id_or_input_text(store: Store) -> None:
    """A search finds a run by its id, by the id of its queue item, or by text in its input
    (any case; `%` and `_` are plain characters)."""
    await store.write(
        InsertRun(replace(a_run("r_1", created_at=1.0), input={"order": "A-1042"})),
        InsertRun(replace(a_run("r_2", created_at=2.0), input={"order": "B-7", "note": "50%_off"})),
        InsertRun(replace(a_run("r_3", created_at=3.0), input={"order": "C-9"})),
        Enqueue("q_abc", "run", {"run_id": "r_3"}),
    )

    async def ids(search: str) -> list[str]:
        return [run.id for run in (await store.find_runs(RunQuery(search=search))).runs]

    assert await ids("r_2") == ["r_2"]
    assert await ids("q_abc") == ["r_3"]
    assert await ids("a-1042") == ["r_1"]
    assert await ids("%_") == ["r_2"]
    assert await ids("_") == ["r_2"]  # r_1's input has no underscore; ids do not count as text
    assert await ids("nothing like it") == []


async def test_counts_per_status_ignore_the_status_filter_and_stop_at_the_cap(
        store: Store) -> None:
    """Counts are per status for the other filters; a count at the cap means "cap or more"."""
    await store.write(*[InsertRun(replace(run, status="failed"))
                        for run in runs_at([1.0, 2.0, 3.0, 4.0, 5.0])])
    await store.write(InsertRun(replace(a_run("other", flow="billing", created_at=6.0),
                                        status="succeeded")))
    counts = await store.count_runs(RunQuery(status="succeeded"))
    assert counts["failed"] == 5 and counts["succeeded"] == 1 and counts["waiting"] == 0
    assert set(counts) == {"queued", "running", "waiting", "succeeded", "failed", "stopped",
                           "partial"}
    assert (await store.count_runs(RunQuery(flow="orders"), cap=3))["failed"] == 3
    assert (await store.count_runs(RunQuery(flow="billing")))["failed"] == 0


@pytest.mark.parametrize("cursor", ["", "nope", "bm90IGpzb24", "WyJhIiwxXQ"])
async def test_a_cursor_not_handed_out_is_refused(store: Store, cursor: str) -> None:
    """Garbage, non-JSON and wrongly typed cursors raise InvalidCursor (a ValueError)."""
    with pytest.raises(InvalidCursor):
        await store.find_runs(RunQuery(), cursor=cursor or "!!")
    with pytest.raises(ValueError, match="not a runs cursor"):
        await store.find_runs(RunQuery(), cursor=cursor or "!!")
