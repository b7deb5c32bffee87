"""Moments on the command line: `--since 2h`, `--since 2026-12-01T09:00`, `--until 30m`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["Moment", "parse_moment"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_moment(text: str, now: float) -> float:
    """Unix seconds of `text`: a duration ago (`90s`, `30m`, `1h30m`, `2d`, `1w`) or an
    ISO 8601 date or datetime (`2026-12-01`, `2026-12-01T09:00:00Z`, with an offset or
    without: then UTC, the zone every time Interlink prints is in). `ValueError` otherwise."""
    value = text.strip()
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return now - sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (30m, 2h, 1d) nor an ISO 8601 "
                         "date or datetime (2026-12-01T09:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Moment(click.ParamType[float, Any]):
    """A click parameter read by `parse_moment` (relative to when the command started)."""

    name = "moment"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_moment(str(value), time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
