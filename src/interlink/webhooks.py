"""Webhook triggers: a POST (or PUT) to a flow's path queues a run durably and answers 202.

The answer, `{"run_id", "status": "queued"}`, is sent once the run and its queue item are
committed: an accepted call is never lost, whatever happens to this process afterwards.

With `respond: {wait, status, body}` the call waits (up to `wait`) for the run to end, and a
run that succeeded is answered with `status` and `body` evaluated over `output`, `input` and
`run`; a run that ended otherwise is a 500 naming it (its reason stays in the run log), and
one still going when `wait` is up gets the 202 as without `respond`. The run is executed by a
worker as any other, so a caller that goes away leaves it going on.

A trigger with `package:` lets in only callers that pass that package's `auth` — the same
check, by the same authenticator, as the package's services (`services.security.admit`:
basic, API key, bearer, HMAC, replay-proof HMAC with its nonces). A failed check is 401 with
the services' error body (and the package's challenge) and starts no run. With HMAC the
body is read first, within `server.limits.max_body`, because the signature covers it;
otherwise an unauthenticated caller's body is never read.

A request whose `Idempotency-Key` (the trigger's `delivery_header`) this flow has seen before
starts no run: it is answered with the first one's run — so a sender that retries a call it got
no answer to (a timeout, a 503 whose commit went through) makes one run, not two. The store keeps
the key unique (the run's start key) across every process. Keys belong to the caller: the run's
key holds a hash of the credential that let the call in, so two callers who pick the same key
make a run each and neither learns of the other's. The same key with another body is a 422 (a
sender's bug, not a retry), as the IETF Idempotency-Key draft and Stripe answer it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.engine import Engine
from interlink.errors import (
    Conflict,
    ExpressionError,
    RunError,
    StoreError,
    StoreUnavailable,
    ValueRefused,
)
from interlink.expressions import compile_expression
from interlink.payloads import content_length, output_of, payload_of, unreadable
from interlink.services.body import read_body
from interlink.services.context import decode_headers, decode_query
from interlink.services.failures import MappingFailure, SecurityFailure
from interlink.services.responses import Response, StatusSeen, error_body, send_response
from interlink.services.security import (
    ANONYMOUS,
    Authenticator,
    Caller,
    build_authenticator,
    nonce_writes,
    replayed,
)
from interlink.services.sessions import principal_hash
from interlink.services.sources import JSON, ResponseBuildError, encode_value
from interlink.spec import Project
from interlink.spec.flow import MAX_DELIVERY_KEY, WebhookRespond, WebhookTrigger
from interlink.store import RunRecord

__all__ = ["Webhooks"]

log = logging.getLogger("interlink.webhooks")

#: seconds a webhook sender is asked to wait (`Retry-After`) when the store is unavailable
STORE_RETRY_AFTER_S = 5


class _Route:
    """A webhook: the flow it starts, who may call it, how it is answered, its delivery key."""

    __slots__ = ("auth", "delivery_header", "delivery_name", "flow", "respond")

    def __init__(self, flow: str, auth: Authenticator, trigger: WebhookTrigger) -> None:
        self.flow = flow
        self.auth = auth
        self.respond = trigger.respond
        self.delivery_name = trigger.delivery_header  # as configured, for messages
        #: as `decode_headers` spells it (lower case), looked up per call
        self.delivery_header = trigger.delivery_header.lower() if trigger.delivery_header \
            else ""


class Webhooks:
    """ASGI: the project's webhook triggers, in front of `app` (the services and the rest)."""

    def __init__(self, engine: Engine, app: ASGIApp) -> None:
        self.engine = engine
        self.app = app
        self.limits = engine.project.config.server.limits
        packages = engine.project.config.packages
        self.routes: dict[tuple[str, str], _Route] = {}
        for flow in engine.project.flows.values():
            trigger = flow.trigger
            if isinstance(trigger, WebhookTrigger):
                package = packages.get(trigger.package or "")
                auth = build_authenticator(package.auth if package is not None else None)
                self.routes[(trigger.method, trigger.path)] = _Route(flow.name, auth, trigger)

    @staticmethod
    def methods(project: Project) -> dict[str, str]:
        """Path → the methods its webhooks answer (an `Allow` value)."""
        methods: dict[str, set[str]] = {}
        for flow in project.flows.values():
            if isinstance(flow.trigger, WebhookTrigger):
                methods.setdefault(flow.trigger.path, set()).add(flow.trigger.method)
        return {path: ", ".join(sorted(names)) for path, names in methods.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: a webhook, or on to `app`."""
        found = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" \
            else None
        if found is None:
            await self.app(scope, receive, send)
            return
        seen = StatusSeen(send)
        try:
            await self._answer(found, scope, receive, seen)
        finally:
            self.engine.metrics.webhook(found.flow, seen.status)

    async def _answer(self, found: _Route, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a call of `found`'s webhook."""
        flow, auth, respond = found.flow, found.auth, found.respond
        length, limit = content_length(scope["headers"]), self.limits.max_body
        headers = decode_headers(scope["headers"])
        try:
            raw = await read_body(receive, length, limit) if auth.needs_body else b""
            caller = auth.check(headers, decode_query(scope.get("query_string", b"")), raw,
                                scope)
            if not auth.needs_body:
                raw = await read_body(receive, length, limit)
            payload = await payload_of(raw, self.limits, headers.get("content-type"))
        except SecurityFailure as failure:
            await _refuse(send, failure)
            return
        except MappingFailure as exc:
            status, body = unreadable(exc)
            await send_response(send, Response(status, body, JSON))
            return
        delivery = headers.get(found.delivery_header) or None
        if delivery is not None and len(delivery) > MAX_DELIVERY_KEY:
            await send_response(send, Response(400, error_body(
                "request", f"{found.delivery_name} is longer than {MAX_DELIVERY_KEY} "
                "characters"), JSON))
            return
        try:
            run_id, run_status = await self._accept(flow, payload, caller, delivery)
        except Conflict:  # the nonce: this signed request was accepted before
            await _refuse(send, replayed())
            return
        except _KeyReused:
            await send_response(send, Response(422, error_body(
                "request", f"this {found.delivery_name} was sent before with another body"),
                JSON))
            return
        except StoreUnavailable as exc:
            # Almost always nothing was committed; a connection that breaks during COMMIT
            # leaves it unknown, which a delivery key makes safe: sent again, the call finds
            # its run if it was committed. A 5xx every sender retries.
            log.warning("webhook %s: accepting a run of %s failed: %s", scope["path"], flow,
                        self.engine.redactor.text(str(exc)))
            await send_response(send, Response(
                503, error_body("store", "the store is unavailable; try again later"), JSON,
                [("Retry-After", str(STORE_RETRY_AFTER_S))]))
            return
        except StoreError as exc:
            # Refused, not unavailable. For a value of the call's (one the store cannot
            # hold), the same call would be refused again: a 422, not a 5xx a sender
            # retries for ever. Anything else (a permission, a missing table) is the
            # server's: a 500. What the store said stays in the log.
            log.warning("webhook %s: the store refused a run of %s: %s", scope["path"], flow,
                        self.engine.redactor.text(str(exc)))
            refused = isinstance(exc, ValueRefused)
            await send_response(send, Response(422 if refused else 500, error_body(
                "store", "the store cannot keep this call's body" if refused
                else "the store refused this call's run"), JSON))
            return
        except RunError as exc:
            message = self.engine.redactor.text(str(exc))
            await send_response(send, Response(500, error_body("activity", message), JSON))
            return
        # The run and its queue item are committed: from here on nothing can lose it.
        if respond is not None:
            answer = await self._run_answer(run_id, payload, respond)
            if answer is not None:
                await send_response(send, answer)
                return
        body = orjson.dumps({"run_id": run_id, "status": run_status})
        await send_response(send, Response(202, body, JSON))

    async def _accept(self, flow: str, payload: Any, caller: Caller,
                      delivery: str | None) -> tuple[str, str]:
        """Queue the run of a call (its id, "queued"), or find the run of the delivery seen
        before (its id and status). `Conflict`: a replayed signed request; `_KeyReused`: the
        delivery seen before had another body.

        A signed request's nonce commits with its run, or neither does: a request refused for
        want of a store may be sent again, and a replay is refused — unless it names a
        delivery already accepted, which is then what it gets.
        """
        key = None if delivery is None else _start_key(flow, caller, delivery)
        try:
            run_id = await self.engine.runner.start(flow, payload, trigger="webhook",
                                                    also=nonce_writes(caller), key=key)
        except Conflict:
            seen = None if key is None else await self.engine.store.get_run_by_key(key)
            if seen is None:
                raise
            # Compared as the store keeps it (secrets redacted), as canonical JSON: `true`
            # and `1` differ, key order and spacing do not.
            if _canonical(seen.input) != _canonical(self.engine.redactor.data(payload)):
                raise _KeyReused from None
            return seen.id, seen.status
        return run_id, "queued"

    async def _run_answer(self, run_id: str, payload: Any,
                          respond: WebhookRespond) -> Response | None:
        """The answer of a run that ended within `respond.wait`, or None (answer 202)."""
        try:
            run = await self.engine.runner.wait_for(run_id, respond.wait)
        except TimeoutError:
            return None
        if run.status != "succeeded":
            return Response(500, _ended(run, f"run {run.id} ended {run.status}"), JSON)
        context = {"output": output_of(run.bucket), "input": payload,
                   "run": {"id": run.id, "flow": run.flow, "status": run.status}}
        try:
            body, content_type = encode_value(compile_expression(respond.body).evaluate(context))
        except (ExpressionError, ResponseBuildError) as exc:
            log.warning("webhook of flow %s: building the answer of run %s: %s", run.flow,
                        run.id, self.engine.redactor.text(str(exc)))
            return Response(500, _ended(run, f"run {run.id} succeeded, but its answer could "
                                        "not be built"), JSON)
        return Response(respond.status, body, content_type)


class _KeyReused(Exception):
    """A delivery key seen before, sent with another body."""


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _start_key(flow: str, caller: Caller, delivery: str) -> str:
    """The run key of a delivery: per flow and per caller. A hash, not the credential that
    let the caller in, goes into the store; an open trigger's keys are the flow's."""
    if caller.principal == ANONYMOUS.principal:
        return f"webhook:{flow}:{delivery}"
    return f"webhook:{flow}:{principal_hash(caller)[:32]}:{delivery}"


def _ended(run: RunRecord, message: str) -> bytes:
    """The body of a 500 about run `run`: its id and status, and what went wrong."""
    return orjson.dumps({"run_id": run.id, "status": run.status,
                         "error": {"phase": "run", "message": message}})


async def _refuse(send: Send, failure: SecurityFailure) -> None:
    """401 with the failure's message (and challenge, if it has one)."""
    challenge = [("WWW-Authenticate", failure.challenge)] if failure.challenge else []
    await send_response(send, Response(401, error_body("security", failure.message), JSON,
                                       challenge))
