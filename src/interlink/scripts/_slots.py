"""`Slots`: the pool's idle workers, handed out first come, first served.

`asyncio.Queue.get` lets a newcomer take an item that was just put back while an older waiter
has been woken but not yet run, so under load a call could wait again and again until its time
limit ran out. Here a returned item goes straight to the oldest waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = ["Slots"]

T = TypeVar("T")


class Slots(Generic[T]):
    """Idle items (worker processes) taken by callers in the order they asked."""

    def __init__(self, items: Iterable[T]) -> None:
        self._idle: deque[T] = deque(items)
        self._waiters: deque[asyncio.Future[T]] = deque()

    def take_nowait(self) -> T | None:
        """An idle item if one is free and nobody is waiting for one, else None."""
        if self._idle and not self._waiters:
            return self._idle.popleft()
        return None

    async def take(self) -> T:
        """An idle item, waiting behind earlier callers for one to be given back."""
        item = self.take_nowait()
        if item is not None:
            return item
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:  # cancelled or timed out
            if waiter.done() and not waiter.cancelled():
                # An item was handed over just as we gave up: pass it on.
                self.give(waiter.result())
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give(self, item: T) -> None:
        """Give an item back: to the oldest waiter, or to the idle ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._idle.append(item)
