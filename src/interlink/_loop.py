"""Running the engine's coroutines: on uvloop where it is installed, else plain asyncio.

uvloop (with httptools parsing HTTP in uvicorn) cut the CPU per webhook-triggered run by about
a fifth in `bench/flows.py`; nothing in Interlink depends on which loop runs it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run", "settle_memory"]

#: a young-generation collection every this many net allocations (CPython: 700)
GC_YOUNG_THRESHOLD = 50_000

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # optional: Windows has none
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop (uvloop when available)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def settle_memory() -> None:
    """Tune the cyclic garbage collector for a long-running engine, once it has started.

    What start-up built (the project, compiled expressions, modules) lives as long as the
    process: frozen, the collector never walks it again. A run or a request makes thousands of
    short-lived objects and almost no cycles, so young collections are made rarer; measured in
    `bench/flows.py` (docs/performance.md), the default thresholds spent 7–10% of the CPU in
    collections that found nothing.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
