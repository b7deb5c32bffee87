"""`make demo` as a user runs it: examples/shop/demo.sh with the stand-in warehouse, for real.

The demo runs on a copy of examples/shop (so its store never touches the checkout) at free
ports, with `DEMO_EXIT=1` so that it exits after printing the run log. The demo itself
(`interlink check`, `interlink serve`, the warehouse) is tested in its own processes.
`interlink check examples/shop` is tested in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from interlink.spec import load_project
from interlink.store import open_store

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
ORDERS = 10


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_env(shop: Path) -> dict[str, str]:
    """The variables of the copy's .env (what demo.sh loads)."""
    pairs = (line.split("=", 1) for line in (shop / ".env").read_text().splitlines()
             if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                            Path, int]:
    """Run demo.sh once on a copy of the shop: (the finished process, the copy, its port)."""
    shop = tmp_path_factory.mktemp("demo") / "shop"
    shutil.copytree(SHOP, shop, ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    warehouse_port = free_port()
    env = {**os.environ, "DEMO_EXIT": "1", "DEMO_PORT": str(free_port()),
           "WAREHOUSE_PORT": str(warehouse_port), "DEMO_ORDERS": str(ORDERS),
           "VENV_BIN": str(Path(sys.executable).parent)}
    # Its own process group, so a hung demo is stopped with its background servers.
    process = subprocess.Popen(
        ["bash", str(shop / "demo.sh")], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"demo.sh did not finish in 120 s; output:\n{out}")
    done = subprocess.CompletedProcess(process.args, process.returncode, out, "")
    return done, shop, warehouse_port


async def stored_runs(shop: Path, warehouse_port: int) -> list[Any]:
    """The runs the demo left in the copy's store."""
    environ = {**demo_env(shop), "WAREHOUSE_URL": f"http://127.0.0.1:{warehouse_port}"}
    project = load_project(shop, environ)
    async with open_store(project.config.store, project.root) as store:
        return list(await store.list_runs(limit=1000))


def warehouse_stats(output: str) -> dict[str, Any]:
    """The warehouse's `GET /stats` answer, as the demo prints it at the end."""
    lines = [line for line in output.splitlines() if line.startswith("warehouse stats: ")]
    assert lines, output
    stats: dict[str, Any] = json.loads(lines[-1].removeprefix("warehouse stats: "))
    return stats


async def test_demo_exits_0_and_every_run_succeeded(demo: Any) -> None:
    """The demo exits 0; all its orders became succeeded runs of push-orders."""
    done, shop, warehouse_port = demo
    assert done.returncode == 0, done.stdout
    assert f"{ORDERS} runs: {ORDERS} succeeded" in done.stdout
    runs = await stored_runs(shop, warehouse_port)
    assert len(runs) == ORDERS
    assert {(r.flow, r.status, r.trigger) for r in runs} == {
        ("push-orders", "succeeded", "webhook")}


def test_demo_shows_a_retry_and_a_reauthentication(demo: Any) -> None:
    """The printed run log has a retried attempt and an `Invalid session` re-authentication."""
    out = demo[0].stdout
    assert "a run that retried its push step" in out
    assert " 1 retry_step " in out
    assert "a run that re-authenticated" in out
    assert " 4 reauth  Invalid session" in out
    stats = warehouse_stats(out)
    assert stats["sessions_expired"] >= 1
    assert stats["logins"] >= 2
    assert sum(stats["failures_injected"].values()) >= 1


def test_the_warehouse_created_each_order_exactly_once(demo: Any) -> None:
    """Retries and re-sends never duplicated an order at the warehouse."""
    stats = warehouse_stats(demo[0].stdout)
    assert stats["orders_created"] == ORDERS
    assert stats["created_per_order"] == {f"A-{1000 + i}": 1 for i in range(1, ORDERS + 1)}
