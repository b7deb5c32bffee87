"""The connector's rate limit: a slot counts from when its request goes, and until then."""

from __future__ import annotations

import asyncio

import pytest

from interlink.connectors.ratelimit import RateLimiter


async def test_a_slot_taken_and_not_yet_sent_keeps_the_next_one_waiting() -> None:
    """1 per 50 ms: while the first request's slot is taken (its attempt being saved), the
    second waits however long that lasts; once sent, the window runs from the send."""
    limiter = RateLimiter(1, 0.05)
    await limiter.acquire()
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.2)  # four windows: a slot counted from `acquire` would be free
    assert not second.done()
    limiter.sent()
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await second
    assert loop.time() - sent_at >= 0.045  # a window after the send, not after the acquire


async def test_a_slot_given_up_frees_it_at_once() -> None:
    """A request that does not go (its save refused) leaves its slot to the next."""
    limiter = RateLimiter(1, 30)
    await limiter.acquire()
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    assert not second.done()
    limiter.unused()
    assert await asyncio.wait_for(second, 1) >= 0


def test_a_limit_needs_a_request_and_a_window() -> None:
    with pytest.raises(ValueError, match="requests >= 1"):
        RateLimiter(0, 1)
