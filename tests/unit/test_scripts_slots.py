"""The pool's idle workers are handed out first come, first served."""

from __future__ import annotations

import asyncio

import pytest

from interlink.scripts._slots import Slots


async def test_a_returned_item_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    """give() hands the item to the first waiter; take_nowait() does not jump the queue."""
    slots = Slots(["w1"])
    assert slots.take_nowait() == "w1"
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give("w1")
    assert slots.take_nowait() is None  # a newcomer waits behind them
    assert await first == "w1"
    assert not second.done()
    slots.give("w1")
    assert await second == "w1"
    slots.give("w1")
    assert slots.take_nowait() == "w1"


async def test_a_waiter_that_gives_up_passes_its_item_on() -> None:
    """A waiter cancelled after an item was handed to it gives the item to the next one."""
    slots = Slots(["w1"])
    assert slots.take_nowait() == "w1"
    quitter = asyncio.create_task(slots.take())
    patient = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give("w1")  # handed to the quitter, which has not run yet
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert await patient == "w1"


async def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    """A waiter whose wait timed out is not handed the next item."""
    slots = Slots(["w1"])
    assert slots.take_nowait() == "w1"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slots.take(), 0.01)
    slots.give("w1")
    assert slots.take_nowait() == "w1"
