"""The `script` step: run `handle(data)` on each payload; what it returns is the next bucket.

The script may set a response code: 1 retries it under the step's `retry` policy (the backoff
is slept in place; each retry is recorded as an attempt, so a crash never resets the count),
2 and 3 fail the run (2 queueing a retry run), and 4 — which only means something after a
connector call — fails the step saying so. A script step is at least once: after a crash it
runs again for the payload it was on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from interlink.connectors.retry import RetryPolicy
from interlink.errors import ScriptError
from interlink.flows.decision import CODE_NAMES, ResponseCode
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Duration
from interlink.spec.connector import RetryPolicySpec
from interlink.spec.step import FieldPath, Ref, StepSpec
from interlink.store import AttemptRecord, SaveAttempt

__all__ = ["INLINE_WARNING", "KIND", "ScriptStep", "run"]

#: the `type:` of this step kind
KIND = "script"

#: why an `isolation: inline` script step is worth a warning (docs/decisions/0002)
INLINE_WARNING = (
    "script {script} runs inline: if it times out, it cannot be stopped and keeps running "
    "(using CPU in the engine's process) until it returns; use isolation: process unless the "
    "script is small and trusted"
)


class ScriptStep(StepSpec):
    """Run `handle(data)` of a script on each payload."""

    type: Literal["script"]
    script: str = Field(description="scripts/x.py")
    isolation: Literal["process", "inline"] = Field(
        "process", description="inline runs a trusted script in the engine's process"
    )
    timeout: Duration | None = Field(None, description="overrides the project's script timeout")
    retry: RetryPolicySpec = Field(
        default_factory=RetryPolicySpec,
        description="how a `response_code: 1` from the script retries it (backoff slept in place)",
    )

    def refs(self) -> Iterator[Ref]:
        """Its script, which must define `handle`."""
        yield Ref("script", ("script",), self.script, "handle")

    def warnings(self) -> Iterator[tuple[FieldPath, str]]:
        """An inline script cannot be stopped at its timeout."""
        if self.isolation == "inline":
            yield (), INLINE_WARNING.format(script=self.script)


async def run(ctx: StepContext, step: ScriptStep, bucket: list[Any]) -> StepOutcome:
    """Call the script once per payload; its `payload` becomes the output payload."""
    policy = RetryPolicy.from_spec(step.retry)
    retried: dict[int, int] = {}  # payload index → retries made (since the last re-drive)
    numbered: dict[int, int] = {}  # payload index → the last attempt number (ever)
    for attempt in await ctx.attempts():
        numbered[attempt.item] = max(numbered.get(attempt.item, 0), attempt.n)
        if attempt.redrive == ctx.run.redrive:
            retried[attempt.item] = retried.get(attempt.item, 0) + 1
    outputs = []
    for index, payload in enumerate(bucket):
        attempts, n = retried.get(index, 0), numbered.get(index, 0)
        while True:
            attempts += 1
            try:
                outcome = await ctx.services.run_script(
                    step.script, ctx.data(payload, attempt=attempts), isolation=step.isolation,
                    time_limit=step.timeout)
            except ScriptError as exc:
                return Failed(f"step {step.id}: {exc}")
            for line in outcome.logs:
                ctx.log(line)
            if outcome.message:
                ctx.log(outcome.message)
            code = outcome.response_code
            if code in (ResponseCode.RETRY_FLOW, ResponseCode.FAIL):
                return Failed(f"step {step.id}: {outcome.message or 'the script failed the flow'}",
                              retry_flow=code == ResponseCode.RETRY_FLOW)
            if code == ResponseCode.REAUTHENTICATE:
                return Failed(f"step {step.id}: response_code 4 (re-authenticate) only means "
                              "something in a connector's response script")
            if code != ResponseCode.RETRY_STEP:
                break
            of = f"(attempt {attempts} of {policy.max_attempts})"
            reason = outcome.message or "the script asked to retry"
            n += 1
            if policy.attempts_left(attempts) == 0:
                # The last attempt shows the decision that ended the step, not the retry asked.
                ctx.defer(SaveAttempt(AttemptRecord(
                    ctx.run.id, step.id, n, {"method": "SCRIPT", "url": step.script}, None,
                    ResponseCode.FAIL, CODE_NAMES[ResponseCode.FAIL], time.time(),
                    message=f"no attempts left (the answer asked retry_step: {reason})",
                    item=index, redrive=ctx.run.redrive)))
                return Failed(f"step {step.id}: {reason} {of}; no attempts left")
            wait = policy.delay(attempts)
            ctx.log(f"step {step.id}: {reason} {of}; retrying in {round(wait, 3):g}s (in place)",
                    "warning")
            # Written at once: the count must survive a crash during the backoff.
            await ctx.flush(SaveAttempt(AttemptRecord(
                ctx.run.id, step.id, n, {"method": "SCRIPT", "url": step.script}, None,
                ResponseCode.RETRY_STEP, CODE_NAMES[ResponseCode.RETRY_STEP], time.time(),
                message=reason, wait_s=round(wait, 3), item=index, redrive=ctx.run.redrive)))
            await asyncio.sleep(wait)
        outputs.append(outcome.data.get("payload"))
    return Done(outputs)
