"""Run `interlink serve` and `interlink worker` as real processes in tests (to SIGKILL them)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from interlink.store import RunRecord, Store

__all__ = ["cli", "free_port", "interlink", "wait_all_ended", "wait_healthy", "wait_until"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def interlink(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `interlink ARGS` as a process (output to `log`); kill it when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "interlink.cli", *args],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def cli(*args: str, limit_s: float = 60) -> tuple[int, str, str]:
    """Run `interlink ARGS` to its end without blocking the event loop (a loopback upstream
    in the test's loop keeps answering it); exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlink.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the served project answers its health check."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert proc.poll() is None, "interlink serve exited"
            try:
                async with http.get(f"http://127.0.0.1:{port}/_interlink/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("interlink serve did not become healthy")


async def wait_until(what: str, check: Callable[[], object], limit_s: float = 30) -> None:
    """Poll `check()` every 10 ms until it is true."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_all_ended(store: Store, count: int, limit_s: float = 60) -> list[RunRecord]:
    """Poll until `count` runs have ended; return them."""
    deadline = time.monotonic() + limit_s
    while True:
        runs = await store.list_runs(limit=count * 2)
        ended = [r for r in runs if r.status in ("succeeded", "failed")]
        if len(ended) >= count or time.monotonic() > deadline:
            return ended
        await asyncio.sleep(0.2)
