"""The `map` step: each payload becomes the value of an expression, or a rendered template.

```yaml
- {id: shape, type: map, value: "{'id': payload.order_id, 'total': payload.total}"}
- {id: erp, type: map, template: templates/erp-order.json}   # JSON data; strings interpolate
- {id: note, type: map, template: templates/note.txt}         # text: the payload is a string
```

A `.json` template is data, never text: it is parsed once, and each string in it renders
against the payload's data (`{{ payload.id }}`), so the result is always valid JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import orjson
from pydantic import model_validator

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression, render_data
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Expr
from interlink.spec.step import Ref, StepSpec

__all__ = ["KIND", "MapStep", "run"]

#: the `type:` of this step kind
KIND = "map"


class MapStep(StepSpec):
    """Replace each payload by an expression's value or a rendered template."""

    type: Literal["map"]
    value: Expr | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MapStep:
        if (self.value is None) == (self.template is None):
            raise ValueError("a map step needs exactly one of 'value' or 'template'")
        return self

    def refs(self) -> Iterator[Ref]:
        """Its template, if it has one."""
        if self.template is not None:
            yield Ref("template", ("template",), self.template)


async def run(ctx: StepContext, step: MapStep, bucket: list[Any]) -> StepOutcome:
    """Map every payload; an expression or template that fails fails the step."""
    try:
        build = _builder(ctx, step)
    except (ExpressionError, orjson.JSONDecodeError) as exc:
        return Failed(f"step {step.id}: template {step.template}: {exc}")
    outputs = []
    for index, payload in enumerate(bucket):
        try:
            outputs.append(build(ctx.data(payload)))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
    return Done(outputs)


def _builder(ctx: StepContext, step: MapStep) -> Any:
    if step.value is not None:
        return compile_expression(step.value).evaluate
    assert step.template is not None
    template = ctx.services.template(step.template)
    if template.kind == "json":
        data = orjson.loads(template.text)
        return lambda context: render_data(data, context)
    return template.render
