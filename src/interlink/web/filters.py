"""The runs list's filter, as the UI's query string carries it.

`since` and `until` take a time ago (`15m`, `1h`, `7d`) or a UTC date and time
(`2026-12-01`, `2026-12-01 10:00`, ISO 8601 with an offset); the store gets epoch seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from interlink.store import RunQuery

__all__ = ["STATUSES", "TRIGGERS", "RunFilter", "parse_time"]

#: what the status filter offers
STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "stopped", "partial")
#: what the trigger field suggests (services and nested flows add `service:NAME`, `flow:NAME`)
TRIGGERS = ("api", "webhook", "schedule", "retry", "manual")

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> float | None:
    """`text` as epoch seconds (None for empty); ValueError when it is neither a time ago
    nor a date."""
    text = text.strip()
    if not text:
        return None
    ago = _AGO.match(text.lower())
    if ago:
        return now - int(ago[1]) * _UNIT_S[ago[2]]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 15m, 1h, 7d or 2026-12-01 10:00") \
            from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the runs list is filtered by, as typed (times unparsed)."""

    flow: str = ""
    status: str = ""
    trigger: str = ""
    since: str = ""
    until: str = ""
    q: str = ""

    @classmethod
    def of(cls, args: Mapping[str, str]) -> RunFilter:
        """The filter a query string (or a posted form) names; unknown names are ignored."""
        return cls(**{f.name: args.get(f.name, "").strip()[:200] for f in fields(cls)})

    def query(self, now: float) -> RunQuery:
        """The store's query; ValueError for a time that does not parse."""
        return RunQuery(flow=self.flow or None, status=self.status or None,
                        trigger=self.trigger or None, since=parse_time(self.since, now),
                        until=parse_time(self.until, now), search=self.q or None)

    def params(self, **changes: str) -> dict[str, str]:
        """The filter as query parameters (empty ones left out), with `changes` applied."""
        changed = replace(self, **changes)
        return {f.name: getattr(changed, f.name) for f in fields(changed)
                if getattr(changed, f.name)}

    def url(self, path: str, *, cursor: str | None = None, **changes: str) -> str:
        """`path` with the filter (and `changes`, and a page's `cursor`) as its query
        string."""
        params = self.params(**changes)
        if cursor:
            params["cursor"] = cursor
        return f"{path}?{urlencode(params)}" if params else path

    @property
    def empty(self) -> bool:
        """Whether nothing is filtered."""
        return not self.params()
