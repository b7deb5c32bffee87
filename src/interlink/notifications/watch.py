"""The failure-rate watch: one worker at a time tells when a connector keeps failing.

Nothing is added to an attempt's path. Every `every`, the worker holding the store lock
`notify:connector-failure-rate` reads the attempts recorded since its last look (a walk of
the attempts' primary key: `Store.attempts_after`), keeps those of the last `window` in
memory, and works out per connector `failures / attempts`. A connector at or over
`threshold` with at least `min_attempts` attempts is told once; it is told again only after
it has been under the threshold. The alert's id is derived from the connector and the window
number, so two workers taking the lock over one another in a window write one alert.

An attempt is counted when its outcome is recorded (one still `unknown` is looked at again),
and it belongs to the connector its step names in the project's current flows. Failed means a
decision to retry or to fail (response codes 1, 2, 3); continue and re-authenticate are not.
A worker that takes the watch over starts from the last 10,000 attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from interlink.flows.decision import ResponseCode
from interlink.notifications.events import Notices
from interlink.spec._references import walk_steps
from interlink.spec.flow import FlowSpec
from interlink.spec.notify import FailureRateAlert
from interlink.store import UNKNOWN_DECISION, AttemptOutcome, Store

__all__ = ["LOCK", "FailureRateWatch", "connectors_by_step"]

log = logging.getLogger("interlink.notifications")

#: the store lock whose holder watches
LOCK = "notify:connector-failure-rate"
#: attempts read per look (and, taking the watch over, how far back it starts)
PAGE = 10_000
#: an attempt `unknown` for longer than this was cut short by a crash: not waited for
_SETTLE_S = 600.0
_NOT_FAILED = frozenset({ResponseCode.CONTINUE, ResponseCode.REAUTHENTICATE})


def connectors_by_step(flows: Mapping[str, FlowSpec]) -> dict[tuple[str, str], str]:
    """(flow, step id) → the connector that step calls, for every step naming a connector."""
    found: dict[tuple[str, str], str] = {}
    for flow in flows.values():
        for _, step in walk_steps(flow.steps):
            for ref in step.refs():
                if ref.kind == "connector":
                    found[(flow.name, step.id)] = ref.name
    return found


@dataclass(frozen=True, slots=True)
class _Seen:
    at: float
    connector: str
    failed: bool
    attempt: AttemptOutcome


class FailureRateWatch:
    """Looks at connectors' failure rates every `alert.every` while this worker holds `LOCK`."""

    def __init__(self, store: Store, alert: FailureRateAlert, notices: Notices,
                 flows: Mapping[str, FlowSpec], owner: str) -> None:
        self.store = store
        self.alert = alert
        self.notices = notices
        self.owner = owner
        self.steps = connectors_by_step(flows)
        self._seq: int | None = None
        self._window: deque[_Seen] = deque()
        #: attempts counted whose row may be read again (after an `unknown` one)
        self._counted: set[int] = set()
        self._alerted: set[str] = set()
        #: one look at a time (two workers of one engine share this watch)
        self._looking = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Look every `every` until `stop` is set."""
        ttl = self.alert.every * 3
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.alert.every)
                break
            except TimeoutError:
                pass
            try:
                if await self.store.try_lock(LOCK, self.owner, ttl):
                    await self.check(time.time())
                else:  # another worker watches; if this one takes over, it starts afresh
                    self._seq = None
                    self._window.clear()
                    self._counted.clear()
            except Exception:
                log.exception("looking at connector failure rates failed; looking again later")
        with contextlib.suppress(Exception):
            await self.store.unlock(LOCK, self.owner)

    async def check(self, now: float) -> None:
        """Read the attempts since the last look and alert on connectors over the threshold."""
        async with self._looking:
            await self._look(now)

    async def _look(self, now: float) -> None:
        while True:
            rows = await self.store.attempts_after(self._seq, limit=PAGE)
            # A full page read to its end may have more after it; one stopped at an attempt
            # still in flight is read again next time.
            if not self._take(rows, now) or len(rows) < PAGE:
                break
        start = now - self.alert.window
        while self._window and self._window[0].at < start:
            self._window.popleft()
        await self._judge(now)

    def _take(self, rows: list[AttemptOutcome], now: float) -> bool:
        """Count `rows`; whether the next look starts after the last of them."""
        waiting: int | None = None
        for row in rows:
            connector = self.steps.get((row.flow, row.step_id))
            if connector is None or row.seq in self._counted:
                continue
            if row.decision == UNKNOWN_DECISION:
                if row.created_at > now - _SETTLE_S and waiting is None:
                    waiting = row.seq  # look at it (and what follows) again next time
                continue
            self._counted.add(row.seq)
            failed = row.code not in _NOT_FAILED
            self._window.append(_Seen(row.created_at, connector, failed, row))
        if rows:
            self._seq = rows[-1].seq if waiting is None else waiting - 1
        if self._seq is not None:
            self._counted = {seq for seq in self._counted if seq > self._seq}
        return waiting is None

    async def _judge(self, now: float) -> None:
        totals: dict[str, list[int]] = {}
        last_failure: dict[str, AttemptOutcome] = {}
        for seen in self._window:
            counts = totals.setdefault(seen.connector, [0, 0])
            counts[0] += 1
            if seen.failed:
                counts[1] += 1
                last_failure[seen.connector] = seen.attempt
        bucket = int(now // self.alert.window)
        for connector in set(self._alerted) - set(totals):
            self._alerted.discard(connector)
        for connector, (attempts, failures) in totals.items():
            over = (attempts >= self.alert.min_attempts
                    and failures / attempts >= self.alert.threshold)
            if not over:
                self._alerted.discard(connector)
            elif connector not in self._alerted:
                self._alerted.add(connector)
                log.warning("connector %s: %d of %d attempts failed in the last %gs",
                            connector, failures, attempts, self.alert.window)
                ops = self.notices.failure_rate(connector, attempts, failures,
                                                self.alert.window,
                                                last_failure.get(connector), bucket)
                if ops:
                    await self.store.write(*ops)
