"""Step kinds by their `type`: each is a module with `run(ctx, step, bucket)`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from interlink.flows.steps import connector, script
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait

__all__ = ["STEP_KINDS", "Done", "Failed", "StepContext", "StepOutcome", "Wait"]

StepFn = Callable[[StepContext, Any, list[Any]], Awaitable[StepOutcome]]

#: `type:` of a step → the coroutine that runs it
STEP_KINDS: dict[str, StepFn] = {
    "connector": connector.run,
    "script": script.run,
}
