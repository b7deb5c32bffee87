"""`interlink run`, `runs`, `runs show`, `runs retry` and the runs API, as a user drives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.projects import running_engine, write_project

from interlink.engine import Engine
from interlink.server import build_app
from interlink.services import call_app

FILES = {
    "flows/greet.yaml": """
        name: greet
        variables: {greeting: Hello}
        steps:
          - {id: greet, type: script, script: scripts/greet.py}
        """,
    "flows/broken.yaml": "name: broken\nsteps:\n  - {id: s, type: script, script: scripts/no.py}\n",
    "scripts/greet.py": (
        "def handle(data):\n"
        "    data['payload'] = {'message': data['flow']['variables']['greeting'] + ', '"
        " + data['payload']['name']}\n"
        "    data['message'] = 'greeted'\n"
        "    return data\n"
    ),
    "scripts/no.py": "def handle(data):\n    raise RuntimeError('no')\n",
}


def cli(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in the project folder."""
    return subprocess.run(
        [sys.executable, "-m", "interlink.cli", *args], cwd=root, input=stdin,
        capture_output=True, text=True, timeout=60, check=False, env=dict(os.environ),
    )


def test_run_runs_show_and_retry(tmp_path: Path) -> None:
    """A run started from the CLI is listed and shown with the FORMAT.md fields; a failed one
    is retried."""
    write_project(tmp_path, FILES)
    done = cli(tmp_path, "run", "greet", "--payload", "-", "--json", stdin='{"name": "Ada"}')
    assert done.returncode == 0, done.stderr
    run: dict[str, Any] = json.loads(done.stdout)
    assert {"id", "flow", "status", "trigger", "retry_of", "created_at", "finished_at", "error",
            "steps", "logs"} <= set(run)
    assert (run["flow"], run["status"], run["trigger"]) == ("greet", "succeeded", "manual")
    assert run["output"] == [{"message": "Hello, Ada"}]
    assert [(s["id"], s["status"]) for s in run["steps"]] == [("greet", "succeeded")]
    assert [line["message"] for line in run["logs"]] == ["greeted"]

    failed = cli(tmp_path, "run", "broken", "--payload", "-", "--json", stdin='{"n": 9}')
    assert failed.returncode == 1
    broken: dict[str, Any] = json.loads(failed.stdout)
    assert "raised RuntimeError: no" in broken["error"]

    listed = json.loads(cli(tmp_path, "runs", "--json").stdout)
    assert [r["flow"] for r in listed] == ["broken", "greet"]
    assert "steps" not in listed[0]
    only_ok = json.loads(cli(tmp_path, "runs", "--status", "succeeded", "--json").stdout)
    assert [r["id"] for r in only_ok] == [run["id"]]

    shown = json.loads(cli(tmp_path, "runs", "show", run["id"], "--json").stdout)
    assert shown == run
    text = cli(tmp_path, "runs", "show", run["id"]).stdout
    assert f"run {run['id']}  flow greet  SUCCEEDED" in text

    retried = cli(tmp_path, "runs", "retry", broken["id"])
    assert retried.returncode == 0, retried.stderr
    retry_id = retried.stdout.strip()
    queued = json.loads(cli(tmp_path, "runs", "show", retry_id, "--json").stdout)
    assert (queued["status"], queued["retry_of"], queued["input"]) == (
        "queued", broken["id"], {"n": 9})
    items = json.loads(cli(tmp_path, "queue", "--json").stdout)
    assert [(i["kind"], i["status"]) for i in items] == [("run", "ready")]

    missing = cli(tmp_path, "runs", "show", "r_nope")
    assert missing.returncode == 1
    assert "no such run" in missing.stderr


async def test_the_runs_api(tmp_path: Path) -> None:
    """POST /_interlink/flows/{name}/runs answers 202 with a run id; GET shows the run."""
    project = write_project(tmp_path, FILES)
    async with running_engine(project) as engine:
        app = build_app(engine, None)
        started = await call_app(app, "POST", "/_interlink/flows/greet/runs",
                                 headers={"content-type": "application/json"},
                                 body=b'{"name": "Bo"}')
        assert started.status == 202
        run_id = started.json()["run_id"]
        await engine.runner.wait_for(run_id, 20)
        shown = await call_app(app, "GET", f"/_interlink/runs/{run_id}")
        unknown_flow = await call_app(app, "POST", "/_interlink/flows/nope/runs")
        unknown_run = await call_app(app, "GET", "/_interlink/runs/r_nope")
    assert shown.status == 200
    assert (shown.json()["status"], shown.json()["output"]) == (
        "succeeded", [{"message": "Hello, Bo"}])
    assert (unknown_flow.status, unknown_run.status) == (404, 404)


async def test_health_reports_the_worker(tmp_path: Path) -> None:
    """/_interlink/health is 200 with the project name once the engine is open."""
    project = write_project(tmp_path, FILES)
    async with Engine(project) as engine:
        health = await call_app(build_app(engine, None), "GET", "/_interlink/health")
    assert health.status == 200
    assert health.json()["project"] == "test"


async def test_webhooks_queue_runs_and_refuse_huge_bodies(tmp_path: Path) -> None:
    """A webhook POST answers 202 with a queued run; a body over 10 MB gets 413, no run."""
    files = {**FILES, "flows/hook.yaml": "name: hook\ntrigger: {type: webhook, path: /hooks/x}\n"
             "variables: {greeting: Hello}\n"
             "steps:\n  - {id: greet, type: script, script: scripts/greet.py}\n"}
    project = write_project(tmp_path, files)
    async with running_engine(project) as engine:
        app = build_app(engine, None)
        queued = await call_app(app, "POST", "/hooks/x", body=b'{"name": "Cy"}')
        run = await engine.runner.wait_for(queued.json()["run_id"], 20)
        huge = await call_app(app, "POST", "/hooks/x", body=b"x" * (10 * 1024 * 1024 + 1))
        wrong_method = await call_app(app, "GET", "/hooks/x")
        runs = await engine.store.list_runs()
    assert (queued.status, queued.json()["status"]) == (202, "queued")
    assert {"server", "date", "cache-control", "content-type"} <= set(queued.headers)
    assert (run.trigger, run.status, run.bucket) == ("webhook", "succeeded",
                                                    [{"message": "Hello, Cy"}])
    assert huge.status == 413
    assert wrong_method.status in (404, 405)
    assert len(runs) == 1
