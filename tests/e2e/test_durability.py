"""Crashes and scale-out with real processes: `interlink serve` and `interlink worker`."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from tests.processes import free_port, interlink, wait_all_ended, wait_healthy
from tests.projects import write_project
from tests.upstream import Upstream

from interlink.store import open_store


async def test_sigkill_of_serve_loses_no_run(tmp_path: Path) -> None:
    """200 webhook runs, serve killed with SIGKILL mid-way, restarted: all 200 succeed."""
    port = free_port()
    async with Upstream() as up:
        up.route("/orders", delay=0.2)
        write_project(tmp_path, {
            # A short timeout too: a call in flight at the kill is taken over once its
            # timeout and the lease have passed (decision 0021).
            "connectors/wh.yaml": f"name: wh\nbase_url: {up.url}\ntimeout: 3s\n"
                                  "endpoints: {create: {method: POST, path: /orders}}\n",
            "flows/push.yaml": "name: push\ntrigger: {type: webhook, path: /hooks/orders}\n"
                               "steps:\n  - {id: push, type: connector, connector: wh,"
                               " endpoint: create}\n",
        })
        config = tmp_path / "interlink.yaml"
        # Short leases so the restarted server takes over the killed one's runs quickly.
        config.write_text(config.read_text() + "worker: {lease: 2s, concurrency: 8}\n")
        log = tmp_path / "serve.log"
        accepted: list[str] = []
        with interlink("serve", str(tmp_path), "--port", str(port), log=log) as first:
            await wait_healthy(port, first)
            async with aiohttp.ClientSession() as http:
                for n in range(200):
                    async with http.post(f"http://127.0.0.1:{port}/hooks/orders",
                                         json={"id": n}) as r:
                        assert r.status == 202
                        accepted.append((await r.json())["run_id"])
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        async with open_store(f"sqlite:///{tmp_path}/.interlink/test.db", tmp_path) as store:
            before = Counter(r.status for r in await store.list_runs(limit=500))
            assert before["succeeded"] < 200, "the kill came too late to test anything"
            with interlink("serve", str(tmp_path), "--port", str(port), log=log) as second:
                await wait_healthy(port, second)
                ended = await wait_all_ended(store, 200)
    assert sorted(r.id for r in ended) == sorted(accepted)
    assert {r.status for r in ended} == {"succeeded"}, log.read_text()[-3000:]
    ids = Counter(req.json["id"] for req in up.requests_to("/orders"))
    assert set(ids) == set(range(200))  # every order reached the upstream (at least once)


PPID_SCRIPT = """
import os


def handle(data):
    data["payload"] = {"id": data["payload"], "worker": os.getppid()}
    return data
"""


@pytest.mark.postgres
async def test_two_workers_on_postgres_share_runs_and_one_login(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two `interlink worker`s share 1,000 runs, each once; 50 runs seeing 401 → one login."""
    async with Upstream() as up:
        up.route("/orders", requires_login=True)
        project = write_project(tmp_path, {
            "connectors/wh.yaml": f"""
                name: wh
                base_url: {up.url}
                auth: {{type: session, login: {{path: /login}}, token: response.json.token,
                        value: "Session {{{{ token }}}}"}}
                endpoints: {{create: {{method: POST, path: /orders}}}}
                """,
            "flows/push.yaml": "name: push\nsteps:\n"
                               "  - {id: tag, type: script, script: scripts/tag.py}\n"
                               "  - {id: push, type: connector, connector: wh, endpoint: create}\n",
            "scripts/tag.py": PPID_SCRIPT,
        }, store=f"'{postgres_url}'")
        config = tmp_path / "interlink.yaml"
        config.write_text(config.read_text() + "worker: {concurrency: 25, poll: 100ms}\n"
                          "scripts: {processes: 2}\n")
        from interlink.engine import Engine

        async with Engine(project) as engine:
            # Log in once, so every later request starts with a token.
            warmup = await engine.runner.start("push", -1)
            with interlink("worker", str(tmp_path), log=tmp_path / "w1.log"), \
                    interlink("worker", str(tmp_path), log=tmp_path / "w2.log"):
                first = await engine.runner.wait_for(warmup, 30)
                assert (first.status, up.login_calls) == ("succeeded", 1), first.error
                up.revoke_tokens()
                await asyncio.gather(*(engine.runner.start("push", n) for n in range(50)))
                await wait_all_ended(engine.store, 51, 60)
                assert up.login_calls == 2  # 50 requests saw 401; one re-login for all
                await asyncio.gather(*(engine.runner.start("push", n)
                                       for n in range(50, 1000)))
                ended = await wait_all_ended(engine.store, 1001, 120)
    assert len(ended) == 1001
    assert {r.status for r in ended} == {"succeeded"}
    pushed = [req.json for req in up.requests_to("/orders") if req.headers.get(
        "Authorization") != "Session session-1" or req.json["id"] == -1]
    per_order = Counter(p["id"] for p in pushed)
    assert set(per_order) == set(range(-1, 1000))
    assert max(per_order.values()) == 1  # each run executed once
    assert len({p["worker"] for p in pushed}) == 2  # both workers took a share
    assert up.login_calls == 2
