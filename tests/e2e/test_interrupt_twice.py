"""Ctrl-C twice: the first asks `interlink worker` / `interlink serve` to finish what it holds,
the second exits at once — as a kill would, so nothing is lost and nothing runs twice."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from tests.e2e.test_exactly_once_crashes import project_files
from tests.processes import free_port, interlink, wait_until
from tests.projects import write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.server import SAME_SIGNAL_S

#: the upstream's answer takes this long: the drain a first Ctrl-C starts lasts as long
SLOW_S = 4.0


@pytest.mark.parametrize("command", ["worker", "serve"])
async def test_a_second_interrupt_exits_at_once_and_the_run_is_taken_over(
    tmp_path: Path, command: str
) -> None:
    """Interrupted mid-call, then again: exit 130 long before the call would have ended,
    saying so; another worker takes the run over once the lease runs out, with the same key."""
    async with Upstream() as up:
        up.route("/orders", delay=SLOW_S, body={"created": True})
        project = write_project(tmp_path, project_files(up.url, retry="{max_attempts: 3}"))
        async with Engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            port = free_port()
            args = [command, str(tmp_path), "--port" if command == "serve" else "--listen",
                    str(port)]
            log = tmp_path / "first.log"
            with interlink(*args, log=log) as first:
                await wait_until("the call in flight", lambda: up.requests_to("/orders"))
                first.send_signal(signal.SIGINT)
                await wait_until("the drain", lambda: "stopping: finishing the 1 item"
                                 in log.read_text())
                assert "Ctrl-C again to exit at once" in log.read_text()
                if command == "worker":  # its listener answers until it exits: stopping
                    async with aiohttp.ClientSession() as http, \
                            http.get(f"http://127.0.0.1:{port}/_interlink/health") as answer:
                        assert answer.status == 200
                        assert (await answer.json())["status"] == "stopping"
                await asyncio.sleep(SAME_SIGNAL_S + 0.1)  # not the same Ctrl-C again
                first.send_signal(signal.SIGINT)
                # Well before the call in flight could have ended: at once.
                assert await asyncio.to_thread(first.wait, SLOW_S / 2) == 130
            assert "interrupted again: exiting now" in log.read_text()
            with interlink("worker", str(tmp_path), log=tmp_path / "second.log"):
                run = await engine.runner.wait_for(run_id, 30)
            logged = [(line.level, line.message) for line in await engine.store.get_logs(run_id)]

    assert run.status == "succeeded", run.error
    keys = [r.headers["Idempotency-Key"] for r in up.requests_to("/orders")]
    assert keys == [f"{run_id}:push:0"] * 2  # sent again by the second, with the same key
    # The run log says why the call went twice.
    assert ("warning", "calling wh.create: attempt 1's answer was never recorded (the process "
            "sending it stopped or died): sending again with the same idempotency key") in logged
