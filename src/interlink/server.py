"""`interlink serve` and `interlink worker`: the HTTP side and the worker, in one process or apart.

The HTTP side serves the engine's endpoints under `/_interlink/` and each webhook trigger at the
path its flow declares. A webhook answers `202` with the run id once the run and its queue item
are committed: an accepted call is never lost, whatever happens to this process afterwards.

Bodies are read by the services' reader (`services.body.read_body`: bounded, and a client that
goes away mid-body starts nothing) and parsed within `server.limits`; every error answer has
the services' shape, `{"error": {"phase", "message"}}`. The outermost layer answers an
exception nothing else caught with a 500 and that small body, and logs it with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
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
from interlink.http_limits import limited_protocol
from interlink.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from interlink.redaction import Redactor
from interlink.services.body import (
    THREAD_PARSE_BYTES,
    ClientDisconnected,
    json_value,
    read_body,
)
from interlink.services.failures import BodyTooLarge, MappingFailure
from interlink.services.openapi import openapi_document
from interlink.services.responses import Response as Answer
from interlink.services.responses import error_body, send_response
from interlink.services.sources import JSON
from interlink.spec import Project
from interlink.spec.flow import WebhookTrigger
from interlink.spec.project import ServerLimits
from interlink.worker import Worker

__all__ = [
    "Webhooks",
    "build_app",
    "guarded",
    "parse_payload",
    "read_payload",
    "run_worker",
    "serve",
    "uvicorn_config",
]

log = logging.getLogger("interlink.server")


_DEFAULT_LIMITS = ServerLimits()


def parse_payload(raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS) -> Any:
    """A request body as a payload: parsed JSON when it is JSON, otherwise text (or None).

    JSON nested deeper than `limits.max_json_depth` raises `MappingFailure`.
    """
    if not raw.strip():
        return None
    try:
        return json_value(raw, limits)
    except MappingFailure as exc:
        if exc.kind != "invalid_json":
            raise
        return raw.decode("utf-8", errors="replace")


async def read_payload(receive: Receive, headers: list[tuple[bytes, bytes]],
                       limits: ServerLimits) -> Any:
    """Read a webhook's or an engine endpoint's body and parse it (a large one in a thread).

    Raises `BodyTooLarge`, `MappingFailure` (too deep, a bad Content-Length) and
    `ClientDisconnected` (the body ended early: nothing may act on it).
    """
    length = next((v.decode("latin-1") for k, v in headers if k == b"content-length"), None)
    raw = await read_body(receive, length, limits.max_body)
    if len(raw) > THREAD_PARSE_BYTES:
        return await asyncio.to_thread(parse_payload, raw, limits)
    return parse_payload(raw, limits)


def _unreadable(exc: MappingFailure) -> tuple[int, bytes]:
    """Status and body answering a body that could not be read or parsed: 413 or 400."""
    return 413 if isinstance(exc, BodyTooLarge) else 400, error_body("mapping", exc.message)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, phase: str, message: str) -> Response:
    return Response(error_body(phase, message), status, media_type=JSON)


def build_app(engine: Engine, worker: Worker | None) -> ASGIApp:
    """The served project: its services, the flows' webhooks and the engine's endpoints."""
    runner = engine.runner
    limits = engine.project.config.server.limits

    async def health(request: Request) -> Response:
        ready = worker is None or worker.started.is_set()
        body = {"status": "ok" if ready else "starting", "project": engine.project.name,
                "version": __version__, "worker": worker is not None}
        return _json(body, 200 if ready else 503)

    async def start_run(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in engine.project.flows:
            return _error(404, "routing", "no flow of that name")
        try:
            payload = await read_payload(request.receive, request.scope["headers"], limits)
        except MappingFailure as exc:
            status, body = _unreadable(exc)
            return Response(body, status, media_type=JSON)
        try:
            run_id = await runner.start(name, payload, trigger="api")
        except RunError as exc:
            return _error(500, "activity", engine.redactor.text(str(exc)))
        return _json({"run_id": run_id, "status": "queued"}, 202)

    async def get_run(request: Request) -> Response:
        run = await engine.store.get_run(request.path_params["run_id"])
        if run is None:
            return _error(404, "routing", "no such run")
        return _json(await run_json(engine.store, run))

    async def get_queue_item(request: Request) -> Response:
        item = await engine.store.get_item(request.path_params["item_id"])
        if item is None:
            return _error(404, "routing", "no such queue item")
        return _json({**item_json(item), "result": item.result})

    # Built once: the services do not change while the app is served.
    openapi = orjson.dumps(openapi_document(engine.project))

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(engine.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    routes: list[BaseRoute] = [
        _Route("/metrics", metrics, methods=["GET"]),
        _Route("/_interlink/health", health, methods=["GET"]),
        _Route("/_interlink/openapi.json", openapi_json, methods=["GET"]),
        _Route("/_interlink/flows/{name}/runs", start_run, methods=["POST"]),
        _Route("/_interlink/runs/{run_id}", get_run, methods=["GET"]),
        _Route("/_interlink/queue/{item_id}", get_queue_item, methods=["GET"]),
    ]
    # Webhooks and services are the hot paths and answer without a framework; the engine's
    # endpoints are the fallback, a bare Router (every handler here answers its own errors).
    webhooks = Webhooks.methods(engine.project)

    async def not_routed(scope: Scope, receive: Receive, send: Send) -> None:
        allow = webhooks.get(scope["path"])
        if allow is not None:
            answer = Answer(405, error_body("routing", "method not allowed"), JSON,
                            [("Allow", allow)])
        else:
            answer = Answer(404, error_body("routing", "nothing is served at this path"), JSON)
        await send_response(send, answer)

    engine_app = _default_headers(Router(routes=routes, default=not_routed))
    return guarded(Webhooks(engine, engine.services_app(fallback=engine_app)), engine.redactor)


class _Route(Route):
    """A Starlette route answering a wrong method with the engine's error body."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Call the endpoint, or answer 405 with `Allow`."""
        if self.methods and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            answer = Answer(405, error_body("routing", "method not allowed"), JSON,
                            [("Allow", allow)])
            await send_response(send, answer)
            return
        await self.app(scope, receive, send)


def guarded(app: ASGIApp, redactor: Redactor) -> ASGIApp:
    """`app` whose escaping exceptions are answered 500 with the small error body.

    The exception is logged once, with its traceback (secrets redacted); the caller sees no
    traceback and no file path. A client that went away mid-body is not an error: nothing is
    answered. An exception after the answer started can only end the connection.
    """

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except ClientDisconnected:
            return
        except Exception:
            if scope["type"] != "http":
                raise
            where = f"{scope['method']} {scope['path']}"
            log.error("answering %s failed:\n%s", redactor.text(where),
                      redactor.text(traceback.format_exc()).rstrip())
            answer = Answer(500, error_body("server", "the server could not answer"), JSON)
            # RuntimeError: the answer had started; uvicorn then closes the connection.
            with contextlib.suppress(RuntimeError):
                await send_response(send, answer)

    return guard


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


class Webhooks:
    """Webhook triggers: a POST to a flow's path queues a run durably and answers 202."""

    def __init__(self, engine: Engine, app: ASGIApp) -> None:
        self.engine = engine
        self.app = app
        self.limits = engine.project.config.server.limits
        self.routes = {
            (flow.trigger.method, flow.trigger.path): flow.name
            for flow in engine.project.flows.values()
            if isinstance(flow.trigger, WebhookTrigger)
        }

    @staticmethod
    def methods(project: Project) -> dict[str, str]:
        """Path → the methods its webhooks answer (an `Allow` value)."""
        methods: dict[str, set[str]] = {}
        for flow in project.flows.values():
            if isinstance(flow.trigger, WebhookTrigger):
                methods.setdefault(flow.trigger.path, set()).add(flow.trigger.method)
        return {path: ", ".join(sorted(names)) for path, names in methods.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: a webhook, or on to the services and the engine's endpoints."""
        flow = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" \
            else None
        if flow is None:
            await self.app(scope, receive, send)
            return
        try:
            payload = await read_payload(receive, scope["headers"], self.limits)
        except MappingFailure as exc:
            status, body = _unreadable(exc)
            await send_response(send, Answer(status, body, JSON))
            return
        try:
            run_id = await self.engine.runner.start(flow, payload, trigger="webhook")
        except RunError as exc:
            message = self.engine.redactor.text(str(exc))
            await send_response(send, Answer(500, error_body("activity", message), JSON))
            return
        # The run and its queue item are committed: from here on nothing can lose it.
        body = orjson.dumps({"run_id": run_id, "status": "queued"})
        await send_response(send, Answer(202, body, JSON))


def uvicorn_config(app: ASGIApp, host: str, port: int,
                   limits: ServerLimits = _DEFAULT_LIMITS) -> uvicorn.Config:
    """How `interlink serve` runs uvicorn (benchmarks use the same): with `limits` applied
    to every connection (`http_limits`), and no websockets (nothing here speaks them)."""
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        proxy_headers=False, http=limited_protocol(limits), ws="none",
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # a float works
        # The services app sets Server and Date itself (rules may override them).
        server_header=False, date_header=False,
    )


async def _serve(project: Project, host: str | None, port: int | None, with_worker: bool) -> None:
    async with Engine(project) as engine:
        stop = asyncio.Event()
        worker = engine.worker() if with_worker else None
        server_config = project.config.server
        config = uvicorn_config(build_app(engine, worker), host or server_config.host,
                                server_config.port if port is None else port,
                                server_config.limits)
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
