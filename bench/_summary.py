"""One line per headline figure, for `bench/all.py`'s summary table.

A bench calls `figure(...)` for each figure it wants in the table; the line starts with
`SUMMARY` and carries JSON, so the table needs no parsing of the human-readable output.
"""

from __future__ import annotations

import orjson

__all__ = ["PREFIX", "figure"]

PREFIX = "SUMMARY "


def figure(bench: str, name: str, value: float, unit: str, *, goal: str = "") -> None:
    """Print one figure of `bench` (goal: what it should be, as text, e.g. '>= 0.4')."""
    print(PREFIX + orjson.dumps({"bench": bench, "name": name, "value": value, "unit": unit,
                                 "goal": goal}).decode(), flush=True)
