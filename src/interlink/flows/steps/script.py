"""The `script` step: run `handle(data)` on each payload; what it returns is the next bucket."""

from __future__ import annotations

from typing import Any

from interlink.errors import ScriptError
from interlink.flows.decision import ResponseCode
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec.flow import ScriptStep

__all__ = ["run"]


async def run(ctx: StepContext, step: ScriptStep, bucket: list[Any]) -> StepOutcome:
    """Call the script once per payload; its `payload` becomes the output payload."""
    outputs = []
    for payload in bucket:
        try:
            outcome = await ctx.services.run_script(
                step.script, ctx.data(payload), isolation=step.isolation, time_limit=step.timeout
            )
        except ScriptError as exc:
            return Failed(f"step {step.id}: {exc}")
        for line in outcome.logs:
            ctx.log(line)
        if outcome.message:
            ctx.log(outcome.message)
        if outcome.response_code in (ResponseCode.RETRY_FLOW, ResponseCode.FAIL):
            return Failed(f"step {step.id}: {outcome.message or 'the script failed the flow'}",
                          retry_flow=outcome.response_code == ResponseCode.RETRY_FLOW)
        outputs.append(outcome.data.get("payload"))
    return Done(outputs)
