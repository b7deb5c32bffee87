"""Durable queue throughput: enqueue → claim → complete, against a raw-driver baseline.

    .venv/bin/python bench/store.py [--items 20000] [--backend sqlite|postgres|all]
                                    [--synchronous normal|full]

Interlink: `--items` single-item `write(Enqueue)` calls from `--producers` concurrent tasks (so
group commit gets real concurrency), then `--consumers` tasks that `claim()` `--batch` items at
a time and `write(Complete)` each item individually, all concurrently. Baseline, same run, same
schema: the same rows inserted by the bare driver in one transaction (SQLite: `executemany`;
PostgreSQL: `COPY`). The ratio shows what durability per call costs against the cheapest
possible bulk insert. PostgreSQL runs on a throwaway local server with fsync on, unless
`INTERLINK_BENCH_POSTGRES_URL` names one (its tables are dropped and recreated!).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
import psycopg
from _summary import figure

from interlink.store import Complete, Enqueue, Store, open_store
from interlink.store._pgserver import TemporaryPostgres, find_pg_bin
from interlink.store._sqlfiles import load_migrations


def payload(n: int) -> dict[str, object]:
    """A small but realistic queued payload."""
    return {"order": {"id": n, "lines": [{"sku": f"SKU-{n % 97}", "qty": 2}]}, "source": "bench"}


async def run_interlink(store: Store, items: int, producers: int, consumers: int,
                        batch: int) -> dict[str, float]:
    """Enqueue, then drain, `items` items; returns seconds per phase."""
    ids = iter(range(items))

    async def produce() -> None:
        for n in ids:
            await store.write(Enqueue(f"item-{n:07d}", "job", payload(n)))

    started = time.perf_counter()
    await asyncio.gather(*(produce() for _ in range(producers)))
    enqueued = time.perf_counter()
    done = 0

    async def consume(owner: str) -> None:
        nonlocal done
        while done < items:
            claimed = await store.claim(owner, limit=batch, lease_s=60)
            if not claimed:
                await store.wait_for_work(0.05)
                continue
            await asyncio.gather(*(store.write(Complete(i.id, owner)) for i in claimed))
            done += len(claimed)

    await asyncio.gather(*(consume(f"w{k}") for k in range(consumers)))
    finished = time.perf_counter()
    return {"enqueue": enqueued - started, "drain": finished - enqueued,
            "total": finished - started}


def sqlite_baseline(path: Path, items: int, synchronous: str) -> float:
    """Seconds to insert the same rows with plain sqlite3 in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(load_migrations("sqlite")[0].sql)
    now = time.time()
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO queue (id, kind, payload, status, priority, run_at, attempts, created_at,"
        " updated_at) VALUES (?, 'job', ?, 'ready', 0, ?, 0, ?, ?)",
        ((f"item-{n:07d}", orjson.dumps(payload(n)).decode(), now, now, now)
         for n in range(items)),
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def postgres_baseline(url: str, items: int) -> float:
    """Seconds to COPY the same rows into a fresh queue table in one transaction."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_baseline CASCADE")
        conn.execute("CREATE SCHEMA bench_baseline")
        conn.execute("SET search_path = bench_baseline")
        conn.execute(load_migrations("postgres")[0].sql.encode())
        now = time.time()
        started = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(
            "COPY queue (id, kind, payload, status, priority, run_at, attempts, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            for n in range(items):
                copy.write_row((f"item-{n:07d}", "job", orjson.dumps(payload(n)).decode(),
                                "ready", 0, now, 0, now, now))
        elapsed = time.perf_counter() - started
        conn.execute("DROP SCHEMA bench_baseline CASCADE")
    return elapsed


def report(name: str, items: int, phases: dict[str, float], baseline_s: float) -> None:
    """Print one backend's numbers."""
    rate = items / phases["total"]
    base = items / baseline_s
    print(f"{name}: {items} items")
    print(f"  enqueue   {items / phases['enqueue']:>10,.0f} items/s")
    print(f"  drain     {items / phases['drain']:>10,.0f} items/s (claim + complete)")
    print(f"  end2end   {rate:>10,.0f} items/s")
    print(f"  baseline  {base:>10,.0f} items/s (bulk insert only)")
    print(f"  ratio     {rate / base:>10.3f}")
    figure("store", f"{name} end to end", rate, "items/s",
           goal=">= 5,000" if name.lower().startswith("postgres") else "")
    figure("store", f"{name} / bulk insert", rate / base, "ratio")


async def bench_sqlite(args: argparse.Namespace) -> None:
    """SQLite: interlink vs plain sqlite3 executemany."""
    with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp:
        url = f"sqlite:///{tmp}/store.db?synchronous={args.synchronous}"
        async with open_store(url, Path(tmp)) as store:
            phases = await run_interlink(store, args.items, args.producers, args.consumers,
                                         args.batch)
            commits = getattr(store, "commits", 0)
        baseline = sqlite_baseline(Path(tmp) / "baseline.db", args.items, args.synchronous)
    report(f"sqlite (synchronous={args.synchronous})", args.items, phases, baseline)
    print(f"  commits   {commits:>10,} for {args.items * 2:,} writes + claims")


async def bench_postgres(args: argparse.Namespace) -> None:
    """PostgreSQL: interlink vs COPY."""
    url = os.environ.get("INTERLINK_BENCH_POSTGRES_URL")
    server = None
    if url is None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("postgres: skipped (no PostgreSQL found)")
            return
        server = TemporaryPostgres(bin_dir, durable=True)
        url = server.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS schema_migrations, runs, steps, attempts, logs,"
                         " queue, sessions, credentials, locks")
            conn.execute("DROP FUNCTION IF EXISTS interlink_queue_notify()")
        store = open_store(url, Path())
        async with store:
            phases = await run_interlink(store, args.items, args.producers, args.consumers,
                                         args.batch)
        baseline = await asyncio.to_thread(postgres_baseline, url, args.items)
    finally:
        if server is not None:
            server.stop()
    report("postgres (fsync on)", args.items, phases, baseline)


def main() -> None:
    """Parse arguments and run the chosen backends."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--producers", type=int, default=200)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    if args.backend in ("sqlite", "all"):
        asyncio.run(bench_sqlite(args))
    if args.backend in ("postgres", "all"):
        asyncio.run(bench_postgres(args))


if __name__ == "__main__":
    main()
