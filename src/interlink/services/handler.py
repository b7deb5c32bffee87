"""One service's request pipeline: security → mapping → activity → response, each timed.

The phase timings (seconds) are kept in the context's `timings`; a service with
`server_timing: true` also sends them in a `Server-Timing` header (milliseconds), unless a rule
sets that header itself. It is opt-in because every header costs the HTTP server time.
"""

from __future__ import annotations

import logging
import time
from time import perf_counter
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from interlink.errors import ExpressionError
from interlink.expressions import compile_interpolation
from interlink.ids import new_id
from interlink.redaction import Redactor
from interlink.services.activity import (
    ActivityRunner,
    FunctionCaller,
    RequestObserver,
    run_activity,
)
from interlink.services.body import (
    ClientDisconnected,
    declared_charset,
    parse_body_off_loop,
    read_body,
)
from interlink.services.context import decode_headers, decode_query, new_context
from interlink.services.failures import (
    ActivityFailure,
    BodyTooLarge,
    MappingFailure,
    PhaseFailure,
    SecurityFailure,
    ServiceError,
)
from interlink.services.mapping import RequestMapper
from interlink.services.queueing import enqueue_request, request_payload
from interlink.services.responses import Response, error_body, send_response, timing_header
from interlink.services.rules import CompiledRule, RuleBook
from interlink.services.security import admit, build_authenticator
from interlink.services.sessions import Session, SessionKeeper
from interlink.services.sources import JSON, ResponseBuildError
from interlink.spec import Project, ServiceSpec
from interlink.store import Store

__all__ = ["DEFAULT_STATUS", "ServiceHandler"]

log = logging.getLogger("interlink.services")


#: status of an answer no rule matched (the source document's values)
DEFAULT_STATUS = {"success": 200, "security_error": 401, "mapping_error": 500,
                  "service_error": 500}


def _internal(phase: str, exc: BaseException, redactor: Redactor) -> ActivityFailure:
    failure = ActivityFailure(
        "internal", "the service could not answer",
        redactor.text(f"{type(exc).__name__}: {exc}"),
    )
    failure.phase = phase
    return failure


class ServiceHandler:
    """Answers the requests of one service (compiled once, when the app is built)."""

    def __init__(
        self, project: Project, service: ServiceSpec, *,
        activity_runner: ActivityRunner | None, function_caller: FunctionCaller | None,
        store: Store | None, observer: RequestObserver | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        name = service.name
        package = None
        if service.package is not None:
            package = project.config.packages.get(service.package)
            if package is None:
                raise ServiceError(f"service {name}: no package {service.package!r}")
        self.spec = service
        self.name = name
        self.observer = observer
        self.redactor = redactor if redactor is not None else Redactor(project.secrets)
        self.auth = build_authenticator(package.auth if package else None)
        self.mapper = RequestMapper(name, service.request.map)
        self.rules = RuleBook(service, project.templates, function_caller,
                              project.config.conditions)
        self.body_kind = service.request.body
        self.limit = service.request.max_body
        self.limits = project.config.server.limits
        self.variables = {k: compile_interpolation(v) for k, v in service.variables.items()}
        self.is_async = service.execution == "async"
        self.runner = activity_runner
        self.store = store
        self.sessions: SessionKeeper | None = None
        stateful = package is not None and package.processing == "stateful"
        if service.activity is not None and activity_runner is None and not self.is_async:
            raise ServiceError(f"service {name}: has an activity but no activity runner is set")
        if (self.is_async or self.rules.has_queue_rules or stateful
                or self.auth.needs_store) and store is None:
            raise ServiceError(f"service {name}: queueing, sessions and replay-proof HMAC "
                               "need a store")
        if self.mapper.writes_session and not stateful:
            raise ServiceError(f"service {name}: maps into session but its package is stateless")
        if stateful and package is not None and store is not None:
            self.sessions = SessionKeeper(package.session, store)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, path_params: dict[str, str]
    ) -> None:
        """Answer one HTTP request."""
        headers = decode_headers(scope["headers"])
        query = decode_query(scope.get("query_string", b""))
        ctx = new_context(self.name, scope["method"], scope["path"], path_params, query, headers)
        # The run a flow activity gets; named before it starts, so a queued request names it.
        run_id = new_id("r_") if self.spec.activity is not None else ""
        try:
            raw, session, failure = await self._phases(ctx, scope, receive, run_id)
        except ClientDisconnected:
            return
        except BodyTooLarge as exc:
            await send_response(send, Response(413, error_body("mapping", exc.message), JSON))
            if self.observer is not None:
                self.observer(self.name, "body_too_large", ctx["timings"])
            return
        started = perf_counter()
        response = await self._respond(ctx, raw, session, failure, run_id)
        ctx["timings"]["response"] = perf_counter() - started
        if self.spec.server_timing and not response.has_header("server-timing"):
            response.headers.append(("Server-Timing", timing_header(ctx["timings"])))
        await send_response(send, response)
        if self.observer is not None:
            self.observer(self.name, failure.outcome if failure else "success", ctx["timings"])

    async def _phases(
        self, ctx: dict[str, Any], scope: Scope, receive: Receive, run_id: str
    ) -> tuple[bytes, Session | None, PhaseFailure | None]:
        """Run security, mapping and activity; the first failing phase ends the run."""
        timings = ctx["timings"]
        request = ctx["request"]
        headers = request["headers"]
        raw = b""
        session: Session | None = None
        phase = "security"
        started = perf_counter()
        try:
            if self.auth.needs_body:
                raw = await read_body(receive, headers.get("content-length"), self.limit)
            # `admit` is the check plus its nonce; without nonces the check alone (no await).
            caller = await admit(self.auth, self.store, headers, request["query"], raw, scope) \
                if self.auth.needs_store else self.auth.check(headers, request["query"], raw, scope)
            timings["security"] = perf_counter() - started

            phase, started = "mapping", perf_counter()
            if not self.auth.needs_body and self.body_kind != "none":
                raw = await read_body(receive, headers.get("content-length"), self.limit)
            charset = declared_charset(headers.get("content-type"))
            if raw:
                request["raw"] = raw.decode(charset or "utf-8", "replace")
            request["body"] = await parse_body_off_loop(self.body_kind, raw, self.limits,
                                                        charset)
            if self.sessions is not None:
                session = await self.sessions.load(headers, caller)
                # `session.id`: the requestor id of the source document, readable in rules.
                session.data["id"] = session.id
                ctx["session"] = session.data
            if self.variables:
                ctx["variables"] = self._render_variables(ctx)
            self.mapper.apply(ctx)
            timings["mapping"] = perf_counter() - started

            phase, started = "activity", perf_counter()
            if self.is_async or (self.spec.activity is not None
                                 and self.rules.queued_before_activity(ctx) is not None):
                # The activity runs once, in the request processor.
                ctx["queue_item_id"] = await self._enqueue(ctx, raw, session, run_id)
            elif self.spec.activity is not None:
                assert self.runner is not None
                await run_activity(self.runner, self.spec, ctx, self.redactor, run_id=run_id)
            timings["activity"] = perf_counter() - started
            return raw, session, None
        except (ClientDisconnected, BodyTooLarge):
            raise
        except PhaseFailure as exc:
            failure = exc
        except Exception as exc:  # the engine's own failure is a service error
            failure = _internal(phase, exc, self.redactor)
        timings[phase] = perf_counter() - started
        ctx["error"] = failure.as_context()
        if failure.outcome == "service_error":
            log.warning("service %s: %s failed: %s", self.name, phase, failure.detail)
        return raw, session, failure

    def _render_variables(self, ctx: dict[str, Any]) -> dict[str, str]:
        try:
            return {k: v.render(ctx) for k, v in self.variables.items()}
        except ExpressionError as exc:
            raise MappingFailure("map_failed", "rendering the service variables failed",
                                 str(exc)) from None

    async def _enqueue(self, ctx: dict[str, Any], raw: bytes, session: Session | None,
                       run_id: str, failure: PhaseFailure | None = None, *,
                       after_activity: bool = False) -> str:
        """Queue the request for the request processor, naming the run its activity has.

        Not run yet (async, or queued before the activity): the processor runs it at once.
        Run and failed: the processor waits its delay, then continues that run. Run and
        succeeded: the item carries the result and the processor only marks it done.
        """
        assert self.store is not None
        payload = request_payload(
            self.name, ctx, raw, drop_headers=self.auth.credential_headers,
            drop_query=self.auth.credential_query,
            session_id=session.id if session is not None else None, run_id=run_id,
        )
        run_at = None
        if after_activity and failure is None:
            payload["result"] = ctx["result"]
        elif after_activity:
            processor = self.spec.request_processor
            run_at = None if processor is None else time.time() + processor.delay
        return await enqueue_request(self.store, payload, run_at=run_at)

    async def _respond(
        self, ctx: dict[str, Any], raw: bytes, session: Session | None,
        failure: PhaseFailure | None, run_id: str,
    ) -> Response:
        """Choose the rule for the outcome and build the answer; a failure here falls back
        to `on: service_error` rules, then to the built-in 500."""
        outcome = failure.outcome if failure is not None else "success"
        try:
            rule = self.rules.first_match(outcome, ctx)
            if rule is not None and rule.queues and ctx["queue_item_id"] is None:
                ctx["queue_item_id"] = await self._enqueue(ctx, raw, session, run_id, failure,
                                                           after_activity=True)
            response = await self._build(rule, outcome, ctx, failure)
            await self._save_session(session, response)
            return response
        except Exception as exc:  # any failure to answer is a service error
            failure = _internal("response", exc, self.redactor)
            failure.message = "the service could not build its answer"
            if isinstance(exc, ResponseBuildError):
                failure.kind = "response_failed"
            ctx["error"] = failure.as_context()
            log.warning("service %s: response failed: %s", self.name, failure.detail)
        try:
            rule = self.rules.first_match("response_error", ctx)
            return await self._build(rule, "service_error", ctx, failure)
        except Exception as exc:  # last resort: the built-in answer
            log.warning("service %s: service_error rule failed: %s", self.name,
                        self.redactor.text(str(exc)))
            return Response(500, error_body("response", failure.message), JSON)

    async def _build(
        self, rule: CompiledRule | None, outcome: str, ctx: dict[str, Any],
        failure: PhaseFailure | None,
    ) -> Response:
        if rule is not None and rule.status is not None:
            status = rule.status
        elif ctx["queue_item_id"] is not None and (
                outcome == "success" or (rule is not None and rule.queues)):
            status = 202  # queued: by `queue_when`, or at once (`execution: async`)
        else:
            status = DEFAULT_STATUS[outcome]
        response = Response(status)
        if rule is not None:
            for name, build_value in rule.headers:
                value = await build_value(ctx)
                if value is not None:
                    response.headers.append((name, value))
        if rule is not None and rule.body is not None:
            response.body, response.content_type = await rule.body(ctx)
        else:
            response.body, response.content_type = self._default_body(ctx, failure)
        if (
            isinstance(failure, SecurityFailure) and failure.challenge and status == 401
            and not response.has_header("www-authenticate")
        ):
            response.headers.append(("WWW-Authenticate", failure.challenge))
        return response

    @staticmethod
    def _default_body(ctx: dict[str, Any], failure: PhaseFailure | None) -> tuple[bytes, str]:
        """The answer of a rule without `body` (or of no rule) for the outcome."""
        queued = ctx["queue_item_id"]
        if queued is not None and (failure is None or failure.phase != "response"):
            return orjson.dumps({"queue_item_id": queued}), JSON
        if failure is not None:
            return error_body(failure.phase, failure.message), JSON
        result = ctx["result"]
        if result is not None and result["payload"] is not None:
            return orjson.dumps(result["payload"], default=str), JSON
        return b"", "text/plain; charset=utf-8"

    async def _save_session(self, session: Session | None, response: Response) -> None:
        if session is None or self.sessions is None:
            return
        session.data.pop("id", None)  # the id is the session's key, not its data
        await self.sessions.save(session)
        if not response.has_header("set-cookie"):
            response.headers.append(("Set-Cookie", self.sessions.set_cookie(session)))
