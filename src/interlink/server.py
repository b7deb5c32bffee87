"""`interlink serve` and `interlink worker`: the HTTP side and the worker, in one process or apart.

`serve --workers N` runs N of these processes on sockets a parent bound (`serve_sockets`); the
parent and its supervision are `server_processes`.

A listener's app, outermost first: `guarded` (an exception nothing else caught is answered 500
with the small error body, and logged once with its traceback, secrets masked), the webhook
triggers (`webhooks`), the services, then the engine's endpoints (`engine_api`) behind the
admin check (`admin`). With `admin.listen` the engine endpoints get a listener of their own
(`build_admin_app`) and the main one keeps services, webhooks, `/_interlink/health` and
partners' polls of their own queued requests.

Every log record passes one filter that masks the secrets the engine knows, those obtained at
run time (connectors' tokens) included: `redaction.RedactingFilter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink import _loop
from interlink.access_log import AccessLog
from interlink.admin import AdminAccess
from interlink.engine import Engine
from interlink.engine_api import EngineApi
from interlink.errors import ServerError
from interlink.flows.schedule import Scheduler
from interlink.http_limits import limited_protocol
from interlink.redaction import RedactingFilter, Redactor
from interlink.services.body import ClientDisconnected
from interlink.services.responses import Response as Answer
from interlink.services.responses import error_body, send_response
from interlink.services.sources import JSON
from interlink.spec import Project
from interlink.spec.project import AdminConfig, ServerLimits
from interlink.webhooks import Webhooks
from interlink.worker import Worker

__all__ = [
    "BACKLOG",
    "NO_WORKER_LINE",
    "admin_line",
    "build_admin_app",
    "build_app",
    "configure_logging",
    "guarded",
    "listeners",
    "run_worker",
    "serve",
    "serve_sockets",
    "url_of",
    "uvicorn_config",
]

log = logging.getLogger("interlink.server")

_DEFAULT_LIMITS = ServerLimits()
#: pending connections a listening socket holds (uvicorn's default)
BACKLOG = 2048


def build_app(engine: Engine, worker: Worker | None) -> ASGIApp:
    """The main listener: the project's services, the flows' webhooks, and the engine's
    endpoints (only health and partners' queue polls when `admin.listen` serves them)."""
    admin = engine.project.config.admin
    here = admin.listen is None
    api = EngineApi(engine, worker, AdminAccess(admin, here=here))
    fallback = api.app(_not_routed(Webhooks.methods(engine.project)), everything=here)
    return guarded(Webhooks(engine, engine.services_app(fallback=fallback)), engine.redactor)


def build_admin_app(engine: Engine, worker: Worker | None) -> ASGIApp:
    """The admin listener (`admin.listen`): the engine's endpoints, nothing else."""
    api = EngineApi(engine, worker, AdminAccess(engine.project.config.admin))
    return guarded(api.app(_not_routed({})), engine.redactor)


def _not_routed(webhooks: dict[str, str]) -> ASGIApp:
    """404 for a path nothing serves; 405 with `Allow` for a webhook's path."""

    async def not_routed(scope: Scope, receive: Receive, send: Send) -> None:
        allow = webhooks.get(scope["path"])
        if allow is not None:
            answer = Answer(405, error_body("routing", "method not allowed"), JSON,
                            [("Allow", allow)])
        else:
            answer = Answer(404, error_body("routing", "nothing is served at this path"), JSON)
        await send_response(send, answer)

    return not_routed


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


def uvicorn_config(app: ASGIApp, host: str, port: int,
                   limits: ServerLimits = _DEFAULT_LIMITS) -> uvicorn.Config:
    """How `interlink serve` runs uvicorn (benchmarks use the same): with `limits` applied
    to every connection (`http_limits`), and no websockets (nothing here speaks them).

    uvicorn's own logging is left unconfigured, so its records reach the root logger's
    handler (and its redacting filter) like everyone else's.
    """
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        proxy_headers=False, http=limited_protocol(limits), ws="none", log_config=None,
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # a float works
        # The services app sets Server and Date itself (rules may override them).
        server_header=False, date_header=False,
    )


async def _serve(project: Project, sockets: Sequence[socket.socket], with_worker: bool,
                 log_format: str, ready: Callable[[], None] | None = None,
                 metrics_dir: Path | None = None) -> None:
    """Serve on `sockets` (the main listener's, then `admin.listen`'s, bound before: a port in
    use is refused before anything starts) until SIGINT/SIGTERM. Once the listeners and the
    worker run, `ready()` is called (a child of `server_processes`, whose parent says where it
    serves), or where it serves is logged. `metrics_dir`: the folder the processes of one
    server share their metrics in."""
    engine = Engine(project, metrics_dir=metrics_dir)
    redact_logs(engine.redactor)
    async with engine:
        stop = asyncio.Event()
        worker = engine.worker() if with_worker else None
        server_config, admin = project.config.server, project.config.admin
        logged: list[AccessLog] = []

        def listener(app: ASGIApp) -> ASGIApp:
            app = _access_log(app, engine, project, log_format)
            if isinstance(app, AccessLog):
                logged.append(app)
            return app

        apps = [build_app(engine, worker)]
        if admin.listen is not None:
            apps.append(build_admin_app(engine, worker))
        servers = [_Server(uvicorn_config(listener(app), sock.getsockname()[0],
                                          sock.getsockname()[1], server_config.limits))
                   for app, sock in zip(apps, sockets, strict=True)]
        _stop_on_signals(servers)
        _loop.settle_memory()
        # The servers and the worker run until stopped; the scheduler ends at once without
        # scheduled flows, so it is not one of the tasks whose end ends the process.
        lasting = [asyncio.create_task(server.serve(sockets=[sock]))
                   for server, sock in zip(servers, sockets, strict=True)]
        if worker is not None:
            lasting.append(asyncio.create_task(worker.run(stop)))
        scheduler = asyncio.create_task(Scheduler(engine.runner, project.flows).run(stop))
        beside = [scheduler]
        if metrics_dir is not None:
            beside.append(asyncio.create_task(engine.metrics.keep_publishing(stop)))
        if await _started(servers, worker, lasting):
            if ready is not None:
                ready()
            else:
                log.info("serving %s on %s", project.name, url_of(sockets[0]))
                log.info("%s", admin_line(admin, sockets[-1].getsockname()[1]))
                if worker is None:
                    log.info("%s", NO_WORKER_LINE)
        await asyncio.wait(lasting, return_when=asyncio.FIRST_COMPLETED)
        # uvicorn returns on SIGINT/SIGTERM; the worker then finishes what it holds.
        stop.set()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*lasting, *beside)
        for access in logged:
            access.flush()
        count = sum(a.requests for a in logged)
        answered = f": {count} request{'' if count == 1 else 's'} answered" if logged else ""
        log.info("stopped serving %s%s", project.name, answered)


#: logged at start-up by `serve --no-worker`
NO_WORKER_LINE = "no worker here (--no-worker): `interlink worker` processes run the queued work"


def admin_line(admin: AdminConfig, port: int | None = None) -> str:
    """The log line saying who may use the engine's endpoints, and where (`port`: the one
    `admin.listen` got, when it asked for 0)."""
    where = "" if admin.listen is None else \
        f" on {_url(admin.listen.host, port or admin.listen.port)} only"
    return f"{AdminAccess(admin).describe()}{where}"


def url_of(sock: socket.socket) -> str:
    """`http://HOST:PORT` of a listening socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    return _url(host, port)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _started(servers: Sequence[uvicorn.Server], worker: Worker | None,
                   lasting: Sequence[asyncio.Task[None]]) -> bool:
    """Wait until every server listens and the worker claims (True), or one of them ended."""
    while not (all(server.started for server in servers)
               and (worker is None or worker.started.is_set())):
        if any(task.done() for task in lasting):
            return False
        await asyncio.sleep(0.01)
    return True


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (`_stop_on_signals` does it).

    uvicorn re-raises a SIGTERM it caught once its server returns, which killed the process
    before the worker had finished its items and before the shutdown line was logged.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _stop_on_signals(servers: list[_Server]) -> None:
    """SIGINT or SIGTERM: stop the servers gracefully (then the worker, see `_serve`)."""

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    on_stop_signals(stop)


#: a SIGINT this soon after the first is the same one (`timeout -s INT` sends it to the
#: process and then to its group)
SAME_SIGNAL_S = 0.5
#: the exit status of a process a second Ctrl-C ended (128 + SIGINT, as shells report it)
INTERRUPTED = 130


def on_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT or SIGTERM: `stop()` (stop gracefully). A SIGINT after that — Ctrl-C again,
    more than `SAME_SIGNAL_S` after the first signal — exits at once, as SIGKILL would and
    as safely: what the worker held is taken over by any worker once its leases run out,
    sent again with the same idempotency keys. A second SIGTERM changes nothing
    (orchestrators send SIGKILL when their grace period ends)."""
    loop = asyncio.get_running_loop()
    first: list[float] = []

    def on_signal(sig: signal.Signals) -> None:
        if first and sig == signal.SIGINT and time.monotonic() - first[0] > SAME_SIGNAL_S:
            log.warning("interrupted again: exiting now, without finishing what is in hand "
                        "(any worker takes it over once its leases run out)")
            logging.shutdown()  # flush the line: os._exit skips it
            os._exit(INTERRUPTED)
        if not first:
            first.append(time.monotonic())
            if sig == signal.SIGINT:
                log.info("stopping gracefully: Ctrl-C again to exit at once")
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def _work(project: Project, sockets: Sequence[socket.socket], log_format: str) -> None:
    """Run a worker until SIGINT/SIGTERM; with `sockets` (`worker --listen`), serve the
    engine's endpoints there too (health, `/metrics`, runs: `build_admin_app`, behind the same
    admin check) until the worker has finished what it holds, so a drain can be watched."""
    engine = Engine(project)
    redact_logs(engine.redactor)
    async with engine:
        stop = asyncio.Event()
        on_stop_signals(stop.set)
        worker = engine.worker()
        access = [_access_log(build_admin_app(engine, worker), engine, project, log_format)
                  for _ in sockets]
        servers = [_Server(uvicorn_config(app, sock.getsockname()[0], sock.getsockname()[1],
                                          project.config.server.limits))
                   for app, sock in zip(access, sockets, strict=True)]
        serving = [asyncio.create_task(server.serve(sockets=[sock]))
                   for server, sock in zip(servers, sockets, strict=True)]
        _loop.settle_memory()
        running = asyncio.create_task(worker.run(stop))
        if await _started(servers, worker, [running, *serving]):
            log.info("worker %s started", worker.owner)
            for sock in sockets:
                log.info("serving the engine's endpoints on %s: %s", url_of(sock),
                         AdminAccess(project.config.admin).describe())
        await asyncio.wait([running, *serving], return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # a listener that failed stops the worker too
        await running
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving)
        for app in access:
            if isinstance(app, AccessLog):
                app.flush()
        log.info("worker %s stopped", worker.owner)


def _access_log(app: ASGIApp, engine: Engine, project: Project, log_format: str) -> ASGIApp:
    """`app` with the access log, unless `server.access_log` is false."""
    if not project.config.server.access_log:
        return app
    return AccessLog(app, engine.redactor, json=log_format == "json")


def configure_logging(log_format: str | None = None) -> str:
    """Engine logs through structlog: readable lines, or JSON lines (`log_format` "json", or
    INTERLINK_LOG_FORMAT=json when it is None); the format chosen. The access log takes a
    cheaper path of its own (`access_log`)."""
    if log_format is None:
        log_format = "json" if os.environ.get("INTERLINK_LOG_FORMAT") == "json" else "plain"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    handler = logging.StreamHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True),
                           _masked_exception, structlog.processors.format_exc_info],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Whatever configured uvicorn's loggers before (its own dictConfig stops them at
    # "uvicorn"), their records go to the root handler: one format, one redacting filter.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    return log_format


def redact_logs(redactor: Redactor) -> None:
    """Mask what `redactor` knows (now and later) in every record the root handlers write."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(redactor))


def _masked_exception(logger: Any, method: str,
                      event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The traceback `RedactingFilter` masked (it keeps it as `exc_text`) as `exception`."""
    record = event.get("_record")
    text = getattr(record, "exc_text", None)
    if text and "exc_info" not in event:
        event["exception"] = text
    return event


def serve(project: Project, *, host: str | None = None, port: int | None = None,
          with_worker: bool = True, log_format: str | None = None) -> None:
    """Serve `project` until interrupted; log lines as `log_format` ("plain" or "json";
    default: INTERLINK_LOG_FORMAT, else plain). Raises `ServerError` when a port cannot be
    bound (before anything starts)."""
    fmt = configure_logging(log_format)
    with listeners(project, host, port) as sockets:
        _loop.run(_serve(project, sockets, with_worker, fmt))


@contextlib.contextmanager
def listeners(project: Project, host: str | None = None,
              port: int | None = None) -> Iterator[list[socket.socket]]:
    """The listening sockets of `project`, bound now (`ServerError` when one cannot be) and
    closed when the block ends: the main listener's (`host`, `port`, by default the
    project's), then `admin.listen`'s when configured."""
    server, admin = project.config.server, project.config.admin
    sockets: list[socket.socket] = []
    try:
        sockets.append(_listen(project.name, host or server.host,
                               server.port if port is None else port))
        if admin.listen is not None:
            sockets.append(_listen(project.name, admin.listen.host, admin.listen.port))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _listen(name: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free one), bound as uvicorn binds
    one; `ServerError` when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServerError(f"serving {name}: binding {host}:{port}: "
                          f"{exc.strerror or exc}") from exc
    return sock


def serve_sockets(project: Project, sockets: Sequence[socket.socket], *, with_worker: bool,
                  log_format: str | None, ready: Callable[[], None],
                  metrics_dir: Path | None = None) -> None:
    """Serve `project` on listening sockets another process bound (`server_processes`): the
    main listener's, then `admin.listen`'s when configured; `ready()` once they serve; the
    metrics shared with the other processes in `metrics_dir`."""
    fmt = configure_logging(log_format)
    _loop.run(_serve(project, sockets, with_worker, fmt, ready, metrics_dir))


def run_worker(project: Project, *, log_format: str | None = None,
               listen: tuple[str, int] | None = None) -> None:
    """Run a worker for `project` until interrupted; with `listen` (host, port), serve the
    engine's endpoints there too. Raises `ServerError` when it cannot be bound."""
    fmt = configure_logging(log_format)
    sockets = [] if listen is None else [_listen(project.name, *listen)]
    try:
        _loop.run(_work(project, sockets, fmt))
    finally:
        for sock in sockets:
            sock.close()
