"""The runs list's filter, as the UI's query string carries it.

`since` and `until` take what the runs API takes (`interlink.instants`): a time ago (`15m`,
`1h`, `7d`, `2w`), a UTC date and time (`2026-12-01`, `2026-12-01 10:00`, ISO 8601 with an
offset) or Unix seconds; the store gets epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlencode

from interlink.instants import parse_instant
from interlink.store import RUN_STATUSES, RunQuery

__all__ = ["STATUSES", "TRIGGERS", "RunFilter", "parse_time"]

#: what the status filter offers
STATUSES = RUN_STATUSES
#: what the trigger field suggests (services and nested flows add `service:NAME`, `flow:NAME`)
TRIGGERS = ("api", "webhook", "schedule", "retry", "manual")

def parse_time(text: str, now: float) -> float | None:
    """`text` as epoch seconds (None for empty), read as the runs API reads it
    (`interlink.instants`); ValueError when it is no time."""
    text = text.strip()
    return parse_instant(text, now) if text else None


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
        """The store's query; ValueError for a time that does not parse or a status there is
        not (the runs API answers both 400; "no runs match" would hide the typo)."""
        if self.status and self.status not in STATUSES:
            raise ValueError(f"no status {self.status!r}: one of {', '.join(STATUSES)}")
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
