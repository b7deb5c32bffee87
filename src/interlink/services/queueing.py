"""Queued service requests (`queue_when`, `execution: async`) and replaying them.

The queue item (`kind="service_request"`) holds what is needed to run the activity again:
the service name and the request as received — method, path, path parameters, query,
headers, the raw body, the session id. Credentials are dropped first (the package's auth
header or query parameter, `Authorization`, `Cookie`): the caller was authenticated when the
request was accepted, and a durable queue is no place for secrets.

`replay_request(project, payload)` rebuilds the context from such a payload — body parsed,
`request.map` applied — for the worker's request processor to run the activity with.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from interlink.ids import new_id
from interlink.services.body import declared_charset, parse_body_off_loop
from interlink.services.context import new_context
from interlink.services.failures import ServiceError
from interlink.services.mapping import RequestMapper
from interlink.spec import Project
from interlink.store import Enqueue, Store

__all__ = ["QUEUE_KIND", "enqueue_request", "replay_request", "request_payload"]

#: the queue item kind of a queued service request
QUEUE_KIND = "service_request"

_ALWAYS_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization"})


def request_payload(
    service: str, context: dict[str, Any], raw: bytes, *,
    drop_headers: frozenset[str], drop_query: frozenset[str], session_id: str | None,
    run_id: str = "",
) -> dict[str, Any]:
    """The queue payload replaying this request: credentials dropped, body kept raw, and the
    id of the run its activity has (or will have)."""
    request = context["request"]
    dropped = _ALWAYS_DROPPED | drop_headers
    payload: dict[str, Any] = {
        "service": service,
        "method": request["method"],
        "path": request["path"],
        "path_params": request["path_params"],
        "query": {k: v for k, v in request["query"].items() if k not in drop_query},
        "headers": {k: v for k, v in request["headers"].items() if k not in dropped},
        "session_id": session_id,
        "run_id": run_id,
    }
    try:
        payload["body"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        payload["body_base64"] = base64.b64encode(raw).decode("ascii")
    return payload


async def enqueue_request(
    store: Store, payload: dict[str, Any], *, run_at: float | None = None, priority: int = 0
) -> str:
    """Queue the request durably (claimable from `run_at`); returns the new queue item id."""
    item_id = new_id("q_")
    await store.write(Enqueue(item_id, QUEUE_KIND, payload, run_at, priority))
    return item_id


async def replay_request(
    project: Project, payload: dict[str, Any], *, store: Store | None = None,
    queue_item_id: str | None = None,
) -> dict[str, Any]:
    """The context of a queued request, rebuilt: body parsed and `request.map` applied.

    With `store`, a stateful package's session data is loaded into `session` (the worker
    saves it back if it wants the activity's changes kept). Raises `MappingFailure` when the
    body no longer maps (the service changed since the request was queued), `ServiceError`
    when the service is gone.
    """
    service = project.services.get(payload.get("service", ""))
    if service is None:
        raise ServiceError(f"replaying a queued request: no service {payload.get('service')!r}")
    if "body_base64" in payload:
        raw = base64.b64decode(payload["body_base64"])
    else:
        raw = str(payload.get("body") or "").encode("utf-8")
    context = new_context(
        service.name, payload["method"], payload["path"], dict(payload["path_params"]),
        dict(payload["query"]), dict(payload["headers"]),
    )
    context["queue_item_id"] = queue_item_id
    request = context["request"]
    charset = declared_charset(request["headers"].get("content-type"))
    request["raw"] = raw.decode(charset or "utf-8", "replace")
    # The limits the request was accepted under (a body inside them maps again).
    request["body"] = await parse_body_off_loop(service.request.body, raw,
                                                 project.config.server.limits, charset)
    session_id = payload.get("session_id")
    package = project.config.packages.get(service.package or "")
    if package is not None and package.processing == "stateful":
        context["session"] = {}
        if store is not None and session_id:
            record = await store.get_session(session_id, time.time())
            if record is not None:
                context["session"] = dict(record.data)
        context["session"]["id"] = session_id
    RequestMapper(service.name, service.request.map).apply(context)
    return context
