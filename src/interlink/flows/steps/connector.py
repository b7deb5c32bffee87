"""The `connector` step: call an endpoint once per payload, deciding after every attempt.

After each attempt a `Decision` comes from the step's response script, or from the default
classifier when it has none, and the step acts on it (DESIGN.md §2). Waits up to
`INLINE_WAIT_S` are slept in place; longer ones become a durable `Wait`, so a crash during a
long backoff loses nothing. Every attempt for the same payload of the same step of a run sends
the same `Idempotency-Key`, across waits, crashes and re-authentication.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from interlink.connectors.exchange import Exchange
from interlink.connectors.retry import RetryPolicy
from interlink.errors import ExpressionError, ScriptError
from interlink.expressions import compile_expression
from interlink.flows.decision import Decision, classify, decision_for
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait
from interlink.spec.flow import ConnectorStep
from interlink.store.base import AttemptRecord

__all__ = ["INLINE_WAIT_S", "run"]

#: waits up to this long are slept in place; longer ones are durable queue items
INLINE_WAIT_S = 1.0


async def run(ctx: StepContext, step: ConnectorStep, bucket: list[Any]) -> StepOutcome:
    """Send each payload of `bucket` to the endpoint; the responses are the next bucket."""
    client = ctx.runner.connector(step.connector)
    policy = RetryPolicy.from_spec(client.spec.retry)
    cursor = ctx.cursor or {"index": 0, "attempts": 0, "reauths": 0, "outputs": []}
    outputs: list[Any] = list(cursor["outputs"])
    for index in range(cursor["index"], len(bucket)):
        resumed = index == cursor["index"]
        attempts = cursor["attempts"] if resumed else 0
        reauths = cursor["reauths"] if resumed else 0
        payload = bucket[index]
        key = f"{ctx.run.id}:{step.id}:{index}"
        while True:
            attempts += 1
            data = ctx.data(payload, attempt=attempts, idempotency_key=key)
            try:
                body = compile_expression(step.body).evaluate(data) if step.body else None
            except ExpressionError as exc:
                return Failed(f"step {step.id}: building the request body: {exc}")
            exchange = await client.send(step.endpoint, data, body, headers=step.headers,
                                         query=step.query, idempotency_key=key)
            try:
                decision = await _decide(ctx, step, data, exchange, reauths, policy)
            except ScriptError as exc:
                await _record(ctx, step, attempts, exchange, None, 0.0, str(exc))
                return Failed(f"step {step.id}: response script failed: {exc}")
            where = f"calling {step.connector}.{step.endpoint}"
            of = f"(attempt {attempts} of {policy.max_attempts})"
            if decision.code == 0:
                await _record(ctx, step, attempts, exchange, decision, 0.0)
                outputs.append(_output(exchange))
                break
            if decision.code == 1:
                if policy.attempts_left(attempts) == 0:
                    await _record(ctx, step, attempts, exchange, decision, 0.0)
                    return Failed(f"{where}: {decision.message} {of}; no attempts left")
                wait = policy.delay(attempts, decision.retry_after)
                await _record(ctx, step, attempts, exchange, decision, wait)
                if wait > INLINE_WAIT_S:
                    state = {"index": index, "attempts": attempts, "reauths": reauths,
                             "outputs": outputs}
                    return Wait(time.time() + wait, state,
                                f"{where}: {decision.message} {of}; retrying in {wait:.1f}s")
                await asyncio.sleep(wait)
                continue
            if decision.code == 4:
                await _record(ctx, step, attempts, exchange, decision, 0.0)
                if reauths >= policy.max_reauth:
                    return Failed(f"{where}: still not authenticated after {reauths} "
                                  f"re-authentication(s) {of}")
                reauths += 1
                try:
                    await client.reauthenticate(exchange.credential_version)
                except Exception as exc:
                    return Failed(f"{where}: re-authenticating failed: {exc}")
                continue
            await _record(ctx, step, attempts, exchange, decision, 0.0)
            return Failed(f"{where}: {decision.message} {of}", retry_flow=decision.code == 2)
    return Done(outputs)


async def _decide(ctx: StepContext, step: ConnectorStep, data: dict[str, Any],
                  exchange: Exchange, reauths: int, policy: RetryPolicy) -> Decision:
    if step.response_script is None or exchange.response is None:
        # Without a response there is nothing for a script to judge: the network failed.
        return classify(exchange.status, exchange.error, reauths, policy.max_reauth,
                        exchange.retry_after)
    data = {**data, "response": exchange.response.script_view()}
    outcome = await ctx.runner.run_script(step.response_script, data)
    for line in outcome.logs:
        ctx.log(line)
    if outcome.message:
        ctx.log(outcome.message)
    if outcome.response_code is None:
        # A script that sets no code leaves the decision to the classifier.
        default = classify(exchange.status, exchange.error, reauths, policy.max_reauth,
                           exchange.retry_after)
        return decision_for(default.code, outcome.message or default.message,
                            default.retry_after)
    return decision_for(outcome.response_code, outcome.message, exchange.retry_after)


def _output(exchange: Exchange) -> Any:
    response = exchange.response
    assert response is not None  # code 0 is only decided on a response
    return response.json if response.has_json else response.body


async def _record(ctx: StepContext, step: ConnectorStep, n: int, exchange: Exchange,
                  decision: Decision | None, wait: float, error: str | None = None) -> None:
    record = exchange.record()
    ctx.runner.metrics.attempt(step.connector, decision.name if decision else "fail")
    await ctx.record_attempt(AttemptRecord(
        run_id=ctx.run.id, step_id=step.id, n=n, request=record["request"],
        response=record["response"], code=decision.code if decision else 3,
        decision=decision.name if decision else "fail", created_at=time.time(),
        message=ctx.runner.redactor.text(decision.message) if decision and decision.message
        else None,
        wait_s=round(wait, 3), error=error or exchange.error,
    ))
