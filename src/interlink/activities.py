"""Where services meet flows and scripts: service activities and the request processor.

The services app knows nothing of flows or the script pool; it is handed `ProjectActivities`
(runs a service's flow or script, calls `from: function` functions). The worker is handed
`RequestProcessor`, which re-runs queued service requests (`queue_when`, `execution: async`)
under the service's `request_processor` settings.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from interlink.errors import ScriptError
from interlink.expressions import compile_expression
from interlink.flows.runner import FlowRunner
from interlink.scripts import ScriptPool
from interlink.services import ActivityResult, replay_request
from interlink.services.activity import run_activity
from interlink.services.failures import PhaseFailure
from interlink.spec import Project
from interlink.spec.service import RequestProcessor as ProcessorSpec
from interlink.spec.service import ServiceSpec
from interlink.store.base import Complete, Fail, QueueItem, Release, Store

__all__ = ["ProjectActivities", "RequestProcessor"]

log = logging.getLogger("interlink.services")

_DEFAULT_PROCESSOR = ProcessorSpec()


class ProjectActivities:
    """Runs service activities with the project's flow runner and script pool."""

    def __init__(self, runner: FlowRunner, scripts: ScriptPool) -> None:
        self.runner = runner
        self.scripts = scripts

    async def run(self, service: ServiceSpec, context: dict[str, Any]) -> ActivityResult:
        """Run the service's flow (to its end) or script with the request's payload."""
        activity = service.activity
        assert activity is not None
        payload = _input(service, context)
        if activity.flow is not None:
            run = await self.runner.run_now(activity.flow, payload,
                                            trigger=f"service:{service.name}")
            bucket = run.bucket or []
            # One payload in, one out: the usual case reads as a value, not a list.
            output = bucket[0] if len(bucket) == 1 else bucket
            return ActivityResult(run.status, output if run.status == "succeeded" else None,
                                  run.id)
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

    async def __call__(self, path: str, name: str, context: dict[str, Any]) -> Any:
        """A `from: function` source: call `name` in the script at `path`."""
        return await self.scripts.call_function(path, name, context)


def _input(service: ServiceSpec, context: dict[str, Any]) -> Any:
    activity = service.activity
    assert activity is not None
    if activity.input is not None:
        return compile_expression(activity.input).evaluate(context)
    return context["page"] or context["request"]["body"]


class RequestProcessor:
    """Worker handler of `service_request` items: run the activity again, or give up."""

    def __init__(self, project: Project, store: Store, activities: ProjectActivities) -> None:
        self.project = project
        self.store = store
        self.activities = activities

    async def __call__(self, item: QueueItem, owner: str) -> None:
        """Re-run the queued request's activity; record the result, a retry, or the end."""
        service = self.project.services.get(item.payload.get("service", ""))
        settings = (service.request_processor if service else None) or _DEFAULT_PROCESSOR
        try:
            if service is None or service.activity is None:
                raise _Unrunnable(f"service {item.payload.get('service')!r} has no activity")
            context = await replay_request(self.project, item.payload, store=self.store,
                                           queue_item_id=item.id)
            result = await run_activity(self.activities, service, context,
                                        self.project.secrets)
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
            await self.store.write(Fail(item.id, owner, reason, status=status))
            return
        delay = settings.delay * settings.backoff ** (item.attempts - 1)
        await self.store.write(Release(item.id, owner, time.time() + delay, error=reason))


class _Unrunnable(Exception):
    """The queued request cannot be run at all (its service or activity is gone)."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, PhaseFailure):
        return f"{exc.phase}: {exc.detail}"
    return str(exc)
