"""The `dedupe` step: drop the payloads whose key this step has already seen (within `ttl`).

```yaml
- {id: new_only, type: dedupe, key: payload.id, ttl: 7d}
```

Keys are kept in the store, shared by every process, per flow and step. A key belongs to the
run that saw it first — to the first run of its retry chain — so a run that crashed, waited
or was retried (code 2) keeps its own payloads: a crash never drops a payload nobody
delivered. Two payloads of one bucket with the same key keep the first.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

import orjson

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.spec._base import Duration, Expr, duration_field
from interlink.spec.step import StepSpec
from interlink.store import MarkSeen

__all__ = ["KIND", "DedupeStep", "run"]

#: the `type:` of this step kind
KIND = "dedupe"


class DedupeStep(StepSpec):
    """Drop payloads whose `key` was seen before."""

    type: Literal["dedupe"]
    key: Expr
    ttl: Duration = duration_field("7d", "how long a key is remembered")


async def run(ctx: StepContext, step: DedupeStep, bucket: list[Any]) -> StepOutcome:
    """The payloads with a key not seen before, with where each came from."""
    key_of = compile_expression(step.key).evaluate
    hashed: list[str] = []
    for index, payload in enumerate(bucket):
        try:
            value = key_of(ctx.data(payload))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: payload {index}: {exc}")
        hashed.append(hashlib.sha256(orjson.dumps(value, default=str)).hexdigest())
    owner = await _first_of_chain(ctx)
    scope = f"{ctx.flow.name}:{step.id}"
    expires_at = time.time() + step.ttl
    first_index = {key: i for i, key in reversed(list(enumerate(hashed)))}
    unique = [key for i, key in enumerate(hashed) if first_index[key] == i]
    results = await ctx.flush(*(MarkSeen(scope, key, owner, expires_at) for key in unique))
    new = {key for key, fresh in zip(unique, results, strict=True) if fresh}
    kept = [i for i, key in enumerate(hashed) if key in new and first_index[key] == i]
    if len(kept) < len(bucket):
        ctx.log(f"step {step.id}: dropped {len(bucket) - len(kept)} payload(s) seen before")
    return Done([bucket[i] for i in kept], kept)


async def _first_of_chain(ctx: StepContext) -> str:
    """The first run of this run's chain of code-2 retries (this run, if it is none's)."""
    run = ctx.run
    seen = {run.id}
    while run.retry_of is not None:
        earlier = await ctx.services.store.get_run(run.retry_of)
        if earlier is None or earlier.id in seen:
            break
        seen.add(earlier.id)
        run = earlier
    return run.id
