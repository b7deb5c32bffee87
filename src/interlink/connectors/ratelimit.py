"""`rate_limit: {requests: N, per: 1s}`: requests over the limit wait, they never fail.

A sliding window rather than a token bucket: "at most N per second" then holds for *every*
window of one second, including the first, so an upstream that enforces its quota the same way
never sees a burst of N + bucket-refill requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most `requests` acquisitions in any window of `per` seconds; `acquire` waits."""

    def __init__(self, requests: int, per: float) -> None:
        if requests < 1 or per <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per > 0")
        self.requests = requests
        self.per = per
        self._sent: deque[float] = deque()
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
                if len(self._sent) < self.requests:
                    self._sent.append(now)
                    return now - start
                await asyncio.sleep(self._sent[0] + self.per - now)
