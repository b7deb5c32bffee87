"""The engine's Prometheus metrics, served at `GET /metrics`.

Each engine has a registry of its own (tests open many engines in one process). Labelled
children are looked up once per label set and cached, because a request's hot path should pay
for observing, not for finding what to observe.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_PHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0, 30.0)


class Metrics:
    """Counters and histograms of requests, phases, runs and connector attempts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "interlink_service_requests", "Service requests answered, by outcome.",
            ["service", "outcome"], registry=self.registry)
        self._phases = Histogram(
            "interlink_service_phase_seconds", "Time spent in each phase of a service request.",
            ["service", "phase"], buckets=_PHASE_BUCKETS, registry=self.registry)
        self._runs = Counter(
            "interlink_runs_ended", "Flow runs that ended, by status.", ["flow", "status"],
            registry=self.registry)
        self._attempts = Counter(
            "interlink_connector_attempts", "Connector attempts, by the decision taken.",
            ["connector", "decision"], registry=self.registry)
        self._counters: dict[tuple[int, str, str], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    def _count(self, metric: Counter, first: str, second: str) -> None:
        key = (id(metric), first, second)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = metric.labels(first, second)
        child.inc()

    def request(self, service: str, outcome: str, timings: Mapping[str, float]) -> None:
        """A service request was answered; `timings` are its phases' seconds."""
        self._count(self._requests, service, outcome)
        for phase, seconds in timings.items():
            child = self._histograms.get((service, phase))
            if child is None:
                child = self._histograms[service, phase] = self._phases.labels(service, phase)
            child.observe(seconds)

    def run_ended(self, flow: str, status: str) -> None:
        """A run ended with `status`."""
        self._count(self._runs, flow, status)

    def attempt(self, connector: str, decision: str) -> None:
        """A connector attempt ended with `decision`."""
        self._count(self._attempts, connector, decision)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
