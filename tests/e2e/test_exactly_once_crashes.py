"""Exactly once across SIGKILL: attempt and re-auth budgets, payloads already delivered and
queued service requests survive a killed `interlink worker` / `interlink serve` process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

import aiohttp
from tests.processes import free_port, interlink, wait_healthy, wait_until
from tests.projects import write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.runner import RUN_KIND
from interlink.ids import new_id
from interlink.store import Enqueue, InsertRun, RunRecord, open_store

#: short leases, so a restarted process takes a killed one's work over within a second
CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\n" \
         "worker: {lease: 1s, poll: 50ms, concurrency: 4}\n"


def project_files(url: str, *, retry: str, path: str = "/orders", auth: str = "") -> dict[str, str]:
    """A connector `wh` (one endpoint `create` at `path`) and a flow `push` calling it."""
    return {
        "interlink.yaml": CONFIG,
        "connectors/wh.yaml": f"name: wh\nbase_url: {url}\ntimeout: 5s\nretry: {retry}\n{auth}\n"
                              f"endpoints:\n  create: {{method: POST, path: \"{path}\"}}\n",
        "flows/push.yaml": "name: push\nsteps:\n"
                           "  - {id: push, type: connector, connector: wh, endpoint: create}\n",
    }


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def test_a_killed_worker_never_sends_more_than_max_attempts(tmp_path: Path) -> None:
    """Killed while attempt 2 of 4 is in flight: after the restart 2 more are sent, not 4."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503], delay=0.3)
        project = write_project(tmp_path, project_files(
            up.url, retry="{max_attempts: 4, initial: 200ms, multiplier: 1, jitter: none}"))
        async with Engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            with interlink("worker", str(tmp_path), log=tmp_path / "w1.log") as first:
                await wait_until("attempt 2", lambda: len(up.requests_to("/orders")) >= 2)
                kill(first)
            with interlink("worker", str(tmp_path), log=tmp_path / "w2.log"):
                run = await engine.runner.wait_for(run_id, 30)
            attempts = await engine.store.get_attempts(run_id)

    assert run.status == "failed"
    assert "no attempts left" in (run.error or "")
    sent = up.requests_to("/orders")
    assert len(sent) == 4
    assert {r.headers["Idempotency-Key"] for r in sent} == {f"{run_id}:push:0"}
    assert [a.n for a in attempts] == [1, 2, 3, 4]
    assert attempts[1].decision == "unknown"  # its answer died with the first worker


async def test_a_killed_worker_does_not_send_a_delivered_payload_again(tmp_path: Path) -> None:
    """Three payloads, killed while the second is in flight: the first is not sent again."""
    async with Upstream() as up:
        up.route("/orders/1", delay=1.0, body={"n": 1})
        up.route("/orders/0", body={"n": 0})
        up.route("/orders/2", body={"n": 2})
        project = write_project(tmp_path, project_files(
            up.url, retry="{max_attempts: 3}", path="/orders/{{ payload.id }}"))
        async with Engine(project) as engine:
            fresh = engine.runner.new_run(project.flows["push"], None, trigger="test")
            run = replace(fresh, bucket=[{"id": 0}, {"id": 1}, {"id": 2}])
            await engine.store.write(InsertRun(run),
                                     Enqueue(new_id("q_"), RUN_KIND, {"run_id": run.id}))
            with interlink("worker", str(tmp_path), log=tmp_path / "w1.log") as first:
                await wait_until("payload 1 sent", lambda: up.requests_to("/orders/1"))
                kill(first)
            with interlink("worker", str(tmp_path), log=tmp_path / "w2.log"):
                ended: RunRecord = await engine.runner.wait_for(run.id, 30)

    assert ended.status == "succeeded", ended.error
    assert ended.bucket == [{"n": 0}, {"n": 1}, {"n": 2}]
    sent = Counter(r.path for r in up.requests)
    assert sent == {"/orders/0": 1, "/orders/1": 2, "/orders/2": 1}
    assert len({r.headers["Idempotency-Key"] for r in up.requests_to("/orders/1")}) == 1


SESSION = """auth: {type: session, login: {path: /login}, token: response.json.token,
       value: "Session {{ token }}"}"""


async def test_a_killed_worker_does_not_log_in_again_past_max_reauth(tmp_path: Path) -> None:
    """Killed during its one re-login: the restarted worker does not log in a third time."""
    async with Upstream(login_delay=0.8) as up:
        up.route("/orders", statuses=[401])
        project = write_project(tmp_path, project_files(
            up.url, retry="{max_attempts: 4, max_reauth: 1}", auth=SESSION))
        async with Engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 3})
            with interlink("worker", str(tmp_path), log=tmp_path / "w1.log") as first:
                await wait_until("the re-login", lambda: up.login_calls >= 2)
                kill(first)
            with interlink("worker", str(tmp_path), log=tmp_path / "w2.log"):
                run = await engine.runner.wait_for(run_id, 30)

    assert run.status == "failed"
    assert "HTTP 401 after 1 re-authentication" in (run.error or "")
    assert up.login_calls == 2  # the first login, and the one re-login the kill interrupted


QUEUED = """
name: orders
path: /orders
activity: {flow: push}
request_processor: {max_attempts: 10, delay: 200ms, backoff: 1}
responses:
  - queue_when: "error is not none"
    status: 202
    body: {from: json, value: {queued: "{{ queue_item_id }}"}}
  - on: default
    body: {from: context, key: result.payload}
"""


async def test_a_killed_serve_leaves_one_run_per_queued_request(tmp_path: Path) -> None:
    """serve killed while its processor re-drives a queued request: still one run, one key."""
    port = free_port()
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200], delay=0.5, body={"created": True})
        files = project_files(up.url, retry="{max_attempts: 1}")
        write_project(tmp_path, {**files, "services/orders.yaml": QUEUED})
        log = tmp_path / "serve.log"
        with interlink("serve", str(tmp_path), "--port", str(port), log=log) as first:
            await wait_healthy(port, first)
            async with aiohttp.ClientSession() as http, http.post(
                    f"http://127.0.0.1:{port}/orders", json={"id": 4}) as answer:
                assert answer.status == 202
                item_id = (await answer.json())["queued"]
            await wait_until("the processor's attempt", lambda: len(up.requests) >= 2)
            kill(first)
        with interlink("serve", str(tmp_path), "--port", str(port), log=log) as second:
            await wait_healthy(port, second)
            async with open_store(f"sqlite:///{tmp_path}/.interlink/test.db", tmp_path) as store:
                for _ in range(300):
                    item = await store.get_item(item_id)
                    if item is not None and item.status == "done":
                        break
                    await asyncio.sleep(0.1)
                runs = await store.list_runs()

    assert item is not None and item.status == "done", log.read_text()[-2000:]
    assert len(runs) == 1
    assert runs[0].status == "succeeded"
    assert item.result["run_id"] == runs[0].id
    assert {r.headers["Idempotency-Key"] for r in up.requests} == {f"{runs[0].id}:push:0"}


async def test_steps_that_waited_for_a_killed_login_keep_their_reauthentication(
    tmp_path: Path,
) -> None:
    """Five 401s, one login, killed mid-login: only the step that logged in counted it."""
    async with Upstream(login_delay=1.0) as up:
        up.route("/orders", requires_login=True)
        config = CONFIG.replace("concurrency: 4", "concurrency: 8")
        files = project_files(up.url, retry="{max_attempts: 4, max_reauth: 1}", auth=SESSION)
        project = write_project(tmp_path, {**files, "interlink.yaml": config})
        async with Engine(project) as engine:
            await engine.runner.connector("wh").auth.apply()  # token 1, in the store
            up.revoke_tokens()
            ids = [await engine.runner.start("push", {"id": n}) for n in range(5)]
            with interlink("worker", str(tmp_path), log=tmp_path / "w1.log") as first:
                await wait_until("five refusals", lambda: len(up.requests_to("/orders")) >= 5)
                await wait_until("the re-login", lambda: up.login_calls >= 2)
                kill(first)
            with interlink("worker", str(tmp_path), log=tmp_path / "w2.log"):
                runs = [await engine.runner.wait_for(i, 30) for i in ids]
            counted = [sum(a.reauth for a in await engine.store.get_attempts(i)) for i in ids]

    # The step whose login was killed used its one re-authentication; the others did not.
    assert sum(r.status == "succeeded" for r in runs) >= 4, [r.error for r in runs]
    assert sum(counted) <= 2
    assert up.login_calls <= 3
