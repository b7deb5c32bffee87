"""The worker: claims queue items, runs them, keeps their leases alive, survives crashes.

Each queue item `kind` has a handler. A handler finishes its item itself, by writing `Complete`,
`Release` or `Fail` with the worker's owner name in the same `Store.write()` as its own state,
so an item's outcome and the state it produced commit together or not at all.

Crash recovery needs no code here: a worker that dies stops renewing its leases, the leases
expire, and any other worker claims the items again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from interlink.errors import Conflict, LeaseLost, StoreError, StoreUnavailable
from interlink.ids import new_id
from interlink.presence import Presence
from interlink.store import Enqueue, Fail, QueueItem, Release, Store

__all__ = ["BrokenNotices", "Handler", "Worker", "worker_name"]

log = logging.getLogger("interlink.worker")

#: how long an item whose handler crashed waits before it is tried again
CRASH_BACKOFF_S = 5.0
#: claims after which an item whose handler keeps crashing is marked broken
MAX_CRASHES = 5
#: longest wait between claims while the store cannot be reached (the wait doubles from
#: `poll_s`, at least 0.1 s, up to this)
MAX_CLAIM_BACKOFF_S = 5.0
#: seconds the tasks beside the claim loop get to end by themselves once `stop` is set
BESIDE_STOP_S = 5.0
#: at the longest wait, a failed claim is logged once in this many (once a minute)
CLAIM_LOG_EVERY = 12


class Handler(Protocol):
    """Runs one claimed queue item and records its outcome (with `owner`) in the store."""

    async def __call__(self, item: QueueItem, owner: str) -> None: ...


class BrokenNotices(Protocol):
    """The notification items to write with an item's `broken` mark (`interlink.notifications`)."""

    def item_broken(self, item: QueueItem, error: str) -> list[Enqueue]: ...


def worker_name() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Worker:
    """Claims items of the kinds it has handlers for and runs up to `concurrency` at once."""

    def __init__(
        self,
        store: Store,
        handlers: Mapping[str, Handler],
        *,
        owner: str | None = None,
        concurrency: int = 16,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        notices: BrokenNotices | None = None,
        tasks: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.store = store
        self.notices = notices
        #: run beside the claim loop until it stops (the failure-rate watch)
        self.tasks = list(tasks)
        self.handlers = dict(handlers)
        self.owner = owner or worker_name()
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._running: dict[str, asyncio.Task[None]] = {}
        #: items this process runs beside the worker, under the same owner (a service's run
        #: executed at once: `FlowRunner.run_now`); shared with the flow runner
        self.held_beside: set[str] = set()
        #: slots promised to items being written leased to this worker (`reserve`)
        self._reserved = 0
        #: whether the claim loop waits for work: its last claim found fewer ready items than
        #: it had slots for (set only while it waits, so a run started here never overtakes
        #: an item a claim would have taken)
        self._parked = False
        self._accepting = False  # between its start and `stop`
        self._settled = asyncio.Event()  # set while nothing is reserved
        self._slot_free = asyncio.Event()
        #: set once the worker has started claiming (health checks read it)
        self.started = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """Told to stop: it claims nothing more and finishes what it holds (health says so)."""
        return self.started.is_set() and not self._accepting

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run items until `stop` is set, then wait for the items in flight."""
        heartbeat = asyncio.create_task(self._renew_leases(), name="interlink-lease-renewal")
        # Present before claiming: a command that queued work sees somebody will take it.
        presence = Presence(self.store, self.owner)
        try:
            await presence.announce()
        except Exception:
            log.exception("announcing worker %s's presence failed", self.owner)
        present = asyncio.create_task(presence.run(stop), name="interlink-worker-presence")
        beside = [asyncio.create_task(task(stop)) for task in self.tasks]
        self.started.set()
        self._accepting = True
        backoff, failures = 0.0, 0
        try:
            while not stop.is_set():
                free = self.concurrency - len(self._running) - self._reserved
                if free <= 0:
                    self._slot_free.clear()
                    await _first(self._slot_free.wait(), stop.wait())
                    continue
                try:
                    items = await self.store.claim(
                        self.owner, limit=free, lease_s=self.lease_s, kinds=list(self.handlers)
                    )
                except StoreError as exc:  # the store is away (restarting, network): wait
                    failures += 1
                    backoff = self._claim_failed(exc, backoff, failures)
                    await _first(asyncio.sleep(backoff), stop.wait())
                    continue
                if failures:
                    log.info("worker %s: claiming queue items works again", self.owner)
                    backoff, failures = 0.0, 0
                for item in items:
                    # Ours already: its lease lapsed while renewals failed (the store slow or
                    # away) and this claim took it back. It runs on, now with a fresh lease;
                    # starting it again would send its calls twice from this one process (the
                    # owner is the same, so the store's fences would let both through).
                    if item.id not in self._running and item.id not in self.held_beside:
                        self._start(item)
                if len(items) < free:
                    self._parked = True
                    try:
                        await _first(self.store.wait_for_work(self.poll_s), stop.wait())
                    finally:
                        self._parked = False
        finally:
            self._accepting = False
            held = len(self._running) + self._reserved
            if held and stop.is_set():
                log.info("worker %s stopping: finishing the %s it holds (%s renewed until "
                         "%s)", self.owner, "1 item" if held == 1 else f"{held} items",
                         *(("its lease is", "it ends") if held == 1 else
                           ("their leases are", "they end")))
            if self._reserved:  # items being written leased to us: ours to run
                await self._settled.wait()
            if self._running:
                await asyncio.gather(*self._running.values(), return_exceptions=True)
            if beside and stop.is_set():  # they end on `stop` (housekeeping lets go of its lock)
                await asyncio.wait(beside, timeout=BESIDE_STOP_S)
            for task in (heartbeat, *beside):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not stop.is_set():  # else it is letting go of its lock: let it finish
                present.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await present

    def _claim_failed(self, exc: StoreError, backoff: float, failures: int) -> float:
        """Log a failed claim while the wait grows, then every `CLAIM_LOG_EVERY`th failure
        (an outage is a few lines, not one per poll, and a long one is not silent); the wait
        before the next one."""
        longer = min(max(backoff * 2, self.poll_s, 0.1), MAX_CLAIM_BACKOFF_S)
        if longer != backoff or failures % CLAIM_LOG_EVERY == 0:
            log.warning("worker %s: claiming queue items failed %d time%s (%s); trying again "
                        "in %.1fs", self.owner, failures, "" if failures == 1 else "s", exc,
                        longer)
        return longer

    def reserve(self) -> bool:
        """Promise a slot to an item about to be written leased to this worker (`adopt` it
        once written, `unreserve` if the write failed): only while a slot is free and the
        claim loop, having found nothing more to claim, waits for work — so new work does not
        overtake queued work (but for an item come due since, until the next poll)."""
        if not self._accepting or not self._parked or \
                len(self._running) + self._reserved >= self.concurrency:
            return False
        self._reserved += 1
        self._settled.clear()
        return True

    def unreserve(self) -> None:
        """The item `reserve` was for was not written."""
        self._settle()
        self._slot_free.set()

    def adopt(self, item: QueueItem) -> None:
        """Run `item`, committed leased to this worker, as if it had been claimed (no claim,
        no read: the caller has it). If this process dies, its lease runs out and any worker
        claims it."""
        self._settle()
        self._start(item)

    def _settle(self) -> None:
        self._reserved -= 1
        if not self._reserved:
            self._settled.set()

    def _start(self, item: QueueItem) -> None:
        task = asyncio.create_task(self._handle(item), name=f"interlink-item-{item.id}")
        self._running[item.id] = task

    async def _handle(self, item: QueueItem) -> None:
        try:
            await self.handlers[item.kind](item, self.owner)
        except LeaseLost:
            log.warning("queue item %s%s: lease lost; another worker has it and redoes what "
                        "was done here since the last write; nothing more is sent from here",
                        item.id, _of_run(item))
        except Conflict as exc:
            log.warning("queue item %s: %s; another process has it", item.id, exc)
        except StoreUnavailable as exc:
            # The store, not the item, failed: try it again later, never counted as a crash.
            log.warning("queue item %s (%s): the store is unavailable (%s); trying again in "
                        "%.0fs", item.id, item.kind, exc, CRASH_BACKOFF_S)
            await self._record(item, [Release(item.id, self.owner, time.time() + CRASH_BACKOFF_S,
                                              error=f"the store was unavailable: {exc}",
                                              count_attempt=False)])
        except Exception as exc:
            log.exception("queue item %s (%s): handler crashed", item.id, item.kind)
            error = f"handler crashed: {type(exc).__name__}: {exc}"
            # An item that keeps crashing its handler is set aside (broken, requeueable)
            # rather than retried forever.
            await self._record(item, (
                [Fail(item.id, self.owner, error, status="broken"),
                 *(self.notices.item_broken(item, error) if self.notices else [])]
                if item.attempts >= MAX_CRASHES
                else [Release(item.id, self.owner, time.time() + CRASH_BACKOFF_S, error=error)]
            ))
        finally:
            del self._running[item.id]
            self._slot_free.set()

    async def _record(self, item: QueueItem, outcome: list[Release | Fail | Enqueue]) -> None:
        """Write what became of an item whose handler did not finish."""
        try:
            await self.store.write(*outcome)
        except LeaseLost:
            pass
        except StoreError as exc:  # the store is away: the lease runs out instead
            log.warning("queue item %s: recording its outcome failed (%s); it is claimed "
                        "again when its lease expires", item.id, exc)

    async def _renew_leases(self) -> None:
        # Renew at a third of the lease so one slow renewal does not let a lease lapse. Until
        # cancelled, once the items in hand have ended: a worker told to stop still holds
        # them while it finishes them (else another worker takes them over and sends again).
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if self._running:
                try:
                    await self.store.extend_leases(self.owner, list(self._running), self.lease_s)
                except Exception:
                    log.exception("renewing leases failed; retrying")


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of `aws` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _of_run(item: QueueItem) -> str:
    """` (run r_…)` for an item that runs a run, so its log line names it."""
    payload = item.payload
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    return f" (run {run_id})" if isinstance(run_id, str) else ""
