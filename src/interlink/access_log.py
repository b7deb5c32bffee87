"""The access log of `interlink serve`: one line per request — method, path, status, ms.

Cheap by construction, since it runs on every request: the line is formatted here, once, and
written by a handler of its own (`interlink.access`, not propagated) with a `%(message)s`
formatter — no structlog processors and no redacting filter on the hot path. Nothing secret
can be in it: the query string keeps its names but never its values (`?key=***`), bodies and
headers are never read, and the path passes the engine's `Redactor` (a webhook path holding
a secret from the environment is masked too).

Lines are plain text (`2026-12-01T09:00:00.123Z [info     ] POST /orders 202 3.1ms
[interlink.access]`, the layout of the other log lines) or JSON objects (`--log-format json`,
the keys structlog's JSON lines have, plus `method`, `path`, `query`, `status` and `ms`).
`server.access_log: false` turns it off.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlink.redaction import MASK, Redactor

__all__ = ["AccessLog", "access_logger", "masked_query"]

LOGGER = "interlink.access"


def access_logger(stream: TextIO | None = None) -> logging.Logger:
    """The `interlink.access` logger, writing preformatted lines to `stream` (stderr)."""
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False  # the root handler's processors are what this module avoids
    logger.setLevel(logging.INFO)
    return logger


def masked_query(query: bytes) -> str:
    """A query string with every value masked: `a=1&b=2` → `a=***&b=***` (names kept)."""
    if not query:
        return ""
    names = (part.partition(b"=")[0].decode("latin-1") for part in query.split(b"&") if part)
    return "&".join(f"{name}={MASK}" for name in names)


class AccessLog:
    """`app` with one access log line per HTTP request, written when its answer ended."""

    def __init__(self, app: ASGIApp, redactor: Redactor, *, json: bool = False,
                 logger: logging.Logger | None = None) -> None:
        self.app = app
        self.redactor = redactor
        self.json = json
        self.logger = logger or logging.getLogger(LOGGER)
        #: requests answered (or abandoned) so far; the shutdown line tells it
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.requests += 1
            self._write(scope, status, (time.perf_counter() - started) * 1000)

    def _write(self, scope: Scope, status: int, ms: float) -> None:
        path = self.redactor.text(scope["path"])
        query = masked_query(scope["query_string"])
        target = f"{path}?{query}" if query else path
        shown = str(status) if status else "-"  # no answer: the client went away first
        when = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = f"{scope['method']} {target} {shown} {ms:.1f}ms"
        if self.json:
            line = orjson.dumps({
                "event": event, "method": scope["method"], "path": path, "query": query or None,
                "status": status or None, "ms": round(ms, 1), "level": "info",
                "logger": LOGGER, "timestamp": when}).decode()
        else:
            line = f"{when} [info     ] {event} [{LOGGER}]"
        self.logger.info(line)
