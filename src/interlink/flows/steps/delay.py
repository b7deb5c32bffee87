"""The `delay` step: wait, durably, then pass the bucket on unchanged.

```yaml
- {id: cool_down, type: delay, for: 10m}
- {id: at_opening, type: delay, until: "payload.opens_at"}   # epoch seconds or ISO 8601
```

The wait is a queue item due at the end of it: no task sleeps, a crash during it loses
nothing, and whichever worker claims the item then goes on. A wait of a second or less is
slept in place, as a connector step's short retry waits are.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.report import iso
from interlink.flows.steps.base import INLINE_WAIT_S, Done, Failed, StepContext, StepOutcome, Wait
from interlink.spec._base import Duration, Expr
from interlink.spec.step import StepSpec

__all__ = ["KIND", "DelayStep", "run"]

#: the `type:` of this step kind
KIND = "delay"


class DelayStep(StepSpec):
    """Wait `for` a duration, or `until` a time an expression gives."""

    type: Literal["delay"]
    duration: Duration | None = Field(None, alias="for", description="how long to wait")
    until: Expr | None = Field(None, description="when to go on: epoch seconds or ISO 8601")

    @model_validator(mode="after")
    def _one_of(self) -> DelayStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a delay step needs exactly one of 'for' or 'until'")
        return self


async def run(ctx: StepContext, step: DelayStep, bucket: list[Any]) -> StepOutcome:
    """Wait until the time is reached (a resumed step only checks it)."""
    if ctx.cursor and "until" in ctx.cursor:
        until = float(ctx.cursor["until"])
    elif step.duration is not None:
        until = time.time() + step.duration
    else:
        assert step.until is not None
        try:
            until = _epoch(compile_expression(step.until).evaluate(
                ctx.data(bucket[0] if bucket else None)))
        except (ExpressionError, ValueError, TypeError) as exc:
            return Failed(f"step {step.id}: until {step.until!r}: {exc}")
    left = until - time.time()
    if 0 < left <= INLINE_WAIT_S:
        # As a connector step's short retry waits: a queue item, a claim and a poll would
        # take longer than the wait. A crash during it runs the step again (at most one
        # more wait of the same length).
        await asyncio.sleep(left)
    if left <= INLINE_WAIT_S:
        return Done(bucket)
    return Wait(until, {"until": until}, f"step {step.id}: waiting until {iso(until)}",
                "info")


def _epoch(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise TypeError(f"expected epoch seconds or an ISO 8601 time, got {value!r}")

