"""The access log of `interlink serve`: one line per request — method, path, status, ms.

Cheap by construction, since it runs on every request: the line is formatted here and
written straight to the stream (stderr), the lines of a tenth of a second in one `write`,
bypassing the `logging` machinery, structlog's processors and the redacting filter — those
cost ~60 µs a record on this machine, a quarter of a whole request; the timestamp's text is
made once per second. Nothing secret can be in the line: the query string keeps its names
but never its values (`?key=***`), bodies and headers are never read, and the path passes
the engine's `Redactor` (a webhook path holding a secret from the environment is masked).

Lines are plain text (`2026-12-01T09:00:00.123456Z [info     ] POST /orders 202 3.1ms
[interlink.access]`, the layout of the other log lines) or JSON objects (`--log-format json`,
the keys structlog's JSON lines have, plus `method`, `path`, `query`, `status` and `ms`).
`server.access_log: false` turns it off.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.redaction import MASK, Redactor
from interlink.services.responses import StatusSeen

__all__ = ["AccessLog", "masked_query"]

LOGGER = "interlink.access"
#: seconds a line may wait to be written with the lines after it
FLUSH_S = 0.1
#: lines written at once at most
MAX_PENDING = 256


def masked_query(query: bytes) -> str:
    """A query string with every value masked: `a=1&b=2` → `a=***&b=***` (names kept)."""
    if not query:
        return ""
    names = (part.partition(b"=")[0].decode("latin-1") for part in query.split(b"&") if part)
    return "&".join(f"{name}={MASK}" for name in names)


class AccessLog:
    """`app` with one access log line per HTTP request, written when its answer ended."""

    def __init__(self, app: ASGIApp, redactor: Redactor, *, json: bool = False,
                 stream: TextIO | None = None) -> None:
        self.app = app
        self.redactor = redactor
        self.json = json
        self.stream = stream
        #: requests answered (or abandoned) so far; the shutdown line tells it
        self.requests = 0
        self._second = -1
        self._pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stamp = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = StatusSeen(send)
        try:
            await self.app(scope, receive, seen)
        finally:
            self.requests += 1
            self._write(scope, seen.status, (time.perf_counter() - started) * 1000)

    def _now(self) -> str:
        """The time as `2026-12-01T09:00:00.123456Z` (to the microsecond, as structlog writes
        the other lines); the seconds' text is made once a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((now - second) * 1_000_000):06d}Z"

    def _write(self, scope: Scope, status: int, ms: float) -> None:
        path = self.redactor.text(scope["path"])
        query = masked_query(scope["query_string"])
        target = f"{path}?{query}" if query else path
        shown = str(status) if status else "-"  # no answer: the client went away first
        event = f"{scope['method']} {target} {shown} {ms:.1f}ms"
        if self.json:
            line = orjson.dumps({
                "event": event, "method": scope["method"], "path": path, "query": query or None,
                "status": status or None, "ms": round(ms, 1), "level": "info",
                "logger": LOGGER, "timestamp": self._now()}).decode()
        else:
            line = f"{self._now()} [info     ] {event} [{LOGGER}]"
        # Written FLUSH_S after the first line waiting (or at MAX_PENDING lines): a syscall
        # and a loop callback per request would double what the line costs.
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_later(FLUSH_S, self.flush)
        elif len(pending) >= MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Write the lines waiting (at shutdown too, so none is lost)."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        # Looked up per write: tests and embedders may swap sys.stderr.
        (self.stream or sys.stderr).write("\n".join(lines) + "\n")
