"""Instants as people type them for `since` and `until`: an ISO-8601 time, Unix seconds, or a
duration ago (`30m`, `2h`, `7d`)."""

from __future__ import annotations

from datetime import UTC, datetime

from interlink.spec._base import parse_duration

__all__ = ["parse_instant"]


def parse_instant(text: str, now: float) -> float:
    """Unix seconds for `text`; a time without a zone is UTC. ValueError when it is none of
    the three forms."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text[:40]!r}: expected an ISO-8601 time "
                         "(2026-12-01T09:30Z), Unix seconds, or a duration ago (30m, 2h, 7d)"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
