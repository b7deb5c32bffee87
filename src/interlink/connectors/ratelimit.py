"""`rate_limit: {requests: N, per: 1s}`: requests over the limit wait, they never fail.

A sliding window rather than a token bucket: "at most N per second" then holds for *every*
window of one second, including the first, so an upstream that enforces its quota the same way
never sees a burst of N + bucket-refill requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most `requests` requests sent in any window of `per` seconds.

    `acquire` waits for a slot; the caller then says `sent` as the request goes (the window
    counts it from then) or `unused` if it does not go. A slot taken and not yet sent counts
    as in the window all the while: the attempt's save between the two (decision 0021)
    takes as long as the store does, and two sends must not come closer than the window
    because one save was slower than the other."""

    def __init__(self, requests: int, per: float) -> None:
        if requests < 1 or per <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per > 0")
        self.requests = requests
        self.per = per
        self._sent: deque[float] = deque()  # send times within the window, oldest first
        self._taken = 0  # slots acquired, their requests not sent (nor given up) yet
        self._moved = asyncio.Event()  # a taken slot was sent or given up
        # Waiters queue on the lock, so they are served in arrival order.
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a free slot and take it; returns the seconds waited."""
        start = time.monotonic()
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.per:
                    self._sent.popleft()
                if len(self._sent) + self._taken < self.requests:
                    self._taken += 1
                    return now - start
                # Until the oldest send leaves the window, or a taken slot is settled.
                self._moved.clear()
                wait = self._sent[0] + self.per - now if self._sent else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._moved.wait(), wait)

    def sent(self) -> None:
        """The request of a slot taken goes now."""
        self._taken -= 1
        self._sent.append(time.monotonic())
        self._moved.set()

    def unused(self) -> None:
        """The request of a slot taken does not go."""
        self._taken -= 1
        self._moved.set()
