"""`interlink queue`: list queue items; `queue requeue ID` revives a broken or failed one."""

from __future__ import annotations

from pathlib import Path

import click

from interlink.cli._app import main
from interlink.cli._common import (
    ProjectFirstGroup,
    fail,
    json_option,
    load,
    print_list,
    project_option,
    project_override_option,
    warn_without_workers,
    with_store,
)
from interlink.flows.report import format_items, item_json
from interlink.store import QueueItem, Requeue, Store

__all__ = ["queue", "queue_requeue"]


@main.group(cls=ProjectFirstGroup, invoke_without_command=True)
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
    found = with_store(load(project), lambda store: store.list_items(
        status=status, kind=kind, limit=limit))
    what = " ".join(f"{k} {v}" for k, v in (("status", status), ("kind", kind)) if v)
    print_list([item_json(i) for i in found], as_json, format_items,
               empty=f"no queue items{f' ({what})' if what else ''}")


@queue.command("requeue")
@click.argument("item_id")
@project_override_option
@click.pass_obj
def queue_requeue(project: Path, item_id: str, project_override: Path | None) -> None:
    """Make a broken or failed queue item ready again now, its attempts reset; print its id."""
    async def requeue(store: Store) -> tuple[bool, QueueItem | None]:
        (requeued,) = await store.write(Requeue(item_id))
        if requeued:
            await warn_without_workers(store)
        return bool(requeued), None if requeued else await store.get_item(item_id)

    requeued, item = with_store(load(project_override or project), requeue)
    if not requeued:
        why = "no such queue item" if item is None else f"it is {item.status}"
        fail(f"requeueing {item_id}: {why}; only broken or failed items can be requeued")
    click.echo(item_id)
