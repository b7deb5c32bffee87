"""Instants as people type them for `since` and `until` (the runs API, the CLI, the UI): an
ISO-8601 time, Unix seconds, or a duration ago (`30m`, `2h`, `7d`, `2w`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from interlink.spec._base import parse_duration

__all__ = ["parse_instant"]

_WEEKS = re.compile(r"^(\d+)\s*w$")


def parse_instant(text: str, now: float) -> float:
    """Unix seconds for `text`; a time without a zone is UTC. ValueError when it is none of
    the three forms."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    weeks = _WEEKS.match(text.lower())
    if weeks:
        return now - int(weeks[1]) * 7 * 86400.0
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a time: expected an ISO-8601 time "
                         "(2026-12-01T09:30Z), Unix seconds, or a duration ago (30m, 2h, 7d, 2w)"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
