"""Process flows end to end: a real engine, a real SQLite store, a real loopback upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json
from interlink.spec import Project, load_project

CHECK_RESPONSE = '''
def handle(data):
    if data["response"]["status"] == 200 and "Invalid session" in data["response"]["body"]:
        data["response_code"] = 4
        data["message"] = "Invalid session"
    return data
'''


def shop(root: Path, upstream: Upstream, *, auth: str = "", retry: str = "",
         response_script: str | None = None, flow_retry: str = "",
         extra: dict[str, str] | None = None) -> Project:
    """A project with one connector to `upstream` and a one-step flow `push`."""
    script_line = f"    response_script: {response_script}\n" if response_script else ""
    files = {
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {upstream.url}
            timeout: 5s
            {auth}
            retry: {{max_attempts: 3, initial: 50ms, max: 200ms, retry_after_cap: 3s{retry}}}
            endpoints:
              create_order: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": "name: push\n"
        f"retry: {{max_flow_retries: 2, delay: 100ms{flow_retry}}}\n"
        "steps:\n  - id: push\n    type: connector\n    connector: wh\n"
        "    endpoint: create_order\n" + script_line,
        "scripts/check_response.py": CHECK_RESPONSE,
        **(extra or {}),
    }
    return write_project(root, files)


async def finished(engine: Engine, run_id: str) -> dict[str, Any]:
    """Wait (20 s at most) for a run to end; return its JSON (as `interlink runs show --json`)."""
    run = await engine.runner.wait_for(run_id, 20)
    return await run_json(engine.store, run)


async def test_503_then_200_succeeds_and_logs_both_attempts(tmp_path: Path) -> None:
    """A 503 is retried under the policy; both attempts and the wait are in the run log."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200])
        async with running_engine(shop(tmp_path, up)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 7}))
    assert run["status"] == "succeeded"
    attempts = run["steps"][0]["attempts"]
    assert [(a["n"], a["response"]["status"], a["decision"]) for a in attempts] == [
        (1, 503, "retry_step"), (2, 200, "continue")]
    assert 0 <= attempts[0]["wait_s"] <= 0.05  # full jitter under `initial: 50ms`
    assert attempts[0]["request"]["method"] == "POST"
    assert attempts[0]["request"]["url"] == f"{up.url}/orders"
    sent = up.requests_to("/orders")
    assert sent[0].json == {"id": 7}
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    assert run["output"][0]["attempt"] == 2  # the upstream's echo is the step's output


async def test_an_upstreams_cookie_is_not_sent_back(tmp_path: Path) -> None:
    """A `Set-Cookie` in one answer is not replayed on the next call: state kept in one
    process's memory would make a call depend on which process makes it, and what ran before
    it (credentials go in headers, from the store)."""
    async with Upstream() as up:
        up.route("/orders", statuses=[200], headers={"Set-Cookie": "session=s3cr3t; Path=/"})
        project = shop(tmp_path, up)
        # A host name, not an IP address (aiohttp's jar keeps no cookie from an IP address).
        wh = tmp_path / "connectors" / "wh.yaml"
        wh.write_text(wh.read_text().replace("127.0.0.1", "localhost"))
        project = load_project(tmp_path)
        async with running_engine(project) as engine:
            for n in range(2):
                run = await finished(engine, await engine.runner.start("push", {"id": n}))
                assert run["status"] == "succeeded"
    assert [r.headers.get("Cookie") for r in up.requests_to("/orders")] == [None, None]


async def test_invalid_session_reauthenticates_once(tmp_path: Path) -> None:
    """200 + `Invalid session` → the response script says 4 → one new login → success."""
    auth = ("auth: {type: session, login: {method: POST, path: /login}, "
            "token: response.json.token, value: 'Session {{ token }}'}")
    async with Upstream() as up:
        up.route("/orders", bodies=["Invalid session", {"ok": True}])
        project = shop(tmp_path, up, auth=auth, response_script="scripts/check_response.py")
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "succeeded", run["error"]
    attempts = run["steps"][0]["attempts"]
    assert [(a["code"], a["decision"], a["message"]) for a in attempts] == [
        (4, "reauth", "Invalid session"), (0, "continue", "HTTP 200")]
    assert up.login_calls == 2  # the first login, then exactly one re-login
    sent = up.requests_to("/orders")
    assert [r.headers["Authorization"] for r in sent] == ["Session session-1", "Session session-2"]
    assert any(line["message"] == "Invalid session" for line in run["logs"])
    assert "session-1" not in str(run)  # tokens obtained at run time are redacted


async def test_code_2_fails_the_run_and_a_retry_run_succeeds(tmp_path: Path) -> None:
    """Response code 2 ends the run failed and queues a linked retry run that succeeds."""
    script = '''
def handle(data):
    if data["meta"]["retry_count"] == 0:
        data["response_code"] = 2
        data["message"] = "order locked, retry the flow"
    return data
'''
    async with Upstream() as up:
        project = shop(tmp_path, up, response_script="scripts/flaky.py",
                       extra={"scripts/flaky.py": script})
        async with running_engine(project) as engine:
            first_id = await engine.runner.start("push", {"id": 5})
            first = await finished(engine, first_id)
            retries = await engine.store.list_runs(flow="push")
            retry_run = next(r for r in retries if r.retry_of == first_id)
            second = await finished(engine, retry_run.id)
    assert first["status"] == "failed"
    assert "order locked, retry the flow" in first["error"]
    assert first["steps"][0]["attempts"][0]["decision"] == "retry_flow"
    assert second["retry_of"] == first_id
    assert second["input"] == {"id": 5}
    assert second["trigger"] == "retry"
    assert second["status"] == "succeeded"
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 5}, {"id": 5}]


async def test_code_2_with_an_upstream_that_never_recovers(tmp_path: Path) -> None:
    """An upstream that keeps failing the flow gets exactly max_flow_retries retry runs."""
    script = 'def handle(data):\n    data["response_code"] = 2\n    return data\n'
    async with Upstream() as up:
        project = shop(tmp_path, up, response_script="scripts/always2.py",
                       extra={"scripts/always2.py": script})
        async with running_engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 9})
            chain = [await finished(engine, run_id)]
            for _ in range(2):
                runs = await engine.store.list_runs(flow="push")
                nxt = next(r for r in runs if r.retry_of == chain[-1]["id"])
                chain.append(await finished(engine, nxt.id))
            runs = await engine.store.list_runs(flow="push")
    assert len(runs) == 3  # the first run and exactly max_flow_retries (2) retries
    assert [r["status"] for r in chain] == ["failed"] * 3
    assert [r["retry_of"] for r in chain] == [None, chain[0]["id"], chain[1]["id"]]
    assert any("2 of 2 retries used" in line["message"] for line in chain[-1]["logs"])


async def test_code_3_fails_and_queues_nothing(tmp_path: Path) -> None:
    """A 404 (code 3 by the default classifier) fails the run; no retry run, no queue item."""
    async with Upstream() as up:
        up.route("/orders", statuses=[404])
        async with running_engine(shop(tmp_path, up)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 3}))
            runs = await engine.store.list_runs()
            items = await engine.store.list_items(status="ready")
    assert run["status"] == "failed"
    assert run["steps"][0]["attempts"][0]["decision"] == "fail"
    assert len(runs) == 1
    assert items == []
    assert len(up.requests_to("/orders")) == 1


async def test_retry_after_is_honoured_durably(tmp_path: Path) -> None:
    """429 with Retry-After: 2 → the next attempt is sent at least 2 s later."""
    async with Upstream() as up:
        up.route("/orders", statuses=[429, 200], retry_after="2")
        async with running_engine(shop(tmp_path, up)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 4}))
    assert run["status"] == "succeeded"
    first, _second = run["steps"][0]["attempts"]
    assert first["wait_s"] == 2.0
    sent = up.requests_to("/orders")
    assert sent[1].at - sent[0].at >= 2.0
    assert any("retrying in 2s" in line["message"] for line in run["logs"])


async def test_retry_after_is_capped(tmp_path: Path) -> None:
    """Retry-After: 3600 waits only retry_after_cap (3 s here)."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200], retry_after="3600")
        async with running_engine(shop(tmp_path, up)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 4}))
    assert run["status"] == "succeeded"
    assert run["steps"][0]["attempts"][0]["wait_s"] == 3.0


async def test_attempts_run_out(tmp_path: Path) -> None:
    """An upstream that keeps answering 503 fails the run after max_attempts."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        async with running_engine(shop(tmp_path, up)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 4}))
    assert run["status"] == "failed"
    assert len(run["steps"][0]["attempts"]) == 3
    assert "no attempts left" in run["error"]
    assert "(attempt 3 of 3)" in run["error"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("def handle(data):\n    raise ValueError('boom')\n", "raised ValueError: boom"),
        ("def handle(data):\n    while True:\n        pass\n", "timed out after 1s"),
        ("def handle(data):\n    return [1, 2]\n", "returned list, expected a dict"),
    ],
    ids=["raises", "loops", "garbage"],
)
async def test_a_bad_script_fails_its_step_and_the_engine_goes_on(
    tmp_path: Path, script: str, reason: str
) -> None:
    """A raising, looping or garbage-returning script fails its step with a clear reason."""
    files = {
        "flows/bad.yaml": "name: bad\nsteps:\n  - {id: s, type: script, script: scripts/bad.py,"
                          " timeout: 1s}\n",
        "flows/good.yaml": "name: good\nsteps:\n  - {id: s, type: script, script: scripts/ok.py}\n",
        "scripts/bad.py": script,
        "scripts/ok.py": "def handle(data):\n    data['payload'] = {'ok': data['payload']}\n"
                         "    return data\n",
    }
    async with running_engine(write_project(tmp_path, files)) as engine:
        bad = await finished(engine, await engine.runner.start("bad", 1))
        good = await finished(engine, await engine.runner.start("good", 2))
    assert bad["status"] == "failed"
    assert reason in bad["error"]
    assert bad["steps"][0]["status"] == "failed"
    assert good["status"] == "succeeded"
    assert good["output"] == [{"ok": 2}]


async def test_each_run_keeps_its_flow_definition(tmp_path: Path) -> None:
    """A run retried after the flow file changed runs the definition it started with."""
    ready = tmp_path / "ready"  # script a fails until this file exists
    files = {
        "flows/f.yaml": "name: f\nsteps:\n  - {id: a, type: script, script: scripts/a.py}\n",
        "scripts/a.py": "import pathlib\n\ndef handle(data):\n"
                        f"    if not pathlib.Path({str(ready)!r}).exists():\n"
                        "        raise RuntimeError('not ready')\n"
                        "    data['payload'] = 'a'\n    return data\n",
        "scripts/b.py": "def handle(data):\n    data['payload'] = 'b'\n    return data\n",
    }
    project = write_project(tmp_path, files)
    async with running_engine(project) as engine:
        first = await finished(engine, await engine.runner.start("f", None))
    assert first["status"] == "failed"
    ready.touch()
    files["flows/f.yaml"] = files["flows/f.yaml"].replace("scripts/a.py", "scripts/b.py")
    changed = write_project(tmp_path, files)
    async with running_engine(changed) as engine:
        retried = await finished(engine, await engine.runner.retry(first["id"]))
        fresh = await finished(engine, await engine.runner.start("f", None))
    assert retried["output"] == ["a"]
    assert retried["retry_of"] == first["id"]
    assert fresh["output"] == ["b"]


async def test_a_bucket_flows_from_step_to_step(tmp_path: Path) -> None:
    """A script step's output is the next connector step's payload; the response is output."""
    files = {
        "flows/chain.yaml": """
            name: chain
            variables: {channel: web}
            steps:
              - {id: shape, type: script, script: scripts/shape.py}
              - {id: push, type: connector, connector: wh, endpoint: create_order,
                 body: "{'order': payload, 'channel': variables.channel}"}
            """,
        "scripts/shape.py": "def handle(data):\n    data['payload'] = {'n': data['payload'] * 2}"
                            "\n    return data\n",
    }
    async with Upstream() as up:
        project = shop(tmp_path, up, extra=files)
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("chain", 21))
    assert run["status"] == "succeeded", run["error"]
    assert up.requests_to("/orders")[0].json == {"order": {"n": 42}, "channel": "web"}
    assert [s["id"] for s in run["steps"]] == ["shape", "push"]


async def test_a_raising_response_script_fails_the_step_and_records_the_attempt(
    tmp_path: Path,
) -> None:
    """A response script that raises fails the step; the attempt is kept with the reason."""
    async with Upstream() as up:
        project = shop(tmp_path, up, response_script="scripts/boom.py",
                       extra={"scripts/boom.py": "def handle(data):\n    raise KeyError('x')\n"})
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "failed"
    assert "response script failed" in run["error"]
    [attempt] = run["steps"][0]["attempts"]
    assert attempt["response"]["status"] == 200
    assert "raised KeyError" in attempt["error"]


async def test_reauthentication_is_bounded(tmp_path: Path) -> None:
    """A script that keeps answering 4 gets one re-login, then the step fails."""
    auth = ("auth: {type: session, login: {method: POST, path: /login}, "
            "token: response.json.token}")
    always4 = 'def handle(data):\n    data["response_code"] = 4\n    return data\n'
    async with Upstream() as up:
        project = shop(tmp_path, up, auth=auth, response_script="scripts/always4.py",
                       extra={"scripts/always4.py": always4})
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "failed"
    assert "still not authenticated after 1 re-authentication(s)" in run["error"]
    assert [a["decision"] for a in run["steps"][0]["attempts"]] == ["reauth", "fail"]
    assert up.login_calls == 2


async def test_a_body_expression_that_fails_fails_the_step(tmp_path: Path) -> None:
    """An error in the step's body expression fails the run with the expression named."""
    files = {"flows/calc.yaml": "name: calc\nsteps:\n  - {id: push, type: connector, "
                                "connector: wh, endpoint: create_order, body: \"payload.n + 1\"}\n"}
    async with Upstream() as up, running_engine(shop(tmp_path, up, extra=files)) as engine:
        run = await finished(engine, await engine.runner.start("calc", {"n": "text"}))
    assert run["status"] == "failed"
    assert "building the request body" in run["error"]
    assert "payload.n + 1" in run["error"]
    assert up.requests_to("/orders") == []


async def test_a_script_step_can_fail_the_flow_and_log(tmp_path: Path) -> None:
    """A script step returning code 3 fails the run; its message and logs are in the run log."""
    script = ('def handle(data):\n    data["logs"] = ["checked stock"]\n'
              '    data["message"] = "out of stock"\n    data["response_code"] = 3\n'
              '    return data\n')
    files = {"flows/check.yaml": "name: check\nsteps:\n  - {id: s, type: script, "
                                 "script: scripts/check.py}\n",
             "scripts/check.py": script}
    async with running_engine(write_project(tmp_path, files)) as engine:
        run = await finished(engine, await engine.runner.start("check", 1))
    assert run["status"] == "failed"
    assert run["error"] == "step s: out of stock"
    assert [line["message"] for line in run["logs"]][:2] == ["checked stock", "out of stock"]
