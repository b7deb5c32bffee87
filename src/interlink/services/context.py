"""The request context: what a service request builds up, phase by phase (Pega's clipboard).

Expressions, templates, functions and the activity all see the same plain dict:

| key | holds |
|---|---|
| `request` | `method`, `path`, `path_params`, `query`, `headers` (lower-case names), |
|  | `body` (parsed) and `raw` (the body as text) |
| `page` | what `request.map` wrote |
| `result` | the activity's outcome: `status`, `payload`, `run_id` (None without an activity) |
| `error` | `phase`, `type`, `message` (caller-safe), `detail` — or None |
| `queue_item_id` | the id of the queued request, once queued |
| `session` | the stateful package's session data (a dict), or None when stateless |
| `service` | `name` of the service answering |
| `timings` | seconds spent per phase: `security`, `mapping`, `activity`, `response` |
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

__all__ = ["decode_headers", "decode_query", "new_context"]


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs → a dict with lower-case names; repeated headers joined by `, `."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # RFC 9110 §5.3: repeated fields combine into one comma-separated list.
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def decode_query(query_string: bytes) -> dict[str, str]:
    """A query string → a dict; when a name repeats, the last value wins."""
    if not query_string:
        return {}
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


def new_context(
    service: str,
    method: str,
    path: str,
    path_params: dict[str, str],
    query: dict[str, str],
    headers: dict[str, str],
) -> dict[str, Any]:
    """A fresh context for one request, before any phase ran."""
    return {
        "request": {
            "method": method,
            "path": path,
            "path_params": path_params,
            "query": query,
            "headers": headers,
            "body": None,
            "raw": "",
        },
        "page": {},
        "result": None,
        "error": None,
        "queue_item_id": None,
        "session": None,
        "service": {"name": service},
        "timings": {},
    }
