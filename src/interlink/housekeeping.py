"""Housekeeping: the store's tables stay the size of the work, not of its history.

Some rows outlive their use: a finished queue item that was kept (a service request's answer, a
notification sent), a replay-proof signature's nonce once its timestamp is out of the window, an
expired session, lock, dedupe key or cached value. A minute after start, then every `EVERY_S`,
one worker — whichever holds the `housekeeping` lock; any other takes over when it stops
renewing it — deletes the finished items older than `worker.keep_finished` and everything
expired more than `EXPIRED_MARGIN_S` ago (`Store.purge`), a batch at a time. Without it those
tables only grew: a webhook with HMAC replay protection left a nonce per call for ever.

Runs are the run log, kept longer: a run that succeeded or was stopped goes with its steps,
attempts and log lines once older than `worker.keep_runs` (30 days), one that failed only after
`worker.keep_failed_runs` (by default never: it waits for an operator). A run a queue item
still works on or waits for, or the retry of a run still kept, stays (`Store.purge_runs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from interlink.store import Store

__all__ = ["EVERY_S", "EXPIRED_MARGIN_S", "FIRST_S", "LOCK", "Housekeeping"]

log = logging.getLogger("interlink.worker")

#: seconds between two purges (one worker does them)
EVERY_S = 600.0
#: seconds from start to the first purge (a process restarted more often than EVERY_S
#: still purges)
FIRST_S = 60.0
#: seconds an expired row is kept past its expiry: a replay-proof request's nonce outlives its
#: timestamp window even for a process whose clock is this much behind the purger's
EXPIRED_MARGIN_S = 300.0
#: the lock naming the worker that purges
LOCK = "housekeeping"


#: the run statuses each retention setting covers
_ENDED_WELL = ("succeeded", "stopped")
_ENDED_BADLY = ("failed", "partial")


class Housekeeping:
    """Purges `store` every `every_s` while `run` runs, when this worker (`owner`) holds the
    lock; finished queue items are kept `keep_finished_s`, runs that succeeded or were
    stopped `keep_runs_s`, runs that failed `keep_failed_runs_s` (None: for ever)."""

    def __init__(self, store: Store, owner: str, keep_finished_s: float,
                 every_s: float | None = None, *, keep_runs_s: float | None = None,
                 keep_failed_runs_s: float | None = None) -> None:
        self.store = store
        self.owner = owner
        self.keep_finished_s = keep_finished_s
        self.keep_runs_s = keep_runs_s
        self.keep_failed_runs_s = keep_failed_runs_s
        self.every_s = EVERY_S if every_s is None else every_s

    async def run(self, stop: asyncio.Event) -> None:
        """Purge after `FIRST_S`, then every `every_s`, until `stop` is set; then let go of
        the lock, so another worker takes over at its next period."""
        wait = min(FIRST_S, self.every_s)
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except TimeoutError:
                    pass
                await self.once()
                wait = self.every_s
        finally:
            with contextlib.suppress(Exception):
                await self.store.unlock(LOCK, self.owner)

    async def once(self) -> int | None:
        """Purge now if no other worker does; the queue items deleted (None: another worker
        holds the lock, or the store failed — logged, tried again next time)."""
        try:
            # Held a little longer than the period, so its holder keeps it from one purge
            # to the next.
            if not await self.store.try_lock(LOCK, self.owner, self.every_s * 1.5):
                return None
            now = time.time()
            deleted = await self.store.purge(before=now - self.keep_finished_s,
                                             expired=now - EXPIRED_MARGIN_S)
            runs = 0
            for keep, statuses in ((self.keep_runs_s, _ENDED_WELL),
                                   (self.keep_failed_runs_s, _ENDED_BADLY)):
                if keep is not None:
                    runs += await self.store.purge_runs(before=now - keep, statuses=statuses)
        except Exception:
            log.exception("housekeeping: purging the store failed; trying again in %gs",
                          self.every_s)
            return None
        if deleted or runs:
            log.info("housekeeping: deleted %s and %s", _count(deleted, "finished queue item"),
                     _count(runs, "run"))
        return deleted


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"
