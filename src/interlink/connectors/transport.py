"""The wire-level pieces of an outbound call: URLs, request bodies, and the failure messages
of the calls made through aiohttp (logins, notifications; connector calls have their own in
`connectors.pool`)."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
import orjson
from yarl import URL

__all__ = [
    "EncodedBody",
    "describe_error",
    "encode_body",
    "error_kind",
    "format_seconds",
    "join_url",
]


@functools.lru_cache(maxsize=1024)
def join_url(base_url: str, path: str) -> URL:
    """`path` under `base_url` (`/api` + `/orders/1` → `/api/orders/1`); an absolute URL in
    `path` is used as is."""
    if path.startswith(("http://", "https://")):
        return URL(path)
    if not path:
        return URL(base_url)
    return URL(base_url.rstrip("/") + "/" + path.lstrip("/"))


class EncodedBody:
    """A request body as bytes, its content type, and its text for the attempt record."""

    __slots__ = ("content_type", "data", "text")

    def __init__(self, data: bytes | None, content_type: str | None, text: str | None) -> None:
        self.data = data
        self.content_type = content_type
        self.text = text


def encode_body(body: Any) -> EncodedBody:
    """None → no body; str → text; bytes → as is; anything else → JSON."""
    if body is None:
        return EncodedBody(None, None, None)
    if isinstance(body, str):
        return EncodedBody(body.encode(), "text/plain; charset=utf-8", body)
    if isinstance(body, bytes | bytearray):
        data = bytes(body)
        return EncodedBody(data, "application/octet-stream", data.decode("utf-8", "replace"))
    data = orjson.dumps(body, default=str)
    return EncodedBody(data, "application/json", data.decode())


def format_seconds(seconds: float) -> str:
    """`10.0` → `10s`, `0.25` → `250ms`."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def error_kind(exc: BaseException) -> str:
    """What kind of failure stopped a call, for response scripts (`error.type`): `timeout`,
    `dns`, `connect`, `disconnected`, `protocol` or `network`."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "protocol"
    return "network"


def describe_error(exc: BaseException, timeout: float) -> str:
    """A short, clear reason for a failed call: `timed out after 10s`, `connection refused
    (127.0.0.1:9000)`, `cannot resolve host …`."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {format_seconds(timeout)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused ({where})"
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"cannot connect to {where}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the response body was cut short or malformed: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed response: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
