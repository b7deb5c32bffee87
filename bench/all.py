"""Run every bench, one after the other, and end with one table of their headline figures.

    .venv/bin/python bench/all.py [--quick] [--only store,flows,...]

Each bench prints its own report as it goes (shown here as it comes) and `SUMMARY` lines
(`bench/_summary.py`) for the table. `--quick` runs each with small sizes (a smoke test of the
benches, not figures to keep). The services bench needs `wrk` (apt-get install wrk); scale
needs PostgreSQL binaries; a bench that cannot run is listed as failed and the others go on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
from _summary import PREFIX

HERE = Path(__file__).parent

#: name → (arguments, quick arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "store": ([], ["--items", "2000"]),
    "flows": ([], ["--runs", "300", "--rounds", "1", "--baseline-seconds", "1"]),
    "services": ([], ["--duration", "2", "--rounds", "1"]),
    "waiting": ([], ["--runs", "500"]),
    "scale": ([], ["--runs", "300", "--workers", "1,2", "--duration", "2", "--rounds", "1"]),
    "ui": ([], ["--runs", "20000", "--repeat", "5"]),
    "client": ([], ["--calls", "2000", "--rounds", "1"]),
}


def run(name: str, args: list[str]) -> tuple[int, list[dict[str, object]]]:
    """Run one bench, echoing its report; its exit status and SUMMARY figures."""
    print(f"=== {name}", flush=True)
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    figures = []
    for line in proc.stdout:
        if line.startswith(PREFIX):
            figures.append(orjson.loads(line[len(PREFIX):]))
        else:
            print(line, end="", flush=True)
    return proc.wait(), figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated benches (default: all)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    for name in names:
        full, quick = BENCHES[name]
        status, figures = run(name, quick if args.quick else full)
        rows += figures
        if status != 0:
            failed.append(f"{name} (exit {status})")
    print("\n=== summary")
    print(f"{'bench':<9} {'figure':<44} {'value':>12}  {'unit':<10} goal")
    for row in rows:
        value = float(row["value"])  # type: ignore[arg-type]
        shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
        print(f"{row['bench']:<9} {row['name']:<44} {shown:>12}  {row['unit']:<10} "
              f"{row['goal']}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
