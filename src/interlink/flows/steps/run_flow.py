"""The `run_flow` step: start a run of another flow for each payload, and (by default) wait
for them, durably, to take their outputs.

```yaml
- {id: enrich, type: run_flow, flow: lookup-customer}                 # outputs: each child's
- {id: fan_out, type: run_flow, flow: notify-partner, wait: false}    # outputs: {run_id}
```

The child runs' ids derive from the parent run, the step and the payload's index, so starting
them again (after a crash) starts nothing twice. While it waits the parent holds no task and no
worker slot: it is a queue item due later, and each child that ends makes it due at once.
A child that fails fails the step. A child's output is its bucket — one payload unwrapped,
as for a service's `result.payload`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait
from interlink.ids import derived_id
from interlink.spec._base import Expr, Name
from interlink.spec.step import Ref, StepSpec
from interlink.store import Enqueue, InsertRun

__all__ = ["KIND", "RunFlowStep", "run"]

#: the `type:` of this step kind
KIND = "run_flow"
#: the queue kind of a run (as `flows.runner.RUN_KIND`, which imports the steps)
_RUN_KIND = "run"
#: a waiting parent looks again at least this often (a child's end wakes it sooner)
RECHECK_S = 5.0
_ENDED = frozenset({"succeeded", "failed", "stopped", "partial"})


class RunFlowStep(StepSpec):
    """Start a run of `flow` per payload."""

    type: Literal["run_flow"]
    flow: Name
    wait: bool = Field(True, description="wait for the child runs and output theirs")
    input: Expr = Field("payload", description="what each child run gets")

    def refs(self) -> Iterator[Ref]:
        """The flow it starts."""
        yield Ref("flow", ("flow",), self.flow)


async def run(ctx: StepContext, step: RunFlowStep, bucket: list[Any]) -> StepOutcome:
    """Start the children (once), then wait for them if asked."""
    ids = [derived_id("r_", ctx.run.created_at, f"{ctx.run.id}:{step.id}:{i}")
           for i in range(len(bucket))]
    if not (ctx.cursor or {}).get("started"):
        started = await _start(ctx, step, bucket, ids)
        if started is not None:
            return started
    if not step.wait:
        return Done([{"run_id": run_id} for run_id in ids])
    children = [await ctx.services.store.get_run(run_id) for run_id in ids]
    outputs = []
    for run_id, child in zip(ids, children, strict=True):
        if child is None or child.status not in _ENDED:
            waiting = sum(c is None or c.status not in _ENDED for c in children)
            return Wait(time.time() + RECHECK_S, {"started": True},
                        f"step {step.id}: waiting for {waiting} run(s) of {step.flow}", "info")
        if child.status != "succeeded":
            return Failed(f"step {step.id}: run {run_id} of {step.flow} {child.status}: "
                          f"{child.error}")
        bucket_out = child.bucket or []
        outputs.append(bucket_out[0] if len(bucket_out) == 1 else bucket_out)
    return Done(outputs)


async def _start(ctx: StepContext, step: RunFlowStep, bucket: list[Any],
                 ids: list[str]) -> Failed | None:
    input_of = compile_expression(step.input).evaluate
    ops: list[Any] = []
    for index, (payload, run_id) in enumerate(zip(bucket, ids, strict=True)):
        try:
            child_input = input_of(ctx.data(payload))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
        child = ctx.services.child_run(step.flow, child_input, trigger=f"flow:{ctx.flow.name}",
                                       run_id=run_id)
        if step.wait:
            child = replace(child, wake=ctx.item_id)
        ops += [InsertRun(child, parent=ctx.run.id),
                Enqueue(derived_id("q_", ctx.run.created_at, run_id), _RUN_KIND,
                        {"run_id": run_id})]
    await ctx.flush(*ops)
    return None
