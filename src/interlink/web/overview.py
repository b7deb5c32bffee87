"""The overview: per flow, runs per minute, success rate and p50/p95 duration over the last
hour and the last day; per connector, its attempts by decision.

The database counts (runs per slot, per status, attempts per step and decision); durations are
taken over the newest `DURATION_SAMPLE` ended runs of the window, so the page costs the same
however busy the day was. Attempts name their step, not their connector: the step is looked up
in the project's flows (a step no flow has any more is counted under its flow and step id).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlink.store import Store

__all__ = ["DURATION_SAMPLE", "WINDOWS", "Bar", "ConnectorLine", "FlowLine", "Window", "overview"]

#: ended runs per window whose durations make the percentiles
DURATION_SAMPLE = 20_000
#: decisions the connector table has a column for, in that order
DECISIONS = ("continue", "retry", "reauth", "fail")
#: attempt decisions counted under another column (both retries are "retry")
_COLUMN = {"retry_step": "retry", "retry_flow": "retry"}
#: statuses a run ended well or badly in (the success rate's denominator)
ENDED = ("succeeded", "failed", "stopped", "partial")


@dataclass(frozen=True, slots=True)
class Window:
    """A time window of the overview: its length and the width of one bar."""

    name: str
    seconds: float
    slot: float

    @property
    def slots(self) -> int:
        """Bars in the chart."""
        return int(self.seconds // self.slot)


WINDOWS = (Window("last hour", 3600, 60), Window("last day", 86400, 1800))


@dataclass(frozen=True, slots=True)
class Bar:
    """One slot of a chart as an SVG rectangle, with the height of its failed part."""

    x: float
    y: float
    width: float
    height: float
    failed_height: float
    per_minute: float
    failed_per_minute: float


@dataclass
class FlowLine:
    """One flow in one window."""

    flow: str
    #: runs per minute in each slot, oldest first
    per_minute: list[float]
    #: of those, the runs that failed
    failed_per_minute: list[float]
    runs: int = 0
    succeeded: int = 0
    ended: int = 0
    p50: float | None = None
    p95: float | None = None

    @property
    def success_rate(self) -> float | None:
        """Succeeded of the ended runs, 0-1 (None when none ended)."""
        return self.succeeded / self.ended if self.ended else None

    def bars(self, width: float = 360, height: float = 40) -> Iterator[Bar]:
        """The chart's bars as SVG rectangles, scaled to the busiest slot: each slot's runs,
        and its failed runs drawn over them from the bottom."""
        top = max(self.per_minute, default=0) or 1
        step = width / max(len(self.per_minute), 1)
        for i, (value, failed) in enumerate(zip(self.per_minute, self.failed_per_minute,
                                                strict=True)):
            h, bad = value / top * height, failed / top * height
            yield Bar(round(i * step, 2), round(height - h, 2), round(max(step - 1, 1), 2),
                      round(h, 2), round(bad, 2), value, failed)


@dataclass
class ConnectorLine:
    """One connector's attempts in one window, by decision."""

    connector: str
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Attempts of any decision."""
        return sum(self.decisions.values())


async def overview(store: Store, flows: Mapping[str, Any],
                   now: float | None = None) -> list[dict[str, Any]]:
    """Per window: `{"window", "flows": [FlowLine], "connectors": [ConnectorLine]}`.

    `flows` are the project's flow definitions as data (name → spec), to find which
    connector each step calls.
    """
    now = time.time() if now is None else now
    steps = _connector_steps(flows)
    return [await _window(store, window, now, steps) for window in WINDOWS]


async def _window(store: Store, window: Window, now: float,
                  steps: dict[tuple[str, str], str]) -> dict[str, Any]:
    since = now - window.seconds
    lines: dict[str, FlowLine] = {}

    def line(flow: str) -> FlowLine:
        return lines.setdefault(flow, FlowLine(flow, [0.0] * window.slots,
                                               [0.0] * window.slots))

    for flow, slot, status, runs in await store.run_slots(since, window.slot):
        if 0 <= slot < window.slots:
            line(flow).per_minute[slot] += runs / (window.slot / 60)
            if status == "failed":
                line(flow).failed_per_minute[slot] += runs / (window.slot / 60)
    for flow, status, runs in await store.run_outcomes(since):
        entry = line(flow)
        entry.runs += runs
        if status in ENDED:
            entry.ended += runs
        if status == "succeeded":
            entry.succeeded += runs
    durations: dict[str, list[float]] = {}
    for flow, seconds in await store.run_durations(since, DURATION_SAMPLE):
        durations.setdefault(flow, []).append(seconds)
    for flow, values in durations.items():
        values.sort()
        line(flow).p50, line(flow).p95 = _percentile(values, 0.5), _percentile(values, 0.95)
    connectors: dict[str, ConnectorLine] = {}
    for flow, step, decision, attempts in await store.attempt_decisions(since):
        name = steps.get((flow, step), f"{flow} / {step}")
        counts = connectors.setdefault(name, ConnectorLine(name)).decisions
        column = _COLUMN.get(decision, decision)
        counts[column] = counts.get(column, 0) + attempts
    return {"window": window, "flows": sorted(lines.values(), key=lambda f: f.flow),
            "connectors": sorted(connectors.values(), key=lambda c: c.connector),
            "decisions": DECISIONS}


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _connector_steps(flows: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """`(flow, step id) → connector` for every connector step, nested ones included."""
    found: dict[tuple[str, str], str] = {}

    def walk(flow: str, value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "connector" and "id" in value and "connector" in value:
                found[(flow, str(value["id"]))] = str(value["connector"])
            for inner in value.values():
                walk(flow, inner)
        elif isinstance(value, list):
            for inner in value:
                walk(flow, inner)

    for name, spec in flows.items():
        walk(name, spec)
    return found
