"""`interlink serve --workers N` as real processes on PostgreSQL: N children on one port, each
with its worker; a killed child is replaced; SIGTERM ends them all; SQLite is refused.

The child processes are found in /proc (children of the `serve` process running
multiprocessing's `spawn_main`; its resource tracker is not one of them).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import psycopg
import pytest
from tests.processes import cli, free_port, interlink, wait_all_ended, wait_healthy, wait_until
from tests.projects import write_project
from tests.upstream import Upstream

from interlink.presence import live_workers
from interlink.store import Store, open_store

#: short leases and polls, so a killed child's runs are taken over within a second
CONFIG = "worker: {lease: 1s, poll: 50ms, concurrency: 4}\n"


def files(upstream: str) -> dict[str, str]:
    """A webhook-triggered flow `push` posting each payload to the upstream's /orders."""
    return {
        "connectors/wh.yaml": f"name: wh\nbase_url: {upstream}\ntimeout: 5s\n"
                              "endpoints: {create: {method: POST, path: /orders}}\n",
        "flows/push.yaml": "name: push\ntrigger: {type: webhook, path: /hooks/orders}\n"
                           "steps:\n  - {id: push, type: connector, connector: wh,"
                           " endpoint: create}\n",
    }


def project(root: Path, store: str, upstream: str, config: str = "") -> None:
    """Write the project with `store` and extra `interlink.yaml` lines."""
    write_project(root, files(upstream), store=f"'{store}'")
    path = root / "interlink.yaml"
    path.write_text(path.read_text() + CONFIG + config)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z"


def server_processes(parent: int) -> set[int]:
    """The live server processes `parent` started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and stat[0] != "Z" and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


async def processes(parent: int, count: int, *, without: frozenset[int] = frozenset()
                    ) -> set[int]:
    """Wait until `parent` has `count` live server processes, none of them in `without`."""
    found: set[int] = set()

    def settled() -> bool:
        nonlocal found
        found = server_processes(parent)
        return len(found) == count and not found & without

    await wait_until(f"{count} server processes", settled)
    return found


async def present(store: Store, pids: set[int]) -> None:
    """Wait until each of `pids` has its worker presence in the store."""
    async def owners() -> set[int]:
        return {int(owner.split(":")[1]) for owner in await live_workers(store)}

    deadline = time.monotonic() + 30
    while not pids <= await owners():
        assert time.monotonic() < deadline, f"no presence of {pids - await owners()}"
        await asyncio.sleep(0.05)


async def post_orders(port: int, numbers: range) -> list[str]:
    """POST one webhook per number, each on a new connection; the run ids answered."""
    accepted = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for n in numbers:
            async with http.post(f"http://127.0.0.1:{port}/hooks/orders", json={"n": n}) as r:
                assert r.status == 202, await r.text()
                accepted.append((await r.json())["run_id"])
    return accepted


async def scraped(port: int, series: str) -> float:
    """The value of `series` (name and labels, as exposed) in one scrape of /metrics, on a
    new connection (so any of the processes may answer); 0 when it is not there yet."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200, await r.text()
        for line in (await r.text()).splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def stop(proc: subprocess.Popen[bytes], children: set[int]) -> None:
    """SIGTERM `serve`: it exits 0, and every child is gone with it."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not {pid for pid in children if _alive(pid)}


def log_text(path: Path) -> str:
    """The log so far."""
    return path.read_text(errors="replace")


async def serving(log: Path, count: int = 2) -> int:
    """Wait for the line the parent logs once every child serves; the port it names."""
    pattern = re.compile(rf"serving test on http://127\.0\.0\.1:(\d+) with {count} processes")
    await wait_until("every child serving", lambda: pattern.search(log_text(log)))
    found = pattern.search(log_text(log))
    assert found is not None
    return int(found[1])


@pytest.mark.postgres
async def test_two_processes_from_the_config_serve_and_run_each_run_once(
        tmp_path: Path, postgres_url: str) -> None:
    """`server.workers: 2`: two children, each a worker; 60 webhook runs all run once; one
    line says where it serves."""
    port, log = free_port(), tmp_path / "serve.log"
    async with Upstream() as up, open_store(postgres_url, tmp_path) as store:
        up.route("/orders", delay=0.02)
        project(tmp_path, postgres_url, up.url, "server: {workers: 2}\n")
        with interlink("serve", str(tmp_path), "--port", str(port), log=log) as proc:
            await wait_healthy(port, proc)
            children = await processes(proc.pid, 2)
            await present(store, children)  # each child's worker is claiming
            accepted = await post_orders(port, range(60))
            ended = await wait_all_ended(store, 60)
            # The runs ended in both processes; every scrape, whichever answers, counts all.
            series = 'interlink_runs_ended_total{flow="push",status="succeeded"}'
            deadline = time.monotonic() + 10  # each process publishes every second
            while await scraped(port, series) != 60:
                assert time.monotonic() < deadline, "the runs of one process only"
                await asyncio.sleep(0.1)
            counts = [await scraped(port, series) for _ in range(8)]
            stop(proc, children)
    assert counts == [60] * 8
    assert sorted(r.id for r in ended) == sorted(accepted)
    assert {r.status for r in ended} == {"succeeded"}
    sent = Counter(r.headers["Idempotency-Key"].split(":")[0] for r in up.requests_to("/orders"))
    assert sent == Counter(accepted)  # each run reached the upstream exactly once
    text = log_text(log)
    assert text.count(f"serving test on http://127.0.0.1:{port} with 2 processes") == 1
    assert text.count("engine endpoints") == 1
    assert text.count("stopped serving test: ") == 2


@pytest.mark.postgres
async def test_a_killed_child_is_replaced_and_no_run_is_lost_or_doubled(
        tmp_path: Path, postgres_url: str) -> None:
    """SIGKILL one of two children mid-drain: the parent says so and starts another; requests
    keep being answered; every accepted webhook has exactly one run, and it succeeds."""
    port, log = free_port(), tmp_path / "serve.log"
    async with Upstream() as up, open_store(postgres_url, tmp_path) as store:
        up.route("/orders", delay=0.1)
        project(tmp_path, postgres_url, up.url)
        with interlink("serve", str(tmp_path), "--port", str(port), "--workers", "2",
                       log=log) as proc:
            await wait_healthy(port, proc)
            children = await processes(proc.pid, 2)
            await present(store, children)
            accepted = await post_orders(port, range(40))
            victim = min(children)
            os.kill(victim, signal.SIGKILL)
            accepted += await post_orders(port, range(40, 80))  # the other child answers
            # Killed soon after it served: replaced after a pause (no spawning in a loop).
            line = re.compile(rf"server process {victim} ended \(signal 9\)( [\d.]+s after "
                              r"it was ready)?; starting another")
            await wait_until("the kill logged", lambda: line.search(log_text(log)) is not None)
            now = await processes(proc.pid, 2, without=frozenset({victim}))
            await present(store, now - children)  # the replacement works too
            accepted += await post_orders(port, range(80, 100))
            ended = await wait_all_ended(store, 100)
            runs = await store.list_runs(limit=500)
            stop(proc, now)
    assert len(runs) == 100
    assert sorted(r.id for r in ended) == sorted(accepted)
    assert {r.status for r in ended} == {"succeeded"}
    # Every run reached the upstream; one in flight in the killed child may have been sent
    # again after its lease expired (same Idempotency-Key: the upstream tells them apart).
    sent = {r.headers["Idempotency-Key"].split(":")[0] for r in up.requests_to("/orders")}
    assert sent == set(accepted)


@pytest.mark.postgres
async def test_sigterm_ends_every_process_and_port_0_is_one_port_for_all(
        tmp_path: Path, postgres_url: str) -> None:
    """Port 0 for both listeners: the real ports are logged once and served by all children;
    SIGTERM to the parent: every child finishes and the parent exits 0."""
    log = tmp_path / "serve.log"
    project(tmp_path, postgres_url, "http://127.0.0.1:9",
            "server: {port: 0}\nadmin: {listen: {host: 127.0.0.1, port: 0}}\n")
    with interlink("serve", str(tmp_path), "--workers", "2", "--no-worker", log=log) as proc:
        port = await serving(log)
        # The admin line is logged just after the serving line: wait for it too.
        admin_at = re.compile(r"on http://127\.0\.0\.1:(\d+) only")
        await wait_until("the admin line", lambda: admin_at.search(log_text(log)))
        found = admin_at.search(log_text(log))
        assert found is not None
        admin = int(found[1])
        assert 0 not in (port, admin)
        children = await processes(proc.pid, 2)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{admin}/_interlink/runs") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/_interlink/runs") as r:
                assert r.status == 404  # the engine endpoints are on the admin listener only
        stop(proc, children)
    text = log_text(log)
    assert text.count("stopped serving test: ") == 2
    assert "the 2 server processes of test have stopped" in text


@pytest.mark.postgres
async def test_a_killed_parent_takes_its_children_down(
        tmp_path: Path, postgres_url: str) -> None:
    """SIGKILL the parent: each child gets SIGTERM from the kernel and stops (Linux)."""
    port, log = free_port(), tmp_path / "serve.log"
    project(tmp_path, postgres_url, "http://127.0.0.1:9")
    with interlink("serve", str(tmp_path), "--port", str(port), "--workers", "2",
                   log=log) as proc:
        await serving(log)
        children = await processes(proc.pid, 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await wait_until("the children gone", lambda: not any(map(_alive, children)))
    assert log_text(log).count("stopped serving test: ") == 2  # they stopped gracefully


@pytest.mark.postgres
async def test_a_child_that_cannot_start_at_first_ends_serve_with_its_reason(
        tmp_path: Path, postgres_url: str) -> None:
    """A store the children cannot open (its schema does not exist): exit 1, the reason said,
    no process left."""
    missing = re.sub(r"csearch_path%3D\w+", "csearch_path%3Dno_such_schema", postgres_url)
    project(tmp_path, missing, "http://127.0.0.1:9")
    code, _, err = await cli("serve", str(tmp_path), "--port", str(free_port()),
                             "--workers", "2")
    assert code == 1
    assert "error: serving test with 2 processes: a server process could not start: " \
           "opening the store" in err


@pytest.mark.postgres
async def test_a_replacement_that_cannot_start_is_tried_again_after_a_pause(
        tmp_path: Path, postgres_server: str, postgres_url: str) -> None:
    """With the store's schema gone, a killed child's replacement fails to start: the parent
    waits 1 s and tries again; once the schema is back, the new child serves."""
    schema = unquote(postgres_url).rsplit("search_path=", 1)[1]
    port, log = free_port(), tmp_path / "serve.log"
    project(tmp_path, postgres_url, "http://127.0.0.1:9")
    with interlink("serve", str(tmp_path), "--port", str(port), "--workers", "2",
                   "--no-worker", log=log) as proc:
        await serving(log)
        victim = min(await processes(proc.pid, 2))
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"ALTER SCHEMA {schema} RENAME TO {schema}_away")
            try:
                os.kill(victim, signal.SIGKILL)
                await wait_until("a failed start", lambda: "could not start (exit 1): opening "
                                 "the store" in log_text(log))
                assert "starting another in 1s" in log_text(log)
            finally:
                conn.execute(f"ALTER SCHEMA {schema}_away RENAME TO {schema}")
        await wait_until("the replacement serving",
                         lambda: f"serves in place of {victim}" in log_text(log))
        assert log_text(log).count("could not start") >= 1  # more if the rename came late
        stop(proc, await processes(proc.pid, 2, without=frozenset({victim})))


async def test_sqlite_refuses_several_processes_and_workers_1_overrides_the_config(
        tmp_path: Path) -> None:
    """On SQLite, `--workers 2` or `server.workers: 2` exits 1 with why, before anything
    starts; `--workers 1` overrides the config and serves."""
    write_project(tmp_path, {})
    code, _, err = await cli("serve", str(tmp_path), "--workers", "2")
    assert code == 1
    assert err.strip() == (
        "error: --workers 2 needs a PostgreSQL store; on SQLite one process serves (run "
        "`interlink worker` beside it for more workers)")
    assert not (tmp_path / ".interlink").exists()  # the store was not even created
    config = tmp_path / "interlink.yaml"
    config.write_text(config.read_text() + "server: {workers: 2}\n")
    code, _, err = await cli("serve", str(tmp_path))
    assert code == 1
    assert err.startswith("error: server.workers: 2 needs a PostgreSQL store;")
    port = free_port()
    with interlink("serve", str(tmp_path), "--port", str(port), "--workers", "1",
                   log=tmp_path / "serve.log") as proc:
        await wait_healthy(port, proc)
        assert not server_processes(proc.pid)  # one process: no children
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
