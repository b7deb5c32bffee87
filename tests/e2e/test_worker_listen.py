"""`interlink worker --listen`: a worker scaled apart from `serve` answers health and `/metrics`
(behind the admin token) for what it ran — with real processes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from tests.processes import cli, free_port, interlink, wait_healthy
from tests.projects import write_project

TOKEN = "worker-listen-admin-token-0123456789abcdef"
FILES = {
    "interlink.yaml": "name: test\nstore: sqlite:///.interlink/test.db\n"
                      f"admin: {{token: {TOKEN}}}\n",
    "flows/broken.yaml": "name: broken\nsteps:\n  - {id: s, type: script, script: scripts/no.py}\n",
    "scripts/no.py": "def handle(data):\n    raise RuntimeError('no')\n",
}
ENDED = 'interlink_runs_ended_total{flow="broken",status="failed"}'


async def ended_count(http: aiohttp.ClientSession, port: int) -> float:
    """The worker's count of failed `broken` runs, scraped with the admin token."""
    async with http.get(f"http://127.0.0.1:{port}/metrics",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200
        text = await r.text()
    found = re.search(rf"^{re.escape(ENDED)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_worker_serves_health_and_metrics_behind_the_admin_token(tmp_path: Path) -> None:
    """Health answers anyone; /metrics needs the token and counts the runs this worker ran;
    the listener stays up until the worker has stopped, then both end (exit 0)."""
    write_project(tmp_path, FILES)
    _, out, _ = await cli("run", "broken", str(tmp_path), "--json", "--quiet")
    failed = json.loads(out)["id"]
    port = free_port()
    log = tmp_path / "worker.log"
    with interlink("worker", str(tmp_path), "--listen", f"127.0.0.1:{port}", log=log) as proc:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/_interlink/health") as r:
                assert r.status == 200
                assert (await r.json())["worker"] is True
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 401  # loopback is not enough once a token is set
                assert TOKEN not in await r.text()
            assert await ended_count(http, port) == 0
            code, _, err = await cli("runs", "retry", failed, "-p", str(tmp_path))
            assert code == 0, err
            deadline = time.monotonic() + 30
            while await ended_count(http, port) != 1:  # the worker, not the CLI, ran it
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
        proc.terminate()
        assert proc.wait(20) == 0
    text = log.read_text()
    assert f"serving the engine's endpoints on http://127.0.0.1:{port}: " \
           "engine endpoints (/metrics, and /_interlink/* but health): admin token required" in text
    assert text.index("GET /metrics 200") < text.index("stopped")
    assert TOKEN not in text


async def test_worker_listen_on_a_port_in_use_exits_1_saying_so(tmp_path: Path) -> None:
    """A port taken by another process: exit 1 naming it, before any work is claimed."""
    write_project(tmp_path, FILES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await cli("worker", str(tmp_path), "--listen", str(port), limit_s=30)
    assert code == 1
    assert f"binding 127.0.0.1:{port}" in err
    assert "Traceback" not in err


async def test_worker_listen_refuses_what_is_not_host_port(tmp_path: Path) -> None:
    """`--listen` takes [HOST:]PORT; anything else is a usage error (exit 2) saying so."""
    write_project(tmp_path, FILES)
    for bad in ("nine", "127.0.0.1:", "127.0.0.1:70000"):
        code, _, err = await cli("worker", str(tmp_path), "--listen", bad)
        assert code == 2, bad
        assert "is not [HOST:]PORT" in err, err


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_worker_listen_on_ipv6_says_where_in_brackets(tmp_path: Path) -> None:
    """`--listen [::1]:PORT` serves there, and its log line is a URL one can paste."""
    write_project(tmp_path, FILES)
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "worker.log"
    with interlink("worker", str(tmp_path), "--listen", f"[::1]:{port}", log=log) as proc:
        deadline = time.monotonic() + 30
        while f"on http://[::1]:{port}: " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://[::1]:{port}/_interlink/health") as r:
            assert r.status == 200
        proc.terminate()
        assert proc.wait(20) == 0
