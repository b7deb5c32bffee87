"""A run's values whole, as files: what a page cuts short links here.

`what` names the value: `input`, `output` (the run's last bucket), `variables`,
`step-<index>` (a step's output), `attempt-<n>-request` / `attempt-<n>-response` (the body of
the run's n-th attempt, counted from 0 as the page lists them). The file is the value made
readable (JSON indented, XML indented), as text.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from interlink.store import RunRecord, Store
from interlink.web.render import SECURITY_HEADERS, readable

__all__ = ["download"]

_STEP = re.compile(r"^step-(\d+)$")
_ATTEMPT = re.compile(r"^attempt-(\d+)-(request|response)$")


async def download(store: Store, run: RunRecord, what: str) -> Response | None:
    """The file `what` of `run`, or None when the run has no such value."""
    found, value = await _value(store, run, what)
    if not found:
        return None
    text, kind = readable(value)
    suffix = {"json": "json", "xml": "xml"}.get(kind, "txt")
    media = {"json": "application/json", "xml": "application/xml"}.get(kind, "text/plain")
    return Response(text, media_type=f"{media}; charset=utf-8", headers={
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="{run.id}-{what}.{suffix}"'})


async def _value(store: Store, run: RunRecord, what: str) -> tuple[bool, Any]:
    if what == "input":
        return True, run.input
    if what == "output":
        return True, run.bucket
    if what == "variables":
        return True, run.variables
    step = _STEP.match(what)
    if step:
        for record in await store.get_steps(run.id):
            if record.index == int(step[1]):
                return True, record.output
        return False, None
    attempt = _ATTEMPT.match(what)
    if attempt:
        attempts = await store.get_attempts(run.id)
        n = int(attempt[1])
        if n >= len(attempts):
            return False, None
        part = attempts[n].request if attempt[2] == "request" else attempts[n].response
        return True, (part or {}).get("body")
    return False, None
