"""The `try` step: run steps; when they fail, run `catch` steps instead; `finally` after both.

```yaml
- id: push_or_park
  type: try
  steps:
    - {id: push, type: connector, connector: erp, endpoint: create}
  catch:
    - {id: park, type: connector, connector: tickets, endpoint: open,
       body: "{'order': payload, 'why': error.message}"}
  finally:
    - {id: note, type: set, variables: {pushed_at: "meta.run_id"}}
```

`catch` runs on the bucket the `try` got, with `error` in its data: `message`, and `step`, the
id of the (nested) step that failed. A
failure that asks to retry the flow (response code 2) is not caught: the retry run is the
user's explicit ask. Without `catch` a failure still runs `finally`, then fails the step.
The output is the `finally` steps' (when there are any), else the `try` or `catch` steps'.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec.step import FieldPath, StepSpec

__all__ = ["KIND", "TryStep", "run"]

#: the `type:` of this step kind
KIND = "try"


class TryStep(StepSpec):
    """Run `steps`; on a failure run `catch`; run `finally` either way."""

    type: Literal["try"]
    steps: list["Step"] = Field(min_length=1)  # type: ignore[name-defined]  # noqa: F821, UP037
    catch: list["Step"] = Field(default_factory=list)  # type: ignore[name-defined]  # noqa: F821, UP037
    finally_: list["Step"] = Field(  # type: ignore[name-defined]  # noqa: F821, UP037
        default_factory=list, alias="finally")

    def children(self) -> Iterator[tuple[FieldPath, list[StepSpec]]]:
        """Its `steps`, `catch` and `finally`."""
        yield ("steps",), self.steps
        if self.catch:
            yield ("catch",), self.catch
        if self.finally_:
            yield ("finally",), self.finally_


async def run(ctx: StepContext, step: TryStep, bucket: list[Any]) -> StepOutcome:
    """Try, catch, finally."""
    outcome = await ctx.services.run_steps(ctx, step.steps, bucket)
    if isinstance(outcome, Failed) and not outcome.retry_flow and step.catch:
        ctx.log(f"step {step.id}: caught: {outcome.reason}", "warning")
        error = {"message": outcome.reason, "step": outcome.step or step.id}
        outcome = await ctx.services.run_steps(ctx.with_names(error=error), step.catch,
                                               bucket)
    if not step.finally_ or not isinstance(outcome, Done | Failed):
        return outcome
    after = await ctx.services.run_steps(
        ctx, step.finally_, outcome.bucket if isinstance(outcome, Done) else bucket)
    if isinstance(outcome, Failed):
        return after if not isinstance(after, Done) else outcome
    if isinstance(after, Done) and outcome.origins is not None:
        origins = after.origins or list(range(len(after.bucket)))
        return Done(after.bucket, [outcome.origins[o] for o in origins],
                    {**(outcome.variables or {}), **(after.variables or {})} or None)
    return after
