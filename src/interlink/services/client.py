"""Calling an ASGI app in-process, without a server: for `interlink call` and for tests."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from interlink.services.app import ASGIApp

__all__ = ["CallResult", "call_app"]


@dataclass(frozen=True, slots=True)
class CallResult:
    """A response received in-process."""

    status: int
    #: header pairs as sent (lower-case names), repeated headers kept
    raw_headers: list[tuple[str, str]]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        """Headers by lower-case name (the last one wins when a name repeats)."""
        return dict(self.raw_headers)

    def header_list(self, name: str) -> list[str]:
        """Every value of a header."""
        return [v for n, v in self.raw_headers if n == name.lower()]

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


async def call_app(
    app: ASGIApp, method: str, url: str, *, headers: Mapping[str, str] | None = None,
    body: bytes = b"", chunk_size: int = 65536, content_length: bool = True,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> CallResult:
    """Send one HTTP request to `app` and collect its answer.

    The body is streamed in `chunk_size` pieces; `content_length=False` leaves the
    `Content-Length` header out (like a chunked upload). `client` is the caller's address
    (a loopback one unless given).
    """
    # A request target (`/path?query`), not a URL: `//x` or `//[` is a path here, where
    # urlsplit would take it for a host (and raise on the bracket).
    path, _, query = url.partition("#")[0].partition("?")
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in
                   (headers or {}).items()]
    if content_length and not any(k == b"content-length" for k, _ in raw_headers):
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method.upper(), "scheme": "http", "path": path or "/",
        "raw_path": (path or "/").encode(), "query_string": query.encode(),
        "root_path": "", "headers": raw_headers, "client": client,
        "server": ("127.0.0.1", 80),
    }
    chunks = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] or [b""]
    position = 0
    status = 0
    out_headers: list[tuple[str, str]] = []
    out_body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal position
        if position >= len(chunks):
            return {"type": "http.disconnect"}
        chunk = chunks[position]
        position += 1
        return {"type": "http.request", "body": chunk, "more_body": position < len(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.extend(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]
            )
        elif message["type"] == "http.response.body":
            out_body.append(message.get("body", b""))

    await app(scope, receive, send)
    return CallResult(status, out_headers, b"".join(out_body))
