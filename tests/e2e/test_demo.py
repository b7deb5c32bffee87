"""`make demo` as a user runs it: examples/shop/demo.sh with the stand-in warehouse, for real.

The demo runs on a copy of examples/shop (so its store never touches the checkout) at free
ports, with `DEMO_EXIT=1` so that it exits after printing the run log and the order-intake
service's answers. The demo itself (`interlink check`, `interlink serve`, the warehouse, which
it stops and starts again) is tested in its own processes.
`interlink check examples/shop` is tested in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import json
import os
import re
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
#: the order-intake requests demo.sh sends, in order: (what it shows, the status expected)
SERVICE_CALLS = [("default", 200), ("held", 202), ("mapping_error", 400),
                 ("no key", 401), ("wrong key", 401), ("queued", 202)]


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


async def stored_item(shop: Path, warehouse_port: int, item_id: str) -> Any:
    """A queue item the demo left in the copy's store."""
    environ = {**demo_env(shop), "WAREHOUSE_URL": f"http://127.0.0.1:{warehouse_port}"}
    project = load_project(shop, environ)
    async with open_store(project.config.store, project.root) as store:
        return await store.get_item(item_id)


def service_answers(output: str) -> list[tuple[str, int, dict[str, str], str]]:
    """Each order-intake request the demo printed: (request line, status, headers, body)."""
    answers = []
    for block in output.split("\n$ POST /orders")[1:]:
        request, _, rest = block.partition("\n")
        answer = re.search(r"^  → (\d{3})  (.*)$", rest, re.MULTILINE)
        assert answer, block
        body = rest[answer.end() + 1:].split("\n  ↳ ", 1)[0]
        pairs = (header.split(": ", 1) for header in answer[2].split("  "))
        headers = {name.lower(): value for name, value in pairs}
        answers.append((request, int(answer[1]), headers,
                        "\n".join(line.removeprefix("    ") for line in body.splitlines())))
    return answers


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
    runs = [r for r in await stored_runs(shop, warehouse_port) if r.trigger == "webhook"]
    assert len(runs) == ORDERS
    assert {(r.flow, r.status) for r in runs} == {("push-orders", "succeeded")}


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


def test_order_intake_answers_by_each_rule(demo: Any) -> None:
    """The service answers 200 JSON, 202 XML + X-Order-Id, 400, 401, 401, 202 queued in turn."""
    answers = service_answers(demo[0].stdout)
    assert [status for _, status, _, _ in answers] == [s for _, s in SERVICE_CALLS], answers
    ok, held, bad, no_key, wrong_key, queued = answers
    # (a) on: default: the flow's result, shaped by to_erp.py
    assert ok[2]["content-type"] == "application/json"
    payload = json.loads(ok[3])
    assert payload["order_id"] == "P-2001"
    assert payload["warehouse_ref"].startswith("WH-")
    assert payload["channel"] == "web"
    # (b) when HELD: the XML template with the order id, and the X-Order-Id header
    assert held[2]["x-order-id"] == "P-2002"
    assert held[2]["content-type"].startswith("application/xml")
    assert held[3].startswith("<?xml")
    assert '<order id="P-2002" status="held"/>' in held[3]
    # (c) on: mapping_error, (d) on: security_error
    assert bad[3] == "bad request"
    assert "X-API-Key" not in no_key[0]
    for refused in (no_key, wrong_key):
        assert json.loads(refused[3])["error"]["phase"] == "security"
    # (e) queue_when: the queue item's id
    assert re.fullmatch(r"q_\w+", json.loads(queued[3])["queued"])


async def test_the_queued_order_is_done_once_the_warehouse_is_back(demo: Any) -> None:
    """The order sent while the warehouse was down ends `done`, its result kept and shown."""
    done, shop, warehouse_port = demo
    item_id = json.loads(service_answers(done.stdout)[-1][3])["queued"]
    item = await stored_item(shop, warehouse_port, item_id)
    assert item is not None
    assert (item.kind, item.status) == ("service_request", "done")
    # Its first re-run failed (the warehouse was still down), a later one succeeded.
    assert item.attempts >= 2
    assert item.last_error is not None
    assert item.result["status"] == "succeeded"
    assert item.result["payload"]["order_id"] == "P-2004"
    shown = done.stdout.split(f"$ GET /_interlink/queue/{item_id}")[-1]
    assert '"status": "done"' in shown
    assert '"order_id": "P-2004"' in shown
    runs = [r for r in await stored_runs(shop, warehouse_port)
            if r.trigger == "service:order-intake"]
    # P-2001, P-2002 and P-2004 each have one run: P-2004's failed in the request, and the
    # request processor re-drove that same run (same keys) until it succeeded.
    assert len(runs) == 3
    assert {r.status for r in runs} == {"succeeded"}
    p2004 = next(r for r in runs if r.id == item.result["run_id"])
    assert p2004.redrive >= 1
