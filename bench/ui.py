"""The UI's runs list at 1,000,000 runs on SQLite: how long the page takes to answer.

    .venv/bin/python bench/ui.py [--runs 1000000] [--db PATH] [--repeat 25]

Fills a fresh SQLite store (migrated by `SqliteStore.open`) with `--runs` runs, written by
`executemany` straight into `runs` in batches: ids shaped like the engine's (sortable by
time), six flows, the status mix of a busy system (mostly succeeded, a few percent failed, some
in flight), four triggers, a ~150-byte input and the flow definition every run keeps, over 30
days. `--db PATH` keeps the filled file and reuses it on the next run.

Then the UI of `interlink serve` (the listener's ASGI app, loopback mode, in-process) is asked
for the runs list `--repeat` times per page, and the median and p95 are printed:

- `first page`: newest 50, with the counts per status;
- `flow + failed`: one flow's failed runs;
- `deep page`: 200 pages (10,000 runs) down, by the cursor the pages hand out;
- `search by id`: a run id typed in the search box (the answer sends the browser to the run);
- `text, last day`: a text searched in the inputs of the last day's runs.

Baseline, same run: the bare keyset `SELECT` of the first 50 rows with `sqlite3` (what
reading costs without counting, rendering or HTTP). The goal is < 100 ms per page.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import orjson
from _summary import figure
from starlette.types import ASGIApp

from interlink.engine import Engine
from interlink.ids import derived_id
from interlink.server import build_app
from interlink.services import CallResult, call_app
from interlink.spec import load_project
from interlink.store import RunQuery
from interlink.store.sqlite import SqliteStore

FLOWS = ["push-orders", "sync-products", "route-orders", "enrich-orders", "invoices", "refunds"]
#: (status, share in 10,000)
STATUS_MIX = [("succeeded", 9300), ("failed", 550), ("running", 40), ("waiting", 60),
              ("queued", 30), ("stopped", 10), ("partial", 10)]
TRIGGERS = ["webhook", "api", "schedule", "retry"]
DAYS = 30
COLUMNS = ("id", "flow", "status", "trigger", "input", "flow_spec", "created_at", "retry_of",
           "retry_count", "step_index", "bucket", "error", "started_at", "finished_at",
           "updated_at", "redrive", "variables", "wake")


def flow_spec(name: str) -> str:
    """The definition a run of `name` keeps (a webhook, a connector step, a map)."""
    return orjson.dumps({
        "name": name, "description": f"{name}: each order the shop posts, to the ERP",
        "trigger": {"type": "webhook", "path": f"/hooks/{name}", "package": "shop"},
        "variables": {"channel": "web"}, "retry": {"max_flow_retries": 3, "delay": 5.0},
        "steps": [{"id": "push", "type": "connector", "connector": "erp",
                   "endpoint": "create_order", "body": "payload"},
                  {"id": "ref", "type": "map", "value": "{'ref': payload.reference}"}],
    }).decode()


def statuses() -> list[str]:
    """10,000 statuses in the mix, interleaved."""
    out: list[str] = []
    for status, share in STATUS_MIX:
        out += [status] * share
    return out[::7] + out[1::7] + out[2::7] + out[3::7] + out[4::7] + out[5::7] + out[6::7]


def fill(path: Path, runs: int, batch: int = 20_000) -> float:
    """Write `runs` runs into the store at `path`; seconds taken."""
    asyncio.run(_migrate(path))
    specs = {name: flow_spec(name) for name in FLOWS}
    mix = statuses()
    start_at = time.time() - DAYS * 86400
    step = DAYS * 86400 / runs
    sql = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    began = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        for first in range(0, runs, batch):
            rows = []
            for n in range(first, min(first + batch, runs)):
                at = start_at + n * step
                status = mix[n % len(mix)]
                flow = FLOWS[n % len(FLOWS)]
                ended = status not in ("running", "waiting", "queued")
                took = 0.05 + (n % 37) / 100
                rows.append((
                    derived_id("r_", at, f"bench:{n}"), flow, status, TRIGGERS[n % 4],
                    orjson.dumps({"id": f"A-{n}", "customer": f"C-{n % 5000}",
                                  "shipping": {"country": ["DE", "FR", "US"][n % 3]},
                                  "lines": [{"sku": f"SKU-{n % 97}", "qty": 1 + n % 3}]}
                                 ).decode(),
                    specs[flow], at, None, 0, 2 if ended else 0, None,
                    "calling erp.create_order: HTTP 503 (attempt 4 of 4); no attempts left"
                    if status == "failed" else None,
                    at + 0.01, at + took if ended else None, at + took, 0, None, None))
            with conn:
                conn.executemany(sql, rows)
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return time.perf_counter() - began


async def _migrate(path: Path) -> None:
    async with SqliteStore(path):
        pass


def project(folder: Path, db: Path) -> Path:
    """A project on the filled store: the six flows, no admin token (loopback mode)."""
    (folder / "flows").mkdir(parents=True, exist_ok=True)
    (folder / "connectors").mkdir(exist_ok=True)
    (folder / "interlink.yaml").write_text(f"name: bench\nstore: sqlite:///{db}\n")
    (folder / "connectors" / "erp.yaml").write_text(textwrap.dedent("""\
        name: erp
        base_url: http://127.0.0.1:9
        endpoints:
          create_order: {method: POST, path: /orders}
        """))
    for name in FLOWS:
        (folder / "flows" / f"{name}.yaml").write_text(textwrap.dedent(f"""\
            name: {name}
            steps:
              - {{id: push, type: connector, connector: erp, endpoint: create_order}}
            """))
    return folder


async def measure(folder: Path, repeat: int) -> dict[str, list[float]]:
    """Milliseconds per request of each page."""
    async with Engine(load_project(folder)) as engine:
        app = build_app(engine, None)
        store = engine.store
        page = await store.find_runs(RunQuery())
        some_id = page.runs[17].id
        cursor = page.cursor
        for _ in range(199):  # 200 pages down (fewer with a small --runs)
            following = (await store.find_runs(RunQuery(), cursor=cursor)).cursor
            if following is None:
                break
            cursor = following
        paths = {
            "first page": "/_interlink/ui/runs",
            "flow + failed": "/_interlink/ui/runs?flow=route-orders&status=failed",
            "deep page": f"/_interlink/ui/runs?cursor={cursor}",
            "search by id": f"/_interlink/ui/runs?q={some_id}",
            "text, last day": "/_interlink/ui/runs?q=C-4242&since=1d",
        }
        times: dict[str, list[float]] = {}
        for name, path in paths.items():
            await _get(app, path)  # warm: templates compiled, pages cached by SQLite
            times[name] = []
            for _ in range(repeat):
                began = time.perf_counter()
                answer = await _get(app, path)
                times[name].append((time.perf_counter() - began) * 1000)
                assert answer.status == (303 if name == "search by id" else 200), path
            if name == "search by id":
                assert answer.headers["location"].endswith(some_id)
        return times


async def _get(app: ASGIApp, path: str) -> CallResult:
    return await call_app(app, "GET", path, headers={"Host": "127.0.0.1:8080"})


def baseline(db: Path, repeat: int) -> list[float]:
    """Milliseconds of the bare keyset read of the newest 50 runs."""
    conn = sqlite3.connect(db)
    out = []
    try:
        for _ in range(repeat + 1):
            began = time.perf_counter()
            conn.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY created_at DESC, "
                         "id DESC LIMIT 50").fetchall()
            out.append((time.perf_counter() - began) * 1000)
    finally:
        conn.close()
    return out[1:]


def main() -> None:
    """Fill (unless kept), measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="keep the filled store here (reused if there)")
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = (args.db or Path(tmp) / "runs.db").resolve()
        if not db.exists():
            seconds = fill(db, args.runs)
            print(f"filled {args.runs:,} runs in {seconds:.1f}s "
                  f"({db.stat().st_size / 1e9:.2f} GB)")
        else:
            count = sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0]
            print(f"reusing {db} ({count:,} runs)")
        times = asyncio.run(measure(project(Path(tmp) / "project", db), args.repeat))
        base = statistics.median(baseline(db, args.repeat))
        print(f"{'page':<16}{'median ms':>10}{'p95 ms':>9}{'× bare read':>13}")
        for name, values in times.items():
            values.sort()
            median = statistics.median(values)
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            print(f"{name:<16}{median:>10.1f}{p95:>9.1f}{median / base:>13.0f}")
            figure("ui", f"runs list, {name} ({args.runs:,} runs)", median, "ms",
                   goal="< 100")
        print(f"{'bare read':<16}{base:>10.2f}   (sqlite3: newest 50 rows, keyset order)")
        print("goal: < 100 ms per page")


if __name__ == "__main__":
    main()
