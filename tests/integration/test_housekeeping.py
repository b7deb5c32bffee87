"""Housekeeping: one worker at a time deletes finished queue items older than
`worker.keep_finished` and whatever expired (nonces, sessions …); runs stay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.integration.test_store import a_run
from tests.projects import write_project

from interlink import housekeeping
from interlink.engine import Engine
from interlink.errors import Conflict
from interlink.housekeeping import Housekeeping
from interlink.store import Complete, Enqueue, InsertRun, RecordNonce, Store


async def finished(store: Store, *ids: str) -> None:
    """Queue items `ids`, claimed and completed but kept (as a service request's are)."""
    await store.write(*(Enqueue(i, "k", None) for i in ids))
    await store.claim("w", limit=len(ids))
    await store.write(*(Complete(i, "w", keep=True) for i in ids))


async def test_finished_items_go_after_keep_finished_expired_rows_at_once(store: Store) -> None:
    await finished(store, "q1", "q2")
    await store.write(RecordNonce("hmac:old", time.time() - 1), InsertRun(a_run("r1")))
    keeper = Housekeeping(store, "w1", keep_finished_s=3600)
    assert await keeper.once() == 0  # finished just now: kept for an hour
    assert {i.id for i in await store.list_items()} == {"q1", "q2"}
    await store.write(RecordNonce("hmac:old", time.time() + 60))  # expired, so it was deleted
    with pytest.raises(Conflict):
        await store.write(RecordNonce("hmac:old", time.time() + 60))
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


async def test_the_engines_worker_keeps_house(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` and `interlink worker` run it: with `worker.keep_finished: 0s`, a kept item is
    gone within a purge period."""
    monkeypatch.setattr(housekeeping, "EVERY_S", 0.05)
    project = write_project(tmp_path, {"interlink.yaml": """
        name: test
        store: sqlite:///.interlink/test.db
        worker: {keep_finished: 0s}
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
