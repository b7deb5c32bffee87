"""The worker handler of `notification` items: deliver, retry with backoff, or digest.

An item names its channel and carries its event. Delivered, it is completed (kept `done`,
with `sent_at`); undelivered (a non-2xx answer, a timeout, an SMTP error), it is released to
be tried again after a backoff that grows to `notify.retry.max` — it is retried until it is
delivered, never dropped. A channel over its rate limit hands the item to its `Digest`.
An item whose channel is no longer configured is set aside `broken` (requeue it after
adding the channel back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from interlink.connectors.retry import RetryPolicy
from interlink.errors import NotificationError
from interlink.notifications.channels import Sender
from interlink.notifications.digest import Digest, RateGate
from interlink.notifications.events import Event
from interlink.notifications.messages import event_message
from interlink.spec.notify import NotifyConfig
from interlink.store import Complete, Fail, QueueItem, Release, Store

__all__ = ["NotificationHandler"]

log = logging.getLogger("interlink.notifications")


class NotificationHandler:
    """Delivers notification items to their channels (one `Digest` and window per channel)."""

    def __init__(self, project: str, config: NotifyConfig, senders: Mapping[str, Sender],
                 store: Store, *, lease_s: float = 30.0) -> None:
        self.store = store
        self.senders = dict(senders)
        spec = config.retry
        self.retry = RetryPolicy(initial=spec.initial, max=spec.max, multiplier=spec.multiplier,
                                 jitter="equal")
        self.gates = {name: RateGate(channel.rate_limit.messages, channel.rate_limit.per)
                      for name, channel in config.channels.items()}
        self.digests = {name: Digest(project, sender, self.gates[name], store, lease_s=lease_s,
                                     retry_delay=self.retry.delay)
                        for name, sender in self.senders.items()}

    async def __call__(self, item: QueueItem, owner: str) -> None:
        """Deliver the item's event to its channel (or hold it for the channel's digest)."""
        name = item.payload.get("channel", "")
        sender = self.senders.get(name)
        if sender is None:
            await self.store.write(Fail(item.id, owner, f"notification channel {name!r} is "
                                        "not configured", status="broken"))
            return
        event = Event.from_data(item.payload["event"])
        digest = self.digests[name]
        # Events already waiting for the digest go first: a later one joins them.
        if digest.holding or not self.gates[name].reserve(time.time()):
            digest.hold(item, owner, event)
            return
        try:
            await sender.send(event_message(event))
        except NotificationError as exc:
            delay = self.retry.delay(item.attempts)
            log.warning("%s (attempt %d; again in %.1fs)", exc, item.attempts, delay)
            await self.store.write(Release(item.id, owner, time.time() + delay,
                                           error=str(exc)))
            return
        await self.store.write(Complete(item.id, owner, result={"sent_at": time.time()}))

    async def close(self) -> None:
        """Hand the events held for digests back to the queue."""
        for digest in self.digests.values():
            await digest.close()
