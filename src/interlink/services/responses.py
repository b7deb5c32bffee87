"""Sending an answer: the engine's default headers, default bodies, and the ASGI messages.

Default headers — `Server: interlink`, `Cache-Control: no-store`, `Content-Type`, `Date` —
are added unless the rule set a header of the same name (case-insensitive).
`Content-Length` is always the engine's: it is computed from the body actually sent, because
a wrong one would corrupt the connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import formatdate

import orjson
from starlette.types import Message, Send

__all__ = ["Response", "StatusSeen", "error_body", "send_response", "timing_header"]


_SERVER = (b"server", b"interlink")
_NO_STORE = (b"cache-control", b"no-store")
_DEFAULTS = frozenset({"server", "cache-control", "content-type", "date", "content-length"})


@dataclass(slots=True)
class Response:
    """An answer ready to send: status, extra headers (in order), body, its Content-Type."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def has_header(self, name: str) -> bool:
        """Whether a header of that name (any case) is set."""
        lower = name.lower()
        return any(n.lower() == lower for n, _ in self.headers)


def error_body(phase: str, message: str) -> bytes:
    """The small JSON body of an unconfigured error answer."""
    return orjson.dumps({"error": {"phase": phase, "message": message}})


def timing_header(timings: dict[str, float]) -> str:
    """A `Server-Timing` value: `security;dur=0.05, mapping;dur=0.1, …` (milliseconds)."""
    return ", ".join(f"{phase};dur={seconds * 1000:.3f}" for phase, seconds in timings.items())


class _DateCache:
    """The `Date` header value, formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


_DATE = _DateCache()


async def send_response(send: Send, response: Response) -> None:
    """Send `response` with the default headers it does not override."""
    raw: list[tuple[bytes, bytes]] = []
    given: set[str] = set()
    for name, value in response.headers:
        lower = name.lower()
        if lower == "content-length":
            continue
        given.add(lower)
        raw.append((lower.encode("latin-1"), value.encode("latin-1", "replace")))
    if given.isdisjoint(_DEFAULTS):
        raw.extend((_SERVER, _NO_STORE))
        raw.append((b"content-type", response.content_type.encode("latin-1")))
        raw.append((b"date", _DATE.get()))
    else:
        if "server" not in given:
            raw.append(_SERVER)
        if "cache-control" not in given:
            raw.append(_NO_STORE)
        if "content-type" not in given:
            raw.append((b"content-type", response.content_type.encode("latin-1")))
        if "date" not in given:
            raw.append((b"date", _DATE.get()))
    raw.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": response.body})


class StatusSeen:
    """An ASGI `send` passing messages on to `send`, keeping the status the answer started
    with (`status`: 0 while none did — the caller may have gone first)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)
