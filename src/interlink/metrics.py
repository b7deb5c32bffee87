"""The engine's Prometheus metrics, served at `GET /metrics`.

Observing is on the hot path of every request and attempt, so it is plain dict arithmetic
(a bisect for a histogram bucket); the Prometheus families are built only when scraped, by a
collector over those numbers. prometheus_client's own metric objects cost several
microseconds per observation, which `bench/services.py` showed as 0.1× of its ratio.
Each engine has a registry of its own (tests open many engines in one process).

Under `serve --workers N` a scrape reaches whichever process takes the connection, so each
process also publishes its numbers to a folder the parent made (`shared`): a file per process,
rewritten every `PUBLISH_S` and before each scrape, and a scrape answers the sum of all the
files — the numbers of the whole server, whichever process answers. A process that ended
leaves its file: its counts stay in the sums, so a counter never goes down.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "PUBLISH_S", "Metrics"]

#: how often a process of `serve --workers N` publishes its numbers for the others' scrapes
PUBLISH_S = 1.0

CONTENT_TYPE = CONTENT_TYPE_LATEST

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0)


class _Histogram:
    """Counts per bucket (not cumulative until exposed), and the sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect.bisect_left(_BUCKETS, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for bound, count in zip((*map(str, _BUCKETS), "+Inf"), self.buckets, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class Metrics(Collector):
    """Requests by outcome, phase durations, runs ended, connector attempts, webhook calls."""

    def __init__(self, shared: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self._requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._phases: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self._runs: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._webhooks: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: the folder the server's processes publish to (None: this process alone)
        self.shared = shared
        self._file = None if shared is None else shared / f"{os.getpid()}-{id(self):x}.json"
        self.registry.register(self)

    def request(self, service: str, outcome: str, timings: Mapping[str, float]) -> None:
        """A service request was answered; `timings` are its phases' seconds."""
        self._requests[service, outcome] += 1
        for phase, seconds in timings.items():
            self._phases[service, phase].observe(seconds)

    def run_ended(self, flow: str, status: str) -> None:
        """A run ended with `status`."""
        self._runs[flow, status] += 1

    def webhook(self, flow: str, status: int) -> None:
        """A call to `flow`'s webhook was answered `status` (0: the caller left first)."""
        self._webhooks[flow, str(status)] += 1

    def attempt(self, connector: str, decision: str) -> None:
        """A connector attempt ended with `decision`."""
        self._attempts[connector, decision] += 1

    def collect(self) -> Iterator[Metric]:
        """The families, built from the numbers at scrape time (every process's, when
        shared)."""
        numbers = self._everyone() if self.shared is not None else self._numbers()
        counters = (
            ("interlink_service_requests", "Service requests answered, by outcome.",
             ["service", "outcome"], numbers["requests"]),
            ("interlink_runs_ended", "Flow runs that ended, by status.", ["flow", "status"],
             numbers["runs"]),
            ("interlink_connector_attempts", "Connector attempts, by the decision taken.",
             ["connector", "decision"], numbers["attempts"]),
            ("interlink_webhook_requests", "Webhook calls answered, by flow and status code.",
             ["flow", "code"], numbers["webhooks"]),
        )
        for name, doc, labels, values in counters:
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, count in values.items():
                family.add_metric(list(key), count)
            yield family
        phases = HistogramMetricFamily("interlink_service_phase_seconds",
                                       "Time spent in each phase of a service request.",
                                       labels=["service", "phase"])
        for key, histogram in numbers["phases"].items():
            phases.add_metric(list(key), histogram.cumulative(), histogram.total)
        yield phases

    def _numbers(self) -> dict[str, dict[tuple[str, str], Any]]:
        return {"requests": dict(self._requests), "runs": dict(self._runs),
                "attempts": dict(self._attempts), "webhooks": dict(self._webhooks),
                "phases": dict(self._phases)}

    # --- shared between the processes of one server -----------------------------------------

    def publish(self) -> None:
        """Write this process's numbers to its file in `shared` (whole, or not at all)."""
        if self._file is None:
            return
        data = {name: [[*key, value.buckets, value.total] if name == "phases" else [*key, value]
                       for key, value in values.items()]
                for name, values in self._numbers().items()}
        partial = self._file.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(data))
        partial.replace(self._file)  # a scrape reads the old numbers or the new, never half

    async def keep_publishing(self, stop: asyncio.Event) -> None:
        """Publish every `PUBLISH_S` until `stop`, then once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PUBLISH_S)
            with contextlib.suppress(OSError):  # the folder went with the parent
                self.publish()

    def _everyone(self) -> dict[str, dict[tuple[str, str], Any]]:
        assert self.shared is not None
        with contextlib.suppress(OSError):
            self.publish()  # this process's numbers as of now
        totals: dict[str, dict[tuple[str, str], Any]] = {
            "requests": defaultdict(int), "runs": defaultdict(int),
            "attempts": defaultdict(int), "webhooks": defaultdict(int),
            "phases": defaultdict(_Histogram)}
        for path in self.shared.glob("*.json"):
            try:
                data = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # gone, or not ours
            for name, rows in data.items():
                into = totals.get(name)
                if into is None:
                    continue
                for row in rows:
                    if name == "phases":
                        histogram = into[row[0], row[1]]
                        if len(row[2]) != len(histogram.buckets):
                            continue  # another version's buckets: not comparable
                        histogram.buckets = [a + b for a, b in zip(histogram.buckets, row[2],
                                                                   strict=True)]
                        histogram.total += row[3]
                    else:
                        into[row[0], row[1]] += row[2]
        return totals

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
