"""The script worker process: `python -m interlink.scripts._worker MEMORY_MB PARENT_PID`.

It is a fresh interpreter (spawn semantics, see `_process.py`), applies its memory limit,
says READY, then answers one call frame at a time on its stdin/stdout until stdin closes.
Scripts' own `print()` output goes to stderr, so it can never corrupt the protocol.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import orjson

from interlink.scripts._loading import HANDLE, ScriptModules
from interlink.scripts._protocol import (
    CALL,
    HEADER,
    READY,
    encode_error,
    encode_function_value,
    encode_handle_result,
    frame,
)
from interlink.scripts.outcome import ScriptCallError

__all__ = ["main"]


def _limit_memory(megabytes: int) -> None:
    try:
        import resource
    except ImportError:  # not on this platform (Windows): no limit to set
        return
    wanted = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    # soft == hard, so a script cannot raise its own limit back up
    resource.setrlimit(resource.RLIMIT_AS, (wanted, wanted))


def _die_with_parent(parent: int) -> None:
    # A script stuck in a loop never reads stdin again, so it would not notice the engine
    # dying; on Linux ask the kernel to kill us when the parent goes away.
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _serve(requests: BinaryIO, replies: BinaryIO, memory_mb: int) -> None:
    modules = ScriptModules(memory_note=f" (limit {memory_mb} MB)")
    replies.write(frame(READY))
    replies.flush()
    while True:
        header = _read_exactly(requests, HEADER.size)
        if header is None:
            return
        size, tag = HEADER.unpack(header)
        body = _read_exactly(requests, size)
        if body is None or tag != CALL:
            return
        call = orjson.loads(body)
        script: str = call["script"]
        path = Path(call["path"])
        name: str = call["name"]
        try:
            if name == HANDLE:
                reply = encode_handle_result(
                    script, modules.call_handle(script, path, call["data"])
                )
            else:
                reply = encode_function_value(
                    script, modules.call_function(script, path, name, call["data"])
                )
        except ScriptCallError as exc:
            reply = encode_error(exc)
        except MemoryError:  # while encoding a huge result
            reply = encode_error(
                ScriptCallError.because(
                    script, "memory", f"ran out of memory (limit {memory_mb} MB)"
                )
            )
        del call, body
        replies.write(reply)
        replies.flush()


def main() -> None:
    """Run the worker loop (the process's entry point)."""
    memory_mb, parent = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    # Ctrl-C in a terminal reaches the whole process group; the engine decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep private copies of the protocol pipes, then point fds 0 and 1 elsewhere so that a
    # script reading stdin or printing cannot touch the protocol.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _limit_memory(memory_mb)
    _serve(requests, replies, memory_mb)


if __name__ == "__main__":
    main()
