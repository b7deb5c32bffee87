"""The `connector` step: call an endpoint once per payload, deciding after every attempt.

```yaml
- id: push
  type: connector
  connector: warehouse
  endpoint: create_order
  body: payload                      # what to send (null: no body)
  response_script: scripts/check.py  # run after every attempt
  concurrency: 10                    # payloads in flight at once (default 1)
  cache: {key: payload.customer_id, ttl: 10m}     # reuse an answer for the same key
  paginate: {type: link_header, items: response.json.records}   # overrides the endpoint's
```

Each payload is delivered by `_delivery.Delivery` (attempts, decisions, retries, exactly-once
keys); a paginated endpoint walks its pages (`_pages`), and the items of every page go into
the bucket. With `concurrency`, payloads go out at once (each still waiting for the
connector's rate limit and cap), their outputs in input order; after a failure no new one
starts. A run retried after code 2 (or by `interlink runs retry`) does not send again the
payloads its failed run had delivered at the same step with the same bucket: it reuses their
outputs. A `cache` hit answers a payload from the store; concurrent misses for one key in a
process make one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps._delivery import Accepted, Delivery, Tally, tallies
from interlink.flows.steps._pages import walk_pages
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome, Wait
from interlink.spec._base import Duration, Expr, Interp, Name, Spec, duration_field
from interlink.spec.paginate import Paginate
from interlink.spec.step import Ref, StepSpec
from interlink.store import PutCache

if TYPE_CHECKING:
    from interlink.connectors.client import ConnectorClient

__all__ = ["KIND", "CacheSpec", "ConnectorStep", "run"]

#: the `type:` of this step kind
KIND = "connector"
#: methods whose requests carry the payload unless the step says otherwise
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class CacheSpec(Spec):
    """Reuse an accepted answer for the same key, within `ttl` (per connector endpoint)."""

    key: Expr = Field(description="the cache key, over the payload's data")
    ttl: Duration = duration_field("10m", "how long an answer is reused")


class ConnectorStep(StepSpec):
    """Call one endpoint of a connector for each payload in the bucket."""

    type: Literal["connector"]
    connector: Name
    endpoint: Name
    body: Expr | None = Field(
        "payload", description="expression giving what to send (null: no body); unset, a "
        "GET, HEAD, DELETE or OPTIONS endpoint sends none")
    headers: dict[str, Interp] = Field(default_factory=dict, description="extra headers")
    query: dict[str, Interp] = Field(default_factory=dict, description="extra query parameters")
    response_script: str | None = Field(None, description="scripts/x.py run after every attempt")
    concurrency: int = Field(1, ge=1, description="payloads sent at once")
    cache: CacheSpec | None = Field(None, description="reuse answers for the same key")
    paginate: Paginate | None = Field(None, description="overrides the endpoint's pagination")

    def body_for(self, method: str) -> Expr | None:
        """What to send to an endpoint of `method`: `body` if set, else the payload for
        POST, PUT and PATCH and nothing for the others — an upstream that reads no GET body
        would read the one sent as the start of the connection's next request."""
        if "body" in self.model_fields_set or method in _BODY_METHODS:
            return self.body
        return None

    def refs(self) -> Iterator[Ref]:
        """Its connector and endpoint, and its response script."""
        yield Ref("connector", ("connector",), self.connector, self.endpoint)
        if self.response_script is not None:
            yield Ref("script", ("response_script",), self.response_script, "handle")


#: a payload's outputs (several for a paginated one), or why the step stops
_Result = list[Any] | Failed | Wait


async def run(ctx: StepContext, step: ConnectorStep, bucket: list[Any]) -> StepOutcome:
    """Send each payload of `bucket` to the endpoint; the responses are the next bucket."""
    sender = _Sender(ctx, step, bucket)
    await sender.load()
    if step.concurrency == 1:
        results: list[_Result] = []
        for index in range(len(bucket)):
            results.append(await sender.payload(index))
            if not isinstance(results[-1], list):
                break
    else:
        results = await sender.concurrently(step.concurrency)
    stop = next((r for r in results if isinstance(r, Failed)), None) or next(
        (r for r in results if isinstance(r, Wait)), None)
    if stop is not None:
        return stop
    outputs: list[Any] = []
    origins: list[int] = []
    for index, result in enumerate(results):
        assert isinstance(result, list)
        outputs.extend(result)
        origins.extend([index] * len(result))
    return Done(outputs, None if len(outputs) == len(bucket) else origins)


class _Sender:
    """One execution of a connector step over its bucket."""

    def __init__(self, ctx: StepContext, step: ConnectorStep, bucket: list[Any]) -> None:
        self.ctx = ctx
        self.step = step
        self.bucket = bucket
        self.client: ConnectorClient = ctx.services.connector(step.connector)
        endpoint = self.client.spec.endpoints.get(step.endpoint)
        self.paginate = step.paginate or (endpoint.paginate if endpoint else None)
        self.tallies: dict[tuple[int, int], Tally] = {}
        self.delivered: dict[int, Any] = {}  # by an earlier run this one retries
        #: cache answers got in this execution: written with the step's next write, so a
        #: later payload with the same key must find them here, not in the store
        self.answered: dict[tuple[str, str], Any] = {}
        self.stopped = False

    async def load(self) -> None:
        """What earlier executions of this run, and the run it retries, did at this step."""
        self.tallies = tallies(await self.ctx.attempts(), self.ctx.run.redrive)
        run = self.ctx.run
        if run.retry_of is None or self.paginate is not None:
            return
        store = self.ctx.services.store
        failed = await store.get_run(run.retry_of)
        if failed is None or failed.step_index != self.ctx.index or \
                (failed.bucket if failed.bucket is not None else [failed.input]) != self.bucket:
            return
        earlier = [a for a in await store.get_attempts(failed.id) if a.step_id == self.step.id]
        for (item, _), tally in tallies(earlier, failed.redrive).items():
            if tally.accepted and tally.output is not None:
                self.delivered[item] = tally.output
        if self.delivered:
            self.ctx.log(f"step {self.step.id}: {len(self.delivered)} payload(s) were delivered "
                         f"by run {failed.id}; not sending them again")

    async def concurrently(self, limit: int) -> list[_Result]:
        """Every payload, up to `limit` at once; none starts after one failed."""
        gate = asyncio.Semaphore(limit)

        async def one(index: int) -> _Result:
            async with gate:
                if self.stopped:
                    return Failed("not started: an earlier payload failed")
                result = await self.payload(index)
                if isinstance(result, Failed):
                    self.stopped = True
                return result

        tasks = [asyncio.ensure_future(one(i)) for i in range(len(self.bucket))]
        try:
            return list(await asyncio.gather(*tasks))
        except Exception:
            # The store failed under one (or the run is another's now). The others end what
            # they are doing before the worker gives the item back — a call cut off in
            # flight could be sent again beside itself once the item is claimed again; no
            # payload starts meanwhile, and a fenced save stops one that lost the run.
            self.stopped = True
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        except BaseException:  # cancelled: so are they
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def payload(self, index: int) -> _Result:
        """Deliver one payload (or answer it from the cache, or from the retried run)."""
        if index in self.delivered:
            return [self.delivered[index]]
        if self.step.cache is None:
            return await self._deliver(index)
        return await self._cached(index, self.step.cache)

    async def _deliver(self, index: int) -> _Result:
        payload = self.bucket[index]
        if self.paginate is not None:
            return await walk_pages(self.ctx, self.step, self.client, self.paginate, index,
                                    payload, self.tallies)
        tally = self.tallies.get((index, 0)) or Tally()
        if tally.accepted:
            return [tally.output]
        keep = index < len(self.bucket) - 1 or self.step.concurrency > 1 or \
            self.step.cache is not None or self.ctx.nested
        outcome = await Delivery(self.ctx, self.step, self.client, index, payload, tally,
                                 keep_output=keep).deliver()
        return [outcome.output] if isinstance(outcome, Accepted) else outcome

    async def _cached(self, index: int, cache: CacheSpec) -> _Result:
        step, store = self.step, self.ctx.services.store
        try:
            value = compile_expression(cache.key).evaluate(self.ctx.data(self.bucket[index]))
        except ExpressionError as exc:
            return Failed(f"step {step.id}: the cache key of payload {index}: {exc}")
        scope = f"{step.connector}.{step.endpoint}"
        key = hashlib.sha256(orjson.dumps(value, default=str)).hexdigest()
        if (scope, key) in self.answered:
            self.ctx.log(f"step {step.id}: payload {index}: answered like an earlier payload")
            return [self.answered[(scope, key)]]
        found, cached = await store.get_cached(scope, key, time.time())
        if found:
            self.ctx.log(f"step {step.id}: payload {index}: answered from the cache")
            return [cached]
        lookups = self.client.lookups
        leader = lookups.get((scope, key))
        if leader is not None:  # the same key is being fetched here: wait for that call
            answer = await asyncio.shield(leader)
            if answer is not _MISSED:
                self.ctx.log(f"step {step.id}: payload {index}: answered by a call in flight")
                return [answer]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        lookups[(scope, key)] = future
        shared: Any = _MISSED
        try:
            result = await self._deliver(index)
            if isinstance(result, list) and len(result) == 1:
                shared = self.answered[(scope, key)] = result[0]
                self.ctx.defer(PutCache(scope, key, shared, time.time() + cache.ttl))
            return result
        finally:
            lookups.pop((scope, key), None)
            future.set_result(shared)


#: a cache lookup whose call gave nothing to share (it failed or waits)
_MISSED: Any = object()
