"""Tests here run twice: on asyncio's event loop and on uvloop's. `interlink serve` runs
uvloop, whose transports are not asyncio's classes (a protocol that assumed they were passed
every asyncio test); the rest of the suite runs on asyncio's loop only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item,
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
