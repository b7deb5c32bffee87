"""`interlink run FLOW` and `interlink runs` (list, `show`, `retry`, `stop`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from interlink import _loop
from interlink.cli._app import main
from interlink.cli._common import (
    RUN_STATUSES,
    ProjectFirstGroup,
    fail,
    json_option,
    load,
    print_list,
    project_argument,
    project_option,
    project_override_option,
    read_source,
    run_store_command,
    warn_without_workers,
    with_store,
)
from interlink.cli.moments import Moment
from interlink.cli.progress import Progress
from interlink.engine import Engine
from interlink.errors import InterlinkError
from interlink.flows.report import format_run, format_runs, iso, run_json, run_summary
from interlink.payloads import parse_payload
from interlink.services.failures import MappingFailure
from interlink.spec import Project
from interlink.store import RunQuery, RunRecord, Store

__all__ = ["run_flow", "runs", "runs_retry", "runs_show", "runs_stop"]


def _read_payload(source: str | None) -> Any:
    if source is None:
        return None
    try:
        return parse_payload(read_source(source, "--payload"))
    except MappingFailure as exc:  # too deep, an integer past 64 bits
        fail(f"--payload {source}: {exc.message}")


@main.command("run")
@click.argument("flow")
@project_argument
@click.option("--payload", "payload_source", metavar="FILE|-",
              help="the run's input: a file, or - for standard input (JSON or text)")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="seconds to wait for the run to end")
@click.option("--quiet", is_flag=True, help="say nothing on stderr while the run goes on")
@click.option("--queue", "queue_only", is_flag=True,
              help="only queue the run for a worker (any process's) and print its id")
@json_option
def run_flow(flow: str, project: Path, payload_source: str | None, timeout: float,
             quiet: bool, queue_only: bool, as_json: bool) -> None:
    """Run FLOW now (with a worker in this process) and print the run; exit 1 if it failed.
    A durable wait (a retry or delay over a second) goes to the queue like any other: any
    worker running then, this one or another process's, takes the run on.

    While it waits, each change (the step and attempt in flight, waits) is told on stderr;
    stdout gets only the ended run. With `--queue` the run is queued and its id printed at
    once: `interlink worker` or `serve` runs it (`interlink runs show ID` follows it).
    """
    loaded = load(project)
    if flow not in loaded.flows:
        known = ", ".join(sorted(loaded.flows)) or "none"
        fail(f"running {flow}: no flow named {flow!r} in {project} (flows: {known})")
    payload = _read_payload(payload_source)
    if queue_only:
        _queue_run(loaded, flow, payload, as_json)
        return

    async def go() -> dict[str, Any]:
        async with Engine(loaded) as engine:
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            progress: asyncio.Task[None] | None = None
            try:
                run_id = await engine.runner.start(flow, payload, trigger="manual")
                if not quiet:
                    watch = Progress(engine.store, run_id, lambda line: click.echo(line, err=True))
                    progress = asyncio.create_task(watch.follow())
                run = await engine.runner.wait_for(run_id, timeout)
                if progress is not None:
                    progress.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await progress
                    await watch.look()  # what happened since its last look
                return await run_json(engine.store, run)
            finally:
                if progress is not None:
                    progress.cancel()
                stop.set()
                await worker

    try:
        result = _loop.run(go())
    except TimeoutError:
        fail(f"running {flow}: not finished after {timeout:g}s; it goes on in any worker")
    except InterlinkError as exc:
        fail(str(exc))
    click.echo(json.dumps(result, indent=2) if as_json else format_run(result))
    sys.exit(0 if result["status"] == "succeeded" else 1)


def _queue_run(project: Project, flow: str, payload: Any, as_json: bool) -> None:
    """`run --queue`: the run is written queued (no worker here to hand it to)."""

    async def go() -> str:
        async with Engine(project) as engine:
            run_id = await engine.runner.start(flow, payload, trigger="manual")
            await warn_without_workers(engine.store)
            return run_id

    run_id = run_store_command(go)
    click.echo(json.dumps({"id": run_id, "status": "queued"}) if as_json else run_id)


@main.group(cls=ProjectFirstGroup, invoke_without_command=True)
@project_option
@click.option("--flow", help="only runs of this flow")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="only runs in this status")
@click.option("--trigger", help="only runs started this way (api, schedule, webhook, service, "
              "retry, manual, …)")
@click.option("--since", type=Moment(), metavar="WHEN",
              help="only runs created since WHEN: a duration ago (30m, 2h, 7d), an ISO 8601 "
              "time (UTC unless it says otherwise) or Unix seconds")
@click.option("--until", type=Moment(), metavar="WHEN", help="only runs created before WHEN")
@click.option("--search", "-q", metavar="TEXT",
              help="a run id, a queue item id (its run), or text in the runs' input")
@click.option("--cursor", metavar="CURSOR", help="the next page, as the last page said")
@click.option("--all", "every", is_flag=True, help="every matching run (all pages)")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="runs per page")
@json_option
@click.pass_context
def runs(ctx: click.Context, project: Path, flow: str | None, status: str | None,
         trigger: str | None, since: float | None, until: float | None, search: str | None,
         cursor: str | None, every: bool, limit: int, as_json: bool) -> None:
    """List runs, newest first, a page at a time (`runs show RUN_ID`, `runs retry RUN_ID`,
    `runs stop RUN_ID` for one run). When more runs match, the next page's `--cursor` is
    told on stderr."""
    ctx.obj = project
    if ctx.invoked_subcommand is not None:
        return
    query = RunQuery(flow=flow, status=status, trigger=trigger, since=since, until=until,
                     search=search)

    async def find(store: Store) -> tuple[list[RunRecord], str | None]:
        found: list[RunRecord] = []
        after = cursor
        while True:
            try:
                page = await store.find_runs(query, cursor=after, limit=limit)
            except ValueError as exc:
                fail(f"listing runs: {exc}")
            found += page.runs
            after = page.cursor
            if not every or after is None:
                return found, after

    loaded = load(project)
    found, more = with_store(loaded, find)
    filters = [f"{name} {value}" for name, value in (
        ("flow", flow), ("status", status), ("trigger", trigger), ("search", search),
        ("since", iso(since)), ("until", iso(until))) if value]
    empty = "no runs" + (f" ({', '.join(filters)})" if filters else "") + (
        " after this cursor" if cursor else "")
    if flow and flow not in loaded.flows:  # a typo, or a flow removed since its runs
        empty += f"; the project has no flow named {flow!r}"
    print_list([run_summary(r) for r in found], as_json, format_runs, empty=empty)
    if more is not None:
        click.echo(f"more runs: add --cursor {more} for the next page (or --all)", err=True)


@runs.command("show")
@click.argument("run_id")
@json_option
@project_override_option
@click.pass_obj
def runs_show(project: Path, run_id: str, as_json: bool, project_override: Path | None) -> None:
    """Show one run: its steps, every attempt and its log."""
    loaded = load(project_override or project)

    async def show(store: Store) -> dict[str, Any] | None:
        run = await store.get_run(run_id)
        return None if run is None else await run_json(store, run)

    found = with_store(loaded, show)
    if found is None:
        fail(f"showing run {run_id}: no such run in {loaded.config.store}")
    click.echo(json.dumps(found, indent=2) if as_json else format_run(found))


@runs.command("retry")
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--from-step", "from_step", is_flag=True,
              help="re-drive the failed run from its failed step instead (same run id; the "
              "steps before keep their outputs, delivered payloads are not sent again)")
@click.option("--flow", help="bulk: the failed runs of this flow")
@click.option("--status", type=click.Choice(["failed"]),
              help="bulk: the runs in this status (only failed runs are retried)")
@click.option("--trigger", help="bulk: only runs started this way")
@click.option("--since", type=Moment(), metavar="WHEN", help="bulk: only runs created since WHEN")
@click.option("--until", type=Moment(), metavar="WHEN", help="bulk: only runs created before")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True,
              help="bulk: retry at most this many (newest first)")
@project_override_option
@click.pass_obj
def runs_retry(project: Path, run_ids: tuple[str, ...], from_step: bool, flow: str | None,
               status: str | None, trigger: str | None, since: float | None,
               until: float | None, limit: int, project_override: Path | None) -> None:
    """Queue a new run of the same flow version with the same input (linked by retry_of) for
    each RUN_ID, or for every failed run matching `--status failed` and the filters; print
    the new runs' ids. Says so when no worker is running to pick them up."""
    bulk = status is not None
    if bulk == bool(run_ids):
        raise click.UsageError("give RUN_IDs, or --status failed (and filters) for a bulk "
                               "retry, not both")
    if not bulk and (flow or trigger or since is not None or until is not None):
        raise click.UsageError("--flow, --trigger, --since and --until select runs for a "
                               "bulk retry: add --status failed")
    if bulk and from_step:
        raise click.UsageError("--from-step re-drives the runs you name: give their RUN_IDs")
    loaded = load(project_override or project)

    async def go() -> tuple[list[str], list[str], list[str]]:
        async with Engine(loaded) as engine:
            runner = engine.runner
            queued: list[str] = []
            errors: list[str] = []
            notes: list[str] = []
            if bulk:
                query = RunQuery(flow=flow, status="failed", trigger=trigger, since=since,
                                 until=until)
                queued = await runner.retry_matching(query, limit=limit)
            for run_id in run_ids:
                try:
                    before = None if from_step else await runner.retried_as(run_id)
                    queued.append(await (runner.redrive(run_id) if from_step
                                         else runner.retry(run_id)))
                except InterlinkError as exc:
                    errors.append(str(exc))
                else:
                    if before is not None:
                        notes.append(f"run {run_id} was retried before, as {before}: a run "
                                     "has one retry (retry that one to try again)")
            if queued:
                await warn_without_workers(engine.store)
            return queued, errors, notes

    queued, errors, notes = run_store_command(go)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for new_id in queued:
        click.echo(new_id)
    if bulk:
        plural = "" if len(queued) == 1 else "s"
        click.echo(f"retried {len(queued)} failed run{plural} (runs retried before are left to "
                   "their retries)"
                   + ("; the limit: there may be more" if len(queued) == limit else ""),
                   err=True)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)


@runs.command("stop")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
@project_override_option
@click.pass_obj
def runs_stop(project: Path, run_ids: tuple[str, ...], project_override: Path | None) -> None:
    """Stop waiting or queued runs: they end `stopped` and nothing more of them runs."""
    loaded = load(project_override or project)

    async def go() -> list[str]:
        errors = []
        async with Engine(loaded) as engine:
            for run_id in run_ids:
                try:
                    await engine.runner.stop(run_id)
                except InterlinkError as exc:
                    errors.append(str(exc))
                else:
                    click.echo(f"stopped {run_id}")
        return errors

    errors = run_store_command(go)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)
