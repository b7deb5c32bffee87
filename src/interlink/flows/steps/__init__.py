"""Step kinds: each is one module with its spec model, its `run(ctx, step, bucket)` and its
`KIND`, registered here by one line in `Step` and one in `MODULES`.

Composite kinds (`route`, `try`) nest `Step` lists; their models name `Step` as a forward
reference, resolved once the union below exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field

from interlink.flows.steps import connector, script
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait

__all__ = ["STEP_KINDS", "Done", "Failed", "Step", "StepContext", "StepOutcome", "Wait"]

StepFn = Callable[[StepContext, Any, list[Any]], Awaitable[StepOutcome]]

#: every step kind's model, discriminated by `type`
Step = Annotated[
    connector.ConnectorStep | script.ScriptStep,
    Field(discriminator="type"),
]

#: every step kind's module
MODULES = (connector, script)

#: `type:` of a step → the coroutine that runs it
STEP_KINDS: dict[str, StepFn] = {m.KIND: m.run for m in MODULES}
