"""The engine's Prometheus metrics, served at `GET /metrics`.

Observing is on the hot path of every request and attempt, so it is plain dict arithmetic
(a bisect for a histogram bucket); the Prometheus families are built only when scraped, by a
collector over those numbers. prometheus_client's own metric objects cost several
microseconds per observation, which `bench/services.py` showed as 0.1× of its ratio.
Each engine has a registry of its own (tests open many engines in one process).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

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
    """Requests by outcome, phase durations, runs ended and connector attempts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._phases: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self._runs: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.registry.register(self)

    def request(self, service: str, outcome: str, timings: Mapping[str, float]) -> None:
        """A service request was answered; `timings` are its phases' seconds."""
        self._requests[service, outcome] += 1
        for phase, seconds in timings.items():
            self._phases[service, phase].observe(seconds)

    def run_ended(self, flow: str, status: str) -> None:
        """A run ended with `status`."""
        self._runs[flow, status] += 1

    def attempt(self, connector: str, decision: str) -> None:
        """A connector attempt ended with `decision`."""
        self._attempts[connector, decision] += 1

    def collect(self) -> Iterator[Metric]:
        """The families, built from the numbers at scrape time."""
        counters = (
            ("interlink_service_requests", "Service requests answered, by outcome.",
             ["service", "outcome"], self._requests),
            ("interlink_runs_ended", "Flow runs that ended, by status.", ["flow", "status"],
             self._runs),
            ("interlink_connector_attempts", "Connector attempts, by the decision taken.",
             ["connector", "decision"], self._attempts),
        )
        for name, doc, labels, values in counters:
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, count in list(values.items()):
                family.add_metric(list(key), count)
            yield family
        phases = HistogramMetricFamily("interlink_service_phase_seconds",
                                       "Time spent in each phase of a service request.",
                                       labels=["service", "phase"])
        for key, histogram in list(self._phases.items()):
            phases.add_metric(list(key), histogram.cumulative(), histogram.total)
        yield phases

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
