"""The services app behind a real uvicorn server on loopback, called with aiohttp."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from interlink.services import ActivityResult, build_services_app
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.spec.service import ServiceSpec as _ServiceSpec


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Runner:
    """Activity runner echoing the mapped page."""

    async def run(self, service: _ServiceSpec, context: dict[str, Any], *,
                  run_id: str = "") -> ActivityResult:
        """Return the page as the payload."""
        return ActivityResult("succeeded", context["page"], "run_1")


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    """A uvicorn server on 127.0.0.1, port chosen by the OS, serving two services."""
    project = Project(
        root=tmp_path,
        config=ProjectConfig.model_validate({"name": "t", "packages": {
            "p": {"auth": {"type": "basic", "users": {"u": "pw"}}}}}),
        services={s["name"]: ServiceSpec.model_validate(s) for s in [
            {"name": "orders", "path": "/orders/{id}", "package": "p",
             "request": {"map": {"page.id": "request.path_params.id",
                                 "page.status": "request.body.status"}},
             "activity": {"flow": "f"},
             "responses": [
                 {"when": "page.status == 'HELD'", "status": 202,
                  "headers": [{"name": "X-Order-Id", "from": "context", "key": "page.id"}],
                  "body": {"from": "json", "value": {"held": "{{ page.id }}"}}},
                 {"on": "default", "status": 200, "body": {"from": "context",
                                                           "key": "result.payload"}}]},
            {"name": "upload", "path": "/upload", "request": {"body": "text",
                                                              "max_body": "1MB"}},
        ]},
    )
    app = build_services_app(project, activity_runner=Runner())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on",
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()


async def test_real_server_round_trip(base_url: str) -> None:
    """Rules, auth and default headers work the same over a real socket."""
    auth = {"Authorization": _basic("u", "pw")}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/orders/7", json={"status": "HELD"}, headers=auth) as r:
            assert r.status == 202
            assert await r.json() == {"held": "7"}
            assert r.headers["X-Order-Id"] == "7"
            assert r.headers.getall("Server") == ["interlink"]
            assert len(r.headers.getall("Date")) == 1
            assert r.headers["Cache-Control"] == "no-store"
            assert "Server-Timing" not in r.headers
        async with http.post(f"{base_url}/orders/8", json={"status": "NEW"}, headers=auth) as r:
            assert (r.status, await r.json()) == (200, {"id": "8", "status": "NEW"})
        async with http.post(f"{base_url}/orders/8", json={},
                             headers={"Authorization": _basic("u", "bad")}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith('Basic realm="interlink"')
        async with http.get(f"{base_url}/nowhere") as r:
            assert r.status == 404


async def test_real_server_refuses_a_10mb_body(base_url: str) -> None:
    """A 10 MB upload over a real socket is answered 413 (declared and chunked)."""
    big = b"x" * (10 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1 << 20):
            yield big[start:start + (1 << 20)]

    statuses = []
    async with aiohttp.ClientSession() as http:
        for body in (big, chunks()):
            try:
                async with http.post(f"{base_url}/upload", data=body) as r:
                    statuses.append(r.status)
                    assert (await r.json())["error"]["phase"] == "mapping"
            except aiohttp.ClientOSError:
                # The server may close the connection before the client sent everything;
                # what matters is that it never accepted the body.
                statuses.append(0)
        async with http.post(f"{base_url}/upload", data=b"small") as r:
            assert r.status == 200
    assert statuses[0] == 413
    assert statuses[1] in (413, 0)
