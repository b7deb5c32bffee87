"""Failure notifications: failed runs, broken queue items and failing connectors, told to a
webhook (Slack, Teams, JSON) or by email, durably (docs/notifications.md, decision 0010).

```
events.py    what happened → `notification` queue items, written with the event
handler.py   the worker handler of those items: deliver, retry with backoff, or digest
digest.py    a channel's rate limit and the digest of what goes over it
channels.py  the webhook and SMTP senders
messages.py  the text and the Slack / Teams / JSON bodies of a message
watch.py     the periodic failure-rate look of one worker (under a store lock)
```

`Notifications` puts them together for an engine.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from interlink.notifications.channels import EmailSender, Sender, WebhookSender, senders
from interlink.notifications.events import NOTIFICATION_KIND, Event, Notices
from interlink.notifications.handler import NotificationHandler
from interlink.notifications.messages import Message
from interlink.notifications.watch import FailureRateWatch
from interlink.redaction import Redactor
from interlink.spec import Project
from interlink.store import Store

__all__ = [
    "NOTIFICATION_KIND",
    "EmailSender",
    "Event",
    "FailureRateWatch",
    "Message",
    "Notices",
    "NotificationHandler",
    "Notifications",
    "Sender",
    "WebhookSender",
]


class Notifications:
    """A project's notifications: the events' items (`notices`), the senders, the queue
    handler and (when configured) the failure-rate watch."""

    def __init__(self, project: Project, store: Store, http: aiohttp.ClientSession,
                 redactor: Redactor, *, owner: str, lease_s: float = 30.0,
                 root: Path | None = None) -> None:
        config = project.config
        self.notices = Notices(config, redactor)
        self.senders: dict[str, Sender] = dict(
            senders(config.notify.channels, http, redactor, root or project.root))
        self.handler = NotificationHandler(config.name, config.notify, self.senders, store,
                                           lease_s=lease_s)
        alert = config.notify.connector_failure_rate
        self.watch = (None if alert is None else
                      FailureRateWatch(store, alert, self.notices, project.flows, owner))

    def channel(self, name: str) -> Sender | None:
        """The sender of the channel `name`, or None."""
        return self.senders.get(name)

    async def close(self) -> None:
        """Hand back what the digests hold (before the store closes)."""
        await self.handler.close()
