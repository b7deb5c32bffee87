"""The `assert` step: fail the run (no retry, like response code 3) unless a condition holds
for every payload.

```yaml
- {id: has_total, type: assert, that: "payload.total > 0",
   message: "order {{ payload.id }} has no total"}
```
"""

from __future__ import annotations

from typing import Any, Literal

from interlink.errors import ExpressionError
from interlink.expressions import compile_condition, compile_interpolation
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr, Interp
from interlink.spec.step import StepSpec

__all__ = ["KIND", "AssertStep", "run"]

#: the `type:` of this step kind
KIND = "assert"


class AssertStep(StepSpec):
    """Fail the run when `that` does not hold for a payload."""

    type: Literal["assert"]
    that: Expr
    message: Interp = "assertion failed: {{ that }}"


async def run(ctx: StepContext, step: AssertStep, bucket: list[Any]) -> StepOutcome:
    """The bucket unchanged, or the failure naming the payload."""
    condition = compile_condition(step.that)
    for index, payload in enumerate(bucket):
        data = ctx.data(payload)
        try:
            if condition.holds(data):
                continue
            message = compile_interpolation(step.message).render({**data, "that": step.that})
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
        return Failed(f"step {step.id}: {message}")
    return Done(bucket)
