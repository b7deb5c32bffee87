"""The `join` step: the whole bucket as one payload, a list (an empty bucket stays empty).

```yaml
- {id: all, type: join}
```
"""

from __future__ import annotations

from typing import Any, Literal

from interlink.flows.steps.base import StepContext, StepOutcome
from interlink.flows.steps.batch import groups
from interlink.spec.step import StepSpec

__all__ = ["KIND", "JoinStep", "run"]

#: the `type:` of this step kind
KIND = "join"


class JoinStep(StepSpec):
    """Gather every payload into one list."""

    type: Literal["join"]


async def run(ctx: StepContext, step: JoinStep, bucket: list[Any]) -> StepOutcome:
    """One group of everything."""
    return groups(bucket, max(len(bucket), 1))
