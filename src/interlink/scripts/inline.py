"""`isolation: inline`: run a trusted script in the engine's own process, in a thread.

Same call contract as the process pool: the data is copied in as JSON, the result goes through
the same validation and codec, and a call that takes longer than its time limit fails the step.
What inline mode *cannot* do: stop the script. Python has no way to kill a thread, so a timed
out call is abandoned and keeps running (and using CPU and memory) until it returns by itself;
there is no memory limit; and a script that crashes the interpreter (a C extension segfault,
`os._exit`) takes the engine with it. That is why `process` is the default. Inline is not
faster (measured here: ~0.2 ms per call through a worker process, ~0.3 ms inline, which starts a
thread per call); it only saves the worker processes' memory and start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from interlink.scripts._loading import ScriptModules
from interlink.scripts._protocol import (
    HEADER,
    decode_function_value,
    decode_outcome,
    encode_function_value,
    encode_handle_result,
)
from interlink.scripts.outcome import FunctionValue, ScriptCallError, ScriptOutcome

__all__ = ["InlineRunner"]

T = TypeVar("T")


def _copy_in(script: str, data: dict[str, Any]) -> Any:
    # A JSON round trip: the same values as process mode are accepted, and the script works
    # on its own copy instead of the engine's objects.
    try:
        return orjson.loads(orjson.dumps(data))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ScriptCallError.because(
            script, "input", f"cannot pass the data to the script: {exc}"
        ) from None


def _split(encoded: bytes) -> tuple[int, bytes]:
    _, tag = HEADER.unpack_from(encoded)
    return tag, encoded[HEADER.size :]


class InlineRunner:
    """Runs scripts in threads of the engine's process; modules cached per process."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._modules = ScriptModules()

    async def run(self, script: str, data: dict[str, Any], time_limit: float) -> ScriptOutcome:
        """Call `handle(data)` of `script` (project-relative) and validate what it returns."""
        path = self._root / script
        copy = _copy_in(script, data)

        def call() -> bytes:
            return encode_handle_result(script, self._modules.call_handle(script, path, copy))

        _, body = _split(await self._in_thread(script, call, time_limit))
        return decode_outcome(script, body)

    async def call_function(
        self, script: str, name: str, context: dict[str, Any], time_limit: float
    ) -> FunctionValue:
        """Call function `name` of `script` with the context and validate its value."""
        path = self._root / script
        label = f"{script}:{name}"
        copy = _copy_in(label, context)

        def call() -> bytes:
            value = self._modules.call_function(label, path, name, copy)
            return encode_function_value(label, value)

        tag, body = _split(await self._in_thread(label, call, time_limit))
        return decode_function_value(label, tag, body)

    async def _in_thread(self, script: str, fn: Callable[[], T], time_limit: float) -> T:
        # A daemon thread of our own rather than asyncio.to_thread: a runaway script would
        # occupy a default-executor thread forever, and both loop shutdown and interpreter
        # exit join those threads, so one endless loop would hang the engine's shutdown.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(outcome: Callable[[], object]) -> None:
            if not future.done():
                outcome()

        def target() -> None:
            outcome: Callable[[], object]
            try:
                outcome = functools.partial(future.set_result, fn())
            except MemoryError:  # while encoding; the script's own are already described
                memory = ScriptCallError.because(script, "memory", "ran out of memory")
                outcome = functools.partial(future.set_exception, memory)
            except BaseException as exc:  # anything, so that the future is always settled
                outcome = functools.partial(future.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, outcome)

        threading.Thread(target=target, name=f"interlink inline {script}", daemon=True).start()
        try:
            async with asyncio.timeout(time_limit):
                return await future
        except TimeoutError:
            raise ScriptCallError.because(
                script,
                "timeout",
                f"timed out after {time_limit:g}s (inline: its thread could not be stopped "
                "and runs on until the script returns)",
            ) from None
