"""Request bodies as flow payloads: what a webhook or `POST /_interlink/flows/{name}/runs`
(or `interlink run --payload`) hands the run it starts.

A body is read by the services' reader (`services.body.read_body`: bounded, and a client that
goes away mid-body starts nothing) and parsed within `server.limits`: JSON when it is JSON,
otherwise text, `None` when empty — but a body whose `Content-Type` says JSON must be JSON (a
truncated or broken one is a 400, not a text payload sent on). A large body is parsed in a
worker thread.
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
           "says_json", "unreadable"]

_DEFAULT_LIMITS = ServerLimits()


def parse_payload(raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS,
                  content_type: str | None = None) -> Any:
    """A request body as a payload: parsed JSON when it is JSON, otherwise text (or None).

    JSON nested deeper than `limits.max_json_depth`, an integer past 64 bits, and a body that
    is not JSON although `content_type` says it is raise `MappingFailure`.
    """
    if not raw.strip():
        return None
    try:
        return json_value(raw, limits)
    except MappingFailure as exc:
        if exc.kind != "invalid_json" or says_json(content_type):
            raise
        return raw.decode("utf-8", errors="replace")


def says_json(content_type: str | None) -> bool:
    """`application/json`, or any `+json` type (`application/vnd.api+json`)."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def payload_of(raw: bytes, limits: ServerLimits, content_type: str | None = None) -> Any:
    """`parse_payload`, in a worker thread when the body is large."""
    if len(raw) > THREAD_PARSE_BYTES:
        return await asyncio.to_thread(parse_payload, raw, limits, content_type)
    return parse_payload(raw, limits, content_type)


async def read_payload(receive: Receive, headers: list[tuple[bytes, bytes]],
                       limits: ServerLimits, max_body: int | None = None) -> Any:
    """Read a body of at most `max_body` bytes (default `limits.max_body`) and parse it.

    Raises `BodyTooLarge`, `MappingFailure` (too deep, a bad Content-Length) and
    `ClientDisconnected` (the body ended early: nothing may act on it).
    """
    raw = await read_body(receive, content_length(headers),
                          limits.max_body if max_body is None else max_body)
    return await payload_of(raw, limits, _header(headers, b"content-type"))


def content_length(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The raw `Content-Length` of ASGI headers, if sent."""
    return _header(headers, b"content-length")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == name), None)


def unreadable(exc: MappingFailure) -> tuple[int, bytes]:
    """Status and body answering a body that could not be read or parsed: 413 or 400."""
    return 413 if isinstance(exc, BodyTooLarge) else 400, error_body("mapping", exc.message)


def output_of(bucket: list[Any] | None) -> Any:
    """A run's output as one value: its one payload unwrapped, else the list (`[]` for none),
    as a service's `result.payload` and a webhook's `respond` see it."""
    bucket = bucket or []
    # One payload in, one out: the usual case reads as a value, not a list.
    return bucket[0] if len(bucket) == 1 else bucket
