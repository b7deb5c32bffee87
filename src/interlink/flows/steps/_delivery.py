"""Delivering one payload (or one page of it): attempts until one is accepted, or the step
fails or waits — the heart of the `connector` step, and the rules that make it exactly once
as far as an upstream that honours `Idempotency-Key` can tell:

- every attempt for the same payload (and page) of the same step of a run sends the same key,
  across waits, crashes, re-authentication and re-drives;
- an attempt is saved *before* it is sent (decision `unknown`) and its outcome rides with the
  step's next write, so whatever crashes, every request that may have reached the upstream is
  counted, and `max_attempts` bounds what is sent;
- a resumed step reads its attempts from the store (`tallies`): what was accepted is not sent
  again, and the attempts and re-authentications it used still count (since the run's last
  re-drive, which starts a fresh budget);
- a 401 answered to a credential somebody else already replaced is retried with the current
  one at once, without asking the response script and without using up a re-authentication;
  the one call that does log in counts it, durably, before it does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from interlink.errors import ExpressionError, ScriptError, StoreError, ValueRefused
from interlink.expressions import compile_expression, compile_interpolation
from interlink.flows.decision import Decision, ResponseCode, classify, decision_for
from interlink.flows.steps.base import INLINE_WAIT_S, Failed, StepContext, Wait
from interlink.store import UNKNOWN_DECISION, AttemptRecord, SaveAttempt

if TYPE_CHECKING:
    from interlink.connectors.client import ConnectorClient
    from interlink.connectors.exchange import Exchange
    from interlink.connectors.retry import RetryPolicy
    from interlink.flows.steps.connector import ConnectorStep

__all__ = ["Accepted", "Delivery", "Tally", "tallies"]

#: the `code` stored for an attempt whose outcome is not (yet) known
_NO_CODE = -1
#: "the response script left the payload as it was"
_KEPT: Any = object()

#: the output an accepted attempt gives, from its exchange (default: the response)
Shape = Callable[["Exchange"], Any]


@dataclass(slots=True)
class Tally:
    """What earlier executions did for one payload (page): attempts, re-auths, its output."""

    used: int = 0
    """attempts since the run's last re-drive"""
    reauths: int = 0
    """re-authentications since the last re-drive"""
    last_n: int = 0
    """the highest attempt number so far (attempts are numbered across re-drives)"""
    unanswered: bool = False
    """the last attempt's answer was never recorded: its process stopped or died mid-call"""
    accepted: bool = False
    output: Any = None


def tallies(attempts: list[AttemptRecord], redrive: int) -> dict[tuple[int, int], Tally]:
    """What earlier executions did, by (payload item, page)."""
    found: dict[tuple[int, int], Tally] = {}
    for attempt in attempts:
        tally = found.setdefault((attempt.item, attempt.page), Tally())
        if attempt.n >= tally.last_n:
            tally.last_n = attempt.n
            tally.unanswered = attempt.decision == UNKNOWN_DECISION
        if attempt.code == ResponseCode.CONTINUE:
            tally.accepted, tally.output = True, attempt.output
        if attempt.redrive == redrive:
            tally.used += 1
            tally.reauths += attempt.reauth
    return found


@dataclass(frozen=True, slots=True)
class Accepted:
    """The attempt accepted, and the output it gave."""

    output: Any


class Delivery:
    """Sending one payload (one page of it) until an attempt is accepted, or the step fails
    or waits.

    `query` adds query parameters (a page number) and `url` replaces the endpoint's path (a
    next page's link); `shape` makes the accepted output from the exchange. `keep_output`
    stores that output with the accepted attempt: needed whenever the attempt may be written
    before the step ends (a later payload's write, a page, a concurrent payload), so that a
    resumed step need not send it again.
    """

    def __init__(self, ctx: StepContext, step: ConnectorStep, client: ConnectorClient,
                 index: int, payload: Any, tally: Tally, *, keep_output: bool, page: int = 0,
                 query: Mapping[str, str] | None = None, url: str | None = None,
                 shape: Shape | None = None) -> None:
        self.ctx = ctx
        self.step = step
        self.client = client
        self.policy: RetryPolicy = client.retry_policy
        self.index = index
        self.page = page
        self.payload = payload
        self.tally = tally
        self.keep_output = keep_output
        self.page_query = query or {}
        self.url = url
        self.shape = shape
        endpoint = client.spec.endpoints.get(step.endpoint)  # unknown: prepare() says so
        self.body = step.body_for(endpoint.method if endpoint else "POST")
        self.key = f"{ctx.run.id}:{step.id}:{index}" + (f":{page}" if page else "")
        self.where = f"calling {step.connector}.{step.endpoint}" + (
            f" (page {page + 1})" if page else "")

    def _of(self) -> str:
        return f"(attempt {self.tally.used} of {self.policy.max_attempts})"

    async def deliver(self) -> Accepted | Wait | Failed:
        """Attempt until accepted; every attempt is saved before it is sent."""
        ctx, step, tally = self.ctx, self.step, self.tally
        if tally.unanswered and self.policy.attempts_left(tally.used):
            ctx.log(f"{self.where}: attempt {tally.last_n}'s answer was never recorded (the "
                    "process sending it stopped or died): sending again with the same "
                    "idempotency key", "warning")
            tally.unanswered = False
        while True:
            if self.policy.attempts_left(tally.used) == 0:
                return Failed(f"{self.where}: no attempts left {self._of()}; the last one's "
                              "answer was never recorded (the process stopped)")
            tally.used += 1
            tally.last_n += 1
            data = ctx.data(self.payload, attempt=tally.used, idempotency_key=self.key)
            try:
                body = compile_expression(self.body).evaluate(data) if self.body else None
            except ExpressionError as exc:
                return Failed(f"step {step.id}: building the request body: {exc}")
            try:
                headers = {k: compile_interpolation(v).render(data)
                           for k, v in step.headers.items()}
                query = {k: compile_interpolation(v).render_required(data)
                         for k, v in step.query.items()}
                query.update(self.page_query)
                prepared = await self.client.prepare(
                    step.endpoint, data, body, headers=headers, query=query,
                    idempotency_key=self.key, url=self.url)
            except ExpressionError as exc:
                return Failed(f"step {step.id}: {self.where}: building the request: {exc}")
            started = time.time()
            # Saved, and fenced (sent only while the run is still ours, never beside a
            # takeover), once the call has its slot: the hold is for the call, not the wait.
            save = (SaveAttempt(AttemptRecord(
                ctx.run.id, step.id, tally.last_n, prepared.record.record(), None, _NO_CODE,
                UNKNOWN_DECISION, started, item=self.index, redrive=ctx.run.redrive,
                page=self.page)), *ctx.hold_lease(prepared.timeout))
            try:
                exchange = await self.client.transmit(prepared, partial(ctx.flush, *save))
            finally:  # answered, failed, or never sent (its save refused)
                ctx.call_ended()
            outcome = await self._act(data, exchange, started)
            if outcome is not None:
                return outcome

    async def _act(self, data: dict[str, Any], exchange: Exchange,
                   started: float) -> Accepted | Wait | Failed | None:
        """Decide on one attempt and record it; None means: attempt again now."""
        stale = exchange.status == 401 and await self.client.replaced(
            exchange.credential_version)
        payload: Any = _KEPT
        try:
            if stale:
                decision = decision_for(ResponseCode.REAUTHENTICATE, "HTTP 401 for a replaced "
                                        "credential: retrying with the current one")
            else:
                decision, payload = await self._decide(data, exchange)
        except ScriptError as exc:
            self._record(exchange, None, started, error=str(exc))
            return Failed(f"step {self.step.id}: response script failed: {exc}")
        code, message = decision.code, f"{self.where}: {decision.message}"
        if code == ResponseCode.CONTINUE:
            # The script's payload when it set one (Scenario 2 of the source document), else
            # the response.
            try:
                # A page's output is its items and its link to the next: always the response's.
                if self.shape is not None:
                    output = self.shape(exchange)
                else:
                    output = _output(exchange) if payload is _KEPT else payload
            except ExpressionError as exc:
                self._record(exchange, decision, started, error=str(exc))
                return Failed(f"step {self.step.id}: {self.where}: {exc}")
            self._record(exchange, decision, started, output=output)
            if self.tally.used > 1:  # the attempts before it have lines of their own
                self.ctx.log(f"{message} {self._of()}; accepted")
            return Accepted(output)
        if code in (ResponseCode.RETRY_STEP, ResponseCode.REAUTHENTICATE) and \
                self.policy.attempts_left(self.tally.used) == 0:
            self._record(exchange, _ended(decision, "no attempts left"), started)
            return Failed(f"{message} {self._of()}; no attempts left")
        if code == ResponseCode.RETRY_STEP:
            return await self._retry_later(exchange, decision, started, message)
        if code == ResponseCode.REAUTHENTICATE:
            ended = await self._reauthenticate(exchange, decision, started, stale)
            if ended is None:
                self.ctx.log(f"{message} {self._of()}; sending again", "warning")
            return ended
        self._record(exchange, decision, started)
        return Failed(f"{message} {self._of()}",
                      retry_flow=code == ResponseCode.RETRY_FLOW)

    async def _retry_later(self, exchange: Exchange, decision: Decision, started: float,
                           message: str) -> Wait | None:
        wait = self.policy.delay(self.tally.used, decision.retry_after)
        self._record(exchange, decision, started, wait=wait)
        why = f"{message} {self._of()}; retrying in {round(wait, 3):g}s"
        if wait > INLINE_WAIT_S:
            return Wait(time.time() + wait, {"index": self.index}, why)  # the runner logs it
        # A short wait is slept in place: only this line tells the run log about it.
        self.ctx.log(f"{why} (in place)", "warning")
        await asyncio.sleep(wait)
        return None

    async def _reauthenticate(self, exchange: Exchange, decision: Decision, started: float,
                              stale: bool) -> Failed | None:
        # A script's code 4 (say, for a 200 "Invalid session") may answer a replaced one too.
        if stale or (exchange.status != 401 and await self.client.replaced(
                exchange.credential_version)):
            self._record(exchange, decision, started)
            return None
        if self.tally.reauths >= self.policy.max_reauth:
            why = f"still not authenticated after {self.tally.reauths} re-authentication(s)"
            self._record(exchange, _ended(decision, why), started)
            return Failed(f"{self.where}: {why} {self._of()}")
        attempt = self._attempt(exchange, decision, started)
        counted = replace(attempt, reauth=True)
        flushed = False

        async def count_it() -> None:
            # Only the call that logs in counts it, durably before the login: a crash during
            # the login still counts it, and the calls that waited for it count nothing.
            nonlocal flushed
            # Fenced like a call: a worker that lost the run does not log in (a login may
            # end the session another's calls use, or rotate a refresh token).
            fence = self.ctx.hold_lease(self.client.spec.timeout)
            try:
                await self.ctx.flush(SaveAttempt(counted), *fence)
            except BaseException:
                self.ctx.call_ended()  # not written, no login
                raise
            flushed = True

        try:
            logged_in = await self.client.reauthenticate(exchange.credential_version, count_it)
        except Exception as exc:
            if isinstance(exc, StoreError) and not isinstance(exc, ValueRefused):
                raise  # the store, not the login, failed: the run resumes later (FlowRunner)
            if not flushed:
                self.ctx.defer(SaveAttempt(attempt))
            return Failed(f"{self.where}: re-authenticating failed: {exc}")
        finally:
            if flushed:  # the login it was fenced for has ended
                self.ctx.call_ended()
        if logged_in:
            self.tally.reauths += 1
        if not flushed:  # static credentials count without a login; a replaced one does not
            self.ctx.defer(SaveAttempt(counted if logged_in else attempt))
        return None

    async def _decide(self, data: dict[str, Any],
                      exchange: Exchange) -> tuple[Decision, Any]:
        """The decision on an attempt, and the payload a response script set (`_KEPT` if
        none): after *every* attempt, a connection failure included."""
        step, policy, reauths = self.step, self.policy, self.tally.reauths
        default = _redirect_said(exchange, classify(
            exchange.status, exchange.error, reauths, policy.max_reauth, exchange.retry_after,
            error_type=exchange.error_type, refreshable=self.client.auth.refreshable))
        if step.response_script is None:
            return default, _KEPT
        response = exchange.response
        view = {**data, "request": exchange.request.record(),
                "response": response.script_view() if response is not None else None,
                "error": exchange.script_error()}
        outcome = await self.ctx.services.run_script(step.response_script, view)
        for line in outcome.logs:
            self.ctx.log(line)
        if outcome.message:
            self.ctx.log(outcome.message)
        returned = outcome.data.get("payload", self.payload)
        payload = returned if returned != self.payload else _KEPT
        if outcome.response_code is None:
            # A script that sets no code leaves the decision, and its reason, to the
            # classifier (its `message` went to the run log above).
            return default, payload
        return decision_for(outcome.response_code, outcome.message,
                            exchange.retry_after), payload

    def _attempt(self, exchange: Exchange, decision: Decision | None, started: float, *,
                 wait: float = 0.0, error: str | None = None,
                 output: Any = None) -> AttemptRecord:
        """The attempt's outcome as a record (and counted in the metrics)."""
        ctx = self.ctx
        record = exchange.record()
        name = decision.name if decision else "fail"
        ctx.services.metrics.attempt(self.step.connector, name)
        return AttemptRecord(
            run_id=ctx.run.id, step_id=self.step.id, n=self.tally.last_n,
            request=record["request"], response=record["response"],
            code=decision.code if decision else ResponseCode.FAIL, decision=name,
            created_at=started, message=decision.message if decision else None,
            wait_s=round(wait, 3), error=error or exchange.error, item=self.index,
            redrive=ctx.run.redrive, output=output if self.keep_output else None,
            page=self.page,
        )

    def _record(self, exchange: Exchange, decision: Decision | None, started: float, *,
                wait: float = 0.0, error: str | None = None, output: Any = None) -> None:
        """Save the attempt's outcome with the step's next write."""
        self.ctx.defer(SaveAttempt(self._attempt(exchange, decision, started, wait=wait,
                                                 error=error, output=output)))


def _redirect_said(exchange: Exchange, decision: Decision) -> Decision:
    """A redirect's decision says where it pointed, and that it was not followed (the
    connector pool never follows one: decision 0016)."""
    response = exchange.response
    if response is None or not 300 <= response.status < 400:
        return decision
    location = next((v for k, v in response.headers.items() if k.lower() == "location"), None)
    if location is None:
        return decision
    return decision_for(decision.code, f"{decision.message}: a redirect to {location}, not "
                        "followed (name it in the connector's base_url or the endpoint's path)",
                        decision.retry_after)


def _ended(decision: Decision, why: str) -> Decision:
    """The decision that ends a step whose answer asked for one more attempt (a retry or a
    re-authentication) when none is left: `fail`, saying why and what was asked."""
    asked = f"{decision.name}: {decision.message}" if decision.message else decision.name
    return decision_for(ResponseCode.FAIL, f"{why} (the answer asked {asked})",
                        decision.retry_after)


def _output(exchange: Exchange) -> Any:
    response = exchange.response
    if response is None:  # a response script accepted a failed connection (code 0)
        return None
    return response.json if response.has_json else response.body
