"""What a run in flight costs a worker: 10,000 runs waiting durably, the worker's RSS and tasks.

    .venv/bin/python bench/waiting.py [--runs 10000]

An `interlink worker` (SQLite) is started and left to settle; its RSS is read from /proc.
Then `--runs` runs of a flow whose first step is a `delay: 1h` are queued; the worker takes
each one up, the step parks it (a durable wait: a queue item due in an hour, no task, no
coroutine), and once every run is `waiting` the worker's RSS is read again. Printed: RSS
before and after, and the growth per waiting run (goal ≤ 20 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _summary import figure


def rss_kb(pid: int) -> int:
    """Resident memory of a process, in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def statuses(db: Path) -> dict[str, int]:
    """Runs per status."""
    with sqlite3.connect(db, timeout=30) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())


async def enqueue(root: Path, runs: int) -> None:
    """Queue `runs` runs of `parked`."""
    from interlink.engine import Engine
    from interlink.spec import load_project

    async with Engine(load_project(root)) as engine:
        for start in range(0, runs, 1000):
            await asyncio.gather(*(engine.runner.start("parked", {"n": n})
                                   for n in range(start, min(start + 1000, runs))))


def main() -> None:
    """Start the worker, park the runs, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="interlink-waiting-") as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "interlink.yaml").write_text(
            "name: waiting\nworker: {concurrency: 64, poll: 100ms}\n")
        (root / "flows" / "parked.yaml").write_text(textwrap.dedent("""\
            name: parked
            steps:
              - {id: later, type: delay, for: 1h}
              - {id: then, type: map, value: payload}
            """))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        worker = subprocess.Popen([sys.executable, "-m", "interlink.cli", "worker", str(root)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            time.sleep(3)
            before = rss_kb(worker.pid)
            asyncio.run(enqueue(root, args.runs))
            db = root / ".interlink" / "interlink.db"
            while statuses(db).get("waiting", 0) < args.runs:
                if worker.poll() is not None:
                    raise SystemExit("the worker exited")
                time.sleep(0.2)
            time.sleep(1)
            after = rss_kb(worker.pid)
        finally:
            worker.terminate()
            worker.wait(30)
    print(f"{args.runs:,} runs waiting durably (a delay step), one `interlink worker` on SQLite")
    print(f"  worker RSS before {before / 1024:.1f} MB, after {after / 1024:.1f} MB: "
          f"{(after - before) * 1024 / args.runs:,.0f} bytes per waiting run (goal ≤ 20 KB)")
    figure("waiting", "RSS per waiting run", (after - before) * 1024 / args.runs, "bytes",
           goal="<= 20,480")


if __name__ == "__main__":
    main()
