"""Serving an ASGI app the way `interlink serve` does, and talking to it over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.types import ASGIApp

from interlink.server import uvicorn_config
from interlink.spec.project import ServerLimits

__all__ = ["body_of", "chunked", "exchange", "post", "serving", "status_of"]


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, limits: ServerLimits) -> AsyncIterator[int]:
    """`app` served on a loopback port with `interlink serve`'s uvicorn settings."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", 0, limits))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def exchange(port: int, *pieces: bytes, pause: float = 0.0,
                   close: bool = False) -> bytes:
    """Send `pieces` (`pause` seconds apart) on a new connection; what came back until it closed.

    Reading runs while writing, so an answer the server sends before it cuts the connection
    is kept even when the cut resets the socket. `close` closes the connection after the last
    piece instead, reading nothing.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received: list[bytes] = []

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.append(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
    except ConnectionError:  # the server closed the connection: keep what it said
        pass
    try:
        if close:
            reading.cancel()
            return b""
        await asyncio.wait_for(reading, 5)
        return b"".join(received)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> object:
    """The JSON body of a raw HTTP answer (Content-Length framed)."""
    return orjson.loads(answer.partition(b"\r\n\r\n")[2])


def post(path: str, body: bytes, *, length: int | None = None, close: bool = True) -> bytes:
    """A POST with a Content-Length (`length`, default the body's); `Connection: close`."""
    declared = len(body) if length is None else length
    connection = "Connection: close\r\n" if close else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{connection}Content-Length: {declared}\r\n\r\n").encode() + body


def chunked(path: str) -> bytes:
    """The head of a chunked POST."""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
