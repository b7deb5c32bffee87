"""The `set` step: set run variables for the steps after it; the payloads pass unchanged.

```yaml
- {id: batch_id, type: set, variables: {batch: "meta.run_id", count: "bucket | length"}}
```

Each expression is evaluated once, over the first payload's data (`payload`, `variables`, …)
and `bucket`, the whole bucket. The values are written with the step, so a crash or a durable
wait later in the run keeps them; later steps read them as `variables.NAME`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr
from interlink.spec.step import StepSpec

__all__ = ["KIND", "SetStep", "run"]

#: the `type:` of this step kind
KIND = "set"


class SetStep(StepSpec):
    """Set run variables."""

    type: Literal["set"]
    variables: dict[str, Expr] = Field(min_length=1, description="name → expression")


async def run(ctx: StepContext, step: SetStep, bucket: list[Any]) -> StepOutcome:
    """The bucket as it was, and the variables set."""
    data = ctx.data(bucket[0] if bucket else None)
    data["bucket"] = bucket
    values: dict[str, Any] = {}
    for name, source in step.variables.items():
        try:
            values[name] = compile_expression(source).evaluate(data)
        except ExpressionError as exc:
            return Failed(f"step {step.id}: variable {name}: {exc}")
        data["variables"] = {**data["variables"], name: values[name]}
    return Done(bucket, variables=values)
