"""examples/response-scripts: the source document's Scenario 1 and 2, run for real against a
loopback stand-in of the orders API, with a real engine and SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.projects import running_engine
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json
from interlink.spec import load_project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "response-scripts"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "response-scripts"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    return target


async def _finished(engine: Engine, run_id: str) -> dict[str, Any]:
    return await run_json(engine.store, await engine.runner.wait_for(run_id, 20))


async def _retry_of(engine: Engine, flow: str, run_id: str) -> dict[str, Any]:
    runs = await engine.store.list_runs(flow=flow)
    return await _finished(engine, next(r.id for r in runs if r.retry_of == run_id))


def test_the_example_checks() -> None:
    """The example project loads as shipped, without errors or warnings."""
    project = load_project(EXAMPLE)
    assert set(project.flows) == {"session-check", "order-status"}
    assert project.warnings == ()


async def test_scenario_1_invalid_session_in_a_200_retries_the_flow(tmp_path: Path) -> None:
    """A 200 whose body says `Invalid session` → code 2, message `Invalid session`; the
    queued retry run succeeds once the session is valid."""
    async with Upstream() as up:
        up.route("/account", body="<p>Invalid session</p>")
        project = load_project(_copy(tmp_path), environ={"ORDERS_API_URL": up.url})
        async with running_engine(project) as engine:
            first_id = await engine.runner.start("session-check", None)
            first = await _finished(engine, first_id)
            up.route("/account", body={"account": "ACME"})  # logged in again meanwhile
            retry = await _retry_of(engine, "session-check", first_id)
    assert first["status"] == "failed"
    attempt = first["steps"][0]["attempts"][0]
    assert (attempt["response"]["status"], attempt["decision"]) == (200, "retry_flow")
    assert any(line["message"] == "Invalid session" for line in first["logs"])
    assert "Invalid session" in first["error"]
    assert (retry["status"], retry["retry_of"], retry["output"]) == (
        "succeeded", first_id, [{"account": "ACME"}])


async def test_scenario_2_order_status_in_the_payload_decides(tmp_path: Path) -> None:
    """Status PENDING → code 2, a retry run later; SHIPPED → code 0 with the trimmed payload;
    another order number → code 3, no retry."""
    async with Upstream() as up:
        up.route("/orders/A1", body={"order_number": "A1", "status": "PENDING", "x": 1})
        up.route("/orders/B2", body={"order_number": "Z9", "status": "SHIPPED"})
        project = load_project(_copy(tmp_path), environ={"ORDERS_API_URL": up.url})
        async with running_engine(project) as engine:
            first_id = await engine.runner.start("order-status", {"order_number": "A1"})
            first = await _finished(engine, first_id)
            up.route("/orders/A1", body={"order_number": "A1", "status": "SHIPPED", "x": 1})
            retry = await _retry_of(engine, "order-status", first_id)
            wrong_id = await engine.runner.start("order-status", {"order_number": "B2"})
            wrong = await _finished(engine, wrong_id)
            runs = await engine.store.list_runs(flow="order-status")
    assert first["status"] == "failed"
    assert "order A1 is still PENDING" in first["error"]
    assert first["steps"][0]["attempts"][0]["decision"] == "retry_flow"
    assert retry["status"] == "succeeded"
    assert retry["output"] == [{"order_number": "A1", "status": "SHIPPED"}]
    assert any(line["message"] == "order A1 is SHIPPED" for line in retry["logs"])
    assert wrong["status"] == "failed"
    assert "asked for order B2, got 'Z9'" in wrong["error"]
    assert not any(r.retry_of == wrong_id for r in runs)  # code 3: nothing queued
