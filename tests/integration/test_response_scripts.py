"""Response scripts and script steps as the source document describes them, against a real
engine, SQLite store and loopback upstream (or a port nothing listens on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.processes import free_port
from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json
from interlink.spec import Project

#: records what it saw in the run log, then decides from the error kind or the payload
JUDGE = '''
def handle(data):
    response, error = data["response"], data["error"]
    data["logs"] = ["request %s %s auth=%s body=%s" % (
        data["request"]["method"], data["request"]["url"],
        data["request"]["headers"].get("Authorization"), data["request"]["body"])]
    if response is None:
        data["response_code"] = 3
        data["message"] = "no answer (%s): %s" % (error["type"], error["message"])
        return data
    if response.get("json", {}).get("status") == "BACKORDER":
        data["response_code"] = 2
        data["message"] = "order %s is backordered" % response["json"]["order"]
        return data
    data["payload"] = {"order": response["json"]["order"], "checked": True}
    data["response_code"] = 0
    return data
'''


def project(root: Path, url: str, *, steps: str, files: dict[str, str] | None = None) -> Project:
    """A connector `wh` (bearer auth) to `url` and a flow `push` with `steps`."""
    return write_project(root, {
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {url}
            timeout: 500ms
            auth: {{type: bearer, token: secret-token-123}}
            retry: {{max_attempts: 2, initial: 10ms}}
            endpoints:
              create: {{method: POST, path: /orders}}
              price: {{method: GET, path: "/prices/{{{{ payload.sku }}}}"}}
            """,
        "flows/push.yaml": "name: push\nretry: {max_flow_retries: 0}\nsteps:\n" + steps,
        "scripts/judge.py": JUDGE,
        **(files or {}),
    })


JUDGED = "  - {id: push, type: connector, connector: wh, endpoint: create," \
         " response_script: scripts/judge.py}\n"


async def finished(engine: Engine, run_id: str) -> dict[str, Any]:
    """The run's JSON once it ended (20 s at most)."""
    return await run_json(engine.store, await engine.runner.wait_for(run_id, 20))


async def test_a_response_script_judges_a_connection_that_failed(tmp_path: Path) -> None:
    """Connection refused: the script runs with response None and error.type, and decides."""
    url = f"http://127.0.0.1:{free_port()}"
    async with running_engine(project(tmp_path, url, steps=JUDGED)) as engine:
        run = await finished(engine, await engine.runner.start("push", {"order": 1}))
    assert run["status"] == "failed"
    assert run["error"].startswith("calling wh.create: no answer (connect): connection refused")
    assert len(run["steps"][0]["attempts"]) == 1  # code 3: no retry, though a classifier would


async def test_a_response_script_judges_a_timeout(tmp_path: Path) -> None:
    """A timed-out attempt reaches the script as error.type `timeout`."""
    async with Upstream() as up:
        up.route("/orders", delay=2.0)
        async with running_engine(project(tmp_path, up.url, steps=JUDGED)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"order": 2}))
    assert "no answer (timeout): timed out after 500ms" in run["error"]


async def test_a_response_script_sees_the_request_and_may_replace_the_payload(
    tmp_path: Path,
) -> None:
    """The script sees the request (credentials masked); its payload becomes the output."""
    async with Upstream() as up:
        up.route("/orders", body={"order": 3, "status": "OK"})
        async with running_engine(project(tmp_path, up.url, steps=JUDGED)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"order": 3}))
    assert run["status"] == "succeeded"
    assert run["output"] == [{"order": 3, "checked": True}]
    logged = [line["message"] for line in run["logs"]]
    assert logged == [f"request POST {up.url}/orders auth=*** body={{\"order\":3}}"]
    assert "secret-token-123" not in str(run)


async def test_scenario_2_a_status_in_the_payload_retries_the_flow(tmp_path: Path) -> None:
    """A 200 whose payload says BACKORDER is failed with code 2 and the script's message."""
    async with Upstream() as up:
        up.route("/orders", body={"order": 4, "status": "BACKORDER"})
        async with running_engine(project(tmp_path, up.url, steps=JUDGED)) as engine:
            run = await finished(engine, await engine.runner.start("push", {"order": 4}))
    assert run["status"] == "failed"
    assert run["error"] == "calling wh.create: order 4 is backordered (attempt 1 of 2)"
    assert run["steps"][0]["attempts"][0]["decision"] == "retry_flow"


RETRYING = '''
def handle(data):
    if data["meta"]["attempt"] < 3:
        data["response_code"] = 1
        data["message"] = "not yet (attempt %d)" % data["meta"]["attempt"]
    else:
        data["payload"] = {"ready": data["meta"]["attempt"]}
    return data
'''

REAUTH = '''
def handle(data):
    data["response_code"] = 4
    return data
'''


async def test_a_script_step_may_ask_to_be_retried(tmp_path: Path) -> None:
    """Code 1 from a script step retries it under the step's retry policy, each retry logged."""
    steps = "  - id: wait\n    type: script\n    script: scripts/retrying.py\n" \
            "    retry: {max_attempts: 3, initial: 10ms}\n"
    files = {"scripts/retrying.py": RETRYING}
    async with running_engine(project(tmp_path, "http://127.0.0.1:9", steps=steps,
                                      files=files)) as engine:
        run = await finished(engine, await engine.runner.start("push", {}))
    assert run["status"] == "succeeded"
    assert run["output"] == [{"ready": 3}]
    attempts = run["steps"][0]["attempts"]
    assert [(a["n"], a["decision"], a["message"]) for a in attempts] == [
        (1, "retry_step", "not yet (attempt 1)"), (2, "retry_step", "not yet (attempt 2)")]


async def test_a_script_step_out_of_retries_fails(tmp_path: Path) -> None:
    """Code 1 past max_attempts fails the step, naming the attempts."""
    steps = "  - id: wait\n    type: script\n    script: scripts/retrying.py\n" \
            "    retry: {max_attempts: 2, initial: 10ms}\n"
    files = {"scripts/retrying.py": RETRYING}
    async with running_engine(project(tmp_path, "http://127.0.0.1:9", steps=steps,
                                      files=files)) as engine:
        run = await finished(engine, await engine.runner.start("push", {}))
    assert run["status"] == "failed"
    assert run["error"] == "step wait: not yet (attempt 2) (attempt 2 of 2); no attempts left"


async def test_code_4_in_a_script_step_fails_it_clearly(tmp_path: Path) -> None:
    """Re-authenticate means nothing outside a response script: the step fails and says so."""
    steps = "  - {id: odd, type: script, script: scripts/reauth.py}\n"
    async with running_engine(project(tmp_path, "http://127.0.0.1:9", steps=steps,
                                      files={"scripts/reauth.py": REAUTH})) as engine:
        run = await finished(engine, await engine.runner.start("push", {}))
    assert run["status"] == "failed"
    assert "response_code 4 (re-authenticate) only means something" in run["error"]


async def test_a_path_built_from_a_missing_value_is_not_sent(tmp_path: Path) -> None:
    """`/prices/{{ payload.sku }}` without a sku fails before sending, naming the expression."""
    steps = "  - {id: price, type: connector, connector: wh, endpoint: price}\n"
    async with Upstream() as up, running_engine(project(tmp_path, up.url, steps=steps)) as engine:
        run = await finished(engine, await engine.runner.start("push", {"name": "x"}))
    assert run["status"] == "failed"
    assert "{{ payload.sku }} is missing or empty" in run["error"]
    assert up.requests == []


async def test_step_headers_and_query_interpolate_and_keys_beat_dict_methods(
    tmp_path: Path,
) -> None:
    """A step's headers/query render `{{ … }}`; `payload.items` is the field, not dict.items."""
    steps = ("  - id: push\n    type: connector\n    connector: wh\n    endpoint: create\n"
             "    body: \"{'count': payload.items | length, 'first': payload.items[0]}\"\n"
             "    headers: {X-Order: \"{{ payload.id }}\"}\n"
             "    query: {keys: \"{{ payload.keys }}\"}\n")
    payload = {"id": 7, "items": ["a", "b"], "keys": "k1"}
    async with Upstream() as up, running_engine(project(tmp_path, up.url, steps=steps)) as engine:
        run = await finished(engine, await engine.runner.start("push", payload))
    assert run["status"] == "succeeded", run["error"]
    sent = up.requests_to("/orders")[0]
    assert sent.headers["X-Order"] == "7"
    assert sent.query == {"keys": "k1"}
    assert sent.json == {"count": 2, "first": "a"}
