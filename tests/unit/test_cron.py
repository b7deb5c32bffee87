"""Cron expressions: parsing, errors, and the next fire time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from interlink.cron import Cron, CronError


def at(text: str) -> datetime:
    """A UTC time from `YYYY-MM-DD HH:MM`."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-11-23 10:00", "2026-11-23 10:01"),
        ("*/15 * * * *", "2026-11-23 10:07", "2026-11-23 10:15"),
        ("0 2 * * *", "2026-11-23 10:00", "2026-11-24 02:00"),
        ("30 9 * * 1-5", "2026-11-27 10:00", "2026-11-30 09:30"),  # Friday → Monday
        ("0 0 1 */3 *", "2026-11-23 10:00", "2027-01-01 00:00"),
        ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),  # the next leap day
        ("0 12 13 * 5", "2026-11-23 10:00", "2026-11-27 12:00"),  # day 13 OR a Friday
        ("5,10 8 * * 0", "2026-11-22 08:05", "2026-11-22 08:10"),  # Sunday as 0
        ("0 0 * * 7", "2026-11-23 10:00", "2026-11-29 00:00"),  # ... and as 7
    ],
)
def test_next_fire_time(expression: str, after: str, expected: str) -> None:
    """`next_after` gives the first matching minute strictly after the time."""
    assert Cron.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute: '60' is outside 0-59"),
        ("* 24 * * *", "hour: '24' is outside 0-23"),
        ("* * 0 * *", "day of month: '0' is outside 1-31"),
        ("* * * 13 *", "month: '13' is outside 1-12"),
        ("* * * * mon", "day of week: 'mon' is not a number"),
        ("*/0 * * * *", "minute: '*/0' is outside 0-59"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    """A wrong field is reported by name."""
    with pytest.raises(CronError, match=re.escape(message)):
        Cron.parse(expression)


def test_an_impossible_date_is_an_error() -> None:
    """31 February never comes: the search ends with an error instead of looping."""
    with pytest.raises(CronError, match="never matches"):
        Cron.parse("0 0 31 2 *").next_after(at("2026-01-01 00:00"))
