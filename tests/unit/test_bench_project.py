"""The project `bench/flows.py` measures loads as shipped: both cases' flows, no warnings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from interlink.spec import load_project

BENCH = Path(__file__).resolve().parents[2] / "bench" / "flows.py"


def test_the_bench_project_loads_with_the_five_step_flow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One-step `push` and five-step `pipeline` (map, filter, connector, route, connector)."""
    spec = importlib.util.spec_from_file_location("bench_flows", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_flows", bench)  # its dataclasses look it up
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as `python bench/flows.py` runs it
    spec.loader.exec_module(bench)
    bench.write_bench_project(tmp_path, "http://127.0.0.1:9", "sqlite:///bench.db", 8, 8)
    project = load_project(tmp_path)
    assert project.warnings == ()
    assert [s.type for s in project.flows["pipeline"].steps] == [
        "map", "filter", "connector", "route", "connector"]
    assert project.connectors["up"].endpoints["stock"].paginate is not None
