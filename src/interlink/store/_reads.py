"""The read side both backends share: every read is a named query plus a row conversion."""

from __future__ import annotations

import abc
from typing import Any

from interlink.store import _listing, _rows
from interlink.store._stats import UiReads
from interlink.store.base import Store
from interlink.store.records import (
    RUN_STATUSES,
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

__all__ = ["NamedQueryReads"]


class NamedQueryReads(UiReads, Store):
    """Implements the `Store` reads on top of one primitive, `_fetch(query_name, params)`
    (and `_select(sql, params)` for the SQL a listing composes)."""

    #: how this backend spells parameters (for `_listing`)
    dialect: _listing.Dialect

    @abc.abstractmethod
    async def _fetch(self, name: str, params: dict[str, Any]) -> list[Any]:
        """The rows of the named query (from the backend's queries.sql)."""

    @abc.abstractmethod
    async def _select(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """The rows of `sql`."""

    async def get_item(self, item_id: str) -> QueueItem | None:
        """One queue item, or None."""
        rows = await self._fetch("get_item", {"id": item_id})
        return _rows.item_from_row(rows[0]) if rows else None

    async def list_items(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[QueueItem]:
        """Queue items, newest first."""
        rows = await self._fetch("list_items", {"status": status, "kind": kind, "limit": limit})
        return [_rows.item_from_row(row) for row in rows]

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        rows = await self._fetch("get_run", {"id": run_id})
        return _rows.run_from_row(rows[0]) if rows else None

    async def get_run_by_key(self, key: str) -> RunRecord | None:
        """The run queued under start key `key`, or None."""
        rows = await self._fetch("get_run_by_key", {"key": key})
        return _rows.run_from_row(rows[0]) if rows else None

    async def find_runs(self, query: RunQuery, *, cursor: str | None = None,
                        limit: int = 50) -> RunPage:
        """A page of the runs matching `query`, newest first; see `Store.find_runs`."""
        sql, params = _listing.page_sql(query, cursor, limit, await self._searched_run(query),
                                        self.dialect)
        rows = await self._select(sql, params)
        runs = [_rows.run_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit and runs
        return RunPage(runs, _listing.encode_cursor(runs[-1]) if more else None)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> dict[str, int]:
        """Runs per status matching `query` (its status aside); see `Store.count_runs`."""
        sql, params = _listing.count_sql(query, cap, await self._searched_run(query),
                                         self.dialect)
        return {RUN_STATUSES[k]: n for k, n in await self._select(sql, params)}

    async def _searched_run(self, query: RunQuery) -> str | None:
        """The run a search names by its id, or by its queue item's id, if it does."""
        search = (query.search or "").strip()
        if not search or " " in search:
            return None
        item = await self.get_item(search)
        if item is not None and isinstance(item.payload, dict):
            run_id = item.payload.get("run_id")
            if isinstance(run_id, str):
                return run_id
        return search if await self.get_run(search) is not None else None

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in order."""
        return [_rows.step_from_row(r) for r in await self._fetch("get_steps", {"run_id": run_id})]

    async def get_attempts(self, run_id: str) -> list[AttemptRecord]:
        """A run's attempts in the order they were made."""
        rows = await self._fetch("get_attempts", {"run_id": run_id})
        return [_rows.attempt_from_row(row) for row in rows]

    async def attempts_after(self, seq: int | None, *, limit: int = 10_000) -> list[AttemptOutcome]:
        """Attempts inserted after `seq`, in insertion order, with their run's flow."""
        rows = await self._fetch("attempts_after", {"seq": seq, "limit": limit})
        return [AttemptOutcome(*row) for row in rows]

    async def get_logs(self, run_id: str) -> list[LogLine]:
        """A run's log lines in order."""
        return [_rows.log_from_row(r) for r in await self._fetch("get_logs", {"run_id": run_id})]

    async def get_session(self, session_id: str, now: float) -> SessionRecord | None:
        """A session that has not expired at `now`, or None."""
        rows = await self._fetch("get_session", {"id": session_id, "now": now})
        return _rows.session_from_row(rows[0]) if rows else None

    async def get_cached(self, scope: str, key: str, now: float) -> tuple[bool, Any]:
        """A kept value that has not expired, as `(found, value)`."""
        rows = await self._fetch("get_cached", {"scope": scope, "key": key, "now": now})
        return (True, _rows.load_json(rows[0][0])) if rows else (False, None)

    async def get_credential(self, name: str) -> Credential | None:
        """A connector's shared token, or None."""
        rows = await self._fetch("get_credential", {"name": name})
        return _rows.credential_from_row(rows[0]) if rows else None

