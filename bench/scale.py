"""Many processes, without paying for it: queued runs drained by 1, 2 and 4 `interlink worker`s.

    .venv/bin/python bench/scale.py [--runs 3000] [--workers 1,2,4]

On a throwaway PostgreSQL server with fsync on (`TemporaryPostgres(durable=True)`), for each
worker count: a fresh database, that many `interlink worker` processes started and left to
settle (their start-up is not counted), then `--runs` runs of a one-step flow queued as fast as
one process can (each calls the loopback upstream of `bench/flows.py`: a 503 then a 200 per
key); time = the first run queued → every run `succeeded`. Printed per
count: runs/s, and the CPU per run of the workers (all of them, from /proc) and of PostgreSQL
(every server process), each against the one-worker figure. On two shared cores throughput
alone cannot grow; what lets it grow with machines is the CPU per run staying flat (goal: two
and four workers ≤ 1.1× one).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
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
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                total += (int(stat[11]) + int(stat[12])) / HZ
    return total


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


def drain(root: Path, url: str, runs: int, count: int, data_dir: Path) -> dict[str, float]:
    """Start `count` workers and let them settle (their start-up is not counted), queue the
    runs, wait until every one succeeded; the time and the CPU it took."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [subprocess.Popen([sys.executable, "-m", "interlink.cli", "worker", str(root)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
               for _ in range(count)]
    try:
        settled = _settle(workers)
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
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    return {"elapsed": elapsed, "worker_cpu": worker_cpu, "pg_cpu": pg_cpu}


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


def main() -> None:
    """Parse arguments, run each worker count, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma separated")
    args = parser.parse_args()
    from interlink.store._pgserver import TemporaryPostgres, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries found (initdb, pg_ctl)")
    ours, theirs = _CTX.Pipe()
    upstream = _CTX.Process(target=upstream_main, args=(theirs,), daemon=True)
    upstream.start()
    upstream_url = f"http://127.0.0.1:{ours.recv()}"
    pg = TemporaryPostgres(bin_dir, durable=True)
    base = pg.start()
    rows = []
    try:
        for count in (int(n) for n in args.workers.split(",")):
            db = f"scale_{count}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {db}")
            url = base.rsplit("/", 1)[0] + f"/{db}"
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                write_project(root, url, f"{upstream_url}")
                rows.append((count, drain(root, url, args.runs, count, pg.data)))
    finally:
        pg.stop()
        ours.close()
        upstream.join(5)
    print(f"{args.runs} queued runs on PostgreSQL (fsync on), one connector step each "
          "(503 then 200)")
    print(f"{'workers':>7}  {'runs/s':>8}  {'worker µs/run':>14}  {'PostgreSQL µs/run':>18}"
          f"  {'vs 1 worker':>12}")
    first = rows[0][1]
    for count, m in rows:
        worker, pg_us = m["worker_cpu"] / args.runs * 1e6, m["pg_cpu"] / args.runs * 1e6
        ratio = (m["worker_cpu"] + m["pg_cpu"]) / (first["worker_cpu"] + first["pg_cpu"])
        print(f"{count:>7}  {args.runs / m['elapsed']:>8,.0f}  {worker:>14,.0f}  "
              f"{pg_us:>18,.0f}  {ratio:>11.2f}×")
        figure("scale", f"{count} workers: runs/s", args.runs / m["elapsed"], "runs/s")
        figure("scale", f"{count} workers: CPU per run vs 1", ratio, "ratio", goal="<= 1.1")


if __name__ == "__main__":
    main()
