"""Commands on a project as a whole: `init`, `check`, `schema`, `serve`, `worker`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

import click

from interlink.cli._app import main
from interlink.cli._common import fail, load, project_argument
from interlink.errors import InterlinkError
from interlink.spec.project import MAX_SERVER_WORKERS
from interlink.spec.schema import json_schemas

__all__ = ["check", "init", "schema", "serve", "worker"]

log_format_option = click.option(
    "--log-format", type=click.Choice(["plain", "json"]),
    default=lambda: "json" if os.environ.get("INTERLINK_LOG_FORMAT") == "json" else "plain",
    show_default="plain, or json with INTERLINK_LOG_FORMAT=json",
    help="log lines as readable text or as JSON lines (one object a line)",
)


def command_name() -> str:
    """How the user can call `interlink` from here: `interlink` when it is on PATH, else the
    path of the one running (a virtualenv's `.venv/bin/interlink`)."""
    here = Path(sys.executable).parent / "interlink"
    found = shutil.which("interlink")
    if found is not None or not here.exists():
        return "interlink"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="project name (default: the folder's name)")
def init(directory: Path, name: str | None) -> None:
    """Scaffold a working project in DIRECTORY."""
    if directory.exists() and any(directory.iterdir()):
        fail(f"creating a project in {directory}: the folder is not empty")
    project_name = name or directory.resolve().name
    scaffold = resources.files("interlink") / "scaffold"
    with resources.as_file(scaffold) as source:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    config = directory / "interlink.yaml"
    config.write_text(config.read_text().replace("__NAME__", project_name))
    cmd = command_name()
    click.echo(f"created project {project_name!r} in {directory}")
    click.echo("next:")
    click.echo(f"  {cmd} check {directory}")
    click.echo(f"  echo '{{\"name\": \"Ada\"}}' | {cmd} run greet {directory} --payload -")
    click.echo(f"  {cmd} serve {directory}")
    if cmd != "interlink":
        bin_dir = Path(cmd).parent
        click.echo(f"(`interlink` is not on your PATH: run `. {bin_dir}/activate` to put it "
                   f"there, or call it as {cmd})")


@main.command()
@project_argument
def check(project: Path) -> None:
    """Validate a project; errors are printed as FILE:LINE: message (exit 1), warnings as
    FILE:LINE: warning: message (exit 0)."""
    loaded = load(project, warn=True)
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
@click.option("--workers", type=click.IntRange(1, MAX_SERVER_WORKERS), metavar="N",
              help="server processes sharing the port, each with its worker and scheduler "
              "(default: server.workers, 1; more needs a PostgreSQL store)")
@log_format_option
def serve(project: Path, host: str | None, port: int | None, no_worker: bool,
          workers: int | None, log_format: str) -> None:
    """Serve the project: services, webhooks, the API and a worker, in one process (or in
    N with `--workers N`, on PostgreSQL).

    Logs one line per request (method, path, status, milliseconds; query values masked,
    bodies never), unless `server.access_log: false`. Ctrl-C (or SIGTERM) stops gracefully;
    a second Ctrl-C exits at once.
    """
    loaded = load(project, warn=True)
    count = loaded.config.server.workers if workers is None else workers
    try:
        if count == 1:
            from interlink.server import serve as run_server

            run_server(loaded, host=host, port=port, with_worker=not no_worker,
                       log_format=log_format)
            return
        from interlink.server_processes import serve_processes

        serve_processes(loaded, count, host=host, port=port, with_worker=not no_worker,
                        log_format=log_format,
                        source="server.workers:" if workers is None else "--workers")
    except InterlinkError as exc:
        fail(str(exc))


def _host_port(ctx: click.Context, param: click.Parameter,
               value: str | None) -> tuple[str, int] | None:
    """`--listen`'s `[HOST:]PORT` as (host, port); IPv6 hosts in brackets (`[::1]:9100`)."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not [HOST:]PORT (a port is 0 to 65535)")
    return host, int(port)


@main.command()
@project_argument
@click.option("--listen", metavar="[HOST:]PORT", callback=_host_port,
              help="also serve the engine's endpoints here (health, /metrics, runs; "
              "behind admin.token as on `serve`); HOST defaults to 127.0.0.1")
@log_format_option
def worker(project: Path, listen: tuple[str, int] | None, log_format: str) -> None:
    """Run a worker only: claims queued runs and requests from the project's store.

    Ctrl-C (or SIGTERM) stops claiming and finishes the items in hand; a second Ctrl-C exits
    at once, and any worker takes those items over once their leases run out.
    """
    from interlink.server import run_worker

    loaded = load(project, warn=True)
    try:
        run_worker(loaded, log_format=log_format, listen=listen)
    except InterlinkError as exc:
        fail(str(exc))
