"""Step kinds: each is one module with its spec model, its `run(ctx, step, bucket)` and its
`KIND`; registering one is one line in `Step` and one in `MODULES`.

Composite kinds (`route`, `try`) nest `Step` lists; their models name `Step` as a forward
reference, resolved below once the union exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field

from interlink.flows.steps import (
    assertion,
    batch,
    connector,
    dedupe,
    delay,
    join,
    map,
    notify,
    route,
    run_flow,
    script,
    split,
    try_catch,
)
from interlink.flows.steps import filter as filter_
from interlink.flows.steps import set as set_
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait

__all__ = ["STEP_KINDS", "Done", "Failed", "Step", "StepContext", "StepOutcome", "Wait"]

StepFn = Callable[[StepContext, Any, list[Any]], Awaitable[StepOutcome]]

#: every step kind's model, discriminated by `type`
Step = Annotated[
    connector.ConnectorStep
    | script.ScriptStep
    | map.MapStep
    | filter_.FilterStep
    | split.SplitStep
    | batch.BatchStep
    | join.JoinStep
    | set_.SetStep
    | route.RouteStep
    | dedupe.DedupeStep
    | assertion.AssertStep
    | try_catch.TryStep
    | run_flow.RunFlowStep
    | notify.NotifyStep
    | delay.DelayStep,
    Field(discriminator="type"),
]

#: every step kind's module
MODULES = (connector, script, map, filter_, split, batch, join, set_, route, dedupe, assertion,
           try_catch, run_flow, notify, delay)

#: `type:` of a step → the coroutine that runs it
STEP_KINDS: dict[str, StepFn] = {m.KIND: m.run for m in MODULES}

for _nesting in (route.Route, route.Otherwise, route.RouteStep, try_catch.TryStep):
    _nesting.model_rebuild(_types_namespace={"Step": Step})
