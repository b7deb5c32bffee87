"""The `split` step: each payload becomes the items of the list an expression points to.

```yaml
- {id: orders, type: split, items: payload.orders}   # one payload per order
```

A missing or null list gives no payloads; anything else that is not a list fails the step.
"""

from __future__ import annotations

from typing import Any, Literal

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr
from interlink.spec.step import StepSpec

__all__ = ["KIND", "SplitStep", "run"]

#: the `type:` of this step kind
KIND = "split"


class SplitStep(StepSpec):
    """Turn each payload into the list `items` points to."""

    type: Literal["split"]
    items: Expr


async def run(ctx: StepContext, step: SplitStep, bucket: list[Any]) -> StepOutcome:
    """The items of every payload, in order, with the payload each came from."""
    items_of = compile_expression(step.items).evaluate
    outputs: list[Any] = []
    origins: list[int] = []
    for index, payload in enumerate(bucket):
        try:
            items = items_of(ctx.data(payload))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
        if items is None:
            continue
        if not isinstance(items, list | tuple):
            return Failed(f"step {step.id}: payload {index}: {step.items!r} is a "
                          f"{type(items).__name__}, not a list")
        outputs.extend(items)
        origins.extend([index] * len(items))
    return Done(outputs, origins)
