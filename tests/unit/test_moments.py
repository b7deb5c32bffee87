"""`--since` / `--until`: a duration ago or an ISO 8601 moment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from interlink.cli.moments import parse_moment

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("text", "ago"), [
    ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 2 * 86400), ("1w", 7 * 86400),
    ("1h30m", 5400), ("0.5h", 1800),
])
def test_durations_count_back_from_now(text: str, ago: float) -> None:
    """A duration means that long before now."""
    assert parse_moment(text, NOW) == NOW - ago


def test_iso_moments_are_utc_unless_they_say_otherwise() -> None:
    """A naive datetime or a date is UTC (every time Interlink prints is); offsets count."""
    base = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    assert parse_moment("2026-12-01T09:00:00Z", NOW) == base
    assert parse_moment("2026-12-01T09:00", NOW) == base
    assert parse_moment("2026-12-01T10:00:00+01:00", NOW) == base
    assert parse_moment("2026-12-01", NOW) == base - 9 * 3600


@pytest.mark.parametrize("text", ["yesterday", "5x", "1h 30m", "", "h"])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    """An unreadable moment names the two forms accepted."""
    with pytest.raises(ValueError, match="neither a duration"):
        parse_moment(text, NOW)
