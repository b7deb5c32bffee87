"""Read-only queries on an engine's store, through a connection of the bench's own.

The benches judge the engine by what it committed: runs and their statuses, attempt rows,
queue items. `StoreProbe` opens the SQLite file or the PostgreSQL URL directly (the schema is
`src/interlink/store/sql/*/0001_init.sql`) and never writes.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any


class StoreProbe:
    """Read-only queries on the engine's store (SQLite file or PostgreSQL URL)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30,
                                   check_same_thread=False)
            self._query: Callable[[str], list[tuple[Any, ...]]] = \
                lambda sql: conn.execute(sql).fetchall()
            self._close = conn.close
        else:
            import psycopg

            pg = psycopg.connect(url, autocommit=True)
            self._query = lambda sql: pg.execute(sql).fetchall()  # type: ignore[arg-type]
            self._close = pg.close

    def close(self) -> None:
        """Close the connection."""
        self._close()

    def outstanding(self) -> int:
        """Queue items not finished plus runs not ended."""
        items = self._query("SELECT count(*) FROM queue WHERE status IN ('ready', 'leased')")
        runs = self._query("SELECT count(*) FROM runs "
                           "WHERE status IN ('queued', 'running', 'waiting')")
        return int(items[0][0]) + int(runs[0][0])

    def run_statuses(self) -> Counter[str]:
        """Runs per status."""
        return Counter(dict(self._query("SELECT status, count(*) FROM runs GROUP BY status")))

    def failures(self) -> Counter[str]:
        """Why runs failed: their errors, counted (numbers and ids stripped, so alike count
        together)."""
        rows = self._query("SELECT error FROM runs WHERE status = 'failed'")
        return Counter(re.sub(r"\d+", "N", error or "?") for (error,) in rows)

    def item_statuses(self) -> Counter[str]:
        """Queue items per kind and status."""
        rows = self._query("SELECT kind, status, count(*) FROM queue GROUP BY kind, status")
        return Counter({f"{kind} {status}": n for kind, status, n in rows})

    def attempt_rows(self) -> tuple[Counter[str], int]:
        """Per order, the most attempts one budget held; and the most over all orders.

        A budget is one payload of one step of one run between re-drives (`attempts.item`,
        `attempts.redrive`): `max_attempts` bounds exactly that, whatever crashed.
        """
        inputs = {run_id: _order_id(raw) for run_id, raw in
                  self._query("SELECT id, input FROM runs")}
        per_order: Counter[str] = Counter()
        for run_id, n in self._query("SELECT run_id, count(*) FROM attempts "
                                     "GROUP BY run_id, step_id, item, redrive"):
            order = inputs.get(run_id) or "?"
            per_order[order] = max(per_order[order], n)
        return per_order, max(per_order.values(), default=0)


def _order_id(raw: Any) -> str:
    """The order id in a run input or request body (JSON text or parsed)."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
        return str(value["id"])
    except (ValueError, KeyError, TypeError):
        return "?"
