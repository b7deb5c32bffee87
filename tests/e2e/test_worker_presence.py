"""`runs retry` says when no worker is running to pick the retry up — with real processes:
none, an `interlink worker`, `interlink serve` with and without its worker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.processes import cli, free_port, interlink, wait_healthy
from tests.projects import write_project

from interlink.presence import live_workers
from interlink.server import NO_WORKER_LINE
from interlink.store import open_store

FILES = {
    "flows/broken.yaml": "name: broken\nsteps:\n  - {id: s, type: script, script: scripts/no.py}\n",
    "scripts/no.py": "def handle(data):\n    raise RuntimeError('no')\n",
}
NO_WORKER = "no worker is running: start `interlink worker` (or `interlink serve`) to run it"


async def presence(root: Path, *, alive: bool, limit_s: float = 30) -> None:
    """Wait until the store says a worker is (or no worker is) alive."""
    deadline = time.monotonic() + limit_s
    async with open_store("sqlite:///.interlink/test.db", root) as store:
        while bool(await live_workers(store)) != alive:
            assert time.monotonic() < deadline, f"no worker presence {alive}"
            await asyncio.sleep(0.1)


async def retry(root: Path, run_id: str) -> tuple[str, str]:
    """`interlink runs retry RUN_ID`: the new run's id and what it said on stderr."""
    code, out, err = await cli("runs", "retry", run_id, "-p", str(root))
    assert code == 0, err
    return out.strip(), err


async def ended(root: Path, run_id: str, limit_s: float = 30) -> str:
    """The status the run ended with (a worker ran it)."""
    deadline = time.monotonic() + limit_s
    while True:
        _, out, _ = await cli("runs", "show", run_id, "-p", str(root), "--json")
        status: str = json.loads(out)["status"]
        if status in ("succeeded", "failed") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def test_retry_warns_without_a_worker_and_not_with_one(tmp_path: Path) -> None:
    """No worker: a warning. `interlink worker` running: none, and it runs the retry.
    Stopped (SIGTERM): its presence goes with it, and the warning is back."""
    write_project(tmp_path, FILES)
    failed = []
    for _ in range(3):  # a run has one retry: one failed run for each retry below
        _, out, _ = await cli("run", "broken", str(tmp_path), "--json", "--quiet")
        failed.append(json.loads(out)["id"])

    queued, said = await retry(tmp_path, failed[0])
    assert NO_WORKER in said

    with interlink("worker", str(tmp_path), log=tmp_path / "worker.log") as proc:
        await presence(tmp_path, alive=True)
        picked, said = await retry(tmp_path, failed[1])
        assert said == ""
        assert await ended(tmp_path, picked) == "failed"  # the worker ran it
        assert await ended(tmp_path, queued) == "failed"  # and the one queued before
        proc.terminate()
        assert proc.wait(20) == 0
    await presence(tmp_path, alive=False, limit_s=1)
    _, said = await retry(tmp_path, failed[2])
    assert NO_WORKER in said
    assert "worker " in (tmp_path / "worker.log").read_text()


async def test_serve_is_a_worker_unless_told_not_to_be(tmp_path: Path) -> None:
    """`interlink serve` has a worker (no warning); `serve --no-worker` has none (warning)."""
    write_project(tmp_path, FILES)
    _, out, _ = await cli("run", "broken", str(tmp_path), "--json", "--quiet")
    failed = json.loads(out)["id"]
    for args, warned in ((["--no-worker"], True), ([], False)):
        port = free_port()
        log = tmp_path / f"serve{len(args)}.log"
        with interlink("serve", str(tmp_path), "--port", str(port), *args, log=log) as proc:
            await wait_healthy(port, proc)
            if not warned:
                await presence(tmp_path, alive=True)
            _, said = await retry(tmp_path, failed)
            assert (NO_WORKER in said) == warned, args
            proc.terminate()
            assert proc.wait(20) == 0
        # Its start-up says so too.
        assert (NO_WORKER_LINE in log.read_text()) == warned, log.read_text()


async def test_run_queue_queues_and_a_worker_started_later_runs_it(tmp_path: Path) -> None:
    """`interlink run FLOW --queue`: the run's id at once (status queued) and the no-worker
    warning; an `interlink worker` started afterwards runs it."""
    write_project(tmp_path, {
        **FILES,
        "flows/ok.yaml": "name: ok\nsteps:\n  - {id: s, type: script, script: scripts/ok.py}\n",
        "scripts/ok.py": "def handle(data):\n    return {'got': data}\n",
    })
    code, out, err = await cli("run", "ok", str(tmp_path), "--queue", "--json")
    assert code == 0, err
    queued = json.loads(out)
    assert queued["status"] == "queued"
    assert NO_WORKER in err
    _, shown, _ = await cli("runs", "show", queued["id"], "-p", str(tmp_path), "--json")
    assert json.loads(shown)["status"] == "queued"  # nobody ran it here

    code, out, _ = await cli("run", "ok", str(tmp_path), "--queue")
    assert code == 0
    plain = out.strip()
    with interlink("worker", str(tmp_path), log=tmp_path / "worker.log"):
        assert await ended(tmp_path, queued["id"]) == "succeeded"
        assert await ended(tmp_path, plain) == "succeeded"
