"""Durable webhook → connector runs, end to end, against a hand-written aiohttp retry loop.

    .venv/bin/python bench/flows.py [--runs 2000] [--store sqlite|postgres]
                                    [--concurrency 50] [--worker-concurrency 64]
                                    [--loop asyncio|uvloop] [--skip-baseline]
                                    [--rounds 3] [--baseline-seconds 5]
                                    [--case one|five|both]
                                    [--profile out.svg|out.txt [--profile-gil]]

Two cases, one after the other in the same run (each with a fresh SQLite store):

- **one step**: a webhook-triggered flow of one connector step (`POST /orders`), compared
  with the baseline below;
- **five steps**: map → filter → connector with cursor pagination (`GET /stock`, two pages of
  one item) → route by the item's warehouse (each branch a `map` naming the destination) →
  connector (`POST /dispatch/{dest}`): four upstream calls per run, printed beside the first
  case (no hand-written baseline: the ratio to the one-step case is the figure to watch).

Three processes besides the one measured:

- **upstream** (aiohttp.web): `POST /orders` answers the first call per `Idempotency-Key` with
  503 and every later one with 200 (a small JSON body each time); `GET /stock` and
  `POST /dispatch/…` answer 200 at once;
- **load generator**: POSTs `--runs` webhooks, `--concurrency` at a time, then polls the
  store with its own connection until every run has status `succeeded`. Time = first POST →
  last run succeeded;
- **baseline**: a hand-written aiohttp client loop over the same upstream with the same
  concurrency: POST with an `Idempotency-Key`, on 503 sleep like the policy and retry with the
  same key, until 200, parse the JSON. No durability, no HTTP server, no store. Each of its
  rounds works at least `--baseline-seconds` (batches of `--runs` items until then).

`--rounds` (3) baseline and Interlink rounds are interleaved — baseline, one step, five steps,
then again — and the medians are printed with every round's figure, so a machine busier in one
minute than the next weighs on both sides alike; CPU µs per item is printed for both sides.

The measured process runs what `interlink serve` runs: uvicorn serving `build_app(engine,
worker)` on 127.0.0.1 and a worker, on one event loop. Each run is a webhook-triggered flow of
one connector step; the connector's retry policy is `initial: 1ms` (full jitter, so 0–1 ms) so
backoff does not dominate; the baseline sleeps the same. Both sides first do `--warmup` calls
that are not counted; the upstream must have seen every run's key exactly twice. Besides
runs/s, it prints CPU µs per run of each process (steadier than wall time on a shared machine)
and the store's jobs per run and per commit. `--profile FILE` records the measured process with
py-spy (`.txt`: collapsed stacks, `.json`: speedscope, else an SVG flame graph; needs `py-spy`
on PATH or `--py-spy PATH`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import multiprocessing as mp
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn
from _summary import figure
from aiohttp import web

RETRY_INITIAL_S = 0.001
HOOK_PATH = "/hooks/orders"
PIPELINE_PATH = "/hooks/pipeline"
_CTX = mp.get_context("spawn")  # never fork a process that has threads (the store writer)


def payload(n: int) -> dict[str, Any]:
    """A small but realistic webhook body."""
    return {"order": {"id": n, "lines": [{"sku": f"SKU-{n % 97}", "qty": 2}]}, "source": "bench"}


# --- the upstream (its own process) ---------------------------------------------------------

def upstream_main(ready: Connection) -> None:
    """Serve the flaky upstream until the parent closes its end of `ready`."""
    asyncio.run(_upstream(ready))


async def _upstream(ready: Connection) -> None:
    calls: dict[str, int] = {}
    stock_calls = 0
    dispatched: dict[str, int] = {}
    busy = orjson.dumps({"error": "busy, try again"})

    async def orders(request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        n = calls.get(key, 0) + 1
        calls[key] = n
        if n == 1:
            return web.Response(status=503, body=busy, content_type="application/json")
        return web.Response(body=orjson.dumps({"ok": True, "attempt": n, "bytes": len(body)}),
                            content_type="application/json")

    async def stock(request: web.Request) -> web.Response:
        # Two pages of one item each: the first in the EU warehouse, the second elsewhere.
        nonlocal stock_calls
        stock_calls += 1
        sku = request.query.get("sku")
        page: dict[str, Any]
        if request.query.get("cursor") == "p2":
            page = {"data": [{"sku": sku, "warehouse": "us-1", "qty": 1}], "next": None}
        else:
            page = {"data": [{"sku": sku, "warehouse": "eu-1", "qty": 3}], "next": "p2"}
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    async def dispatch(request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("Idempotency-Key", "")
        dispatched[key] = dispatched.get(key, 0) + 1
        return web.Response(body=orjson.dumps({"ok": True, "to": request.match_info["dest"]}),
                            content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        mine = [n for key, n in calls.items() if key.startswith(prefix)]
        return web.json_response({"keys": len(mine), "calls": sum(mine),
                                  "not_two": sum(1 for n in mine if n != 2),
                                  "stock_calls": stock_calls,
                                  "dispatch_keys": len(dispatched),
                                  "dispatch_calls": sum(dispatched.values()),
                                  "cpu": time.process_time()})

    app = web.Application()
    app.router.add_post("/orders", orders)
    app.router.add_get("/stock", stock)
    app.router.add_post("/dispatch/{dest}", dispatch)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    ready.send(server.sockets[0].getsockname()[1])
    # The parent closing the pipe (or dying) is the stop signal.
    await asyncio.to_thread(_wait_closed, ready)
    await runner.cleanup()


def _wait_closed(conn: Connection) -> None:
    with contextlib.suppress(EOFError):
        conn.recv()


async def upstream_stats(url: str, prefix: str) -> dict[str, Any]:
    """What the upstream saw for keys starting with `prefix`."""
    async with aiohttp.ClientSession() as http, \
            http.get(f"{url}/stats", params={"prefix": prefix}) as resp:
        return await resp.json()  # type: ignore[no-any-return]


# --- the baseline (its own process) ---------------------------------------------------------

def baseline_main(url: str, runs: int, concurrency: int, warmup: int, min_seconds: float,
                  out: Connection) -> None:
    """Run the hand-written loop; send (seconds, items, calls, cpu seconds) back."""
    out.send(asyncio.run(_baseline(url, runs, concurrency, warmup, min_seconds)))


async def _baseline(url: str, runs: int, concurrency: int, warmup: int,
                    min_seconds: float) -> tuple[float, int, int, float]:
    calls = 0
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(key: str, n: int) -> None:
            nonlocal calls
            body = orjson.dumps(payload(n))
            headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
            while True:
                calls += 1
                async with http.post(url, data=body, headers=headers) as resp:
                    text = await resp.text()
                    status = resp.status
                if status == 200:
                    orjson.loads(text)
                    return
                await asyncio.sleep(random.uniform(0.0, RETRY_INITIAL_S))  # full jitter

        async def drive(prefix: str, count: int) -> None:
            numbers = iter(range(count))

            async def lane() -> None:
                for n in numbers:
                    await one(f"{prefix}-{n}", n)

            await asyncio.gather(*(lane() for _ in range(concurrency)))

        await drive(f"warm-{os.getpid()}", warmup)
        calls = items = 0
        started, cpu0 = time.perf_counter(), time.process_time()
        # At least `min_seconds` of work: a window under a second swings with the machine.
        while items == 0 or time.perf_counter() - started < min_seconds:
            await drive(f"base-{os.getpid()}-{items}", runs)
            items += runs
        return (time.perf_counter() - started, items, calls, time.process_time() - cpu0)


def run_baseline(args: argparse.Namespace) -> tuple[float, int, int, float]:
    """One baseline round in its own process."""
    reader, writer = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=baseline_main, args=(
        f"{args.upstream_url}/orders", args.runs, args.concurrency, args.warmup,
        args.baseline_seconds, writer))
    proc.start()
    result: tuple[float, int, int, float] = reader.recv()
    proc.join()
    return result


# --- the load generator (its own process) ---------------------------------------------------

def loadgen_main(hook_url: str, store_url: str, flow: str, runs: int, concurrency: int,
                 warmup: int, out: Connection) -> None:
    """POST the webhooks, wait until every run of `flow` succeeded; send timings back."""
    out.send(asyncio.run(_loadgen(hook_url, store_url, flow, runs, concurrency, warmup, out)))


def _succeeded_counter(store_url: str, flow: str) -> Any:
    """A function counting succeeded runs of `flow` through a connection of our own."""
    if store_url.startswith("sqlite:///"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), timeout=30,
                               check_same_thread=False)
        return lambda: conn.execute(
            "SELECT count(*) FROM runs WHERE status = 'succeeded' AND flow = ?",
            (flow,)).fetchone()[0]
    import psycopg
    pg = psycopg.connect(store_url, autocommit=True)
    return lambda: pg.execute(  # type: ignore[index]
        "SELECT count(*) FROM runs WHERE status = 'succeeded' AND flow = %s",
        (flow,)).fetchone()[0]


async def _loadgen(hook_url: str, store_url: str, flow: str, runs: int, concurrency: int,
                   warmup: int, out: Connection) -> dict[str, float]:
    count = _succeeded_counter(store_url, flow)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post_all(first: int, total: int) -> None:
            numbers = iter(range(first, first + total))

            async def lane() -> None:
                for n in numbers:
                    async with http.post(hook_url, data=orjson.dumps(payload(n)),
                                         headers={"Content-Type": "application/json"}) as resp:
                        await resp.read()
                        if resp.status != 202:
                            raise RuntimeError(f"webhook answered {resp.status}")

            await asyncio.gather(*(lane() for _ in range(concurrency)))

        async def all_succeeded(total: int) -> None:
            # A run cannot end before its POST was answered, so polling starts after the last.
            while await asyncio.to_thread(count) < total:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.005)

        await post_all(0, warmup)
        await all_succeeded(warmup)
        out.send("measuring")  # the measured process starts counting its CPU time
        cpu = time.process_time()
        started = time.perf_counter()
        await post_all(warmup, runs)
        accepted = time.perf_counter()
        await all_succeeded(warmup + runs)
        finished = time.perf_counter()
    return {"accept": accepted - started, "total": finished - started,
            "loadgen_cpu": time.process_time() - cpu}


# --- the measured process -------------------------------------------------------------------

#: the five-step case's flow: map → filter → paginated connector → route → connector
PIPELINE_FLOW = f"""
    name: pipeline
    trigger: {{type: webhook, path: {PIPELINE_PATH}}}
    steps:
      - id: shape
        type: map
        value: "{{'id': payload.order.id, 'sku': payload.order.lines[0].sku,
                 'qty': payload.order.lines[0].qty}}"
      - {{id: wanted, type: filter, when: "payload.qty > 0"}}
      - {{id: stock, type: connector, connector: up, endpoint: stock, body: null}}
      - id: by_warehouse
        type: route
        routes:
          - when: "payload.warehouse == 'eu-1'"
            steps: [{{id: to_eu, type: map, value: "dict(payload, dest='eu')"}}]
          - otherwise: [{{id: to_world, type: map, value: "dict(payload, dest='world')"}}]
      - {{id: dispatch, type: connector, connector: up, endpoint: dispatch}}
    """


def write_bench_project(root: Path, upstream_url: str, store_url: str,
                        worker_concurrency: int, connector_concurrency: int) -> None:
    """A project with the two cases' webhook flows (one connector step; five steps)."""
    files = {
        "interlink.yaml": f"""
            name: bench
            store: {store_url}
            worker: {{concurrency: {worker_concurrency}}}
            """,
        "connectors/up.yaml": f"""
            name: up
            base_url: {upstream_url}
            timeout: 10s
            concurrency: {connector_concurrency}
            retry: {{max_attempts: 3, initial: {RETRY_INITIAL_S * 1000:g}ms, max: 10ms,
                     jitter: full}}
            endpoints:
              create_order: {{method: POST, path: /orders}}
              stock:
                method: GET
                path: /stock
                query: {{sku: "{{{{ payload.sku }}}}"}}
                paginate: {{type: cursor, param: cursor, cursor: response.json.next,
                            items: response.json.data}}
              dispatch: {{method: POST, path: "/dispatch/{{{{ payload.dest }}}}"}}
            """,
        "flows/pipeline.yaml": PIPELINE_FLOW,
        "flows/push.yaml": f"""
            name: push
            trigger: {{type: webhook, path: {HOOK_PATH}}}
            steps:
              - id: push
                type: connector
                connector: up
                endpoint: create_order
            """,
    }
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))


async def run_interlink(root: Path, store_url: str, args: argparse.Namespace,
                        hook_path: str, flow: str) -> dict[str, Any]:
    """Serve the project, let the load generator drive the webhook at `hook_path` (runs of
    `flow`); returns timings and store stats."""
    from interlink.engine import Engine
    from interlink.server import build_app, uvicorn_config
    from interlink.spec import load_project

    project = load_project(root)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval / 1000)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    hook_url = f"http://127.0.0.1:{sock.getsockname()[1]}{hook_path}"
    async with Engine(project, store_url=store_url) as engine:
        stop = asyncio.Event()
        worker = engine.worker()
        config = uvicorn_config(build_app(engine, worker), "127.0.0.1", 0)
        server = uvicorn.Server(config)
        if not args.default_gc:
            importlib.import_module("interlink._loop").settle_memory()  # as `interlink serve`
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        working = asyncio.create_task(worker.run(stop))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        profiler = _start_profiler(args) if args.profile else None
        reader, writer = _CTX.Pipe(duplex=False)
        gen = _CTX.Process(target=loadgen_main, args=(
            hook_url, store_url, flow, args.runs, args.concurrency, args.warmup, writer))
        gen.start()
        await asyncio.to_thread(reader.recv)  # warm-up done
        cpu0, threads0 = time.process_time(), thread_cpu()
        upstream0 = (await upstream_stats(args.upstream_url, "r_"))["cpu"]
        jobs0, commits0 = getattr(engine.store, "jobs", 0), getattr(engine.store, "commits", 0)
        timings: dict[str, Any] = await asyncio.to_thread(reader.recv)
        timings["cpu"] = time.process_time() - cpu0
        timings["threads"] = {name: cpu - threads0.get(name, 0.0)
                              for name, cpu in thread_cpu().items()}
        timings["upstream_cpu"] = (await upstream_stats(args.upstream_url, "r_"))["cpu"] - upstream0
        gen.join()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
            await asyncio.to_thread(profiler.wait)
        timings["jobs"] = getattr(engine.store, "jobs", 0) - jobs0
        timings["commits"] = getattr(engine.store, "commits", 0) - commits0
        stop.set()
        server.should_exit = True
        await asyncio.gather(serving, working)
    return timings


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by name (Linux /proc; empty elsewhere):
    the event loop's thread and the store's writer are told apart."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = names.get(int(task.name), "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return found


def _start_profiler(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    spy = args.py_spy or shutil.which("py-spy") or "py-spy"
    fmt = "speedscope" if args.profile.endswith(".json") else (
        "raw" if args.profile.endswith(".txt") else "flamegraph")
    proc = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--rate", "1000",
                             "--threads", "--format", fmt, "--output", args.profile,
                             "--nonblocking", *(["--gil"] if args.profile_gil else [])],
                            stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach before the load starts
    return proc


def main() -> None:
    """Parse options, start the upstream, run the baseline and Interlink, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="webhook POSTs in flight (and baseline calls in flight)")
    parser.add_argument("--worker-concurrency", type=int, default=64,
                        help="interlink.yaml worker.concurrency")
    parser.add_argument("--connector-concurrency", type=int, default=64,
                        help="the connector's concurrency cap")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--switch-interval", type=float, metavar="MS",
                        help="sys.setswitchinterval of the measured process (default 5 ms)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop",
                        help="event loop of the measured process (default uvloop, as "
                        "interlink serve uses)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="baseline and Interlink rounds, interleaved; medians are printed")
    parser.add_argument("--baseline-seconds", type=float, default=5.0,
                        help="the least work of each baseline round")
    parser.add_argument("--default-gc", action="store_true",
                        help="leave the garbage collector as CPython sets it (for comparison)")
    parser.add_argument("--case", choices=["one", "five", "both"], default="both",
                        help="the one-step flow, the five-step flow, or both (default)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy output (.svg/.json/.txt)")
    parser.add_argument("--profile-gil", action="store_true",
                        help="sample only the thread holding the GIL")
    parser.add_argument("--py-spy", metavar="PATH", help="the py-spy executable")
    args = parser.parse_args()
    cases = [c for c in CASES if args.case in (c.name, "both")]

    ours, theirs = _CTX.Pipe()
    upstream = _CTX.Process(target=upstream_main, args=(theirs,), daemon=True)
    upstream.start()
    upstream_url = args.upstream_url = f"http://127.0.0.1:{ours.recv()}"
    pg = None
    results: dict[str, dict[str, Any]] = {}
    baselines: list[tuple[float, int, int, float]] = []
    rounds: dict[str, list[dict[str, Any]]] = {case.name: [] for case in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp:
            root = Path(tmp)
            if args.store == "postgres":
                from interlink.store._pgserver import TemporaryPostgres, find_pg_bin
                bin_dir = find_pg_bin()
                if bin_dir is None:
                    sys.exit("no PostgreSQL binaries found (initdb, pg_ctl)")
                pg = TemporaryPostgres(bin_dir, durable=True)
                pg_url = pg.start()
            loop_factory = None
            if args.loop == "uvloop":
                loop_factory = importlib.import_module("uvloop").new_event_loop
            # Rounds interleaved (baseline, then each case), so that a machine busier in one
            # minute than the next weighs on both sides alike.
            for n in range(args.rounds):
                if not args.skip_baseline and args.case != "five":
                    baselines.append(run_baseline(args))
                for case in cases:
                    # A fresh SQLite store per case and round; on PostgreSQL the runs are
                    # told apart by flow and the upstream's counts by key.
                    store_url = pg_url if pg is not None else \
                        f"sqlite:///{root / case.name}-{n}.db"
                    write_bench_project(root, upstream_url, store_url, args.worker_concurrency,
                                        args.connector_concurrency)
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        rounds[case.name].append(runner.run(
                            run_interlink(root, store_url, args, case.hook_path, case.flow)))
                    if pg is not None:
                        _truncate(pg_url)
            seen = asyncio.run(upstream_stats(upstream_url, "r_"))
    finally:
        if pg is not None:
            pg.stop()
        ours.close()
        upstream.join(5)
    results = {name: _median_round(found) for name, found in rounds.items() if found}

    total = (args.runs + args.warmup) * args.rounds
    if "one" in results and (seen["keys"] != total or seen["not_two"]):
        sys.exit(f"upstream saw {seen}, expected {total} keys with exactly 2 calls each")
    if "five" in results and (seen["stock_calls"] != 2 * total
                              or seen["dispatch_keys"] != 2 * total
                              or seen["dispatch_calls"] != 2 * total):
        sys.exit(f"upstream saw {seen}, expected {2 * total} stock calls and {2 * total} "
                 "dispatches, one per key")
    print(f"{args.runs} runs per case, store={args.store}, {args.concurrency} webhook POSTs in "
          f"flight, worker.concurrency={args.worker_concurrency}, connector concurrency="
          f"{args.connector_concurrency}, retry initial={RETRY_INITIAL_S * 1000:g}ms "
          f"(full jitter), warm-up {args.warmup}")
    for case in cases:
        _report(case, results[case.name], args.runs)
        result = results[case.name]
        figure("flows", f"{case.name} step(s): runs/s ({args.store})", args.runs / result["total"],
               "runs/s", goal=">= 600" if args.store == "postgres" and case.name == "one" else "")
        figure("flows", f"{case.name} step(s): CPU per run ({args.store})",
               result["cpu"] / args.runs * 1e6, "µs", goal="<= 550" if case.name == "one" else "")
    one, five = results.get("one"), results.get("five")
    if one is not None and five is not None:
        print(f"five/one:  {one['total'] / five['total']:10.3f} of the runs/s, "
              f"{five['cpu'] / one['cpu']:.2f}× the CPU per run")
    if baselines and one is not None:
        seconds, items, calls, cpu = sorted(baselines, key=lambda b: b[1] / b[0])[
            len(baselines) // 2]
        base_s = items / seconds
        print(f"baseline:  {base_s:10,.0f} items/s, median of {len(baselines)} rounds "
              f"({calls / seconds:,.0f} calls/s, {items} items in {seconds:.2f}s; "
              f"{cpu / items * 1e6:,.0f} µs CPU per item); each round: "
              + ", ".join(f"{i / s:,.0f}" for s, i, _, _ in baselines))
        figure("flows", "one step / bare aiohttp loop", args.runs / one["total"] / base_s,
               "ratio", goal=">= 0.4")
        print(f"ratio:     {args.runs / one['total'] / base_s:10.3f} (one step / baseline, "
              f"medians); CPU per item: interlink {one['cpu'] / args.runs * 1e6:,.0f} µs, "
              f"baseline {cpu / items * 1e6:,.0f} µs")


def _median_round(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median runs/s, and every round's runs/s and CPU (for the report)."""
    ordered = sorted(found, key=lambda result: result["total"])
    return {**ordered[len(ordered) // 2], "rounds": found}


def _truncate(pg_url: str) -> None:
    """Empty the PostgreSQL store between rounds (a fresh store, as on SQLite)."""
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'")]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)}")


@dataclasses.dataclass(frozen=True)
class Case:
    """A flow the load generator drives through its webhook."""

    name: str
    title: str
    hook_path: str
    flow: str


CASES = (
    Case("one", "one step (connector, 503 then 200)", HOOK_PATH, "push"),
    Case("five", "five steps (map, filter, paginated connector, route, connector)",
         PIPELINE_PATH, "pipeline"),
)


def _report(case: Case, result: dict[str, Any], runs: int) -> None:
    each = ", ".join(f"{runs / r['total']:,.0f} ({r['cpu'] / runs * 1e6:,.0f} µs)"
                     for r in result["rounds"])
    print(f"{case.title}: median of {len(result['rounds'])} rounds; each runs/s (CPU/run): "
          f"{each}")
    print(f"  interlink: {runs / result['total']:10,.0f} runs/s  ({result['total']:.2f}s end to "
          f"end; webhooks accepted in {result['accept']:.2f}s = {runs / result['accept']:,.0f}/s)")
    busy = ", ".join(f"{name} {cpu / runs * 1e6:,.0f} µs ({cpu / result['total']:.0%} busy)"
                     for name, cpu in sorted(result.get("threads", {}).items(),
                                             key=lambda kv: -kv[1]) if cpu / runs > 5e-6)
    if busy:
        print(f"             by thread, per run: {busy}")
    print(f"             {result['cpu'] / runs * 1e6:,.0f} µs CPU per run in the measured "
          f"process (all its threads); upstream {result['upstream_cpu'] / runs * 1e6:,.0f}"
          f" µs, load generator {result['loadgen_cpu'] / runs * 1e6:,.0f} µs")
    # What the machine allows: the measured process, the upstream and the load generator
    # share its cores (the baseline shares them with the upstream only).
    machine = (result["cpu"] + result["upstream_cpu"] + result["loadgen_cpu"]) / runs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"             {machine * 1e6:,.0f} µs of the machine's CPU per run in all: its "
          f"{cores} cores allow at most {(cores or 1) / machine:,.0f} runs/s")
    if result["commits"]:
        print(f"             {result['jobs'] / runs:.1f} store jobs per run, "
              f"{result['jobs'] / result['commits']:.1f} jobs per commit")


if __name__ == "__main__":
    main()
