"""The `interlink` command. The only place that calls `asyncio.run`."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from interlink import __version__
from interlink.errors import InterlinkError, ProjectError
from interlink.spec import Project, load_project
from interlink.spec.schema import json_schemas

F = TypeVar("F", bound=Callable[..., Any])

project_argument = click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)


def _load(project: Path) -> Project:
    """Load a project, or print its errors (`FILE:LINE: message`) and exit 1."""
    try:
        return load_project(project)
    except ProjectError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


def _fail(message: str) -> None:
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
    """Validate a project; errors are printed as FILE:LINE: message (exit 1)."""
    loaded = _load(project)
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
def serve(project: Path, host: str | None, port: int | None) -> None:
    """Serve the project: services, webhooks, the API and a worker, in one process."""
    from interlink.server import serve as run_server

    loaded = _load(project)
    try:
        run_server(loaded, host=host, port=port, with_worker=True)
    except InterlinkError as exc:
        _fail(str(exc))


@main.command()
@project_argument
def worker(project: Path) -> None:
    """Run a worker only: claims queued runs and requests from the project's store."""
    from interlink.server import run_worker

    loaded = _load(project)
    try:
        run_worker(loaded)
    except InterlinkError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
