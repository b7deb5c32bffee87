"""The engine's own endpoints: health, starting and reading runs, queue items, OpenAPI, metrics.

| endpoint | who may call it |
|---|---|
| `GET /_interlink/health` | anyone |
| `POST /_interlink/flows/{name}/runs` (body ≤ `admin.max_body`) | admin (`admin.AdminAccess`) |
| `GET /_interlink/runs?flow=&status=&trigger=&since=&until=&q=&cursor=&limit=` | admin |
| `GET /_interlink/runs/{id}` | admin |
| `POST /_interlink/runs/{id}/retry`, `…/redrive`, `…/stop`; `POST /_interlink/runs/retry` | admin |
| `POST /_interlink/queue/{id}/requeue` | admin |
| `GET /_interlink/queue/{id}` | admin, or the package credentials of the queued request's service |
| `GET /_interlink/openapi.json`, `GET /metrics` | admin |
| `/_interlink/ui/…` (the web UI, `interlink.web`) | admin, signed in by a form; or loopback |

A queued request's own caller may poll it with the credentials that could call its service
(never another package's; a service without authentication gives its callers no such right).
A refused caller learns nothing: the answer is the same whether the item exists or not.
Every error answer has the services' shape, `{"error": {"phase", "message"}}`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink import __version__
from interlink.admin import HEALTH_PATH, AdminAccess, AdminGuard
from interlink.engine import Engine
from interlink.errors import RunError
from interlink.flows.report import item_json, run_json, run_summary
from interlink.instants import parse_instant
from interlink.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from interlink.payloads import content_length, read_payload, unreadable
from interlink.services import QUEUE_KIND
from interlink.services.body import read_body
from interlink.services.context import decode_headers, decode_query
from interlink.services.failures import MappingFailure, SecurityFailure
from interlink.services.openapi import openapi_document
from interlink.services.responses import Response as Answer
from interlink.services.responses import error_body, send_response
from interlink.services.security import Authenticator, admit, build_authenticator
from interlink.services.sources import JSON
from interlink.store import RUN_STATUSES, QueueItem, Requeue, RunQuery
from interlink.web import UI_PATH, UiApp
from interlink.worker import Worker

__all__ = ["MAX_PAGE", "EngineApi", "run_query"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, phase: str, message: str) -> Response:
    return Response(error_body(phase, message), status, media_type=JSON)


#: the most runs one page of `GET /_interlink/runs` holds
MAX_PAGE = 500


def _page_size(text: str) -> int:
    """`limit` of a listing; ValueError saying what it may be."""
    limit = int(text) if text.isdigit() else 0
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return limit


def run_query(params: Mapping[str, str], now: float) -> RunQuery:
    """The `RunQuery` of a runs listing's query string (`q` is the search); ValueError when a
    value is not one it can be."""
    status = params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}")
    since, until = params.get("since") or None, params.get("until") or None
    return RunQuery(flow=params.get("flow") or None, status=status,
                    trigger=params.get("trigger") or None,
                    since=None if since is None else parse_instant(since, now),
                    until=None if until is None else parse_instant(until, now),
                    search=params.get("q") or None)


class EngineApi:
    """The engine endpoints of one served engine, behind one listener's `AdminAccess`."""

    def __init__(self, engine: Engine, worker: Worker | None, access: AdminAccess) -> None:
        self.engine = engine
        self.worker = worker
        self.access = access
        self.admin = engine.project.config.admin
        # The packages whose callers may poll their own queued requests.
        self.packages: dict[str, Authenticator] = {
            name: build_authenticator(package.auth)
            for name, package in engine.project.config.packages.items()
            if package.auth.type != "none"
        }
        # Built once: the services do not change while the app is served.
        self.openapi = orjson.dumps(openapi_document(engine.project))

    def app(self, fallback: ASGIApp, *, everything: bool = True) -> ASGIApp:
        """The endpoints as an ASGI app, `fallback` answering other paths; with
        `everything=False` only health and queue items (the main listener when the engine
        endpoints have their own)."""
        routes: list[BaseRoute] = [
            _Route(HEALTH_PATH, self.health, methods=["GET"]),
            _Route("/_interlink/queue/{item_id}", self.get_queue_item, methods=["GET"]),
        ]
        if everything:
            routes += [
                _Route("/metrics", self.metrics, methods=["GET"]),
                _Route("/_interlink/openapi.json", self.openapi_json, methods=["GET"]),
                _Route("/_interlink/flows/{name}/runs", self.start_run, methods=["POST"]),
                _Route("/_interlink/runs", self.list_runs, methods=["GET"]),
                _Route("/_interlink/runs/retry", self.retry_matching, methods=["POST"]),
                _Route("/_interlink/runs/{run_id}", self.get_run, methods=["GET"]),
                _Route("/_interlink/runs/{run_id}/{action}", self.act_on_run, methods=["POST"]),
                _Route("/_interlink/queue/{item_id}/requeue", self.requeue, methods=["POST"]),
                Mount(UI_PATH, UiApp(self.engine.store, self.engine.runner, self.engine.project,
                                     self.access).asgi()),
            ]
        router = Router(routes=routes, default=fallback)
        return AdminGuard(_default_headers(router), self.access)

    async def health(self, request: Request) -> Response:
        """200 once the worker runs (503 before), with the project's name and version;
        `stopping` (still 200: a liveness probe must not kill a drain) once it finishes what it
        holds before exiting."""
        ready = self.worker is None or self.worker.started.is_set()
        status = "starting" if not ready else \
            "stopping" if self.worker is not None and self.worker.stopping else "ok"
        body = {"status": status, "project": self.engine.project.name,
                "version": __version__, "worker": self.worker is not None}
        return _json(body, 200 if ready else 503)

    async def start_run(self, request: Request) -> Response:
        """Queue a run of the flow with the body as its input; 202 with the run id."""
        name = request.path_params["name"]
        if name not in self.engine.project.flows:
            return _error(404, "routing", "no flow of that name")
        try:
            payload = await read_payload(request.receive, request.scope["headers"],
                                         self.engine.project.config.server.limits,
                                         max_body=self.admin.max_body)
        except MappingFailure as exc:
            status, body = unreadable(exc)
            return Response(body, status, media_type=JSON)
        try:
            run_id = await self.engine.runner.start(name, payload, trigger="api")
        except RunError as exc:
            return _error(500, "activity", self.engine.redactor.text(str(exc)))
        return _json({"run_id": run_id, "status": "queued"}, 202)

    async def list_runs(self, request: Request) -> Response:
        """A page of runs, newest first, with the counts per status; `next_cursor` pages on."""
        params = request.query_params
        try:
            query = run_query(params, time.time())
            limit = _page_size(params.get("limit", "50"))
            page = await self.engine.store.find_runs(query, cursor=params.get("cursor"),
                                                     limit=limit)
        except ValueError as exc:  # InvalidCursor is one
            return _error(400, "mapping", str(exc))
        counts = await self.engine.store.count_runs(query)
        return _json({"runs": [run_summary(run) for run in page.runs],
                      "next_cursor": page.cursor, "counts": counts})

    async def retry_matching(self, request: Request) -> Response:
        """Retry the failed runs the query string matches (as `GET /_interlink/runs`)."""
        try:
            query = run_query(request.query_params, time.time())
        except ValueError as exc:
            return _error(400, "mapping", str(exc))
        run_ids = await self.engine.runner.retry_matching(query)
        return _json({"retried": len(run_ids), "run_ids": run_ids})

    async def act_on_run(self, request: Request) -> Response:
        """`retry` (202, the retry run's id), `redrive` (202) or `stop` (200) one run."""
        run_id, action = request.path_params["run_id"], request.path_params["action"]
        runner = self.engine.runner
        if await self.engine.store.get_run(run_id) is None:
            return _error(404, "routing", "no such run")
        try:
            match action:
                case "retry":
                    if await runner.retried_as(run_id) is not None:  # a run has one retry
                        retry = await self.engine.store.get_run(await runner.retry(run_id))
                        assert retry is not None
                        return _json({"run_id": retry.id, "status": retry.status,
                                      "new": False})
                    return _json({"run_id": await runner.retry(run_id), "status": "queued",
                                  "new": True}, 202)
                case "redrive":
                    return _json({"run_id": await runner.redrive(run_id), "status": "queued"},
                                 202)
                case "stop":
                    await runner.stop(run_id)
                    return _json({"run_id": run_id, "status": "stopped"})
        except RunError as exc:
            return _error(409, "run", self.engine.redactor.text(str(exc)))
        return _error(404, "routing", "no such action (retry, redrive, stop)")

    async def requeue(self, request: Request) -> Response:
        """Make a broken or failed queue item ready again."""
        item_id = request.path_params["item_id"]
        (requeued,) = await self.engine.store.write(Requeue(item_id))
        if not requeued:
            item = await self.engine.store.get_item(item_id)
            if item is None:
                return _error(404, "routing", "no such queue item")
            return _error(409, "queue", f"the item is {item.status}; only broken or "
                                           "failed items can be requeued")
        return _json({"id": item_id, "status": "ready"})

    async def get_run(self, request: Request) -> Response:
        """A run with its steps, attempts and log."""
        run = await self.engine.store.get_run(request.path_params["run_id"])
        if run is None:
            return _error(404, "routing", "no such run")
        return _json(await run_json(self.engine.store, run))

    async def get_queue_item(self, request: Request) -> Response:
        """A queue item, for the admin or for the caller that queued it."""
        scope = request.scope
        headers = decode_headers(scope["headers"])
        refusal = self.access.refusal(scope, headers)
        item = await self.engine.store.get_item(request.path_params["item_id"])
        if refusal is not None and not await self._queued_by(item, request, headers):
            return Response(refusal.body, refusal.status, dict(refusal.headers),
                            media_type=refusal.content_type)
        if item is None:
            return _error(404, "routing", "no such queue item")
        return _json({**item_json(item), "result": item.result})

    async def _queued_by(self, item: QueueItem | None, request: Request,
                         headers: dict[str, str]) -> bool:
        """Whether the caller shows the credentials of the package `item` was queued under."""
        if item is None or item.kind != QUEUE_KIND:
            return False
        service = self.engine.project.services.get(item.payload.get("service", ""))
        auth = self.packages.get(service.package or "") if service is not None else None
        if auth is None:
            return False
        scope = request.scope
        try:
            raw = b""
            if auth.needs_body:
                raw = await read_body(request.receive, content_length(scope["headers"]),
                                      self.admin.max_body)
            await admit(auth, self.engine.store, headers,
                        decode_query(scope.get("query_string", b"")), raw, scope)
        except (SecurityFailure, MappingFailure):
            return False
        return True

    async def openapi_json(self, request: Request) -> Response:
        """The OpenAPI document of the project's services."""
        return Response(self.openapi, media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        """Prometheus metrics."""
        return Response(self.engine.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


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


def _default_headers(app: ASGIApp) -> ASGIApp:
    """`app` with `Server`, `Date` and `Cache-Control` added to answers that lack them.

    uvicorn runs with its own `Server` and `Date` off (the services app sets them), so the
    engine endpoints would otherwise answer without them.
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
