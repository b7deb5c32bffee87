"""Moments on the command line: `--since 2h`, `--since 2026-12-01T09:00Z`, `--until 30m` — the
forms the runs API takes (`interlink.instants`), read when the command starts."""

from __future__ import annotations

import time
from typing import Any

import click

from interlink.instants import parse_instant

__all__ = ["Moment"]


class Moment(click.ParamType[float, Any]):
    """A click parameter read by `parse_instant`: an ISO 8601 time (UTC unless it says
    otherwise), Unix seconds, or a duration ago (`30m`, `2h`, `7d`)."""

    name = "moment"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_instant(str(value), time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
