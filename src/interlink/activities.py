"""Where services meet flows and scripts: service activities and the request processor.

The services app knows nothing of flows or the script pool; it is handed `ProjectActivities`
(runs a service's flow or script, calls `from: function` functions). The worker is handed
`RequestProcessor`, which finishes queued service requests (`queue_when`, `execution: async`)
under the service's `request_processor` settings.

A queued request names the run its flow activity has (`run_id`, given before the activity
started), so every processor attempt works on that one run (docs/decisions/0005):

| the run named by the item     | a processor attempt                                       |
|-------------------------------|-----------------------------------------------------------|
| does not exist yet            | runs the activity as that run (exclusively: never twice)  |
| is running or waiting         | leaves it be and looks again later (not counted)          |
| failed (after its code-2 retries) | re-drives it from its failed step, same keys          |
| succeeded                     | takes its result                                          |

A request queued after its activity *succeeded* carries the result and is only marked done.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from interlink.errors import Conflict, ScriptError
from interlink.expressions import compile_expression
from interlink.flows.runner import TERMINAL, FlowRunner
from interlink.ids import derived_id
from interlink.payloads import output_of
from interlink.redaction import Redactor
from interlink.scripts import ScriptPool
from interlink.services import ActivityResult, replay_request
from interlink.services.activity import ActivityInProgress, run_activity
from interlink.services.failures import PhaseFailure
from interlink.spec import Project
from interlink.spec.service import RequestProcessor as ProcessorSpec
from interlink.spec.service import ServiceSpec
from interlink.store import Complete, Fail, QueueItem, Release, RunRecord, Store
from interlink.worker import BrokenNotices

__all__ = ["ProjectActivities", "RequestProcessor"]

log = logging.getLogger("interlink.services")

_DEFAULT_PROCESSOR = ProcessorSpec()
#: longest wait before looking again at a queued request whose run is still going on
RECHECK_S = 5.0


class ProjectActivities:
    """Runs service activities with the project's flow runner and script pool."""

    def __init__(self, runner: FlowRunner, scripts: ScriptPool) -> None:
        self.runner = runner
        self.scripts = scripts

    async def run(self, service: ServiceSpec, context: dict[str, Any], *,
                  run_id: str) -> ActivityResult:
        """Run the service's flow (to its end, as run `run_id`) or script."""
        return await self._run(service, context, run_id, to_the_end=True)

    async def _run(self, service: ServiceSpec, context: dict[str, Any], run_id: str, *,
                   to_the_end: bool) -> ActivityResult:
        activity = service.activity
        assert activity is not None
        payload = _input(service, context)
        if activity.flow is not None:
            try:
                run = await self.runner.run_now(activity.flow, payload, run_id=run_id,
                                                trigger=f"service:{service.name}",
                                                to_the_end=to_the_end)
            except Conflict:
                raise ActivityInProgress(run_id) from None
            return _result(run)
        assert activity.script is not None
        data = {"payload": payload, "variables": dict(context.get("variables") or {}),
                "meta": {"service": service.name, "queue_item_id": context.get("queue_item_id")},
                "flow": {"name": None, "variables": {}},
                "request": context["request"], "page": context["page"],
                "session": context.get("session")}
        outcome = await self.scripts.run(activity.script, data)
        if outcome.response_code in (2, 3):
            raise ScriptError(outcome.message or f"script {activity.script} failed the request")
        return ActivityResult("succeeded", outcome.data.get("payload"))

    async def resume(self, service: ServiceSpec, context: dict[str, Any], *,
                     run_id: str) -> ActivityResult:
        """The activity of a queued request: continue run `run_id` (see the module's table),
        or run the script again. A run that goes into a durable wait here is left to the
        workers (`ActivityInProgress`): a worker slot never waits on another slot's work."""
        assert service.activity is not None
        run = await self._latest(run_id) if service.activity.flow is not None else None
        if run is None:
            result = await self._run(service, context, run_id, to_the_end=False)
        elif run.status == "failed":
            try:
                run = await self.runner.redrive_now(run, to_the_end=False)
            except Conflict:
                raise ActivityInProgress(run.id) from None
            result = _result(run)
        else:
            result = _result(run)
        if result.status not in TERMINAL:
            raise ActivityInProgress(run_id)
        return result

    async def _latest(self, run_id: str) -> RunRecord | None:
        """Run `run_id`, or the last of the code-2 retries it led to."""
        run = await self.runner.store.get_run(run_id)
        while run is not None and run.status == "failed":
            retry = await self.runner.store.get_run(self.runner.retry_id(run))
            if retry is None:
                break
            run = retry
        return run

    async def __call__(self, path: str, name: str, context: dict[str, Any]) -> Any:
        """A `from: function` source: call `name` in the script at `path`."""
        return await self.scripts.call_function(path, name, context)


class _Resuming:
    """`ProjectActivities` as the `ActivityRunner` of queued requests."""

    def __init__(self, activities: ProjectActivities) -> None:
        self.activities = activities

    async def run(self, service: ServiceSpec, context: dict[str, Any], *,
                  run_id: str) -> ActivityResult:
        return await self.activities.resume(service, context, run_id=run_id)


def _result(run: RunRecord) -> ActivityResult:
    output = output_of(run.bucket) if run.status == "succeeded" else None
    return ActivityResult(run.status, output, run.id)


def _input(service: ServiceSpec, context: dict[str, Any]) -> Any:
    activity = service.activity
    assert activity is not None
    if activity.input is not None:
        return compile_expression(activity.input).evaluate(context)
    return context["page"] or context["request"]["body"]


class RequestProcessor:
    """Worker handler of `service_request` items: finish the queued request, or give up."""

    def __init__(self, project: Project, store: Store, activities: ProjectActivities,
                 redactor: Redactor, notices: BrokenNotices | None = None) -> None:
        self.project = project
        self.notices = notices
        self.store = store
        self.activities = _Resuming(activities)
        self.redactor = redactor

    async def __call__(self, item: QueueItem, owner: str) -> None:
        """Run (or continue) the queued request's activity; record the result, a retry, or
        the end."""
        payload = item.payload
        service = self.project.services.get(payload.get("service", ""))
        settings = (service.request_processor if service else None) or _DEFAULT_PROCESSOR
        if "result" in payload:  # its activity succeeded before it was queued
            kept = payload["result"] if settings.keep_results else None
            await self.store.write(Complete(item.id, owner, result=kept, keep=True))
            return
        # Items queued before requests named their run get one derived from the item.
        run_id = payload.get("run_id") or derived_id("r_", item.created_at, item.id)
        try:
            if service is None or service.activity is None:
                raise _Unrunnable(f"service {payload.get('service')!r} has no activity")
            context = await replay_request(self.project, payload, store=self.store,
                                           queue_item_id=item.id)
            result = await run_activity(self.activities, service, context, self.redactor,
                                        run_id=run_id)
        except ActivityInProgress:
            recheck = time.time() + min(settings.delay, RECHECK_S)
            await self.store.write(Release(item.id, owner, recheck, count_attempt=False,
                                           error=f"run {run_id} is still in progress"))
            return
        except (PhaseFailure, _Unrunnable) as exc:
            await self._failed(item, owner, settings, _reason(exc))
            return
        kept = result.as_context() if settings.keep_results else None
        await self.store.write(Complete(item.id, owner, result=kept, keep=True))

    async def _failed(self, item: QueueItem, owner: str, settings: ProcessorSpec,
                      reason: str) -> None:
        if item.attempts >= settings.max_attempts:
            status: Literal["broken", "failed"] = "broken" if settings.keep_failed else "failed"
            log.warning("queued request %s: %s after %d attempts", item.id, status,
                        item.attempts)
            notices = self.notices.item_broken(item, reason) \
                if self.notices and status == "broken" else []
            await self.store.write(Fail(item.id, owner, reason, status=status), *notices)
            return
        delay = settings.delay * settings.backoff ** (item.attempts - 1)
        await self.store.write(Release(item.id, owner, time.time() + delay, error=reason))


class _Unrunnable(Exception):
    """The queued request cannot be run at all (its service or activity is gone)."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, PhaseFailure):
        return f"{exc.phase}: {exc.detail}"
    return str(exc)
