"""Claims are exclusive across processes, and a killed worker loses no work (both backends).

Run as a script, this file is the worker used by the tests:
`python test_store_processes.py URL BASE_DIR OWNER OUT_FILE drain|hold LEASE_S [READY_FILE]`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from interlink.errors import LeaseLost
from interlink.store import Complete, Enqueue, open_store

BATCH = 50


async def _work(url: str, base_dir: Path, owner: str, out_file: Path, mode: str, lease_s: float,
                ready_file: Path | None) -> None:
    """Claim and complete items, appending each id this worker completed to `out_file`.

    `drain` stops when nothing is ready or leased; `hold` completes half of one batch, then
    signals `ready_file` and sleeps holding the other half's leases (to be killed).
    """
    async with open_store(url, base_dir) as store:
        # A start barrier, so that both workers really claim at the same time.
        (base_dir / f"{owner}.ready").touch()
        while mode == "drain" and not (base_dir / "go").exists():  # noqa: ASYNC110 (a file)
            await asyncio.sleep(0.01)
        with out_file.open("a") as out:
            while True:
                items = await store.claim(owner, limit=BATCH, lease_s=lease_s)
                if not items:
                    if not (await store.list_items(status="ready", limit=1)
                            or await store.list_items(status="leased", limit=1)):
                        return
                    await store.wait_for_work(0.2)
                    continue
                todo = items[: BATCH // 2] if mode == "hold" else items
                results = await asyncio.gather(
                    *(store.write(Complete(item.id, owner)) for item in todo),
                    return_exceptions=True,
                )
                for item, result in zip(todo, results, strict=True):
                    if isinstance(result, LeaseLost):
                        continue
                    if isinstance(result, BaseException):
                        raise result
                    out.write(item.id + "\n")
                out.flush()
                if mode == "hold":
                    assert ready_file is not None
                    ready_file.write_text("holding")  # noqa: ASYNC240 (tiny, once)
                    await asyncio.sleep(3600)


def _start_worker(url: str, base_dir: Path, owner: str, mode: str = "drain",
                  lease_s: float = 30.0, ready_file: Path | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, url, str(base_dir), owner, str(base_dir / f"{owner}.txt"),
            mode, str(lease_s)]
    if ready_file is not None:
        args.append(str(ready_file))
    return subprocess.Popen(args)


async def _enqueue(url: str, base_dir: Path, count: int) -> list[str]:
    ids = [f"item-{n:05d}" for n in range(count)]
    async with open_store(url, base_dir) as store:
        await store.write(*(Enqueue(item_id, "job", {"n": n}) for n, item_id in enumerate(ids)))
    return ids


async def _assert_all_done_once(url: str, base_dir: Path, ids: list[str], owners: list[str]
                                ) -> Counter[str]:
    completed: Counter[str] = Counter()
    for owner in owners:
        completed.update(_lines(base_dir / f"{owner}.txt"))
    assert sum(completed.values()) == len(ids)
    assert set(completed) == set(ids)
    async with open_store(url, base_dir) as store:
        assert await store.list_items(status="ready") == []
        assert await store.list_items(status="leased") == []
        assert len(await store.list_items(status="done", limit=len(ids) + 1)) == len(ids)
    return completed


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _wait(process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    assert process.wait(timeout) == 0


async def test_two_worker_processes_complete_each_item_exactly_once(
    store_url: str, tmp_path: Path
) -> None:
    """10,000 items claimed by two processes at once are each completed exactly once."""
    ids = await _enqueue(store_url, tmp_path, 10_000)
    workers = [_start_worker(store_url, tmp_path, owner) for owner in ("w1", "w2")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{owner}.ready").exists() for owner in ("w1", "w2")):
        assert all(w.poll() is None for w in workers)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (tmp_path / "go").touch()
    for worker in workers:
        await asyncio.to_thread(_wait, worker)
    await _assert_all_done_once(store_url, tmp_path, ids, ["w1", "w2"])
    for owner in ("w1", "w2"):
        assert (tmp_path / f"{owner}.txt").read_text().split(), f"{owner} completed nothing"


async def test_a_killed_worker_loses_nothing(store_url: str, tmp_path: Path) -> None:
    """SIGKILL while holding leases: the other worker completes those items once they expire."""
    ids = await _enqueue(store_url, tmp_path, 2_000)
    ready = tmp_path / "holding"
    doomed = _start_worker(store_url, tmp_path, "doomed", "hold", 1.0, ready)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert doomed.poll() is None
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (tmp_path / "go").touch()
    survivor = _start_worker(store_url, tmp_path, "survivor")
    await asyncio.sleep(0.2)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    await asyncio.to_thread(_wait, survivor)
    completed = await _assert_all_done_once(store_url, tmp_path, ids, ["doomed", "survivor"])
    held = (tmp_path / "doomed.txt").read_text().split()
    assert len(held) == BATCH // 2
    async with open_store(store_url, tmp_path) as store:
        reclaimed = [item for item in await store.list_items(limit=3000) if item.attempts == 2]
    assert len(reclaimed) == BATCH - BATCH // 2
    assert all(completed[item.id] == 1 for item in reclaimed)


if __name__ == "__main__":
    url, base, owner, out, mode, lease = sys.argv[1:7]
    ready_path = Path(sys.argv[7]) if len(sys.argv) > 7 else None
    asyncio.run(_work(url, Path(base), owner, Path(out), mode, float(lease), ready_path))
