"""Secrets never reach the store: a token a login returned, echoed into outputs and errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.flows.report import run_json

LEAK = '''
def handle(data):
    raise RuntimeError("the upstream said: " + data["payload"]["headers"]["Authorization"])
'''


async def test_a_token_from_a_login_is_redacted_from_every_stored_column(tmp_path: Path) -> None:
    """The login's token, echoed in a step's output and a run's error, is stored as ***."""
    async with Upstream() as up:
        up.route("/orders", requires_login=True)  # echoes the request, Authorization included
        project = write_project(tmp_path, {
            "connectors/wh.yaml": f"""
                name: wh
                base_url: {up.url}
                auth: {{type: session, login: {{path: /login}}, token: response.json.token,
                        value: "Session {{{{ token }}}}"}}
                endpoints: {{create: {{method: POST, path: /orders}}}}
                """,
            "flows/echo.yaml": "name: echo\nsteps:\n"
                               "  - {id: push, type: connector, connector: wh, endpoint: create}\n",
            "flows/leak.yaml": "name: leak\nsteps:\n"
                               "  - {id: push, type: connector, connector: wh, endpoint: create}\n"
                               "  - {id: oops, type: script, script: scripts/leak.py}\n",
            "scripts/leak.py": LEAK,
        })
        async with running_engine(project) as engine:
            echoed = await engine.runner.wait_for(await engine.runner.start("echo", {"id": 1}), 20)
            leaked = await engine.runner.wait_for(await engine.runner.start("leak", {"id": 2}), 20)
            shown = orjson.dumps([await run_json(engine.store, run) for run in (echoed, leaked)])

    assert echoed.status == "succeeded"
    assert echoed.bucket is not None
    assert echoed.bucket[0]["headers"]["Authorization"] == "Session ***"
    assert leaked.status == "failed"
    assert "the upstream said: Session ***" in (leaked.error or "")
    assert b"session-1" not in shown
    with sqlite3.connect(tmp_path / ".interlink" / "test.db") as db:
        for table in ("runs", "steps", "attempts", "logs", "queue"):
            for row in db.execute(f"SELECT * FROM {table}"):
                assert "session-1" not in repr(row), table
        # The token store is the one place the token is kept (shared by every process).
        assert "session-1" in repr(db.execute("SELECT token FROM credentials").fetchall())
