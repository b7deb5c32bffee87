"""Request bodies as flow payloads: what a webhook or `POST /_interlink/flows/{name}/runs`
(or `interlink run --payload`) hands the run it starts.

A body is read by the services' reader (`services.body.read_body`: bounded, and a client that
goes away mid-body starts nothing) and parsed within `server.limits`: JSON when it is JSON,
otherwise text, `None` when empty. A large body is parsed in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive

from interlink.services.body import THREAD_PARSE_BYTES, json_value, read_body
from interlink.services.failures import BodyTooLarge, MappingFailure
from interlink.services.responses import error_body
from interlink.spec.project import ServerLimits

__all__ = ["content_length", "output_of", "parse_payload", "payload_of", "read_payload",
           "unreadable"]

_DEFAULT_LIMITS = ServerLimits()


def parse_payload(raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS) -> Any:
    """A request body as a payload: parsed JSON when it is JSON, otherwise text (or None).

    JSON nested deeper than `limits.max_json_depth` raises `MappingFailure`.
    """
    if not raw.strip():
        return None
    try:
        return json_value(raw, limits)
    except MappingFailure as exc:
        if exc.kind != "invalid_json":
            raise
        return raw.decode("utf-8", errors="replace")


async def payload_of(raw: bytes, limits: ServerLimits) -> Any:
    """`parse_payload`, in a worker thread when the body is large."""
    if len(raw) > THREAD_PARSE_BYTES:
        return await asyncio.to_thread(parse_payload, raw, limits)
    return parse_payload(raw, limits)


async def read_payload(receive: Receive, headers: list[tuple[bytes, bytes]],
                       limits: ServerLimits, max_body: int | None = None) -> Any:
    """Read a body of at most `max_body` bytes (default `limits.max_body`) and parse it.

    Raises `BodyTooLarge`, `MappingFailure` (too deep, a bad Content-Length) and
    `ClientDisconnected` (the body ended early: nothing may act on it).
    """
    raw = await read_body(receive, content_length(headers),
                          limits.max_body if max_body is None else max_body)
    return await payload_of(raw, limits)


def content_length(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The raw `Content-Length` of ASGI headers, if sent."""
    return next((v.decode("latin-1") for k, v in headers if k == b"content-length"), None)


def unreadable(exc: MappingFailure) -> tuple[int, bytes]:
    """Status and body answering a body that could not be read or parsed: 413 or 400."""
    return 413 if isinstance(exc, BodyTooLarge) else 400, error_body("mapping", exc.message)


def output_of(bucket: list[Any] | None) -> Any:
    """A run's output as one value: its one payload unwrapped, else the list (`[]` for none),
    as a service's `result.payload` and a webhook's `respond` see it."""
    bucket = bucket or []
    # One payload in, one out: the usual case reads as a value, not a list.
    return bucket[0] if len(bucket) == 1 else bucket
