"""The `route` step: each payload goes down the first branch whose condition holds for it.

```yaml
- id: by_country
  type: route
  routes:
    - when: "payload.country == 'DE'"
      steps: [{id: to_de, type: connector, connector: erp_de, endpoint: create}]
    - when: "payload.country in ['FR', 'BE']"
      steps: [{id: to_fr, type: connector, connector: erp_fr, endpoint: create}]
    - otherwise:
        - {id: to_intl, type: connector, connector: erp_intl, endpoint: create}
```

Each branch runs its steps once, on the payloads routed to it (in their order); the outputs are
gathered in the order of the payloads they came from (a payload's own outputs in branch order).
A payload no branch takes, with no `otherwise`, passes through unchanged. Branches are also
how an if/else is written (`when` + `otherwise`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, model_validator

from interlink.errors import ExpressionError
from interlink.expressions import compile_condition
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr, Spec
from interlink.spec.step import FieldPath, StepSpec

__all__ = ["KIND", "Otherwise", "Route", "RouteStep", "run"]

#: the `type:` of this step kind
KIND = "route"


class Route(Spec):
    """A branch: the payloads `when` holds for run `steps`."""

    when: Expr
    steps: list["Step"] = Field(min_length=1)  # type: ignore[name-defined]  # noqa: F821, UP037


class Otherwise(Spec):
    """The branch of the payloads no `when` took."""

    otherwise: list["Step"] = Field(min_length=1)  # type: ignore[name-defined]  # noqa: F821, UP037


class RouteStep(StepSpec):
    """Send each payload down the first matching branch."""

    type: Literal["route"]
    routes: list[Route | Otherwise] = Field(min_length=1)

    @model_validator(mode="after")
    def _otherwise_last(self) -> RouteStep:
        others = [i for i, r in enumerate(self.routes) if isinstance(r, Otherwise)]
        if len(others) > 1:
            raise ValueError(f"a route step has at most one 'otherwise' (found {len(others)})")
        if others and others[0] != len(self.routes) - 1:
            raise ValueError("'otherwise' must be the last of a route step's routes")
        return self

    def children(self) -> Iterator[tuple[FieldPath, list[StepSpec]]]:
        """Each branch's steps."""
        for index, route in enumerate(self.routes):
            if isinstance(route, Route):
                yield ("routes", index, "steps"), route.steps
            else:
                yield ("routes", index, "otherwise"), route.otherwise


async def run(ctx: StepContext, step: RouteStep, bucket: list[Any]) -> StepOutcome:
    """Route, run each branch, gather the outputs in input order."""
    conditions = [compile_condition(r.when) if isinstance(r, Route) else None
                  for r in step.routes]
    taken: list[list[int]] = [[] for _ in step.routes]
    passing: list[int] = []  # no branch, no otherwise: unchanged
    for index, payload in enumerate(bucket):
        data = ctx.data(payload)
        for branch, condition in enumerate(conditions):
            try:
                if condition is None or condition.holds(data):
                    taken[branch].append(index)
                    break
            except ExpressionError as exc:
                return Failed(f"step {step.id}: payload {index}: {exc}")
        else:
            passing.append(index)
    gathered: list[tuple[int, int, Any]] = [(i, 0, bucket[i]) for i in passing]
    variables: dict[str, Any] = {}
    for branch, indexes in enumerate(taken):
        if not indexes:
            continue
        route = step.routes[branch]
        steps = route.steps if isinstance(route, Route) else route.otherwise
        outcome = await ctx.services.run_steps(ctx, steps, [bucket[i] for i in indexes])
        if not isinstance(outcome, Done):
            return outcome
        origins = outcome.origins or list(range(len(outcome.bucket)))
        gathered.extend((indexes[o], branch, out)
                        for o, out in zip(origins, outcome.bucket, strict=True))
        variables.update(outcome.variables or {})
    gathered.sort(key=lambda entry: (entry[0], entry[1]))
    return Done([out for _, _, out in gathered], [origin for origin, _, _ in gathered],
                variables or None)
