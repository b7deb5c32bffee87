"""The `batch` step: group the bucket's payloads into lists of `size` (the last may be shorter).

```yaml
- {id: hundreds, type: batch, size: 100}   # a payload per 100 orders: [order, order, …]
```

`join` is the same with one group: the whole bucket as one list.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from interlink.flows.steps.base import Done, StepContext, StepOutcome
from interlink.spec.step import StepSpec

__all__ = ["KIND", "BatchStep", "groups", "run"]

#: the `type:` of this step kind
KIND = "batch"


class BatchStep(StepSpec):
    """Group payloads into lists of `size`."""

    type: Literal["batch"]
    size: int = Field(ge=1, description="payloads per group")


def groups(bucket: list[Any], size: int) -> Done:
    """`bucket` in lists of `size`, each from the payload it starts with."""
    starts = range(0, len(bucket), size)
    return Done([bucket[i:i + size] for i in starts], list(starts))


async def run(ctx: StepContext, step: BatchStep, bucket: list[Any]) -> StepOutcome:
    """The groups."""
    return groups(bucket, step.size)
