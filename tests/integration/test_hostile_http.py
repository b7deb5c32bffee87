"""Hostile connections against the served project (uvicorn as `interlink serve` runs it).

Raw sockets on loopback: truncated bodies, slow headers and bodies, too many or too large
headers, too many connections, malformed HTTP. The limits are configured small in the
project's `interlink.yaml` so the clocks run out within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send
from tests.projects import write_project
from tests.served import body_of, chunked, exchange, post, serving, status_of

from interlink.engine import Engine
from interlink.redaction import Redactor
from interlink.server import build_app, configure_logging, guarded
from interlink.spec.project import ServerLimits

CONFIG = """
name: hostile
store: sqlite:///.interlink/hostile.db
server:
  limits: {header_timeout: 300ms, body_timeout: 300ms, idle_timeout: 300ms, max_headers: 50,
           max_header_bytes: 8KB, max_connections: 8, max_json_depth: 16}
"""
SECRET = "s3cret-token-value"


@dataclass
class Served:
    """A served project: its port and its open engine."""

    port: int
    engine: Engine

    async def run_count(self) -> int:
        """How many runs the store holds."""
        return len(await self.engine.store.list_runs(limit=1000))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """A project with a webhook, a service running a flow, and small limits; no worker."""
    project = write_project(tmp_path, {
        "interlink.yaml": CONFIG,
        "scripts/keep.py": "def handle(data):\n    return data\n",
        "flows/push.yaml": """
            name: push
            trigger: {type: webhook, path: /hooks/orders}
            steps:
              - {id: keep, type: script, script: scripts/keep.py}
            """,
        "services/orders.yaml": """
            name: orders
            path: /orders
            activity: {flow: push, timeout: 5s}
            responses:
              - {on: mapping_error, status: 400}
            """,
    })
    async with Engine(project) as engine, \
            serving(build_app(engine, None), project.config.server.limits) as port:
        yield Served(port, engine)


TARGETS = ["/hooks/orders", "/_interlink/flows/push/runs", "/orders"]


@pytest.mark.parametrize("path", TARGETS, ids=["webhook", "engine", "service"])
@pytest.mark.parametrize("how", ["short-content-length", "chunked-without-end"])
async def test_a_body_cut_short_starts_no_run(served: Served, path: str, how: str) -> None:
    """Content-Length 100 with 50 bytes sent, or chunks without the 0-chunk, then close."""
    half = b'{"id": 1, "sku": "MUG-01", "qty": 2, "note": "xx"}'
    assert len(half) == 50
    if how == "short-content-length":
        await exchange(served.port, post(path, half, length=100), close=True)
    else:
        await exchange(served.port, chunked(path) + b"32\r\n" + half + b"\r\n", close=True)
    await asyncio.sleep(0.1)
    # A whole request afterwards is answered (and is the only run).
    answer = await exchange(served.port, post("/hooks/orders", b'{"id": 2}')
                            )
    assert status_of(answer) == 202
    assert await served.run_count() == 1


@pytest.mark.parametrize("path", TARGETS[:2], ids=["webhook", "engine"])
async def test_too_deep_json_is_400_and_starts_no_run(served: Served, path: str) -> None:
    """JSON nested past `max_json_depth` is a 400 with the error body; nothing runs."""
    answer = await exchange(served.port, post(path, b"[" * 300 + b"]" * 300)
                            )
    assert status_of(answer) == 400
    assert body_of(answer) == {"error": {"phase": "mapping",
                                         "message": "JSON nests deeper than 16 levels"}}
    assert await served.run_count() == 0


@pytest.mark.parametrize("path", TARGETS[:2], ids=["webhook", "engine"])
async def test_broken_json_said_to_be_json_is_400_and_starts_no_run(served: Served,
                                                                    path: str) -> None:
    """`Content-Type: application/json` with a body that is not JSON: 400, nothing runs (it
    started a run with the broken text as its payload)."""
    answer = await exchange(served.port, post(path, b'{"id": 1, "sku": '))
    assert status_of(answer) == 400
    assert body_of(answer) == {"error": {"phase": "mapping",
                                         "message": "request body is not valid JSON"}}
    assert await served.run_count() == 0


async def test_too_deep_json_is_a_service_mapping_error(served: Served) -> None:
    """A service answers too-deep JSON with its `on: mapping_error` rule; its flow never runs."""
    answer = await exchange(served.port, post("/orders", b'{"a":' * 17 + b"1" + b"}" * 17)
                            )
    assert status_of(answer) == 400
    assert await served.run_count() == 0


@pytest.mark.parametrize(("request_line", "status", "allow"), [
    (b"GET /_interlink/runs/r_nope", 404, None),
    (b"GET /_interlink/queue/q_nope", 404, None),
    (b"POST /_interlink/flows/nope/runs", 404, None),
    (b"GET /_interlink/flows/push/runs", 405, b"POST"),
    (b"GET /hooks/orders", 405, b"POST"),
    (b"GET /orders", 405, b"POST"),
    (b"GET /nowhere", 404, None),
])
async def test_engine_errors_have_the_services_shape(
    served: Served, request_line: bytes, status: int, allow: bytes | None
) -> None:
    """Every engine-side error body is `{"error": {"phase", "message"}}`."""
    answer = await exchange(served.port, request_line + b" HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == status
    error = body_of(answer)
    assert isinstance(error, dict) and set(error["error"]) == {"phase", "message"}
    if allow is not None:
        assert b"\r\nallow: " + allow + b"\r\n" in answer


async def test_an_exception_from_the_store_is_a_small_500(served: Served) -> None:
    """The store gone mid-serve: the engine endpoint's exception is a JSON 500, no traceback."""
    await served.engine.store.close()
    answer = await exchange(served.port, b"GET /_interlink/runs/r_1 HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\n\r\n")
    assert status_of(answer) == 500
    assert body_of(answer) == {"error": {"phase": "server",
                                         "message": "the server could not answer"}}
    assert b"Traceback" not in answer and b".py" not in answer


async def _broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError(f"token {SECRET} rejected at /srv/app/broken.py")


async def test_an_escaping_exception_is_logged_once_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The guard answers 500 with the error body and logs the traceback, secrets masked."""
    async with serving(guarded(_broken, Redactor([SECRET])), ServerLimits()) as port:
        answer = await exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 500
    assert SECRET.encode() not in answer and b"/srv/" not in answer
    logged = [r.getMessage() for r in caplog.records if r.name == "interlink.server"]
    assert len(logged) == 1
    assert "Traceback" in logged[0] and "RuntimeError" in logged[0]
    assert SECRET not in logged[0] and "***" in logged[0]


async def test_json_logs_hold_the_traceback_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """With INTERLINK_LOG_FORMAT=json the failure is one JSON line carrying the traceback."""
    monkeypatch.setenv("INTERLINK_LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging()
        async with serving(guarded(_broken, Redactor([SECRET])), ServerLimits()) as port:
            await exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if '"interlink.server"' in line]
    assert len(lines) == 1
    assert "Traceback" in lines[0]["event"] and lines[0]["level"] == "error"
