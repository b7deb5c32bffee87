"""The `filter` step: keep the payloads a condition holds for; drop the others, or fail.

```yaml
- {id: paid, type: filter, when: "payload.status == 'paid'"}             # others dropped
- {id: valid, type: filter, when: "payload.total > 0", else: fail}       # others fail the run
```

A condition over a missing value is false (like a service's `when`), so a payload without the
field is dropped rather than failing the step.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from interlink.connectors.exchange import excerpt
from interlink.errors import ExpressionError
from interlink.expressions import compile_condition
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr
from interlink.spec.step import StepSpec

__all__ = ["KIND", "FilterStep", "run"]

#: the `type:` of this step kind
KIND = "filter"


class FilterStep(StepSpec):
    """Keep the payloads `when` holds for."""

    type: Literal["filter"]
    when: Expr
    otherwise: Literal["drop", "fail"] = Field(
        "drop", alias="else", description="what happens to a payload `when` does not hold for")


async def run(ctx: StepContext, step: FilterStep, bucket: list[Any]) -> StepOutcome:
    """The payloads that pass, with where each came from."""
    condition = compile_condition(step.when)
    kept: list[Any] = []
    origins: list[int] = []
    for index, payload in enumerate(bucket):
        try:
            holds = condition.holds(ctx.data(payload))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
        if holds:
            kept.append(payload)
            origins.append(index)
        elif step.otherwise == "fail":
            shown = excerpt(orjson.dumps(payload, default=str).decode(), 200)
            return Failed(f"step {step.id}: payload {index} does not match {step.when!r}: "
                          f"{shown}")
    return Done(kept, origins)
