"""What a connector step sends by default, and what it does with answers that sending again
would only repeat: refused at once, in one attempt, saying why — not retried until no attempt
is left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json


def project_files(url: str, endpoint: str, step: str = "", connector: str = "") -> dict[str, str]:
    return {
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {url}
            timeout: 5s
            retry: {{max_attempts: 3, initial: 10ms, max: 20ms}}
            {connector}
            endpoints:
              call: {endpoint}
            """,
        "flows/push.yaml": f"""
            name: push
            steps:
              - {{id: push, type: connector, connector: wh, endpoint: call{step}}}
            """,
    }


async def run_once(tmp_path: Path, files: dict[str, str], payload: Any) -> dict[str, Any]:
    project = write_project(tmp_path, files)
    async with running_engine(project) as engine:
        return await finished(engine, await engine.runner.start("push", payload))


async def finished(engine: Engine, run_id: str) -> dict[str, Any]:
    return await run_json(engine.store, await engine.runner.wait_for(run_id, 20))


async def test_a_get_sends_no_body_unless_the_step_names_one(tmp_path: Path) -> None:
    """The payload fills the path; sent as a body too, an upstream that reads no GET body would
    take it for the start of the connection's next request."""
    async with Upstream() as up:
        endpoint = '{method: GET, path: "/orders/{{ payload.id }}"}'
        implicit = await run_once(tmp_path / "a", project_files(up.url, endpoint), {"id": 7})
        explicit = await run_once(tmp_path / "b", project_files(
            up.url, endpoint, step=", body: \"{'q': payload.id}\""), {"id": 8})
    assert (implicit["status"], explicit["status"]) == ("succeeded", "succeeded")
    first, second = up.requests_to("/orders/7"), up.requests_to("/orders/8")
    assert [(r.method, r.body) for r in first] == [("GET", "")]
    assert "Content-Type" not in first[0].headers
    assert [(r.method, r.body) for r in second] == [("GET", '{"q":8}')]


async def test_a_post_sends_the_payload_by_default(tmp_path: Path) -> None:
    async with Upstream() as up:
        run = await run_once(tmp_path, project_files(
            up.url, "{method: PUT, path: /orders}"), {"id": 1})
    assert run["status"] == "succeeded"
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 1}]


async def test_a_401_without_credentials_to_refresh_fails_at_once(tmp_path: Path) -> None:
    """No auth (or a static one): sending the same request again would get the same 401, so
    the classifier fails the step instead of logging a re-authentication it cannot do."""
    async with Upstream() as up:
        up.route("/orders", statuses=[401])
        run = await run_once(tmp_path, project_files(up.url, "{method: POST, path: /orders}"),
                             {"id": 1})
    assert run["status"] == "failed"
    assert run["error"] == ("calling wh.call: HTTP 401 (the connector's credentials are static "
                            "or none: there is nothing to refresh) (attempt 1 of 3)")
    assert len(up.requests_to("/orders")) == 1
    assert not any("re-authenticat" in line["message"] for line in run["logs"])
    [attempt] = run["steps"][0]["attempts"]
    assert attempt["decision"] == "fail"


async def test_an_answer_over_max_response_is_not_asked_for_again(tmp_path: Path) -> None:
    async with Upstream() as up:
        up.route("/orders", bodies=[{"items": ["x" * 100] * 100}])
        run = await run_once(tmp_path, project_files(
            up.url, "{method: POST, path: /orders}", connector="max_response: 1KB"), {"id": 1})
    assert run["status"] == "failed"
    assert run["error"] == ("calling wh.call: the response body is over 1KB (the connector's "
                            "max_response) (attempt 1 of 3)")
    assert len(up.requests_to("/orders")) == 1


@asynccontextmanager
async def not_http(greeting: bytes) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server that is not HTTP (it greets like SMTP); it counts connections."""
    connections = [0]

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        writer.write(greeting)
        await writer.drain()
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def test_a_server_that_is_not_http_fails_the_step_at_once(tmp_path: Path) -> None:
    """A base_url pointing at the wrong port: said plainly, once, not three times."""
    async with not_http(b"220 mail.example ESMTP\r\n") as (url, connections):
        run = await run_once(tmp_path, project_files(url, "{method: POST, path: /orders}"),
                             {"id": 1})
    assert run["status"] == "failed"
    assert run["error"] == ("calling wh.call: the answer is not HTTP (it starts "
                            "'220 mail.example ESMTP'): is this the right port? (attempt 1 of 3)")
    assert connections == [1]


async def test_a_header_that_cannot_be_sent_names_the_call(tmp_path: Path) -> None:
    async with Upstream() as up:
        run = await run_once(tmp_path, project_files(
            up.url, "{method: POST, path: /orders}",
            step=', headers: {X-Note: "{{ payload.note }}"}'), {"note": "a\nb"})
    assert run["status"] == "failed"
    assert run["error"] == ("step push: calling wh.call: building the request: header "
                            "'X-Note' contains a line break or NUL: it cannot be sent")
    assert up.requests == []


async def test_a_script_that_only_logs_leaves_the_reason_to_the_classifier(
        tmp_path: Path) -> None:
    """Its `message` goes to the run log; the decision's reason stays the classifier's."""
    files = project_files("URL", "{method: POST, path: /orders}",
                          step=", response_script: scripts/peek.py")
    files["scripts/peek.py"] = '''
def handle(data):
    data["message"] = "peek: status " + str(data["response"]["status"])
    return data
'''
    async with Upstream() as up:
        up.route("/orders", statuses=[401])
        files["connectors/wh.yaml"] = files["connectors/wh.yaml"].replace("URL", up.url)
        run = await run_once(tmp_path, files, {"id": 1})
    assert run["status"] == "failed"
    assert run["error"] == ("calling wh.call: HTTP 401 (the connector's credentials are static "
                            "or none: there is nothing to refresh) (attempt 1 of 3)")
    assert "peek: status 401" in [line["message"] for line in run["logs"]]
