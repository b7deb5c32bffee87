"""`interlink call SERVICE`: one request to a service, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from interlink import _loop
from interlink.cli._app import main
from interlink.cli._common import (
    fail,
    json_option,
    load,
    print_json,
    project_argument,
    read_source,
)
from interlink.engine import Engine
from interlink.errors import InterlinkError

__all__ = ["call"]


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

    loaded = load(project)
    spec = loaded.services.get(service)
    if spec is None:
        known = ", ".join(sorted(loaded.services)) or "none"
        fail(f"calling {service}: no service named {service!r} in {project} "
             f"(services: {known})")
    target = path or spec.path
    if "{" in target:
        raise click.UsageError(f"service {service} answers at {spec.path}: give --path "
                               "with its parameters filled in")
    header_pairs = _pairs(headers, ":", "--header")
    query_string = urlencode(_pairs(query, "=", "--query"))
    url = f"{target}?{query_string}" if query_string else target
    body = b""
    if body_source is not None:
        body = read_source(body_source, "--body")

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
        fail(str(exc))
    if as_json:
        merged_out: dict[str, str] = {}
        for name, value in result.raw_headers:
            merged_out[name] = f"{merged_out[name]}, {value}" if name in merged_out else value
        print_json({"status": result.status, "headers": merged_out, "body": result.text})
        return
    click.echo(f"HTTP {result.status}")
    for name, value in result.raw_headers:
        click.echo(f"{name}: {value}")
    click.echo("")
    click.echo(result.text)
