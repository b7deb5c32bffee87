"""The flow runner: starts runs durably and executes them step by step.

A run is a row plus a queue item of kind `run`. Starting a run writes both in one transaction;
a worker claims the item and calls `FlowRunner.handle`. After every step the run's progress
(next step, bucket) is written in the same transaction as the step's record, so a crash resumes
from the last finished step. A durable wait (`Wait`) hands the item back to the queue with a
cursor and `run_at`; whichever worker claims it next resumes the step from the cursor.

Each run keeps the flow definition it started with (`flow_spec`), so editing a flow never
changes a run in flight or a retry of an earlier run (response code 2, `interlink runs retry`).

One accepted thing, one run. A run executed in the caller's task (`run_now`, a service's
activity) is inserted *exclusively* with its queue item leased to this process, in the same
commit as its first attempt: if another process created that run first, this one raises
`Conflict` before sending anything. A failed run can be re-driven (`redrive_now`: the request
processor retrying a queued service request) — it resumes at its failed step with the same
idempotency keys and a fresh attempt budget. A code-2 retry run has an id derived from the
run it retries, so it is found (`retry_id`) rather than started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp

from interlink.connectors.client import ConnectorClient
from interlink.errors import Conflict, RunError, StoreError, ValueRefused
from interlink.expressions import Template
from interlink.flows.steps import STEP_KINDS, Done, Failed, StepContext, StepOutcome, Wait
from interlink.ids import derived_id, new_id
from interlink.metrics import Metrics
from interlink.notifications import Notifications, Sender
from interlink.redaction import Redactor
from interlink.scripts import Isolation, ScriptOutcome, ScriptPool
from interlink.spec import Project
from interlink.spec.flow import FlowSpec
from interlink.store import (
    ENDED,
    Complete,
    Enqueue,
    InsertRun,
    QueueItem,
    Release,
    RunQuery,
    RunRecord,
    SaveStep,
    StepRecord,
    Store,
    UpdateRun,
    Wake,
    WriteOp,
)

__all__ = ["RUN_KIND", "TERMINAL", "FlowRunner"]

if TYPE_CHECKING:
    from interlink.worker import Worker

log = logging.getLogger("interlink.flows")

#: queue item kind of a run to start or resume
RUN_KIND = "run"
#: statuses a run never leaves
TERMINAL = ENDED


class FlowRunner:
    """Starts, executes and retries runs of a project's flows."""

    def __init__(
        self,
        project: Project,
        store: Store,
        *,
        connectors: Mapping[str, ConnectorClient],
        scripts: ScriptPool,
        redactor: Redactor,
        owner: str,
        http: aiohttp.ClientSession,
        lease_s: float = 30.0,
        metrics: Metrics | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        self.project = project
        self.notifications = notifications
        self.store = store
        self.http = http
        self.connectors = connectors
        self.scripts = scripts
        self.redactor = redactor
        self.owner = owner
        self.lease_s = lease_s
        self.metrics = metrics or Metrics()
        self._finished: dict[str, asyncio.Event] = {}
        #: runs executing in tasks of their own (`run_now`): they outlive a caller that
        #: stops waiting (an activity timeout), and `close()` lets them finish
        self._executing: set[asyncio.Task[None]] = set()
        #: this process's workers (`Engine.worker`): a run started here goes straight to one
        #: with a free slot (`start`)
        self.workers: list[Worker] = []
        # Each run keeps its flow as data; dumping and re-validating it per run is measurable
        # work, so the project's current flows are dumped once and reused when a run's matches.
        self._dumps = {name: flow.model_dump(mode="json", by_alias=True)
                       for name, flow in project.flows.items()}

    # --- what steps use ---------------------------------------------------------------------

    def connector(self, name: str) -> ConnectorClient:
        """The client of a connector the project defines."""
        try:
            return self.connectors[name]
        except KeyError:
            raise RunError(f"connector {name!r} is not defined in this project") from None

    async def run_script(self, script: str, data: dict[str, Any], *, isolation: str = "process",
                         time_limit: float | None = None) -> ScriptOutcome:
        """Run `handle(data)` of a project script (path relative to the project)."""
        mode: Isolation = "inline" if isolation == "inline" else "process"
        return await self.scripts.run(script, data, time_limit=time_limit, isolation=mode)

    def template(self, path: str) -> Template:
        """A template of the project (checked and compiled when it loaded)."""
        try:
            return self.project.templates[path]
        except KeyError:
            raise RunError(f"template {path!r} is not part of this project") from None

    def channel(self, name: str) -> Sender:
        """The sender of a notification channel of interlink.yaml (a `notify` step's)."""
        sender = self.notifications.channel(name) if self.notifications else None
        if sender is None:
            raise RunError(f"notification channel {name!r} is not defined in this project")
        return sender

    def child_run(self, flow: str, input: Any, *, trigger: str, run_id: str) -> RunRecord:
        """A queued run of the project's flow `flow` (a `run_flow` step's child)."""
        return self.new_run(self.flow(flow), input, trigger=trigger, run_id=run_id)

    async def run_steps(self, ctx: StepContext, steps: list[Any],
                        bucket: list[Any]) -> StepOutcome:
        """Run nested steps in order; their origins compose, so the outcome's `origins` map
        each output to the payload of `bucket` it came from."""
        origins = list(range(len(bucket)))
        variables: dict[str, Any] = {}
        for step in steps:
            child = ctx.child(step)
            outcome = await self._run_step(child, step, bucket)
            if isinstance(outcome, Wait):
                # Kept under the nested step's id: the composite runs again on resume, and each
                # nested step finds its own cursor (`StepContext.child`).
                return replace(outcome, cursor={step.id: outcome.cursor},
                               step=outcome.step or step.id)
            if isinstance(outcome, Failed):
                return outcome if outcome.step else replace(outcome, step=step.id)
            if not isinstance(outcome, Done):
                return outcome
            bucket = outcome.bucket
            if outcome.origins is not None:
                origins = [origins[i] for i in outcome.origins]
            if outcome.variables:
                variables.update(outcome.variables)
                ctx.variables.update(outcome.variables)
        return Done(bucket, origins, variables or None)

    # --- starting runs ----------------------------------------------------------------------

    def new_run(self, flow: FlowSpec | Mapping[str, Any], input: Any, *, trigger: str,
                retry_of: str | None = None, retry_count: int = 0,
                run_id: str | None = None) -> RunRecord:
        """A queued run record of `flow` (a spec, or a spec kept by an earlier run)."""
        if isinstance(flow, FlowSpec):
            spec = self._dumps.get(flow.name) or flow.model_dump(mode="json", by_alias=True)
        else:
            spec = dict(flow)
        return RunRecord(id=run_id or new_id("r_"), flow=spec["name"], status="queued",
                         trigger=trigger, input=input, flow_spec=spec, created_at=time.time(),
                         retry_of=retry_of, retry_count=retry_count)

    @staticmethod
    def retry_id(run: RunRecord) -> str:
        """The id the code-2 retry of `run` gets (or got): one retry run per failed run."""
        return derived_id("r_", run.created_at, f"{run.id}:retry")

    def flow(self, name: str) -> FlowSpec:
        """A flow of the project by name."""
        try:
            return self.project.flows[name]
        except KeyError:
            raise RunError(f"flow {name!r} is not defined in this project") from None

    async def start(self, flow: str, input: Any, *, trigger: str = "api",
                    run_at: float | None = None, also: Sequence[WriteOp] = (),
                    key: str | None = None) -> str:
        """Queue a run of `flow` with `input` durably; returns the run id. `also` commits
        with it or not at all (a webhook's nonce: a request refused is not half-seen). With
        `key`, a run queued under the same key before makes this raise `Conflict` instead."""
        run = self.new_run(self.flow(flow), input, trigger=trigger)
        item_id = new_id("q_")
        # Due now and a worker here has a free slot: the item is written leased to it and
        # handed over, with no claim and no read (as if it had claimed it).
        worker = None if run_at is not None else next(
            (w for w in self.workers if w.reserve()), None)
        enqueue = Enqueue(item_id, RUN_KIND, {"run_id": run.id}, run_at)
        if worker is None:
            await self.store.write(InsertRun(run, key=key), enqueue, *also)
            return run.id
        taker = worker  # for the callback below (mypy cannot narrow into it)
        write = asyncio.ensure_future(self.store.write(
            InsertRun(run, key=key), replace(enqueue, owner=worker.owner,
                                             lease_s=worker.lease_s), *also))
        leased = _leased_item(item_id, run, worker.owner, worker.lease_s)

        def settle(done: asyncio.Future[list[Any]]) -> None:
            if done.cancelled() or done.exception() is not None:
                taker.unreserve()
            else:
                taker.adopt(leased)

        try:
            # Shielded: a caller cancelled mid-write (a webhook's client hung up) does not
            # stop the write, which may commit; the worker then runs the item at once rather
            # than after its lease, leased to nobody running it, ran out.
            await asyncio.shield(write)
        except asyncio.CancelledError:
            write.add_done_callback(settle)
            raise
        except BaseException:
            worker.unreserve()
            raise
        worker.adopt(leased)
        return run.id

    async def start_once(self, flow: str, input: Any, *, key: str, trigger: str,
                         run_at: float | None = None) -> str | None:
        """Queue a run of `flow` unless a run with `key` was queued before, by any process
        (a scheduled flow's fire time); returns the new run's id, or None.

        The store keeps the key unique, so the run's id stays random (nobody can guess it
        from the flow and the time).
        """
        run = self.new_run(self.flow(flow), input, trigger=trigger)
        try:
            await self.store.write(InsertRun(run, key=key),
                                   Enqueue(new_id("q_"), RUN_KIND, {"run_id": run.id}, run_at))
        except Conflict:
            return None
        return run.id

    async def run_now(self, flow: str, input: Any, *, trigger: str,
                      run_id: str | None = None, to_the_end: bool = True) -> RunRecord:
        """Run `flow` in this process and return the ended run (a service's sync activity).

        The run and its queue item, leased to this process, are written with the run's first
        step, so if this process dies the lease expires and a worker finishes the run; a run
        `run_id` that exists already is never run here (`Conflict`). A durable wait hands the
        run to the workers; this then waits for it to end — or, with `to_the_end=False`,
        returns it as it is (`waiting`). A caller that stops waiting (is cancelled) leaves
        the run going on.
        """
        run = self.new_run(self.flow(flow), input, trigger=trigger, run_id=run_id)
        item_id = new_id("q_")
        first: list[WriteOp] = [InsertRun(run, exclusive=True),
                                Enqueue(item_id, RUN_KIND, {"run_id": run.id}, owner=self.owner,
                                        lease_s=self.lease_s)]
        return await self._run_here(run, item_id, first, to_the_end)

    async def redrive_now(self, run: RunRecord, *, to_the_end: bool = True) -> RunRecord:
        """Run a failed run again from its failed step, here; return it once it ended (or
        went into a durable wait, with `to_the_end=False`).

        Steps that succeeded are not run again, payloads the failed step already delivered
        are not sent again, and the others are sent with the same idempotency keys; the
        failed step gets a fresh attempt budget. Raises `Conflict` when the run is no longer
        the failed run given (another process re-drove it first).
        """
        redrive = run.redrive + 1
        item_id = derived_id("q_", run.created_at, f"{run.id}:redrive:{redrive}")
        fields: dict[str, Any] = {"status": "running", "redrive": redrive, "error": None,
                                  "finished_at": None}
        await self.store.write(
            UpdateRun(run.id, fields, expect={"status": "failed", "redrive": run.redrive}),
            Enqueue(item_id, RUN_KIND, {"run_id": run.id}, owner=self.owner,
                    lease_s=self.lease_s))
        return await self._run_here(replace(run, **fields), item_id, [], to_the_end)

    async def _run_here(self, run: RunRecord, item_id: str, first: list[WriteOp],
                        to_the_end: bool) -> RunRecord:
        task = asyncio.create_task(self._own(run, item_id, first), name=f"interlink-run-{run.id}")
        self._executing.add(task)
        task.add_done_callback(self._executing.discard)
        # Shielded: the run's record and outcome must not depend on how long a caller waits.
        await asyncio.shield(task)
        if to_the_end:
            return await self.wait_for(run.id)
        ended = await self.store.get_run(run.id)
        if ended is None:
            raise RunError(f"running {run.id}: the run is gone from the store")
        return ended

    async def _own(self, run: RunRecord, item_id: str, first: list[WriteOp]) -> None:
        """Execute a run whose queue item this process holds, renewing its lease meanwhile."""
        item = _leased_item(item_id, run, self.owner, self.lease_s)
        renewal = asyncio.create_task(self._renew(item_id))
        for worker in self.workers:  # its claims may take the item back, not run it again
            worker.held_beside.add(item_id)
        try:
            await self._execute(run, item, self.owner, first)
        finally:
            renewal.cancel()
            for worker in self.workers:
                worker.held_beside.discard(item_id)

    async def close(self) -> None:
        """Let the runs executing here (`run_now`) finish their current step and write it;
        the engine is closing. (A run in a durable wait is the workers' already.)"""
        if self._executing:
            await asyncio.gather(*self._executing, return_exceptions=True)

    async def _renew(self, item_id: str) -> None:
        # As the worker's renewals: a failed one is retried at the next (ending here would
        # let the lease lapse for good).
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.store.extend_leases(self.owner, [item_id], self.lease_s)
            except StoreError as exc:
                log.warning("renewing the lease of %s failed (%s); retrying", item_id, exc)

    async def retry(self, run_id: str) -> str:
        """Queue the retry of a run: a new run of the same flow version with the same input,
        linked by retry_of; returns its id.

        A run has one retry, the one a failing flow queues itself (response code 2): retrying
        a run again, or one whose flow already queued its retry, gives that same run (made due
        now), so a double click or a bulk retry repeated never starts two.
        """
        old = await self.store.get_run(run_id)
        if old is None:
            raise RunError(f"retrying run {run_id}: no such run")
        if old.status not in TERMINAL:
            raise RunError(f"retrying run {run_id}: it is {old.status}; only a run that ended "
                           "can be retried")
        if old.status == "succeeded":
            # Its payloads were delivered: a retry would deliver them again, with new keys.
            raise RunError(f"retrying run {run_id}: it succeeded; only a failed, stopped or "
                           "partial run can be retried")
        await self.store.write(*self._retry_ops(old, delay=0.0))
        return self.retry_id(old)

    def _retry_ops(self, run: RunRecord, *, delay: float) -> list[WriteOp]:
        """The writes queueing the retry run of `run` (idempotent: it has one retry run)."""
        retry = self.new_run(run.flow_spec, run.input, trigger="retry", retry_of=run.id,
                             retry_count=run.retry_count + 1, run_id=self.retry_id(run))
        item_id = derived_id("q_", run.created_at, retry.id)
        ops: list[WriteOp] = [InsertRun(retry), Enqueue(item_id, RUN_KIND, {"run_id": retry.id},
                                                        time.time() + delay)]
        return ops if delay else [*ops, Wake(item_id)]

    async def retried_as(self, run_id: str) -> str | None:
        """The id of the retry run of `run_id` when it has one already (see `retry`)."""
        run = await self.store.get_run(run_id)
        retry = None if run is None else await self.store.get_run(self.retry_id(run))
        return None if retry is None else retry.id

    async def retry_matching(self, query: RunQuery, *, limit: int = 1000) -> list[str]:
        """Retry the failed runs `query` matches that have no retry yet, newest first, up to
        `limit`; returns the new retry runs' ids (see `retry`). A query for another status
        matches no failed run: nothing is retried."""
        if query.status not in (None, "failed"):
            return []
        query = replace(query, status="failed")
        ids: list[str] = []
        cursor = None
        while len(ids) < limit:
            page = await self.store.find_runs(query, cursor=cursor, limit=200)
            # A run retried before (by hand or by its flow) is skipped: its retry is the
            # run to retry now, if it failed too, and the filter finds that one itself.
            fresh = [run for run in page.runs
                     if await self.store.get_run(self.retry_id(run)) is None][:limit - len(ids)]
            if fresh:
                await self.store.write(*[op for run in fresh
                                         for op in self._retry_ops(run, delay=0.0)])
                ids += [self.retry_id(run) for run in fresh]
            if page.cursor is None:
                break
            cursor = page.cursor
        return ids

    async def redrive(self, run_id: str) -> str:
        """Queue a failed run again from its failed step, for the workers; returns its id.

        As `redrive_now`: steps that succeeded keep their outputs, payloads the failed step
        delivered are not sent again, the others go with the same idempotency keys, and the
        failed step gets a fresh attempt budget.
        """
        run = await self.store.get_run(run_id)
        if run is None or run.status != "failed":
            why = "no such run" if run is None else f"it is {run.status}"
            raise RunError(f"re-driving run {run_id}: {why}; only a failed run can be re-driven")
        redrive = run.redrive + 1
        item_id = derived_id("q_", run.created_at, f"{run.id}:redrive:{redrive}")
        try:
            await self.store.write(
                UpdateRun(run.id, {"status": "queued", "redrive": redrive, "error": None,
                                   "finished_at": None},
                          expect={"status": "failed", "redrive": run.redrive}),
                Enqueue(item_id, RUN_KIND, {"run_id": run.id}))
        except Conflict:
            raise RunError(f"re-driving run {run_id}: it changed meanwhile "
                           "(someone else re-drove it)") from None
        return run.id

    async def stop(self, run_id: str) -> None:
        """Stop a queued or waiting run: it ends `stopped`, and its queue item, when claimed,
        finds it ended and is dropped (a worker about to run it sees the change: `_execute`
        writes `running` only over the status it read)."""
        run = await self.store.get_run(run_id)
        if run is None or run.status not in ("queued", "waiting"):
            why = "no such run" if run is None else f"it is {run.status}"
            raise RunError(f"stopping run {run_id}: {why}; only a queued or waiting run "
                           "can be stopped")
        ending = self._ending(run, "stopped", "stopped by an operator")
        first = ending[0]
        assert isinstance(first, UpdateRun)
        try:
            await self.store.write(replace(first, expect={"status": run.status}), *ending[1:])
        except Conflict:
            raise RunError(f"stopping run {run_id}: it started meanwhile") from None
        self._announce(run.id)

    async def wait_for(self, run_id: str, time_limit: float | None = None) -> RunRecord:
        """Wait until a run ends (here or in any other process); returns its record."""
        event = self._finished.setdefault(run_id, asyncio.Event())
        try:
            async with asyncio.timeout(time_limit):
                while True:
                    run = await self.store.get_run(run_id)
                    if run is None:
                        raise RunError(f"waiting for run {run_id}: no such run")
                    if run.status in TERMINAL:
                        return run
                    with contextlib.suppress(TimeoutError):
                        # Set when this process ends the run; polling covers other processes.
                        await asyncio.wait_for(event.wait(), 0.25)
        finally:
            self._finished.pop(run_id, None)

    # --- executing ---------------------------------------------------------------------------

    async def handle(self, item: QueueItem, owner: str) -> None:
        """Worker handler of `run` items: execute (or resume) the run the item names."""
        # Read with the claim (`QueueItem.run`); an item handed over otherwise is read here.
        run = item.run or await self.store.get_run(item.payload["run_id"])
        if run is None or run.status in TERMINAL:
            # Its end was recorded but the process died before the item was: just finish it.
            await self.store.write(Complete(item.id, owner, keep=False))
            return
        await self._execute(run, item, owner)

    async def _execute(self, run: RunRecord, item: QueueItem, owner: str,
                       first: list[WriteOp] | None = None) -> None:
        flow = self._flow_of(run)
        cursor = item.payload.get("cursor")
        bucket: list[Any] = run.bucket if run.bucket is not None else [run.input]
        now = time.time()
        # The `running` status goes out with the step's first write (one commit fewer).
        pending: list[WriteOp] = list(first or [])
        if run.status != "running":
            # Over the status read only: a run stopped meanwhile is not started (`stop`).
            pending.append(UpdateRun(run.id, {
                "status": "running", "started_at": run.started_at or now, "updated_at": now},
                expect={"status": run.status}))
        # Only the step an earlier execution may have begun has anything in the store (or,
        # for a re-driven run, the failed step it starts at).
        resumed = run.status != "queued" or run.redrive > 0
        variables = dict(run.variables or {})
        for index in range(run.step_index, len(flow.steps)):
            step = flow.steps[index]
            ctx = StepContext(self, run, flow, index, step, cursor, pending, resumed, variables,
                              item_id=item.id, owner=owner)
            pending, resumed = [], False
            started = cursor.get("started_at", now) if cursor else time.time()
            outcome = await self._run_step(ctx, step, bucket)
            last = index == len(flow.steps) - 1
            if isinstance(outcome, Done):
                bucket = outcome.bucket
                progress: dict[str, Any] = {"step_index": index + 1, "bucket": bucket,
                                            "updated_at": time.time()}
                if outcome.variables:
                    variables.update(outcome.variables)
                    progress["variables"] = variables
                # The step keeps its output (the run's bucket is the last step's only): the
                # run's page shows each step's input and output.
                ops: list[WriteOp] = [
                    SaveStep(StepRecord(run.id, index, step.id, "succeeded", started,
                                        time.time(), output=bucket))]
                if last:  # the progress and the end in one update
                    ops += [*self._ending(run, "succeeded", None, progress),
                            Complete(item.id, owner, keep=False)]
                else:
                    ops.append(UpdateRun(run.id, progress))
                try:
                    await ctx.flush(*ops)
                except ValueRefused as exc:  # a value it cannot hold: the step fails
                    # Its attempts' outcomes were not stored (an accepted one without the
                    # output it produced would pass for done): as after a crash, they stay
                    # unknown, and a re-drive sends again with the same key.
                    ctx.drop_attempts()
                    outcome = Failed(f"step {step.id}: saving its outcome: {exc}")
                else:
                    if last:
                        self.metrics.run_ended(run.flow, "succeeded")
                    cursor = None
                    continue
            if isinstance(outcome, Wait):
                ctx.log(outcome.reason, outcome.level, step=outcome.step)
                try:
                    await ctx.flush(
                        SaveStep(StepRecord(run.id, index, step.id, "waiting", started)),
                        UpdateRun(run.id, {"status": "waiting", "updated_at": time.time()}),
                        Release(item.id, owner, outcome.until,
                                payload={"run_id": run.id, "cursor": {**outcome.cursor,
                                                                      "started_at": started}},
                                replace_payload=True),
                    )
                    return
                except ValueRefused as exc:  # the cursor holds what the store cannot hold:
                    # claimed again, the item would be refused again until set aside broken
                    outcome = Failed(f"step {step.id}: saving its wait: {exc}")
            if isinstance(outcome, Failed):
                ctx.log(outcome.reason, "error", step=outcome.step)
                retry = self._flow_retry(ctx, flow, outcome)
                # Terminal (no retry run to come): its notifications commit with its end.
                notices = [] if retry or not self.notifications else \
                    self.notifications.notices.run_failed(run, flow, outcome.step or step.id,
                                                          outcome.reason)
                ops = [SaveStep(StepRecord(run.id, index, step.id, "failed", started, time.time(),
                                           error=outcome.reason)),
                       *self._ending(run, "failed", outcome.reason), *retry, *notices,
                       Complete(item.id, owner, keep=False)]
                try:
                    await ctx.flush(*ops)
                except ValueRefused as exc:
                    # What rode with the failure is what the store refuses: an attempt's
                    # record (text cannot be: `storable`). Written without the attempts,
                    # which stay unknown as after a crash; the run's start, its log lines
                    # (and a run_now's run) still go with it.
                    log.warning("run %s: writing its failure with its attempts: %s; writing it "
                                "without them", run.id, exc)
                    ctx.drop_attempts()
                    await ctx.flush(*ops)
                self.metrics.run_ended(run.flow, "failed")
                break
        self._announce(run.id)

    def _flow_of(self, run: RunRecord) -> FlowSpec:
        """The flow definition a run started with."""
        current = self.project.flows.get(run.flow)
        if current is not None and self._dumps.get(run.flow) == run.flow_spec:
            return current
        return FlowSpec.model_validate(run.flow_spec)

    def _announce(self, run_id: str) -> None:
        """Wake whoever in this process waits for the run to end."""
        event = self._finished.get(run_id)
        if event is not None:
            event.set()

    async def _run_step(self, ctx: StepContext, step: Any, bucket: list[Any]) -> StepOutcome:
        try:
            return await STEP_KINDS[step.type](ctx, step, bucket)
        except ValueRefused as exc:  # a value of the step's the store cannot hold
            return Failed(f"step {step.id}: {exc}")
        except StoreError:
            # Conflict: another process owns the run now. Unavailable: the store could not
            # take a write (an outage). Another refusal is the server's (a permission, a
            # table missing), not the step's. The step did not fail: record nothing and let
            # the item be claimed again (or set aside as broken), resuming the step from what
            # the store has.
            raise
        except Exception as exc:
            log.exception("run %s step %s crashed", ctx.run.id, step.id)
            return Failed(f"step {step.id}: internal error: {type(exc).__name__}: {exc}")

    def _ending(self, run: RunRecord, status: str, error: str | None,
                progress: dict[str, Any] | None = None) -> list[WriteOp]:
        now = time.time()
        ending: list[WriteOp] = [UpdateRun(run.id, {**(progress or {}), "status": status,
                                                    "error": error, "finished_at": now,
                                                    "updated_at": now})]
        if run.wake is not None:  # a parent run waits for this one (`run_flow`)
            ending.append(Wake(run.wake))
        return ending

    def _flow_retry(self, ctx: StepContext, flow: FlowSpec, outcome: Failed) -> list[WriteOp]:
        """Response code 2: a new run of the same flow version and input, after the delay."""
        if not outcome.retry_flow:
            return []
        run = ctx.run
        limit = flow.retry.max_flow_retries
        if run.retry_count >= limit:
            ctx.log(f"not retrying the flow: {run.retry_count} of {limit} retries used", "error")
            return []
        ctx.log(f"queued retry run {self.retry_id(run)} ({run.retry_count + 1} of {limit}) "
                f"in {flow.retry.delay:g}s")
        return self._retry_ops(run, delay=flow.retry.delay)


def _leased_item(item_id: str, run: RunRecord, owner: str, lease_s: float) -> QueueItem:
    """The queue item of `run` as its claim by `owner` would give it (written leased to it)."""
    now = time.time()
    return QueueItem(item_id, RUN_KIND, {"run_id": run.id}, "leased", 0, now, 1, now, now,
                     owner, now + lease_s, run=run)
