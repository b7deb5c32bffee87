"""One script worker process seen from the engine: start, call with a time limit, stop.

Workers are fresh interpreters started with `asyncio.create_subprocess_exec` (fork + exec of
`python -m interlink.scripts._worker`): the *spawn* start method in multiprocessing's terms.
We never `fork()` the engine without `exec`: the engine is an asyncio process with threads
(the default executor, the child watcher, database drivers), and a forked child inherits
their locks in whatever state they were in (a lock held by another thread stays held forever),
the event loop's selector and sockets (upstream connections, the listening socket), the store's
open SQLite/PostgreSQL handles and every secret in memory. A fresh interpreter inherits none
of that, and talking to it over its stdin/stdout keeps the engine fully async (no thread
parked on a blocking pipe read).

Each worker leads its own session and process group (`start_new_session`), and every kill —
timeout, crash, cancel, out of memory, close — signals the whole group: processes a script
started (`subprocess.Popen("sleep 100")`) die with its worker instead of living on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from interlink.scripts._protocol import ERROR, HEADER, READY, decode_error
from interlink.scripts.outcome import ScriptCallError

__all__ = ["WorkerProcess", "format_seconds"]

#: a worker that does not say READY within this long is considered broken
_START_TIMEOUT = 30.0
#: on close, how long a worker gets to exit after its stdin closes before it is killed
_STOP_GRACE = 2.0


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "the script process stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " — out of memory?" if name == "SIGKILL" else ""
        return f"the script process died (killed by {name}{hint})"
    return f"the script process exited with code {returncode}"


def format_seconds(seconds: float) -> str:
    """A time limit as users wrote it: `2s`, `0.5s`."""
    return f"{seconds:g}s"


class WorkerProcess:
    """A script worker process, started on demand, killed when a call goes wrong."""

    def __init__(self, memory_mb: int) -> None:
        self._memory_mb = memory_mb
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def alive(self) -> bool:
        """True when a started process is still running."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """The worker's process id, when it runs."""
        return self._proc.pid if self.alive and self._proc is not None else None

    async def start(self) -> None:
        """Start the process and wait until it has applied its limits."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # don't put the working directory first on sys.path
            "-m",
            "interlink.scripts._worker",
            str(self._memory_mb),
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # its own process group, so that a kill reaches what the script started
            start_new_session=True,
        )
        self._proc = proc
        try:
            tag, _ = await asyncio.wait_for(self._read_frame(), _START_TIMEOUT)
        except BaseException:
            await self.kill()
            raise
        if tag != READY:
            await self.kill()
            raise RuntimeError(f"unexpected first frame {tag!r}")

    async def call(
        self, script: str, request: bytes, time_limit: float, *, waited: float = 0.0
    ) -> tuple[int, bytes]:
        """Send one call frame and return the reply's tag and body.

        `waited` is how long the call already waited for this worker: it counts in
        `time_limit`. A failure reply raises its `ScriptCallError`. On a timeout, a dead
        process or a cancelled call the process is killed (its state is unknown: it may still
        be running the script or hold half a reply) and the pool starts a new one for the next
        call.
        """
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        try:
            async with asyncio.timeout(time_limit - waited):
                proc.stdin.write(request)
                await proc.stdin.drain()
                tag, body = await self._read_frame()
        except TimeoutError:
            await self.kill()
            queued = f" ({waited:.1f}s of it waiting for a free script process)" if waited else ""
            raise ScriptCallError.because(
                script, "timeout", f"timed out after {format_seconds(time_limit)}{queued}"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError):
            # The pipe closed: give the process a moment to be reaped, so the reason
            # shows how it really ended rather than our own SIGKILL.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), _STOP_GRACE)
            await self.kill()
            raise ScriptCallError.because(
                script, "crashed", _describe_exit(proc.returncode)
            ) from None
        except BaseException:  # cancelled: the reply would be read by the next call
            await self.kill()
            raise
        if tag == ERROR:
            error = decode_error(script, body)
            if error.kind == "memory":
                # The allocation failed cleanly, but the heap may be fragmented or a
                # library left half-initialised: start the next call on a fresh process.
                await self.kill()
            raise error
        return tag, body

    async def kill(self) -> None:
        """Kill the process and every process in its group at once, and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Even when the worker has exited: the group lives on while a child of the script
        # does, and the kernel does not reuse a process group's id while it has members.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        """Ask the process to exit (close its stdin), killing it if it does not."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _STOP_GRACE)
        await self.kill()

    async def _read_frame(self) -> tuple[int, bytes]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        header = await stdout.readexactly(HEADER.size)
        size, tag = HEADER.unpack(header)
        return tag, await stdout.readexactly(size)
