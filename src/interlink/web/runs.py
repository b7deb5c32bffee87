"""What the runs list and a run's page show, read from the store.

The list is one keyset page of `Store.find_runs` (newest first; "older" passes the page's
cursor back) and the counts per status of `Store.count_runs`, both for the same filter. The
list refreshes itself while any run on it is still in flight.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from interlink.flows.report import enclosing_steps, steps_under_way
from interlink.flows.runner import FlowRunner
from interlink.store import AttemptRecord, LogLine, QueueItem, RunRecord, StepRecord, Store
from interlink.web.filters import STATUSES, RunFilter
from interlink.web.render import spec_hash

__all__ = ["IN_FLIGHT", "PAGE_SIZE", "RunDetail", "StepView", "run_detail", "runs_list"]

#: runs per page of the list
PAGE_SIZE = 50
#: counts per status stop here ("10,000+")
COUNT_CAP = 10_000
#: statuses a run is still moving in: the list refreshes itself while it shows one
IN_FLIGHT = frozenset({"queued", "running", "waiting"})
#: items of a bucket shown before "show all"
FIRST_ITEMS = 3


async def runs_list(store: Store, flows: list[str], args: Mapping[str, str]) -> dict[str, Any]:
    """The context of the runs list for the query string `args`; ValueError for a bad time
    or cursor."""
    chosen = RunFilter.of(args)
    query = chosen.query(time.time())
    cursor = args.get("cursor") or None
    page = await store.find_runs(query, cursor=cursor, limit=PAGE_SIZE)
    counts = await store.count_runs(query, cap=COUNT_CAP)
    return {
        "filter": chosen,
        "runs": page.runs,
        "older": chosen.url("runs", cursor=page.cursor) if page.cursor else None,
        "first": chosen.url("runs") if cursor else None,
        "counts": [(status, counts.get(status, 0)) for status in STATUSES],
        "count_cap": COUNT_CAP,
        "total": sum(counts.values()),
        # Bulk retry takes the failed runs the filter matches: none when it names another status.
        "failed": counts.get("failed", 0) if chosen.status in ("", "failed") else 0,
        "refresh": any(run.status in IN_FLIGHT for run in page.runs),
        "flows": flows,
    }


@dataclass
class StepView:
    """A step of a run's page: its record, what went in and out, its attempts and log."""

    record: StepRecord
    input: list[Any] | None
    #: (attempt number in the run, for download links; the attempt)
    attempts: list[tuple[int, AttemptRecord]] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    #: where the step's bar starts and how long it is, in % of the run's span
    offset: float = 0.0
    width: float = 0.0

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while it runs)."""
        if self.record.finished_at is None:
            return None
        return self.record.finished_at - self.record.started_at


@dataclass
class RunDetail:
    """Everything a run's page shows."""

    run: RunRecord
    version: str
    current: bool
    steps: list[StepView]
    #: log lines of no step (the run's own)
    logs: list[LogLine]
    items: list[QueueItem]
    #: what the page shows whole: a step's index (its buckets), or `output`
    all_of: str | None
    #: the run that retries this one, if there is one yet (a run has one retry)
    retried_as: str | None = None


async def run_detail(store: Store, run: RunRecord, current_spec: dict[str, Any] | None,
                     all_of: str | None) -> RunDetail:
    """The page of `run`; `current_spec` is the project's definition of its flow today."""
    steps = await store.get_steps(run.id)
    attempts = await store.get_attempts(run.id)
    logs = await store.get_logs(run.id)
    steps = [*steps, *steps_under_way(run, steps, attempts)]
    views: list[StepView] = []
    previous: list[Any] | None = [run.input]
    for step in steps:
        views.append(StepView(step, previous))
        previous = step.output
    by_id = {view.record.step_id: view for view in views}
    # A nested step (in a route, a try, …) has no record of its own: its attempts and log
    # lines are shown under the step it is nested in.
    for nested, outer in enclosing_steps(run.flow_spec).items():
        if nested not in by_id and outer in by_id:
            by_id[nested] = by_id[outer]
    for number, attempt in enumerate(attempts):
        view = by_id.get(attempt.step_id)
        if view is not None:
            view.attempts.append((number, attempt))
    own: list[LogLine] = []
    for line in logs:
        view = by_id.get(line.step_id or "")
        (view.logs if view is not None else own).append(line)
    _place_bars(run, views)
    version = spec_hash(run.flow_spec)
    current = current_spec is not None and spec_hash(current_spec) == version
    retry = await store.get_run(FlowRunner.retry_id(run))
    return RunDetail(run, version, current, views, own, await store.run_items(run.id), all_of,
                     retry.id if retry is not None else None)


def _place_bars(run: RunRecord, views: list[StepView]) -> None:
    """Each step's bar on the run's timeline, from the run's start to its end (or now)."""
    start = run.started_at or run.created_at
    end = run.finished_at or max([time.time(), *(v.record.finished_at or 0 for v in views)])
    span = max(end - start, 1e-6)
    for view in views:
        began = max(view.record.started_at - start, 0.0)
        ended = (view.record.finished_at or end) - start
        view.offset = min(began / span * 100, 100.0)
        view.width = max(min((ended - began) / span * 100, 100.0 - view.offset), 0.5)

