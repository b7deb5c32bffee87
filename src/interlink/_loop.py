"""Running the engine's coroutines: on uvloop where it is installed, else plain asyncio.

uvloop (with httptools parsing HTTP in uvicorn) cut the CPU per webhook-triggered run by about
a fifth in `bench/flows.py`; nothing in Interlink depends on which loop runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

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
