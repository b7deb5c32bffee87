"""What the UI's buttons do: retry a run, retry every failed run a filter matches, re-drive a
run from its failed step, stop a waiting run, requeue a queue item.

Each action asks the flow runner (through `Steering`, the few methods the UI needs) or the
store, and answers an `Outcome`: what happened, in words, and links to what it made. An action
the run's state does not allow (`RunError`, `Conflict`) is an outcome too, not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from interlink.errors import Conflict, RunError
from interlink.store import Requeue, RunQuery, Store

__all__ = ["BULK_LIMIT", "Outcome", "Steering", "bulk_retry", "redrive", "requeue", "retry",
           "stop"]

#: runs one bulk retry queues at most (the confirmation page says so)
BULK_LIMIT = 1000


class Steering(Protocol):
    """What the UI asks of the flow runner."""

    async def retry(self, run_id: str) -> str:
        """A new run of the same flow version with the same input; its id."""

    async def retried_as(self, run_id: str) -> str | None:
        """The run's retry run, when it has one already."""

    async def retry_matching(self, query: RunQuery, *, limit: int = 1000) -> list[str]:
        """New runs retrying the failed runs `query` matches (not retried yet); their ids."""

    async def redrive(self, run_id: str) -> str:
        """Queue a failed run again from its failed step."""

    async def stop(self, run_id: str) -> None:
        """Stop a waiting or queued run."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did: a title, a sentence, and links `(text, href)` to follow."""

    title: str
    message: str
    links: list[tuple[str, str]] = field(default_factory=list)
    ok: bool = True

    @property
    def status(self) -> int:
        """The HTTP status of the page showing it."""
        return 200 if self.ok else 409


def _run(ui: str, run_id: str) -> str:
    return f"{ui}/runs/{run_id}"


async def retry(steering: Steering, ui: str, run_id: str) -> Outcome:
    """Retry one run."""
    try:
        before = await steering.retried_as(run_id)
        new = await steering.retry(run_id)
    except (RunError, Conflict) as exc:
        return Outcome("Not retried", str(exc), [("back to the run", _run(ui, run_id))], False)
    if before is not None:
        return Outcome("Already retried",
                       f"Run {run_id} was retried before, as run {new}: a run has one retry "
                       "(retry that one to try again).",
                       [(f"its retry {new}", _run(ui, new)), ("the run", _run(ui, run_id))])
    return Outcome("Retry queued", f"Run {run_id} is retried as run {new}.",
                   [(f"the new run {new}", _run(ui, new)), ("the retried run", _run(ui, run_id))])


async def bulk_retry(steering: Steering, ui: str, query: RunQuery,
                     back: str) -> tuple[Outcome, list[str]]:
    """Retry the failed runs `query` matches (up to `BULK_LIMIT`); the outcome and new ids."""
    try:
        new = await steering.retry_matching(query, limit=BULK_LIMIT)
    except (RunError, Conflict) as exc:
        return Outcome("Not retried", str(exc), [("back to the list", back)], False), []
    noun = "run" if len(new) == 1 else "runs"
    return Outcome("Retries queued", f"{len(new)} failed {noun} retried (runs retried "
                   "before are left to their retries).",
                   [("the new runs", f"{ui}/runs?trigger=retry"), ("back to the list", back)]), new


async def redrive(steering: Steering, ui: str, run_id: str) -> Outcome:
    """Re-drive a failed run from its failed step."""
    try:
        await steering.redrive(run_id)
    except (RunError, Conflict) as exc:
        return Outcome("Not re-driven", str(exc), [("back to the run", _run(ui, run_id))], False)
    return Outcome("Re-drive queued",
                   f"Run {run_id} goes on from its failed step; the steps before it keep "
                   "their outputs.", [("the run", _run(ui, run_id))])


async def stop(steering: Steering, ui: str, run_id: str) -> Outcome:
    """Stop a waiting (or queued) run."""
    try:
        await steering.stop(run_id)
    except (RunError, Conflict) as exc:
        return Outcome("Not stopped", str(exc), [("back to the run", _run(ui, run_id))], False)
    return Outcome("Stopped", f"Run {run_id} is stopped.", [("the run", _run(ui, run_id))])


async def requeue(store: Store, ui: str, item_id: str) -> Outcome:
    """Make a broken or failed queue item ready again."""
    back = [("the queue item", f"{ui}/queue/{item_id}")]
    done = await store.write(Requeue(item_id))
    if not done or not done[0]:
        return Outcome("Not requeued",
                       f"Queue item {item_id} is not broken or failed (or does not exist).",
                       back, False)
    item = await store.get_item(item_id)
    run_id = (item.payload or {}).get("run_id") if item is not None and \
        isinstance(item.payload, dict) else None
    links = back + ([("its run", _run(ui, run_id))] if run_id else [])
    return Outcome("Requeued", f"Queue item {item_id} is ready again; a worker picks it up.",
                   links)
