"""The `connector` step: call an endpoint once per payload, deciding after every attempt.

After each attempt a `Decision` comes from the step's response script, or from the default
classifier when it has none, and the step acts on it (DESIGN.md §2). Waits up to
`INLINE_WAIT_S` are slept in place; longer ones become a durable `Wait`, so a crash during a
long backoff loses nothing.

Exactly once, as far as an upstream that honours `Idempotency-Key` can tell:

- every attempt for the same payload of the same step of a run sends the same key, across
  waits, crashes, re-authentication and re-drives;
- an attempt is saved *before* it is sent (decision `unknown`) and its outcome rides with the
  step's next write, so whatever crashes, every request that may have reached the upstream is
  counted, and `max_attempts` bounds what is sent;
- a resumed step reads its attempts from the store: a payload already accepted is not sent
  again, and the attempts and re-authentications it used still count (since the run's last
  re-drive, which starts a fresh budget).

A 401 answered to a credential somebody else already replaced is retried with the current one
at once, without asking the response script and without using up a re-authentication.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from interlink.errors import ExpressionError, ScriptError
from interlink.expressions import compile_expression, compile_interpolation
from interlink.flows.decision import Decision, ResponseCode, classify, decision_for
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait
from interlink.spec._base import Expr, Interp, Name
from interlink.spec.step import Ref, StepSpec
from interlink.store.base import UNKNOWN_DECISION, AttemptRecord, SaveAttempt

if TYPE_CHECKING:
    from interlink.connectors.client import ConnectorClient
    from interlink.connectors.exchange import Exchange
    from interlink.connectors.retry import RetryPolicy

__all__ = ["INLINE_WAIT_S", "KIND", "ConnectorStep", "run"]

#: the `type:` of this step kind
KIND = "connector"

#: waits up to this long are slept in place; longer ones are durable queue items
INLINE_WAIT_S = 1.0
#: the `code` stored for an attempt whose outcome is not (yet) known
_NO_CODE = -1
#: "the response script left the payload as it was"
_KEPT: Any = object()


class ConnectorStep(StepSpec):
    """Call one endpoint of a connector for each payload in the bucket."""

    type: Literal["connector"]
    connector: Name
    endpoint: Name
    body: Expr | None = Field(
        "payload", description="expression giving what to send (null: no body)"
    )
    headers: dict[str, Interp] = Field(default_factory=dict, description="extra headers")
    query: dict[str, Interp] = Field(default_factory=dict, description="extra query parameters")
    response_script: str | None = Field(None, description="scripts/x.py run after every attempt")

    def refs(self) -> Iterator[Ref]:
        """Its connector and endpoint, and its response script."""
        yield Ref("connector", ("connector",), self.connector, self.endpoint)
        if self.response_script is not None:
            yield Ref("script", ("response_script",), self.response_script, "handle")


@dataclass(slots=True)
class _Tally:
    """What earlier executions did for one payload: attempts, re-auths, its output."""

    used: int = 0
    """attempts since the run's last re-drive"""
    reauths: int = 0
    """re-authentications since the last re-drive"""
    last_n: int = 0
    """the highest attempt number so far (attempts are numbered across re-drives)"""
    accepted: bool = False
    output: Any = None


def _tallies(attempts: list[AttemptRecord], redrive: int) -> dict[int, _Tally]:
    tallies: dict[int, _Tally] = {}
    for attempt in attempts:
        tally = tallies.setdefault(attempt.item, _Tally())
        tally.last_n = max(tally.last_n, attempt.n)
        if attempt.code == ResponseCode.CONTINUE:
            tally.accepted, tally.output = True, attempt.output
        if attempt.redrive == redrive:
            tally.used += 1
            tally.reauths += attempt.reauth
    return tallies


async def run(ctx: StepContext, step: ConnectorStep, bucket: list[Any]) -> StepOutcome:
    """Send each payload of `bucket` to the endpoint; the responses are the next bucket."""
    client = ctx.services.connector(step.connector)
    tallies = _tallies(await ctx.attempts(), ctx.run.redrive)
    outputs: list[Any] = []
    for index, payload in enumerate(bucket):
        tally = tallies.get(index) or _Tally()
        if tally.accepted:
            outputs.append(tally.output)
            continue
        delivery = _Delivery(ctx, step, client, index, payload, tally,
                             keep_output=index < len(bucket) - 1)
        outcome = await delivery.deliver()
        if not isinstance(outcome, _Accepted):
            return outcome
        outputs.append(outcome.output)
    return Done(outputs)


@dataclass(frozen=True, slots=True)
class _Accepted:
    output: Any


class _Delivery:
    """Sending one payload until an attempt is accepted, or the step fails or waits."""

    def __init__(self, ctx: StepContext, step: ConnectorStep, client: ConnectorClient,
                 index: int, payload: Any, tally: _Tally, *, keep_output: bool) -> None:
        self.ctx = ctx
        self.step = step
        self.client = client
        self.policy: RetryPolicy = client.retry_policy
        self.index = index
        self.payload = payload
        self.tally = tally
        # A later payload's write carries this one's accepted attempt before the step ends;
        # its output is kept with it so a resumed step need not send it again.
        self.keep_output = keep_output
        self.key = f"{ctx.run.id}:{step.id}:{index}"
        self.where = f"calling {step.connector}.{step.endpoint}"

    def _of(self) -> str:
        return f"(attempt {self.tally.used} of {self.policy.max_attempts})"

    async def deliver(self) -> _Accepted | Wait | Failed:
        """Attempt until accepted; every attempt is saved before it is sent."""
        ctx, step, tally = self.ctx, self.step, self.tally
        while True:
            if self.policy.attempts_left(tally.used) == 0:
                return Failed(f"{self.where}: no attempts left {self._of()}; the last one's "
                              "answer was never recorded (the process stopped)")
            tally.used += 1
            tally.last_n += 1
            data = ctx.data(self.payload, attempt=tally.used, idempotency_key=self.key)
            try:
                body = compile_expression(step.body).evaluate(data) if step.body else None
            except ExpressionError as exc:
                return Failed(f"step {step.id}: building the request body: {exc}")
            try:
                headers = {k: compile_interpolation(v).render(data)
                           for k, v in step.headers.items()}
                query = {k: compile_interpolation(v).render_required(data)
                         for k, v in step.query.items()}
                prepared = await self.client.prepare(
                    step.endpoint, data, body, headers=headers, query=query,
                    idempotency_key=self.key)
            except ExpressionError as exc:
                return Failed(f"step {step.id}: building the request: {exc}")
            started = time.time()
            await ctx.flush(SaveAttempt(AttemptRecord(
                ctx.run.id, step.id, tally.last_n, prepared.record.record(), None, _NO_CODE,
                UNKNOWN_DECISION, started, item=self.index, redrive=ctx.run.redrive)))
            exchange = await self.client.transmit(prepared)
            outcome = await self._act(data, exchange, started)
            if outcome is not None:
                return outcome

    async def _act(self, data: dict[str, Any], exchange: Exchange,
                   started: float) -> _Accepted | Wait | Failed | None:
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
            output = _output(exchange) if payload is _KEPT else payload
            self._record(exchange, decision, started, output=output)
            return _Accepted(output)
        if code in (ResponseCode.RETRY_STEP, ResponseCode.REAUTHENTICATE) and \
                self.policy.attempts_left(self.tally.used) == 0:
            self._record(exchange, decision, started)
            return Failed(f"{message} {self._of()}; no attempts left")
        if code == ResponseCode.RETRY_STEP:
            return await self._retry_later(exchange, decision, started, message)
        if code == ResponseCode.REAUTHENTICATE:
            return await self._reauthenticate(exchange, decision, started, stale)
        self._record(exchange, decision, started)
        return Failed(f"{message} {self._of()}",
                      retry_flow=code == ResponseCode.RETRY_FLOW)

    async def _retry_later(self, exchange: Exchange, decision: Decision, started: float,
                           message: str) -> Wait | None:
        wait = self.policy.delay(self.tally.used, decision.retry_after)
        self._record(exchange, decision, started, wait=wait)
        if wait > INLINE_WAIT_S:
            return Wait(time.time() + wait, {"index": self.index},
                        f"{message} {self._of()}; retrying in {wait:.1f}s")
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
            self._record(exchange, decision, started)
            return Failed(f"{self.where}: still not authenticated after {self.tally.reauths} "
                          f"re-authentication(s) {self._of()}")
        attempt = self._attempt(exchange, decision, started)
        counted = replace(attempt, reauth=True)
        flushed = False

        async def count_it() -> None:
            # Only the call that logs in counts it, durably before the login: a crash during
            # the login still counts it, and the calls that waited for it count nothing.
            nonlocal flushed
            await self.ctx.flush(SaveAttempt(counted))
            flushed = True

        try:
            logged_in = await self.client.reauthenticate(exchange.credential_version, count_it)
        except Exception as exc:
            if not flushed:
                self.ctx.defer(SaveAttempt(attempt))
            return Failed(f"{self.where}: re-authenticating failed: {exc}")
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
        default = classify(exchange.status, exchange.error, reauths, policy.max_reauth,
                           exchange.retry_after)
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
            # A script that sets no code leaves the decision to the classifier.
            return decision_for(default.code, outcome.message or default.message,
                                default.retry_after), payload
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
        )

    def _record(self, exchange: Exchange, decision: Decision | None, started: float, *,
                wait: float = 0.0, error: str | None = None, output: Any = None) -> None:
        """Save the attempt's outcome with the step's next write."""
        self.ctx.defer(SaveAttempt(self._attempt(exchange, decision, started, wait=wait,
                                                 error=error, output=output)))


def _output(exchange: Exchange) -> Any:
    response = exchange.response
    if response is None:  # a response script accepted a failed connection (code 0)
        return None
    return response.json if response.has_json else response.body
