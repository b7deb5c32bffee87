"""`interlink serve` and `interlink worker`: the HTTP side and the worker, in one process or apart.

The HTTP side serves the engine's endpoints under `/_interlink/` and each webhook trigger at the
path its flow declares. A webhook answers `202` with the run id once the run and its queue item
are committed: an accepted call is never lost, whatever happens to this process afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from email.utils import formatdate
from typing import Any

import orjson
import structlog
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink import __version__, _loop
from interlink.engine import Engine
from interlink.errors import RunError
from interlink.flows.report import item_json, run_json
from interlink.flows.schedule import Scheduler
from interlink.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from interlink.services.openapi import openapi_document
from interlink.spec import Project
from interlink.spec.flow import WebhookTrigger
from interlink.worker import Worker

__all__ = ["Webhooks", "build_app", "parse_payload", "run_worker", "serve", "uvicorn_config"]

log = logging.getLogger("interlink.server")


def parse_payload(raw: bytes) -> Any:
    """A request body as a payload: parsed JSON when it is JSON, otherwise text (or None)."""
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": {"message": message}}, status)


def build_app(engine: Engine, worker: Worker | None) -> ASGIApp:
    """The served project: its services, the flows' webhooks and the engine's endpoints."""
    runner = engine.runner

    async def health(request: Request) -> Response:
        ready = worker is None or worker.started.is_set()
        body = {"status": "ok" if ready else "starting", "project": engine.project.name,
                "version": __version__, "worker": worker is not None}
        return _json(body, 200 if ready else 503)

    async def start_run(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in engine.project.flows:
            return _error(404, f"no flow named {name!r}")
        run_id = await runner.start(name, parse_payload(await request.body()), trigger="api")
        return _json({"run_id": run_id, "status": "queued"}, 202)

    async def get_run(request: Request) -> Response:
        run = await engine.store.get_run(request.path_params["run_id"])
        if run is None:
            return _error(404, "no such run")
        return _json(await run_json(engine.store, run))

    async def get_queue_item(request: Request) -> Response:
        item = await engine.store.get_item(request.path_params["item_id"])
        if item is None:
            return _error(404, "no such queue item")
        return _json({**item_json(item), "result": item.result})

    # Built once: the services do not change while the app is served.
    openapi = orjson.dumps(openapi_document(engine.project))

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(engine.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    routes: list[BaseRoute] = [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/_interlink/health", health, methods=["GET"]),
        Route("/_interlink/openapi.json", openapi_json, methods=["GET"]),
        Route("/_interlink/flows/{name}/runs", start_run, methods=["POST"]),
        Route("/_interlink/runs/{run_id}", get_run, methods=["GET"]),
        Route("/_interlink/queue/{item_id}", get_queue_item, methods=["GET"]),
    ]
    # Webhooks and services are the hot paths and answer without a framework; the engine's
    # endpoints are the fallback, a bare Router (every handler here answers its own errors).
    return Webhooks(engine, engine.services_app(fallback=_default_headers(Router(routes=routes))))


def _default_headers(app: ASGIApp) -> ASGIApp:
    """`app` with `Server`, `Date` and `Cache-Control` added to answers that lack them.

    uvicorn runs with its own `Server` and `Date` off (the services app sets them), so the
    engine endpoints and webhooks would otherwise answer without them.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_defaults(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                defaults = ((b"server", b"interlink"),
                            (b"date", formatdate(usegmt=True).encode()),
                            (b"cache-control", b"no-store"))
                headers.extend(h for h in defaults if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_defaults)

    return wrapped


#: the largest webhook body accepted (larger ones get 413)
MAX_WEBHOOK_BODY = 10 * 1024 * 1024


class Webhooks:
    """Webhook triggers: a POST to a flow's path queues a run durably and answers 202."""

    def __init__(self, engine: Engine, app: ASGIApp) -> None:
        self.engine = engine
        self.app = app
        self.routes = {
            (flow.trigger.method, flow.trigger.path): flow.name
            for flow in engine.project.flows.values()
            if isinstance(flow.trigger, WebhookTrigger)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: a webhook, or on to the services and the engine's endpoints."""
        flow = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" \
            else None
        if flow is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, MAX_WEBHOOK_BODY)
        if body is None:
            await _send_json(send, 413, {"error": {"message": "the body is too large"}})
            return
        try:
            run_id = await self.engine.runner.start(flow, parse_payload(body), trigger="webhook")
        except RunError as exc:
            await _send_json(send, 500, {"error": {"message": str(exc)}})
            return
        # The run and its queue item are committed: from here on nothing can lose it.
        await _send_json(send, 202, {"run_id": run_id, "status": "queued"})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, body: Any) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"server", b"interlink"), (b"cache-control", b"no-store"),
        (b"date", formatdate(usegmt=True).encode())]})
    await send({"type": "http.response.body", "body": payload})


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """How `interlink serve` runs uvicorn (benchmarks use the same)."""
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        proxy_headers=False,
        # The services app sets Server and Date itself (rules may override them).
        server_header=False, date_header=False,
    )


async def _serve(project: Project, host: str | None, port: int | None, with_worker: bool) -> None:
    async with Engine(project) as engine:
        stop = asyncio.Event()
        worker = engine.worker() if with_worker else None
        config = uvicorn_config(build_app(engine, worker), host or project.config.server.host,
                                project.config.server.port if port is None else port)
        server = uvicorn.Server(config)
        # The server and the worker run until stopped; the scheduler ends at once without
        # scheduled flows, so it is not one of the tasks whose end ends the process.
        lasting = [asyncio.create_task(server.serve())]
        if worker is not None:
            lasting.append(asyncio.create_task(worker.run(stop)))
        scheduler = asyncio.create_task(Scheduler(engine.runner, project.flows).run(stop))
        log.info("serving %s on http://%s:%s", project.name, config.host, config.port)
        await asyncio.wait(lasting, return_when=asyncio.FIRST_COMPLETED)
        # uvicorn returns on SIGINT/SIGTERM; the worker then finishes what it holds.
        stop.set()
        server.should_exit = True
        await asyncio.gather(*lasting, scheduler)


async def _work(project: Project) -> None:
    async with Engine(project) as engine:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = engine.worker()
        log.info("worker %s started", worker.owner)
        await worker.run(stop)


def _configure_logging() -> None:
    """Engine logs through structlog: readable lines, or JSON with INTERLINK_LOG_FORMAT=json."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if os.environ.get("INTERLINK_LOG_FORMAT") == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    handler = logging.StreamHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.processors.format_exc_info],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def serve(project: Project, *, host: str | None = None, port: int | None = None,
          with_worker: bool = True) -> None:
    """Serve `project` until interrupted."""
    _configure_logging()
    _loop.run(_serve(project, host, port, with_worker))


def run_worker(project: Project) -> None:
    """Run a worker for `project` until interrupted."""
    _configure_logging()
    _loop.run(_work(project))
