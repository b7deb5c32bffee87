"""Five-field cron expressions (`minute hour day-of-month month day-of-week`), in UTC.

Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those;
day-of-week is 0–7 (0 and 7 are Sunday). As in every cron, when both day fields are restricted
a day matches if either does. `next_after` skips whole months, days and hours that cannot
match, so even `0 0 29 2 *` is found in a few hundred steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Cron", "CronError"]


class CronError(ValueError):
    """A cron expression that cannot be parsed (the message says which field and why)."""


_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                first, last = base.split("-", 1)
                start, end = int(first), int(last)
            else:
                start = end = int(base)
                if step_text:
                    end = high
        except ValueError:
            raise CronError(f"{name}: {part!r} is not a number, range or step") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression; `next_after(t)` is its first minute after `t`."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse `expression`; raises `CronError` naming the field that is wrong."""
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(f"expected 5 fields (minute hour day month weekday), "
                            f"got {len(fields)}")
        minutes, hours, days, months, weekdays = (
            _parse_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True))
        return cls(minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                   fields[2] == "*", fields[4] == "*")

    def _day_matches(self, moment: datetime) -> bool:
        by_date = moment.day in self.days
        by_weekday = moment.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after `when` (an aware UTC datetime)."""
        moment = when.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(100_000):  # bounded: impossible dates (31 Feb) end the search
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (
                    moment.year, moment.month + 1)
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment
        raise CronError("the expression never matches a real date")
