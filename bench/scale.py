"""Many processes, without paying for it: queued runs drained by 1, 2 and 4 `interlink worker`s,
and a service answered by `interlink serve --workers 1` and `--workers 2`.

    .venv/bin/python bench/scale.py [--runs 3000] [--workers 1,2,4] [--serve 1,2]
                                    [--duration 5] [--connections 50] [--rounds 3]
                                    [--skip-drain] [--skip-services]

On a throwaway PostgreSQL server with fsync on (`TemporaryPostgres(durable=True)`), for each
worker count: a fresh database, that many `interlink worker` processes started and left to
settle (their start-up is not counted), then `--runs` runs of a one-step flow queued as fast as
one process can (each calls the loopback upstream of `bench/flows.py`: a 503 then a 200 per
key); time = the first run queued → every run `succeeded`. Printed per
count: runs/s, and the CPU per run of the workers (all of them, from /proc) and of PostgreSQL
(every server process), each against the one-worker figure. On two shared cores throughput
alone cannot grow; what lets it grow with machines is the CPU per run staying flat (goal: two
and four workers ≤ 1.1× one).

Services: `bench/services.py`'s scenario (a ~1 KB JSON order with an API key; a JSON or an XML
answer) as a project on a fresh PostgreSQL database, served by `interlink serve --workers N
--no-worker` for each `--serve` count (all started first, each warmed up by 2 s of load), then
loaded by `wrk` (one thread, `--connections`, `--duration` seconds) in `--rounds` rounds that
alternate which count goes first. Printed per count, the median of the rounds: req/s, p50, p99
and the server's CPU per request (the parent and every child, from /proc), and the ratios
against the first count.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import services
from _summary import figure
from flows import upstream_main

_CTX = mp.get_context("spawn")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / HZ


def postgres_cpu(data_dir: Path) -> float:
    """CPU seconds of the PostgreSQL server: its postmaster and every child (backends, WAL
    writer, checkpointer, …) alive now."""
    return tree_cpu(int((data_dir / "postmaster.pid").read_text().split()[0]))


def write_project(root: Path, url: str, upstream: str) -> None:
    """A project whose flow `push` posts its input to the upstream (retried after its 503)."""
    files = {
        "interlink.yaml": f"name: scale\nstore: '{url}'\n"
                          "worker: {concurrency: 64, lease: 30s, poll: 100ms}\n",
        "connectors/up.yaml": f"""
            name: up
            base_url: {upstream}
            concurrency: 64
            retry: {{max_attempts: 4, initial: 1ms, max: 5ms}}
            endpoints:
              create: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": "name: push\nsteps:\n"
                           "  - {id: push, type: connector, connector: up, endpoint: create}\n",
    }
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))


async def enqueue(root: Path, runs: int) -> None:
    """Queue `runs` runs of `push` (what a burst of webhooks leaves behind)."""
    from interlink.engine import Engine
    from interlink.spec import load_project

    async with Engine(load_project(root)) as engine:
        for start in range(0, runs, 500):
            await asyncio.gather(*(engine.runner.start("push", {"n": n})
                                   for n in range(start, min(start + 500, runs))))


def succeeded(url: str) -> int:
    """Runs that succeeded so far."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()
    return int(row[0]) if row else 0


def server_counts(url: str) -> tuple[int, int]:
    """Transactions committed in the bench's database and WAL flushes (`wal_sync`, the whole
    server) so far: what more processes could add per run (smaller group commits)."""
    with psycopg.connect(url, autocommit=True) as conn:
        xacts = conn.execute("SELECT xact_commit FROM pg_stat_database "
                             "WHERE datname = current_database()").fetchone()
        syncs = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
    return int(xacts[0]) if xacts else 0, int(syncs[0]) if syncs else 0


def drain(root: Path, url: str, runs: int, count: int, data_dir: Path) -> dict[str, float]:
    """Start `count` workers and let them settle (their start-up is not counted), queue the
    runs, wait until every one succeeded; the time, the CPU it took, and the transactions
    and WAL flushes per run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [subprocess.Popen([sys.executable, "-m", "interlink.cli", "worker", str(root)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
               for _ in range(count)]
    try:
        settled = _settle(workers)
        time.sleep(1.1)  # backends publish their statistics at most once a second
        xacts0, syncs0 = server_counts(url)
        pg0 = postgres_cpu(data_dir)
        started = time.perf_counter()
        asyncio.run(enqueue(root, runs))
        while succeeded(url) < runs:
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker exited early")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - settled
        pg_cpu = postgres_cpu(data_dir) - pg0
        time.sleep(1.1)
        xacts1, syncs1 = server_counts(url)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    # (the transactions include this bench's own polls: about 20 a second)
    return {"elapsed": elapsed, "worker_cpu": worker_cpu, "pg_cpu": pg_cpu,
            "xacts": (xacts1 - xacts0) / runs, "syncs": (syncs1 - syncs0) / runs}


def _settle(workers: list[subprocess.Popen[bytes]]) -> float:
    """Wait until the workers have started (their CPU stops growing); their CPU then."""
    last = -1.0
    for _ in range(100):
        time.sleep(0.5)
        now = sum(cpu_seconds(w.pid) for w in workers)
        if now - last < 0.02 * len(workers):
            return now
        last = now
    raise SystemExit("the workers did not settle")


def tree_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and every descendant alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(stat[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_seconds(current)
        todo += parents.get(current, [])
    return total


def start_serving(root: Path, processes: int) -> tuple[subprocess.Popen[bytes], int]:
    """`interlink serve --workers PROCESSES --no-worker`, once every process serves."""
    port = services.free_port()
    log = root / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interlink.cli", "serve", str(root), "--port", str(port),
             "--workers", str(processes), "--no-worker"], stdout=out, stderr=out, env=env)
    # The parent listens before its children serve: wait for the line saying they do.
    deadline = time.monotonic() + 60
    while "serving bench on " not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"interlink serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    services.check_answers(f"serve --workers {processes}", port)
    return proc, port


def services_rows(base: str, args: argparse.Namespace) -> list[tuple[int, dict[str, float]]]:
    """The services scenario for each `--serve` count (each on a fresh database, all started
    first), measured in `--rounds` alternating rounds; the median of each count."""
    counts = [int(n) for n in args.serve.split(",")]
    servers: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[int, list[dict[str, float]]] = {count: [] for count in counts}
    with tempfile.TemporaryDirectory() as tmp:
        script = services.lua_script(Path(tmp))
        try:
            for count in counts:
                db = f"services_{count}"
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {db}")
                url = base.rsplit("/", 1)[0] + f"/{db}"
                root = Path(tmp) / db
                services.write_project(root)
                config = root / "interlink.yaml"
                config.write_text(config.read_text().replace(
                    "store: sqlite:///.interlink/bench.db", f"store: '{url}'"))
                servers[count] = start_serving(root, count)
                services.run_wrk(servers[count][1], script, 2.0, args.connections)  # warm-up
            for n in range(args.rounds):
                # Alternate who goes first, so a load change on the machine hits every count.
                for count in counts if n % 2 == 0 else counts[::-1]:
                    proc, port = servers[count]
                    before = tree_cpu(proc.pid)
                    r = services.run_wrk(port, script, args.duration, args.connections)
                    r["cpu_us"] = (tree_cpu(proc.pid) - before) / r["requests"] * 1e6
                    results[count].append(r)
                    print(f"round {n + 1}, {_processes(count)}: {r['rps']:,.0f} req/s, "
                          f"server CPU {r['cpu_us']:.0f} µs/req", flush=True)
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGINT)
            for proc, _ in servers.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return [(count, {key: statistics.median(r[key] for r in rows) for key in rows[0]})
            for count, rows in results.items()]


def print_services(rows: list[tuple[int, dict[str, float]]], args: argparse.Namespace) -> None:
    """The services table and its figures."""
    print(f"\nservices (bench/services.py's scenario) on PostgreSQL, `serve --workers N "
          f"--no-worker`, wrk -t1 -c{args.connections} -d{args.duration:g}s, median of "
          f"{args.rounds} rounds, {os.cpu_count()} cores")
    print(f"{'processes':>9}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  "
          f"{'server CPU µs/req':>18}  {'req/s vs 1':>11}  {'CPU vs 1':>9}")
    first = rows[0][1]
    for count, r in rows:
        rps_ratio, cpu_ratio = r["rps"] / first["rps"], r["cpu_us"] / first["cpu_us"]
        print(f"{count:>9}  {r['rps']:>8,.0f}  {r['p50_ms']:>7.2f}  {r['p99_ms']:>7.2f}  "
              f"{r['cpu_us']:>18,.0f}  {rps_ratio:>10.2f}×  {cpu_ratio:>8.2f}×")
        name = f"services, {_processes(count)}"
        figure("scale", f"{name}: req/s", r["rps"], "req/s")
        figure("scale", f"{name}: server CPU µs/req", r["cpu_us"], "µs")
        if count != rows[0][0]:
            figure("scale", f"{name}: req/s vs {rows[0][0]}", rps_ratio, "ratio")
            figure("scale", f"{name}: CPU per request vs {rows[0][0]}", cpu_ratio, "ratio",
                   goal="<= 1.1")


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def main() -> None:
    """Parse arguments, run each worker count and each serve count, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma separated")
    parser.add_argument("--serve", default="1,2",
                        help="`serve --workers` counts for the services, comma separated")
    parser.add_argument("--duration", type=float, default=5.0, help="wrk seconds per count")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="services rounds (median)")
    parser.add_argument("--skip-drain", action="store_true", help="no queued runs")
    parser.add_argument("--skip-services", action="store_true", help="no services load")
    args = parser.parse_args()
    from interlink.store._pgserver import TemporaryPostgres, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries found (initdb, pg_ctl)")
    if not args.skip_services and shutil.which("wrk") is None:
        raise SystemExit("the services part needs wrk: apt-get install -y wrk "
                         "(or --skip-services)")
    ours, theirs = _CTX.Pipe()
    upstream = _CTX.Process(target=upstream_main, args=(theirs,), daemon=True)
    upstream.start()
    upstream_url = f"http://127.0.0.1:{ours.recv()}"
    pg = TemporaryPostgres(bin_dir, durable=True)
    base = pg.start()
    rows, served = [], []
    try:
        for count in [] if args.skip_drain else (int(n) for n in args.workers.split(",")):
            db = f"scale_{count}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {db}")
            url = base.rsplit("/", 1)[0] + f"/{db}"
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                write_project(root, url, f"{upstream_url}")
                rows.append((count, drain(root, url, args.runs, count, pg.data)))
        if not args.skip_services:
            served = services_rows(base, args)
    finally:
        pg.stop()
        ours.close()
        upstream.join(5)
    if rows:
        print_drain(rows, args)
    if served:
        print_services(served, args)


def print_drain(rows: list[tuple[int, dict[str, float]]], args: argparse.Namespace) -> None:
    """The drain table and its figures."""
    print(f"{args.runs} queued runs on PostgreSQL (fsync on), one connector step each "
          "(503 then 200)")
    print(f"{'workers':>7}  {'runs/s':>8}  {'worker µs/run':>14}  {'PostgreSQL µs/run':>18}"
          f"  {'vs 1 worker':>12}  {'commits/run':>11}  {'WAL flushes/run':>15}")
    first = rows[0][1]
    for count, m in rows:
        worker, pg_us = m["worker_cpu"] / args.runs * 1e6, m["pg_cpu"] / args.runs * 1e6
        ratio = (m["worker_cpu"] + m["pg_cpu"]) / (first["worker_cpu"] + first["pg_cpu"])
        print(f"{count:>7}  {args.runs / m['elapsed']:>8,.0f}  {worker:>14,.0f}  "
              f"{pg_us:>18,.0f}  {ratio:>11.2f}×  {m['xacts']:>11.2f}  {m['syncs']:>15.2f}")
        figure("scale", f"{count} workers: runs/s", args.runs / m["elapsed"], "runs/s")
        figure("scale", f"{count} workers: CPU per run vs 1", ratio, "ratio", goal="<= 1.1")


if __name__ == "__main__":
    main()
