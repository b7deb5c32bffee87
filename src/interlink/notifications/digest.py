"""Rate limiting: over `rate_limit.messages` per `rate_limit.per`, events go out as one digest.

Durable without a table of its own: an event waiting for the digest is still its queue item,
**leased** to this worker (the digest renews the leases while it holds them). When the channel
may send again, the digest goes out as one message and every item in it is completed in one
write; if it fails, every item is released to be retried with backoff; if the worker dies,
the leases expire and the items are claimed again. So an event is in a digest that was sent,
or still in the queue — never dropped. (At least once: a worker killed after the digest was
sent but before its items were completed sends those events again.)

The window is counted per worker process: two workers on one channel may each send
`messages` per window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from interlink.errors import LeaseLost, NotificationError
from interlink.ids import derived_id
from interlink.notifications.channels import Sender
from interlink.notifications.events import Event
from interlink.notifications.messages import digest_message
from interlink.store import Complete, QueueItem, Release, Store

__all__ = ["Digest", "RateGate"]

log = logging.getLogger("interlink.notifications")


class RateGate:
    """A sliding window: at most `messages` sends per `per` seconds."""

    def __init__(self, messages: int, per: float) -> None:
        self.messages = messages
        self.per = per
        self._sent: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.per:
            self._sent.popleft()

    def reserve(self, now: float) -> bool:
        """Take a send in the window now, if one is free."""
        self._prune(now)
        if len(self._sent) >= self.messages:
            return False
        self._sent.append(now)
        return True

    def free_at(self, now: float) -> float:
        """When the next send is free (now, if one is)."""
        self._prune(now)
        if len(self._sent) < self.messages:
            return now
        return self._sent[0] + self.per

    def take(self, now: float) -> None:
        """Count a send that goes out whatever the window says (a digest)."""
        self._sent.append(now)


@dataclass(frozen=True, slots=True)
class _Held:
    item: QueueItem
    owner: str
    event: Event


class Digest:
    """The events of one channel waiting for its next free send, as leased queue items."""

    def __init__(self, project: str, sender: Sender, gate: RateGate, store: Store, *,
                 lease_s: float, retry_delay: Callable[[int], float]) -> None:
        self.project = project
        self.sender = sender
        self.gate = gate
        self.store = store
        self.lease_s = lease_s
        self.retry_delay = retry_delay
        self._held: dict[str, _Held] = {}
        self._flush: asyncio.Task[None] | None = None

    @property
    def holding(self) -> bool:
        """Whether events wait for this digest (later events join them, in order)."""
        return bool(self._held)

    def hold(self, item: QueueItem, owner: str, event: Event) -> None:
        """Keep `item` (leased to `owner`) for the digest; it is sent when the window allows."""
        self._held[item.id] = _Held(item, owner, event)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._run(), name=f"interlink-digest-"
                                              f"{self.sender.name}")

    async def _run(self) -> None:
        while self._held:
            now = time.time()
            due = self.gate.free_at(now)
            # Renew the leases at a third of the lease while waiting for the window.
            await asyncio.sleep(max(0.0, min(due - now, self.lease_s / 3)))
            if time.time() < due:
                await self._renew()
                continue
            await self._send()

    async def _renew(self) -> None:
        by_owner: dict[str, list[str]] = {}
        for held in self._held.values():
            by_owner.setdefault(held.owner, []).append(held.item.id)
        for owner, ids in by_owner.items():
            try:
                kept = await self.store.extend_leases(owner, ids, self.lease_s)
            except Exception:
                log.exception("renewing the leases of held notifications failed")
                continue
            for lost in set(ids) - kept:  # another worker has it now
                self._held.pop(lost, None)

    async def _send(self) -> None:
        held = list(self._held.values())
        self._held.clear()
        events = sorted((h.event for h in held), key=lambda e: e.at)
        self.gate.take(time.time())
        # Derived from what it holds: the same events digested again get the same key.
        key = derived_id("d_", events[0].at, ",".join(sorted(e.id for e in events)))
        try:
            await self.sender.send(digest_message(key, self.project, events, self.gate.per))
        except NotificationError as exc:
            log.warning("%s (a digest of %d events; retried)", exc, len(held))
            reason = str(exc)
            await self._settle(held, lambda h: Release(
                h.item.id, h.owner, time.time() + self.retry_delay(h.item.attempts),
                error=reason))
            return
        log.info("notified %s: a digest of %d events", self.sender.name, len(held))
        await self._settle(held, lambda h: Complete(
            h.item.id, h.owner, result={"sent_at": time.time(), "digest": key}))

    async def _settle(self, held: list[_Held],
                      outcome: Callable[[_Held], Complete | Release]) -> None:
        try:
            await self.store.write(*(outcome(h) for h in held))
        except LeaseLost:  # one lease lapsed: settle the others one by one
            for h in held:
                with contextlib.suppress(LeaseLost):
                    await self.store.write(outcome(h))

    async def close(self) -> None:
        """Stop waiting; hand the held items back to the queue at once (the worker stops)."""
        if self._flush is not None:
            self._flush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush
        held = list(self._held.values())
        self._held.clear()
        if held:
            await self._settle(held, lambda h: Release(h.item.id, h.owner, time.time(),
                                                       count_attempt=False))
