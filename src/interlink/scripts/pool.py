"""`ScriptPool`: runs user scripts in isolated worker processes (or inline, when asked).

```python
async with ScriptPool(project.root, project.config.scripts) as scripts:
    outcome = await scripts.run("scripts/check.py", data)            # -> ScriptOutcome
    value = await scripts.call_function("scripts/x.py", "name", ctx)  # -> str, bytes, dict…
```

The pool holds `processes` worker slots. A slot's process starts on the first call that needs
it; calls run concurrently up to the pool size and further calls wait for a free slot, first
come, first served. The wait counts in the call's time limit: a call still waiting when its
limit is up fails (`timed out after 2s waiting for a free script process (all 2 busy)`), and a
call that waited and then ran reports the wait in `ScriptOutcome.waited` and, from a second
on, in the `interlink.scripts` log. A call that times out, is cancelled, exhausts memory or
kills its process has that process killed; the slot starts a fresh one for its next call, so
one bad script never takes the pool down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from interlink.scripts._loading import HANDLE
from interlink.scripts._process import WorkerProcess, format_seconds
from interlink.scripts._protocol import decode_function_value, decode_outcome, encode_call
from interlink.scripts._slots import Slots
from interlink.scripts.inline import InlineRunner
from interlink.scripts.outcome import FunctionValue, ScriptCallError, ScriptOutcome

if TYPE_CHECKING:
    from interlink.spec import Project
    from interlink.spec.project import ScriptsConfig

__all__ = ["Isolation", "ScriptPool", "parse_function_ref"]

Isolation: TypeAlias = Literal["process", "inline"]
"""Where a script runs: an isolated worker process (default) or the engine's process."""

log = logging.getLogger("interlink.scripts")

#: waits for a free worker at least this long (seconds) are logged
_LOGGED_WAIT = 1.0


def parse_function_ref(ref: str) -> tuple[str, str]:
    """`"scripts/x.py:name"` → `("scripts/x.py", "name")`."""
    path, sep, name = ref.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise ValueError(f"bad function reference {ref!r}: expected scripts/x.py:name")
    return path, name


class ScriptPool:
    """A pool of script worker processes plus an inline runner, for one project.

    `root` is the project folder; scripts are named relative to it (`scripts/x.py`), and that
    name is what every failure reason shows.
    """

    def __init__(self, root: Path | str, config: ScriptsConfig | None = None) -> None:
        self._root = Path(root)
        if config is None:
            # Imported here: worker processes import this package, and must not pay for
            # loading pydantic and the whole spec package at every start.
            from interlink.spec.project import ScriptsConfig

            config = ScriptsConfig.model_validate({})
        self._config = config
        self._inline = InlineRunner(self._root)
        self._workers: list[WorkerProcess] = []
        self._idle: Slots[WorkerProcess] | None = None
        self._closed = False

    @classmethod
    def for_project(cls, project: Project) -> ScriptPool:
        """The pool configured by the project's `scripts:` settings."""
        return cls(project.root, project.config.scripts)

    @property
    def size(self) -> int:
        """How many worker processes the pool runs at most."""
        return self._config.processes

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running now (for diagnostics and tests)."""
        return [w.pid for w in self._workers if w.pid is not None]

    async def run(
        self,
        script: str,
        data: dict[str, Any],
        *,
        time_limit: float | None = None,
        isolation: Isolation = "process",
    ) -> ScriptOutcome:
        """Call `handle(data)` of `script` and return its checked outcome.

        `time_limit` (seconds) overrides the project's `scripts.timeout`: pass a step's own
        `timeout` here. It covers the wait for a free worker process and the call; a process
        call over its limit is killed. Raises `ScriptCallError` (a `ScriptError`) with a
        reason naming the script.
        """
        limit = self._time_limit(time_limit)
        if isolation == "inline":
            return await self._inline.run(script, data, limit)
        _, body, waited = await self._call(
            script, encode_call(script, self._root / script, HANDLE, data), limit
        )
        outcome = decode_outcome(script, body)
        return dataclasses.replace(outcome, waited=waited) if waited else outcome

    async def call_function(
        self,
        script: str,
        name: str,
        context: dict[str, Any],
        *,
        time_limit: float | None = None,
        isolation: Isolation = "process",
    ) -> FunctionValue:
        """Call function `name` of `script` with `context` (a service's `from: function`).

        `time_limit` as in `run`. Returns str, bytes, int, float, bool, None, a list or a
        dict; anything else, or a failure, raises `ScriptCallError` naming `script:name`.
        """
        limit = self._time_limit(time_limit)
        if isolation == "inline":
            return await self._inline.call_function(script, name, context, limit)
        label = f"{script}:{name}"
        request = encode_call(label, self._root / script, name, context)
        tag, body, _ = await self._call(label, request, limit)
        return decode_function_value(label, tag, body)

    async def close(self) -> None:
        """Stop every worker process; calls made afterwards fail. Safe to call twice."""
        self._closed = True
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop() for w in workers))

    async def __aenter__(self) -> ScriptPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _time_limit(self, time_limit: float | None) -> float:
        return self._config.timeout if time_limit is None else time_limit

    def _slots(self) -> Slots[WorkerProcess]:
        # Created on first use, like the processes, so that a pool costs nothing until used.
        if self._idle is None:
            self._workers = [WorkerProcess(self._config.memory)
                             for _ in range(self._config.processes)]
            self._idle = Slots(self._workers)
        return self._idle

    async def _take(
        self, script: str, slots: Slots[WorkerProcess], time_limit: float
    ) -> tuple[WorkerProcess, float]:
        """A free worker and the seconds waited for it (0 if one was free); within the limit."""
        worker = slots.take_nowait()
        if worker is not None:
            return worker, 0.0
        started = time.monotonic()
        try:
            async with asyncio.timeout(time_limit):
                worker = await slots.take()
        except TimeoutError:
            raise ScriptCallError.because(
                script,
                "timeout",
                f"timed out after {format_seconds(time_limit)} waiting for a free script "
                f"process (all {self.size} busy)",
            ) from None
        waited = time.monotonic() - started
        if waited >= _LOGGED_WAIT:
            log.info("%s waited %.1fs for a free script process (all %d busy)",
                     script, waited, self.size)
        return worker, waited

    async def _call(
        self, script: str, request: bytes, time_limit: float
    ) -> tuple[int, bytes, float]:
        if self._closed:
            raise ScriptCallError.because(script, "unavailable", "the script pool is closed")
        slots = self._slots()
        worker, waited = await self._take(script, slots, time_limit)
        try:
            if self._closed:
                raise ScriptCallError.because(script, "unavailable", "the script pool is closed")
            if not worker.alive:
                try:
                    await worker.start()
                except (OSError, RuntimeError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    raise ScriptCallError.because(
                        script, "unavailable", f"could not start a script process: {exc!r}"
                    ) from None
            tag, body = await worker.call(script, request, time_limit, waited=waited)
            return tag, body, waited
        finally:
            slots.give(worker)
