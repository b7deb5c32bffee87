"""The reads behind the web UI's overview and its links from a run to its queue items: runs
and attempts since a time, counted by the database (named queries under `-- ui overview` in
each backend's queries.sql). Mixed into both backends through `NamedQueryReads`."""

from __future__ import annotations

import abc
from typing import Any

from interlink.store import _rows
from interlink.store.records import QueueItem

__all__ = ["UiReads"]


class UiReads(abc.ABC):
    """Implements the UI's reads of `Store` on the backend's `_fetch(query_name, params)`."""

    @abc.abstractmethod
    async def _fetch(self, name: str, params: dict[str, Any]) -> list[Any]:
        """The rows of the named query (from the backend's queries.sql)."""

    async def run_slots(self, since: float, width: float) -> list[tuple[str, int, str, int]]:
        """`(flow, slot, status, runs)`: runs created since `since` per slot of `width`
        seconds."""
        rows = await self._fetch("ui_run_slots", {"since": since, "width": width})
        return [(flow, int(slot), status, int(n)) for flow, slot, status, n in rows]

    async def run_outcomes(self, since: float) -> list[tuple[str, str, int]]:
        """`(flow, status, runs)` of the runs created since `since`."""
        rows = await self._fetch("ui_run_outcomes", {"since": since})
        return [(flow, status, int(n)) for flow, status, n in rows]

    async def run_durations(self, since: float, limit: int) -> list[tuple[str, float]]:
        """`(flow, seconds)` of the newest `limit` ended runs created since `since`."""
        rows = await self._fetch("ui_run_durations", {"since": since, "limit": limit})
        return [(flow, float(seconds)) for flow, seconds in rows]

    async def attempt_decisions(self, since: float) -> list[tuple[str, str, str, int]]:
        """`(flow, step id, decision, attempts)` of the attempts made since `since`."""
        rows = await self._fetch("ui_attempt_decisions", {"since": since})
        return [(flow, step, decision, int(n)) for flow, step, decision, n in rows]

    async def run_items(self, run_id: str) -> list[QueueItem]:
        """The queue items that name run `run_id`, oldest first."""
        rows = await self._fetch("ui_run_items", {"run_id": run_id})
        return [_rows.item_from_row(row) for row in rows]
