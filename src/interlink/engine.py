"""A project's runtime: the store and everything that runs against it, opened and closed together.

`interlink serve`, `interlink worker`, `interlink run` and the tests all build an `Engine`, so
there is one place that decides what a running project consists of: the store, one HTTP client
session, a client per connector, the script pool, the flow runner, and the worker's handlers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

import aiohttp
from starlette.types import ASGIApp

from interlink.activities import ProjectActivities, RequestProcessor
from interlink.connectors.client import ConnectorClient
from interlink.connectors.pool import ConnectionPool
from interlink.flows.runner import RUN_KIND, FlowRunner
from interlink.housekeeping import Housekeeping
from interlink.metrics import Metrics
from interlink.notifications import NOTIFICATION_KIND, Notifications
from interlink.redaction import Redactor
from interlink.scripts import ScriptPool
from interlink.services import QUEUE_KIND, ServicesApp, build_services_app
from interlink.spec import Project
from interlink.store import Store, open_store
from interlink.worker import Handler, Worker, worker_name

__all__ = ["Engine"]


class Engine:
    """Everything a project needs at run time; `async with Engine(project) as engine: …`."""

    def __init__(self, project: Project, *, store_url: str | None = None,
                 owner: str | None = None, metrics_dir: Path | None = None) -> None:
        self.project = project
        self.owner = owner or worker_name()
        self.store: Store = open_store(store_url or project.config.store, project.root)
        self.redactor = Redactor(project.masked())
        self.store.redact_with(self.redactor)
        self.scripts = ScriptPool(project.root, project.config.scripts)
        #: `metrics_dir`: the folder the processes of `serve --workers N` share their numbers in
        self.metrics = Metrics(metrics_dir)
        self._stack = contextlib.AsyncExitStack()
        self._http: aiohttp.ClientSession | None = None
        self._runner: FlowRunner | None = None
        self._activities: ProjectActivities | None = None
        self._notifications: Notifications | None = None

    async def __aenter__(self) -> Engine:
        await self.store.open()
        self._stack.push_async_callback(self.store.close)
        self._stack.push_async_callback(self.scripts.close)
        # One connection pool for every connector; limits are per connector (their semaphores).
        # No cookie jar: a cookie an upstream set would ride on later calls of this process
        # only — state in memory, so a call would depend on the process making it and on what
        # ran before (credentials are headers, from the store). It also costs every call.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._stack.push_async_callback(self._http.close)
        # Connector calls, the hot path, have a client of their own (connectors.pool); logins,
        # notifications and `notify` steps go through aiohttp's.
        pool = ConnectionPool()
        self._stack.push_async_callback(pool.close)
        connectors = {
            name: ConnectorClient(spec, self.store, self._http, owner=self.owner,
                                  redactor=self.redactor, pool=pool)
            for name, spec in self.project.connectors.items()
        }
        cfg = self.project.config.worker
        self._notifications = Notifications(self.project, self.store, self._http,
                                            self.redactor, owner=self.owner, lease_s=cfg.lease)
        self._stack.push_async_callback(self._notifications.close)
        self._runner = FlowRunner(self.project, self.store, connectors=connectors,
                                  scripts=self.scripts, redactor=self.redactor,
                                  owner=self.owner, http=self._http, lease_s=cfg.lease,
                                  metrics=self.metrics, notifications=self._notifications)
        self._stack.push_async_callback(self._runner.close)
        self._activities = ProjectActivities(self._runner, self.scripts)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    @property
    def runner(self) -> FlowRunner:
        """The flow runner (available once the engine is open)."""
        if self._runner is None:
            raise RuntimeError("the engine is not open")
        return self._runner

    @property
    def activities(self) -> ProjectActivities:
        """Service activities and functions (available once the engine is open)."""
        if self._activities is None:
            raise RuntimeError("the engine is not open")
        return self._activities

    def services_app(self, fallback: ASGIApp | None = None) -> ServicesApp:
        """The project's services as one ASGI app; unrouted requests go to `fallback`."""
        return build_services_app(self.project, activity_runner=self.activities,
                                  function_caller=self.activities, store=self.store,
                                  fallback=fallback, observer=self.metrics.request,
                                  redactor=self.redactor)

    @property
    def notifications(self) -> Notifications:
        """Failure notifications (available once the engine is open)."""
        if self._notifications is None:
            raise RuntimeError("the engine is not open")
        return self._notifications

    def handlers(self) -> dict[str, Handler]:
        """Queue item kind → the handler that runs it."""
        return {RUN_KIND: self.runner.handle,
                QUEUE_KIND: RequestProcessor(self.project, self.store, self.activities,
                                             self.redactor, self.notifications.notices),
                NOTIFICATION_KIND: self.notifications.handler}

    def worker(self) -> Worker:
        """A worker running this engine's handlers with the project's worker settings, its
        housekeeping (and the failure-rate watch, when `notify.connector_failure_rate` is
        set)."""
        cfg = self.project.config.worker
        watch = self.notifications.watch
        housekeeping = Housekeeping(self.store, self.owner, cfg.keep_finished,
                                    keep_runs_s=cfg.keep_runs,
                                    keep_failed_runs_s=cfg.keep_failed_runs)
        worker = Worker(self.store, self.handlers(), owner=self.owner,
                        concurrency=cfg.concurrency, lease_s=cfg.lease, poll_s=cfg.poll,
                        notices=self.notifications.notices,
                        tasks=[housekeeping.run, *([watch.run] if watch is not None else [])])
        self.runner.workers.append(worker)
        return worker
