"""Worker presence: each running worker keeps a short-lived lock `worker:OWNER` in the store.

A command that queues work for the workers (`interlink runs retry`, `queue requeue`) asks
`live_workers` whether anyone will pick it up, and warns when nobody will: without it, a
retry queued with no worker running stayed `queued` forever without a word.

The lock is renewed every `BEAT_S` and expires `TTL_S` after the last renewal, so a worker
that was killed (no chance to let go) is taken for alive that long at most; one that stops
cleanly lets go at once. The store's `purge` deletes expired locks. See docs/decisions/0009.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from interlink.store import Store

__all__ = ["BEAT_S", "PREFIX", "TTL_S", "Presence", "live_workers"]

log = logging.getLogger("interlink.worker")

#: lock name prefix of worker presence
PREFIX = "worker:"
#: seconds a worker's presence lasts without a renewal
TTL_S = 15.0
#: seconds between renewals (a third of the TTL: one slow renewal does not let it lapse)
BEAT_S = TTL_S / 3


async def live_workers(store: Store) -> list[str]:
    """The owner names of the workers alive now, by their presence in `store`."""
    return await store.lock_owners(PREFIX)


class Presence:
    """The presence of one worker (`owner`) in `store`, while `run` runs."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner
        self.name = PREFIX + owner

    async def announce(self) -> None:
        """Take (or renew) the presence lock now."""
        await self.store.try_lock(self.name, self.owner, TTL_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Renew the presence until `stop` is set (or cancelled), then let it go."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), BEAT_S)
                if stop.is_set():
                    break
                try:
                    await self.announce()
                except Exception:
                    log.exception("renewing worker %s's presence failed; retrying", self.owner)
        finally:
            # Shielded: a cancelled worker still says it has gone (or its lock expires).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.unlock(self.name, self.owner))
