"""Build real project folders in tests: write the files, load them with the real loader."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

from interlink.engine import Engine
from interlink.spec import Project, load_project

__all__ = ["push_to", "queued_orders", "running_engine", "write_project"]


def write_project(root: Path, files: dict[str, str], *, name: str = "test",
                  store: str | None = None) -> Project:
    """Write `files` (path → text, dedented) under `root`, add interlink.yaml, load it."""
    root.mkdir(parents=True, exist_ok=True)
    config = f"name: {name}\nstore: {store or 'sqlite:///.interlink/test.db'}\n"
    files = {"interlink.yaml": config, **files}
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_project(root)


def push_to(url: str, *, retry: str = "{max_attempts: 1}") -> dict[str, str]:
    """Files of a connector `wh` to `url` and a flow `push` posting its input to `/orders`."""
    return {
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {url}
            timeout: 5s
            retry: {retry}
            endpoints:
              create_order: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": """
            name: push
            steps:
              - {id: push, type: connector, connector: wh, endpoint: create_order}
            """,
    }


def queued_orders(processor: str) -> str:
    """A service whose failed requests are queued (`queue_when`) under `processor`."""
    return f"""
        name: orders
        path: /orders
        activity: {{flow: push}}
        request_processor: {processor}
        responses:
          - queue_when: "error is not none"
            status: 202
            body: {{from: json, value: {{queued: "{{{{ queue_item_id }}}}"}}}}
          - on: default
            status: 200
            body: {{from: context, key: result.payload}}
        """


@contextlib.asynccontextmanager
async def running_engine(project: Project, *, store_url: str | None = None,
                         workers: int = 1) -> AsyncIterator[Engine]:
    """An open engine with `workers` workers running until the block ends."""
    async with Engine(project, store_url=store_url) as engine:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(engine.worker().run(stop)) for _ in range(workers)]
        try:
            yield engine
        finally:
            stop.set()
            await asyncio.gather(*tasks)
