"""The durable store's one interface, `Store`: what every backend does.

What it keeps is in `records.py`; how it is changed (`Store.write()` of operations, applied
atomically) in `ops.py`. A worker that lost its item's lease cannot record a second outcome for
it: the write raises `LeaseLost` and applies nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from interlink.store.ops import Enqueue, WriteOp
from interlink.store.records import (
    ENDED,
    AttemptOutcome,
    AttemptRecord,
    Credential,
    LogLine,
    QueueItem,
    RunPage,
    RunQuery,
    RunRecord,
    SessionRecord,
    StepRecord,
)

if TYPE_CHECKING:
    from interlink.redaction import Redactor

__all__ = ["PURGE_BATCH", "Store"]

#: rows a purge deletes in one statement (one writer job on SQLite): a backlog goes in many
#: short steps, not one long one that every other write waits behind
PURGE_BATCH = 1000
#: the named queries deleting expired rows, for `purge`
_PURGE_EXPIRED = ("purge_sessions", "purge_locks", "purge_nonces", "purge_dedupe",
                 "purge_cache")


class Store(abc.ABC):
    """Durable state of a project. Open with `await store.open()`, close with `close()`."""

    url: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # writes

    @abc.abstractmethod
    def redact_with(self, redactor: Redactor | None) -> None:
        """Replace the secrets `redactor` knows with `***` in everything written from now on
        (every column but the connectors' own tokens)."""

    @abc.abstractmethod
    async def write(self, *ops: WriteOp) -> list[Any]:
        """Apply `ops` atomically; returns one result per op (`Requeue` → bool, else None).

        Raises `LeaseLost` (and applies nothing) when an op names a lease its owner lost.
        """

    async def enqueue(
        self, kind: str, payload: Any, *, item_id: str, run_at: float | None = None,
        priority: int = 0,
    ) -> str:
        """Add one queue item; returns its id."""
        await self.write(Enqueue(item_id, kind, payload, run_at, priority))
        return item_id

    # queue

    @abc.abstractmethod
    async def claim(
        self, owner: str, *, limit: int = 1, lease_s: float = 30.0,
        kinds: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        """Lease up to `limit` items that are due (or whose lease expired), highest priority
        first, then oldest `run_at`. Each claim increments the item's `attempts`."""

    @abc.abstractmethod
    async def extend_leases(self, owner: str, item_ids: Sequence[str], lease_s: float) -> set[str]:
        """Renew leases still held by `owner`; returns the ids renewed."""

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (part of the API)
        """Return when new work may be claimable, or after `timeout` seconds."""

    @abc.abstractmethod
    async def get_item(self, item_id: str) -> QueueItem | None:
        """One queue item, or None."""

    @abc.abstractmethod
    async def list_items(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[QueueItem]:
        """Queue items, newest first."""

    # runs

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

    @abc.abstractmethod
    async def get_run_by_key(self, key: str) -> RunRecord | None:
        """The run queued under a start key (`InsertRun(key=…)`), or None."""

    async def list_runs(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs, newest first (the first page of `find_runs`)."""
        return (await self.find_runs(RunQuery(flow=flow, status=status), limit=limit)).runs

    @abc.abstractmethod
    async def find_runs(self, query: RunQuery, *, cursor: str | None = None,
                        limit: int = 50) -> RunPage:
        """A page of the runs matching `query`, newest first, keyset-paginated: pass the
        page's `cursor` back for the next (older) page. A cursor this store did not hand out
        raises `InvalidCursor`. A search is a run id, a queue item id (its run) or text in the
        run's input (the text search scans the runs the other filters leave)."""

    @abc.abstractmethod
    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> dict[str, int]:
        """Runs per status matching `query` (whatever its status says); a count stops at
        `cap`, meaning "cap or more"."""

    @abc.abstractmethod
    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in order."""

    @abc.abstractmethod
    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        """A run's attempts in the order they were made."""

    @abc.abstractmethod
    async def attempts_after(self, seq: int | None, *, limit: int = 10_000) -> list[AttemptOutcome]:
        """Attempts of any run inserted after the one numbered `seq` (0: from the first;
        None: the last `limit`), in insertion order, with their run's flow: a walk by primary
        key, for failure rates."""

    @abc.abstractmethod
    async def get_logs(self, run_id: str) -> list[LogLine]:
        """A run's log lines in order."""

    # sessions and credentials

    @abc.abstractmethod
    async def get_session(self, session_id: str, now: float) -> SessionRecord | None:
        """A session that has not expired at `now`, or None."""

    @abc.abstractmethod
    async def get_cached(self, scope: str, key: str, now: float) -> tuple[bool, Any]:
        """`(True, value)` for a value kept for `key` that has not expired at `now`, else
        `(False, None)`."""

    @abc.abstractmethod
    async def get_credential(self, name: str) -> Credential | None:
        """A connector's shared token, or None."""

    @abc.abstractmethod
    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the named lock if it is free or expired (cross-process single-flight)."""

    @abc.abstractmethod
    async def unlock(self, name: str, owner: str) -> None:
        """Release the named lock if `owner` holds it."""

    @abc.abstractmethod
    async def lock_owners(self, prefix: str) -> list[str]:
        """The owners of the unexpired locks whose name starts with `prefix`."""

    # housekeeping

    async def purge(self, *, before: float, expired: float | None = None) -> int:
        """Delete queue items that ended `done` or `failed` (not `broken`: those wait for a
        requeue) last updated before `before`, and sessions, locks, nonces, dedupe keys and
        cached values expired by `expired` (default: `before`), `PURGE_BATCH` rows at a time.
        Returns the number of queue items deleted."""
        by = before if expired is None else expired
        for name in _PURGE_EXPIRED:
            await self._purge_all(name, {"before": by})
        return await self._purge_all("purge_items", {"before": before})

    async def purge_runs(self, *, before: float, statuses: Collection[str]) -> int:
        """Delete the runs that ended with one of `statuses`, created and last updated before
        `before`, with their steps, attempts and log lines, `PURGE_BATCH` runs at a time; a
        run that a queue item still works on, waits for or holds `broken` is kept. Returns
        the number of runs deleted."""
        if not statuses:
            return 0
        if not ENDED.issuperset(statuses):
            raise ValueError(f"only ended runs are purged, not {sorted(set(statuses) - ENDED)}")
        return await self._purge_all("purge_runs", {"before": before,
                                                    "statuses": sorted(statuses)})

    async def _purge_all(self, name: str, params: dict[str, Any]) -> int:
        deleted = 0
        while True:
            n = await self._purge_batch(name, {**params, "limit": PURGE_BATCH})
            deleted += n
            if n < PURGE_BATCH:
                return deleted

    @abc.abstractmethod
    async def _purge_batch(self, name: str, params: dict[str, Any]) -> int:
        """Run purge query `name` once with `params` (one writer job, one statement, or on
        SQLite a run purge's statements): at most `params["limit"]` rows (runs) deleted;
        how many were."""

    # the web UI's overview and links (store/_stats.py)

    @abc.abstractmethod
    async def run_slots(self, since: float, width: float) -> list[tuple[str, int, str, int]]:
        """`(flow, slot, status, runs)`: runs created since `since` per slot of `width`
        seconds."""

    @abc.abstractmethod
    async def run_outcomes(self, since: float) -> list[tuple[str, str, int]]:
        """`(flow, status, runs)` of the runs created since `since`."""

    @abc.abstractmethod
    async def run_durations(self, since: float, limit: int) -> list[tuple[str, float]]:
        """`(flow, seconds)` of the newest `limit` ended runs created since `since`."""

    @abc.abstractmethod
    async def attempt_decisions(self, since: float) -> list[tuple[str, str, str, int]]:
        """`(flow, step id, decision, attempts)` of the attempts made since `since`."""

    @abc.abstractmethod
    async def run_items(self, run_id: str) -> list[QueueItem]:
        """The queue items that name run `run_id`, oldest first."""
