"""The activity phase and the two behaviours the services app is given, not built with.

`ActivityRunner` runs a service's activity (its flow or script); `FunctionCaller` calls a
`scripts/x.py:name` function for a `from: function` header or body. Both are injected into
`build_services_app`, so this package knows nothing about flows or the script pool.

Each request that has an activity gets a run id up front, before the activity starts: if the
request is then queued (`queue_when`), the queue item names that run, and the request
processor continues it rather than starting another — one request, one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from interlink.redaction import Redactor
from interlink.services.failures import ActivityFailure
from interlink.spec.service import ServiceSpec

__all__ = [
    "ActivityInProgress",
    "ActivityResult",
    "ActivityRunner",
    "FunctionCaller",
    "RequestObserver",
    "run_activity",
]

#: run statuses that make the activity a service error even though the runner returned
FAILED_STATUSES = frozenset({"failed", "stopped"})


@dataclass(frozen=True, slots=True)
class ActivityResult:
    """What an activity produced; becomes `result` in the context."""

    status: str
    payload: Any = None
    run_id: str | None = None

    def as_context(self) -> dict[str, Any]:
        """The `result` entry of the request context."""
        return {"status": self.status, "payload": self.payload, "run_id": self.run_id}


class ActivityInProgress(Exception):
    """The activity's run is still going on elsewhere; ask again later (not a failure)."""


class ActivityRunner(Protocol):
    """Runs a service's activity. Raising (or a `failed` result) is a service error."""

    async def run(self, service: ServiceSpec, context: dict[str, Any], *,
                  run_id: str) -> ActivityResult:
        """Run `service.activity` with the request context as run `run_id` (a flow
        activity's run); return its outcome. Raises `ActivityInProgress` when that run is
        already going on elsewhere."""


class RequestObserver(Protocol):
    """Told of every answered request: the service, its outcome and its phases' seconds."""

    def __call__(self, service: str, outcome: str, timings: Mapping[str, float]) -> None:
        """Record one request (called after the answer was sent)."""


class FunctionCaller(Protocol):
    """Calls a user function `name` in the script at project-relative `path`."""

    async def __call__(self, path: str, name: str, context: dict[str, Any]) -> Any:
        """Return the function's value for the context."""


async def run_activity(
    runner: ActivityRunner, service: ServiceSpec, context: dict[str, Any],
    redactor: Redactor, *, run_id: str,
) -> ActivityResult:
    """Run the activity under its timeout; every way it can fail becomes `ActivityFailure`.

    A flow activity that times out goes on running (its run is durable); only the answer
    stops waiting for it.
    """
    assert service.activity is not None
    timeout = service.activity.timeout
    try:
        async with asyncio.timeout(timeout):
            result = await runner.run(service, context, run_id=run_id)
    except TimeoutError:
        raise ActivityFailure(
            "activity_timeout", f"the service activity timed out after {timeout:g}s"
        ) from None
    except ActivityInProgress:
        raise
    except Exception as exc:  # any failure of user work is a service error
        detail = redactor.text(f"{type(exc).__name__}: {exc}")
        raise ActivityFailure("activity_failed", "the service activity failed", detail) from None
    if not isinstance(result, ActivityResult):
        raise ActivityFailure(
            "activity_failed", "the service activity failed",
            f"the activity runner returned {type(result).__name__}, not an ActivityResult",
        )
    context["result"] = result.as_context()
    if result.status in FAILED_STATUSES:
        raise ActivityFailure(
            "activity_failed", "the service activity failed",
            redactor.text(f"run {result.run_id} ended {result.status}"),
        )
    return result
