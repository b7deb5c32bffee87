"""The `interlink` command. The only place that calls `asyncio.run`."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Coroutine
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from interlink import __version__, _loop
from interlink.engine import Engine
from interlink.errors import InterlinkError, ProjectError
from interlink.flows.report import format_run, format_summary, item_json, run_json, run_summary
from interlink.payloads import parse_payload
from interlink.spec import Project, load_project
from interlink.spec.schema import json_schemas
from interlink.store import QueueItem, Requeue, Store, open_store

RUN_STATUSES = {"queued", "running", "waiting", "succeeded", "failed", "stopped", "partial"}

project_argument = click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)


def _load(project: Path, *, warn: bool = False) -> Project:
    """Load a project, or print its errors (`FILE:LINE: message`) and exit 1.

    With `warn`, its warnings (`FILE:LINE: warning: message`) are printed on stderr.
    """
    try:
        loaded = load_project(project)
    except ProjectError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if warn:
        for line in loaded.warnings:
            click.echo(line, err=True)
    return loaded


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="interlink")
def main() -> None:
    """Interlink: services, process flows and durable runs from an integration project."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="project name (default: the folder's name)")
def init(directory: Path, name: str | None) -> None:
    """Scaffold a working project in DIRECTORY."""
    if directory.exists() and any(directory.iterdir()):
        _fail(f"creating a project in {directory}: the folder is not empty")
    project_name = name or directory.resolve().name
    scaffold = resources.files("interlink") / "scaffold"
    with resources.as_file(scaffold) as source:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    config = directory / "interlink.yaml"
    config.write_text(config.read_text().replace("__NAME__", project_name))
    click.echo(f"created project {project_name!r} in {directory}")
    click.echo(f"next: interlink check {directory} && interlink serve {directory}")


@main.command()
@project_argument
def check(project: Path) -> None:
    """Validate a project; errors are printed as FILE:LINE: message (exit 1), warnings as
    FILE:LINE: warning: message (exit 0)."""
    loaded = _load(project, warn=True)
    click.echo(
        f"ok: {loaded.name}: {len(loaded.connectors)} connectors, {len(loaded.flows)} flows, "
        f"{len(loaded.services)} services"
    )


@main.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path),
    help="write one FILE.schema.json per project file kind into this folder",
)
def schema(out: Path | None) -> None:
    """Print the JSON Schema of the project files (generated from the models)."""
    schemas = json_schemas()
    if out is None:
        click.echo(json.dumps(schemas, indent=2, sort_keys=True))
        return
    out.mkdir(parents=True, exist_ok=True)
    for filename, document in schemas.items():
        (out / filename).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        click.echo(f"wrote {out / filename}")


@main.command()
@project_argument
@click.option("--host", help="address to bind (default: server.host)")
@click.option("--port", type=int, help="port to bind (default: server.port)")
@click.option("--no-worker", is_flag=True,
              help="serve HTTP only; `interlink worker` processes run the queued work")
def serve(project: Path, host: str | None, port: int | None, no_worker: bool) -> None:
    """Serve the project: services, webhooks, the API and a worker, in one process."""
    from interlink.server import serve as run_server

    loaded = _load(project, warn=True)
    try:
        run_server(loaded, host=host, port=port, with_worker=not no_worker)
    except InterlinkError as exc:
        _fail(str(exc))


@main.command()
@project_argument
def worker(project: Path) -> None:
    """Run a worker only: claims queued runs and requests from the project's store."""
    from interlink.server import run_worker

    loaded = _load(project, warn=True)
    try:
        run_worker(loaded)
    except InterlinkError as exc:
        _fail(str(exc))


class _ProjectFirstGroup(click.Group):
    """A group whose first word may be the PROJECT folder instead of a subcommand.

    `interlink runs [PROJECT]` lists runs and `interlink runs show RUN_ID` shows one: a first
    word that is not a subcommand is taken as the project.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["--project", args[0], *args[1:]]
        return super().parse_args(ctx, args)


project_option = click.option(
    "-p", "--project", "project", default=".", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="the project folder",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print stable JSON")
# Subcommands take -p too, so `interlink runs show ID -p PROJECT` reads naturally.
project_override_option = click.option(
    "-p", "--project", "project_override", default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="the project folder (default: the group's, or .)",
)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _read_payload(source: str | None) -> Any:
    if source is None:
        return None
    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    return parse_payload(raw)


@main.command("run")
@click.argument("flow")
@project_argument
@click.option("--payload", "payload_source", metavar="FILE|-",
              help="the run's input: a file, or - for standard input (JSON or text)")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="seconds to wait for the run to end")
@json_option
def run_flow(flow: str, project: Path, payload_source: str | None, timeout: float,
             as_json: bool) -> None:
    """Run FLOW now (with a worker in this process) and print the run; exit 1 if it failed."""
    loaded = _load(project)
    if flow not in loaded.flows:
        _fail(f"running {flow}: no flow named {flow!r} in {project}")
    payload = _read_payload(payload_source)

    async def go() -> dict[str, Any]:
        async with Engine(loaded) as engine:
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.worker().run(stop))
            try:
                run_id = await engine.runner.start(flow, payload, trigger="manual")
                run = await engine.runner.wait_for(run_id, timeout)
                return await run_json(engine.store, run)
            finally:
                stop.set()
                await worker

    try:
        result = _loop.run(go())
    except TimeoutError:
        _fail(f"running {flow}: not finished after {timeout:g}s; it goes on in any worker")
    except InterlinkError as exc:
        _fail(str(exc))
    click.echo(json.dumps(result, indent=2) if as_json else format_run(result))
    sys.exit(0 if result["status"] == "succeeded" else 1)


def _pairs(values: tuple[str, ...], sep: str, option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, found, rest = value.partition(sep)
        if not found or not name.strip():
            raise click.BadParameter(f"{value!r} is not NAME{sep}VALUE", param_hint=option)
        pairs.append((name.strip(), rest.strip() if sep == ":" else rest))
    return pairs


@main.command("call")
@click.argument("service")
@project_argument
@click.option("--header", "-H", "headers", multiple=True, metavar="NAME:VALUE",
              help="a request header (repeatable)")
@click.option("--query", "-q", "query", multiple=True, metavar="NAME=VALUE",
              help="a query parameter (repeatable)")
@click.option("--body", "body_source", metavar="FILE|-",
              help="the request body: a file, or - for standard input")
@click.option("--path", "path", metavar="PATH",
              help="the request path (fills the service's {params}, e.g. /orders/42)")
@json_option
def call(service: str, project: Path, headers: tuple[str, ...], query: tuple[str, ...],
         body_source: str | None, path: str | None, as_json: bool) -> None:
    """Send one request to SERVICE in-process and print the answer.

    The request goes through the real services app (security, mapping, activity, response)
    without a server; exit 0 for any HTTP answer.
    """
    from urllib.parse import urlencode

    from interlink.services import call_app

    loaded = _load(project)
    spec = loaded.services.get(service)
    if spec is None:
        _fail(f"calling {service}: no service named {service!r} in {project}")
    target = path or spec.path
    if "{" in target:
        raise click.UsageError(f"service {service} answers at {spec.path}: give --path "
                               "with its parameters filled in")
    header_pairs = _pairs(headers, ":", "--header")
    query_string = urlencode(_pairs(query, "=", "--query"))
    url = f"{target}?{query_string}" if query_string else target
    body = b""
    if body_source is not None:
        body = sys.stdin.buffer.read() if body_source == "-" else Path(body_source).read_bytes()

    async def go() -> Any:
        async with Engine(loaded) as engine:
            # Repeated names are joined the way the services app joins them anyway.
            merged: dict[str, str] = {}
            for name, value in header_pairs:
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return await call_app(engine.services_app(), spec.method, url,
                                  headers=merged, body=body)

    try:
        result = _loop.run(go())
    except InterlinkError as exc:
        _fail(str(exc))
    if as_json:
        merged_out: dict[str, str] = {}
        for name, value in result.raw_headers:
            merged_out[name] = f"{merged_out[name]}, {value}" if name in merged_out else value
        _print_json({"status": result.status, "headers": merged_out, "body": result.text})
        return
    click.echo(f"HTTP {result.status}")
    for name, value in result.raw_headers:
        click.echo(f"{name}: {value}")
    click.echo("")
    click.echo(result.text)


@main.group(cls=_ProjectFirstGroup, invoke_without_command=True)
@project_option
@click.option("--flow", help="only runs of this flow")
@click.option("--status", type=click.Choice(sorted(RUN_STATUSES)), help="only runs in this status")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def runs(ctx: click.Context, project: Path, flow: str | None, status: str | None, limit: int,
         as_json: bool) -> None:
    """List runs, newest first (`runs show RUN_ID`, `runs retry RUN_ID` for one run)."""
    ctx.obj = project
    if ctx.invoked_subcommand is not None:
        return
    found = _with_store(_load(project), lambda store: store.list_runs(
        flow=flow, status=status, limit=limit))
    _print_list([run_summary(r) for r in found], as_json, format_summary)


@runs.command("show")
@click.argument("run_id")
@json_option
@project_override_option
@click.pass_obj
def runs_show(project: Path, run_id: str, as_json: bool, project_override: Path | None) -> None:
    """Show one run: its steps, every attempt and its log."""
    loaded = _load(project_override or project)

    async def show(store: Store) -> dict[str, Any] | None:
        run = await store.get_run(run_id)
        return None if run is None else await run_json(store, run)

    found = _with_store(loaded, show)
    if found is None:
        _fail(f"showing run {run_id}: no such run in {loaded.config.store}")
    click.echo(json.dumps(found, indent=2) if as_json else format_run(found))


@runs.command("retry")
@click.argument("run_id")
@project_override_option
@click.pass_obj
def runs_retry(project: Path, run_id: str, project_override: Path | None) -> None:
    """Queue a new run of the same flow version with the same input, linked by retry_of."""
    loaded = _load(project_override or project)

    async def go() -> str:
        async with Engine(loaded) as engine:
            return await engine.runner.retry(run_id)

    click.echo(_run_store_command(go))


@main.group(cls=_ProjectFirstGroup, invoke_without_command=True)
@project_option
@click.option("--status", type=click.Choice(["ready", "leased", "done", "failed", "broken"]))
@click.option("--kind", help="only items of this kind (run, service_request, …)")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@click.pass_context
def queue(ctx: click.Context, project: Path, status: str | None, kind: str | None, limit: int,
          as_json: bool) -> None:
    """List queue items, newest first (`queue requeue ID` revives a broken or failed one)."""
    ctx.obj = project
    if ctx.invoked_subcommand is not None:
        return
    found = _with_store(_load(project), lambda store: store.list_items(
        status=status, kind=kind, limit=limit))
    _print_list([item_json(i) for i in found], as_json, lambda item: (
        f"{item['id']}  {item['kind']:<16} {item['status']:<7} attempts {item['attempts']}  "
        f"run_at {item['run_at']}  {item['last_error'] or ''}".rstrip()))


@queue.command("requeue")
@click.argument("item_id")
@project_override_option
@click.pass_obj
def queue_requeue(project: Path, item_id: str, project_override: Path | None) -> None:
    """Make a broken or failed queue item ready again now, its attempts reset; print its id."""
    async def requeue(store: Store) -> tuple[bool, QueueItem | None]:
        (requeued,) = await store.write(Requeue(item_id))
        return bool(requeued), None if requeued else await store.get_item(item_id)

    requeued, item = _with_store(_load(project_override or project), requeue)
    if not requeued:
        why = "no such queue item" if item is None else f"it is {item.status}"
        _fail(f"requeueing {item_id}: {why}; only broken or failed items can be requeued")
    click.echo(item_id)


T = TypeVar("T")


def _with_store(loaded: Project, fn: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    """Open the project's store, run `fn` with it, close it; store errors exit 1."""

    async def go() -> T:
        async with open_store(loaded.config.store, loaded.root) as store:
            return await fn(store)

    return _run_store_command(go)


def _print_list(rows: list[dict[str, Any]], as_json: bool,
                line: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        _print_json(rows)
    else:
        for row in rows:
            click.echo(line(row))


def _run_store_command(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return _loop.run(fn())
    except InterlinkError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
