"""Projects that notify a loopback receiver, and waiting for their notification items."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.projects import push_to, write_project

from interlink.notifications import NOTIFICATION_KIND
from interlink.spec import Project
from interlink.store import QueueItem, Store

__all__ = ["JUDGE", "SECRET", "delivered", "notify_config", "notifying_project"]

#: the connector's token: its upstream echoes it into an error message
SECRET = "s3cret-token-4242"

#: a response script that fails the step with the upstream's body as its message
JUDGE = """
def handle(data):
    data["response_code"] = 3
    data["message"] = data["response"]["body"]
    return data
"""


def notify_config(channels: dict[str, str], extra: str = "", *, name: str = "shop") -> str:
    """interlink.yaml with `channels` (name → the channel's YAML flow mapping) under
    `notify:`, short retries and `extra` lines of `notify:` (written at two spaces)."""
    lines = [f"name: {name}", "store: sqlite:///.interlink/test.db", "worker: {poll: 50ms}",
             "notify:", "  ui_url: http://ui.example", "  retry: {initial: 50ms, max: 200ms}",
             "  channels:"]
    lines += [f"    {key}: {value}" for key, value in channels.items()]
    lines += [f"  {line}" for line in extra.strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def notifying_project(root: Path, upstream_url: str, config: str, *,
                      flow_extra: str = "", files: dict[str, str] | None = None) -> Project:
    """A project whose flow `push` posts to the upstream's /orders with the header
    `X-Token: SECRET` (from the environment) and fails with the answer's body when the
    upstream refuses (`JUDGE`)."""
    base = push_to(upstream_url)
    base["connectors/wh.yaml"] = base["connectors/wh.yaml"].replace(
        "timeout: 5s", "timeout: 5s\n            headers: {X-Token: '{{ env.NOTIFY_TEST_TOKEN }}'}")
    base["flows/push.yaml"] = (
        "name: push\n" + flow_extra +
        "steps:\n  - {id: push, type: connector, connector: wh, endpoint: create_order,"
        " response_script: scripts/judge.py}\n")
    return write_project(root, {"interlink.yaml": config, **base, "scripts/judge.py": JUDGE,
                                **(files or {})})


async def delivered(store: Store, count: int, limit_s: float = 20) -> list[QueueItem]:
    """Wait until `count` notification items are `done`; return every notification item."""
    async with asyncio.timeout(limit_s):
        while True:
            items = await store.list_items(kind=NOTIFICATION_KIND, limit=1000)
            if sum(item.status == "done" for item in items) >= count:
                return items
            await asyncio.sleep(0.02)
