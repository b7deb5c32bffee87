"""`interlink serve` as a real process: queued service requests survive a kill -9.

The upstream is a loopback server in the test's event loop, so every CLI call here is an
asyncio subprocess (a blocking one would stall the upstream the server is calling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from tests.projects import push_to, queued_orders, write_project
from tests.upstream import Upstream

from interlink.spec import Project

REQUESTS = 20


def project(root: Path, upstream: Upstream, processor: str) -> Project:
    """A project whose service queues requests its flow could not deliver upstream."""
    return write_project(root, {
        # A 1 s lease: items leased by a killed server are claimed again soon after restart.
        "interlink.yaml": """
            name: e2e
            store: sqlite:///.interlink/e2e.db
            worker: {poll: 50ms, lease: 1s}
            """,
        **push_to(upstream.url),
        "services/orders.yaml": queued_orders(processor),
    })


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def interlink(*args: str) -> tuple[int, str, str]:
    """Run the CLI in a subprocess; returns exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlink.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def served(root: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """`interlink serve ROOT --port PORT` until the block ends (or the test kills it)."""
    log = (root / "serve.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlink.cli", "serve", str(root), "--port", str(port),
        stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                assert proc.returncode is None, (root / "serve.log").read_text()
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"http://127.0.0.1:{port}/_interlink/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def wait_items(base: str, ids: list[str], *statuses: str) -> dict[str, dict[str, Any]]:
    """Poll `GET /_interlink/queue/{id}` until every item is in one of `statuses` (20 s)."""
    found: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while len(found) < len(ids):
            for item_id in ids:
                if item_id in found:
                    continue
                async with http.get(f"{base}/_interlink/queue/{item_id}") as r:
                    assert r.status == 200
                    item = await r.json()
                if item["status"] in statuses:
                    found[item_id] = item
            await asyncio.sleep(0.05)
    return found


def header_names(raw: tuple[tuple[bytes, bytes], ...]) -> list[str]:
    """Lower-case header names as received, repeats kept."""
    return [name.decode().lower() for name, _ in raw]


DEFAULT_HEADERS = ("server", "date", "content-type", "content-length", "cache-control")


async def test_queued_requests_survive_kill_9_and_complete_after_restart(tmp_path: Path) -> None:
    """Twenty 202-accepted requests, the server killed -9, restarted: every item ends done."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        project(tmp_path, up, "{max_attempts: 1000, delay: 100ms, backoff: 1}")
        async with served(tmp_path, port) as proc, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/_interlink/health") as health:
                health_names = header_names(health.raw_headers)
                assert health.status == 200
                assert (await health.json())["status"] == "ok"

            async def order(n: int) -> tuple[int, list[str], dict[str, Any]]:
                async with http.post(f"{base}/orders", json={"n": n}) as r:
                    return r.status, header_names(r.raw_headers), await r.json()

            answers = await asyncio.gather(*(order(n) for n in range(REQUESTS)))
            proc.kill()  # SIGKILL: no shutdown, leases left behind
            await proc.wait()
        up.route("/orders", body={"stored": True})
        async with served(tmp_path, port):
            items = await wait_items(base, [body["queued"] for _, _, body in answers],
                                     "done", "broken", "failed")
            code, out, err = await interlink("queue", str(tmp_path), "--json",
                                             "--kind", "service_request")

    assert [status for status, _, _ in answers] == [202] * REQUESTS
    ids = {body["queued"] for _, _, body in answers}
    assert len(ids) == REQUESTS
    for _, names, _ in answers:
        for name in DEFAULT_HEADERS:
            assert names.count(name) == 1, (name, names)
    for name in DEFAULT_HEADERS:
        assert health_names.count(name) == 1, (name, health_names)
    assert {item["status"] for item in items.values()} == {"done"}
    assert all(item["result"]["payload"] == {"stored": True} for item in items.values())
    assert code == 0, err
    listed = json.loads(out)
    assert {i["id"] for i in listed} == ids
    assert {i["status"] for i in listed} == {"done"}
    delivered = {r.json["n"] for r in up.requests_to("/orders")}
    assert delivered == set(range(REQUESTS))


async def test_cli_requeue_revives_a_broken_request(tmp_path: Path) -> None:
    """`interlink queue requeue ID` makes a broken item ready; it completes once upstream is up."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        project(tmp_path, up, "{max_attempts: 1, delay: 100ms, keep_failed: true}")
        async with served(tmp_path, port), aiohttp.ClientSession() as http:
            async with http.post(f"{base}/orders", json={"n": 1}) as r:
                item_id = (await r.json())["queued"]
            broken = (await wait_items(base, [item_id], "broken", "failed", "done"))[item_id]
            missing = await interlink("queue", str(tmp_path), "requeue", "q_nope")
            up.route("/orders", body={"stored": True})
            requeued = await interlink("queue", "requeue", item_id, "-p", str(tmp_path))
            done = (await wait_items(base, [item_id], "done", "broken"))[item_id]
            twice = await interlink("queue", "requeue", item_id, "-p", str(tmp_path))
            async with http.get(f"{base}/_interlink/queue/q_nope") as r:
                unknown = r.status, await r.json()

    assert broken["status"] == "broken"
    assert missing[0] == 1
    assert "q_nope" in missing[2] and "no such queue item" in missing[2]
    assert requeued == (0, f"{item_id}\n", "")
    assert done["status"] == "done"
    assert done["result"]["payload"] == {"stored": True}
    assert twice[0] == 1 and "it is done" in twice[2]
    assert unknown[0] == 404 and "error" in unknown[1]
