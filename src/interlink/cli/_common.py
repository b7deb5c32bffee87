"""What every command shares: loading the project, failing with a message, the store, options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from interlink import _loop
from interlink.errors import InterlinkError, ProjectError
from interlink.presence import live_workers
from interlink.spec import Project, load_project
from interlink.store import RUN_STATUSES, Store, open_store

__all__ = [
    "RUN_STATUSES",
    "ProjectFirstGroup",
    "fail",
    "json_option",
    "load",
    "print_json",
    "print_list",
    "project_argument",
    "project_option",
    "project_override_option",
    "run_store_command",
    "warn_without_workers",
    "with_store",
]

T = TypeVar("T")

#: what `runs retry`, `queue requeue` … print when no worker will pick their work up
NO_WORKER = ("warning: no worker is running: start `interlink worker` (or `interlink serve`) "
             "to run it")

project_argument = click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
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


class ProjectFirstGroup(click.Group):
    """A group whose first word may be the PROJECT folder instead of a subcommand.

    `interlink runs [PROJECT]` lists runs and `interlink runs show RUN_ID` shows one: a first
    word that is not a subcommand is taken as the project.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["--project", args[0], *args[1:]]
        return super().parse_args(ctx, args)


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def read_source(source: str, option: str) -> bytes:
    """The bytes of `option`'s FILE, or of standard input for `-`; a file that cannot be read
    is an `error:` line and exit 1, not a traceback."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        fail(f"{option} {source}: {exc.strerror or exc}")


def load(project: Path, *, warn: bool = False) -> Project:
    """Load a project, or print its errors (`FILE:LINE: message`) and exit 1.

    A folder without `interlink.yaml` is not a project: that is said without a line number
    (there is no file to point into). With `warn`, the project's warnings (`FILE:LINE:
    warning: message`) are printed on stderr.
    """
    if not (project / "interlink.yaml").is_file():
        where = project.resolve()
        if not project.is_dir():
            fail(f"no folder {where} (run `interlink init {project}` to make a project there)")
        fail(f"no interlink.yaml in {where} (run `interlink init`)")
    try:
        loaded = load_project(project)
    except ProjectError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if warn:
        for line in loaded.warnings:
            click.echo(line, err=True)
    return loaded


def print_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_list(rows: list[dict[str, Any]], as_json: bool, lines: Callable[[list[dict[str, Any]]],
               list[str]], *, empty: str) -> None:
    """Print `rows` as JSON, or as text lines; with no rows and no `--json`, say `empty` on
    stderr (stdout stays empty for pipes)."""
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(empty, err=True)
    else:
        for line in lines(rows):
            click.echo(line)


def run_store_command(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `fn()` to its end; engine and store errors exit 1 with their message."""
    try:
        return _loop.run(fn())
    except InterlinkError as exc:
        fail(str(exc))


def with_store(loaded: Project, fn: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    """Open the project's store, run `fn` with it, close it; store errors exit 1."""

    async def go() -> T:
        async with open_store(loaded.config.store, loaded.root) as store:
            return await fn(store)

    return run_store_command(go)


async def warn_without_workers(store: Store) -> None:
    """Say on stderr that no worker is running, if none is, to run what was just queued."""
    if not await live_workers(store):
        click.echo(NO_WORKER, err=True)
