"""What makes an event, and the notification items it becomes.

An event (a run that ended failed, a queue item marked broken, a connector failing often)
becomes one queue item of kind `notification` per channel told, written **in the same
`Store.write()` as the event itself** (the run's end, the item's `Fail`): the event and its
notifications commit together or not at all, so a crash can neither lose one nor record it
twice. Ids are derived from the event (`derived_id`): the event id names what happened
(`e_…`, sent to receivers as `event_id` and `Idempotency-Key`), and each item id the event
and its channel, so writing the same event again changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from interlink.ids import derived_id
from interlink.redaction import Redactor
from interlink.spec.flow import FlowSpec
from interlink.spec.project import ProjectConfig
from interlink.store import AttemptOutcome, Enqueue, QueueItem, RunRecord

__all__ = ["NOTIFICATION_KIND", "Event", "EventKind", "Notices", "span", "ui_base"]

#: queue item kind of a notification to deliver
NOTIFICATION_KIND = "notification"

EventKind = Literal["run_failed", "item_broken", "connector_failure_rate"]

#: a connector's error text in a message is cut to this many characters
_MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class Event:
    """Something an operator should hear about; kept as data in its notification items."""

    id: str
    kind: EventKind
    at: float
    project: str
    title: str
    link: str
    error: str | None = None
    flow: str | None = None
    run_id: str | None = None
    step: str | None = None
    item_id: str | None = None
    connector: str | None = None
    #: more figures (a failure rate's attempts and failures, a broken item's attempts)
    facts: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        """The event as JSON-ready data (what a notification item's payload keeps)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Event:
        """The event `as_data()` produced."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def span(seconds: float) -> str:
    """A window as people say it: `minute`, `5 minutes`, `hour`, `90s`."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g}s"


def ui_base(config: ProjectConfig) -> str:
    """Where the UI is: `notify.ui_url`, else the address the engine endpoints listen on."""
    if config.notify.ui_url:
        return config.notify.ui_url.rstrip("/")
    listen = config.admin.listen or config.server
    host = listen.host
    if host in ("", "0.0.0.0", "::"):  # a wildcard bind is no address to click on
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{listen.port}"


class Notices:
    """Turns events into the notification items to write with them (none without channels)."""

    def __init__(self, config: ProjectConfig, redactor: Redactor) -> None:
        self.config = config
        self.notify = config.notify
        self.redactor = redactor
        self.ui = ui_base(config)

    def run_failed(self, run: RunRecord, flow: FlowSpec, step: str,
                   error: str) -> list[Enqueue]:
        """A run ended `failed` with no flow retry to come: tell its channels."""
        channels = self.notify.targets(self.notify.run_failed)
        if flow.notify is not None:
            own = flow.notify.run_failed
            channels = list(own) if flow.notify.replace else list(dict.fromkeys(channels + own))
        if not channels:
            return []
        key = f"{run.id}:failed:{run.redrive}"  # a re-driven run that fails again is news
        event = Event(
            id=derived_id("e_", run.created_at, key), kind="run_failed", at=time.time(),
            project=self.config.name,
            title=f"{self.config.name}: run of flow {run.flow} failed at step {step}",
            link=f"{self.ui}/_interlink/ui/runs/{run.id}", error=self._error(error),
            flow=run.flow, run_id=run.id, step=step,
            facts={"trigger": run.trigger, "retry_count": run.retry_count})
        return self._items(event, run.created_at, key, channels)

    def item_broken(self, item: QueueItem, error: str) -> list[Enqueue]:
        """A queue item is being marked `broken` (kept for a requeue): tell its channels."""
        channels = self.notify.targets(self.notify.item_broken)
        if not channels or item.kind == NOTIFICATION_KIND:
            return []  # a notification about an undeliverable notification would loop
        payload = item.payload if isinstance(item.payload, dict) else {}
        what = item.kind + (f" of service {payload['service']}" if "service" in payload else "")
        # The claim that broke it: requeued and broken again is another event.
        key = f"{item.id}:broken:{item.updated_at!r}"
        event = Event(
            id=derived_id("e_", item.created_at, key), kind="item_broken", at=time.time(),
            project=self.config.name,
            title=f"{self.config.name}: queue item ({what}) broken after {item.attempts} "
                  "attempts",
            link=f"{self.ui}/_interlink/ui/queue/{item.id}", error=self._error(error),
            flow=item.run.flow if item.run is not None else None,
            run_id=payload.get("run_id"), item_id=item.id,
            facts={"kind": item.kind, "attempts": item.attempts})
        return self._items(event, item.created_at, key, channels)

    def failure_rate(self, connector: str, attempts: int, failures: int, window: float,
                     last: AttemptOutcome | None, bucket: int) -> list[Enqueue]:
        """A connector's failure rate crossed its threshold (`bucket`: the window number)."""
        alert = self.notify.connector_failure_rate
        channels = self.notify.targets(alert.channels if alert else [])
        if not channels:
            return []
        key = f"{self.config.name}:{connector}:failure_rate:{bucket}"
        at = bucket * window
        rate = failures / attempts
        title = (f"{self.config.name}: connector {connector} failed {failures} of {attempts} "
                 f"attempts ({rate:.0%}) in the last {span(window)}")
        event = Event(
            id=derived_id("e_", at, key), kind="connector_failure_rate", at=time.time(),
            project=self.config.name, title=title,
            link=(f"{self.ui}/_interlink/ui/runs/{last.run_id}" if last else
                  f"{self.ui}/_interlink/ui/"),
            error=self._error(last.message) if last and last.message else None,
            flow=last.flow if last else None, run_id=last.run_id if last else None,
            step=last.step_id if last else None, connector=connector,
            facts={"attempts": attempts, "failures": failures, "rate": round(rate, 4),
                   "window_s": window})
        return self._items(event, at, key, channels)

    def _error(self, error: str | None) -> str | None:
        if error is None:
            return None
        text = self.redactor.text(error)
        return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + "…"

    def _items(self, event: Event, at: float, key: str, channels: list[str]) -> list[Enqueue]:
        data = event.as_data()
        return [Enqueue(derived_id("q_", at, f"{key}:notify:{channel}"), NOTIFICATION_KIND,
                        {"channel": channel, "event": data}) for channel in channels]
