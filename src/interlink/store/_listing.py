"""Listing runs: the SQL of a `RunQuery` page and of its counts per status, for both backends.

A listing is keyset-paginated on `(created_at, id)`, newest first, so a page deep in a million
runs costs what the first one does: the cursor is the last run shown, and the next page is
the runs strictly older than it (`runs_*_created` indexes, migration 0005). The SQL is composed
here rather than kept in queries.sql because each filter left out must be left out of the
SQL too: `(:flow IS NULL OR flow = :flow)` keeps SQLite's planner off the indexes.

Counts per status stop at a cap (`count_runs`): an exact count of a million failed runs costs a
scan of a million index entries on every page view, and "10,000+" tells an operator as much.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from interlink.errors import InvalidCursor
from interlink.store.records import RUN_STATUSES, RunQuery, RunRecord

__all__ = ["RUN_COLUMNS", "Dialect", "count_sql", "decode_cursor",
           "encode_cursor", "page_sql"]

RUN_COLUMNS = ("id, flow, status, trigger, input, flow_spec, created_at, retry_of, retry_count, "
               "step_index, bucket, error, started_at, finished_at, updated_at, redrive, "
               "variables, wake")


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a backend spells a named parameter and a case-insensitive LIKE."""

    param: str  # "{name}" → the placeholder
    ilike: str

    def p(self, name: str) -> str:
        return self.param.format(name=name)


SQLITE = Dialect(param=":{name}", ilike="LIKE")  # SQLite's LIKE ignores ASCII case
POSTGRES = Dialect(param="%({name})s", ilike="ILIKE")


def encode_cursor(run: RunRecord) -> str:
    """The cursor of the page after `run` (the last run of a page)."""
    return base64.urlsafe_b64encode(orjson.dumps([run.created_at, run.id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """`(created_at, id)` from a cursor of `encode_cursor`; `InvalidCursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = orjson.loads(raw)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor(f"not a runs cursor: {cursor[:40]!r}") from None
    if not isinstance(created_at, int | float) or not isinstance(run_id, str):
        raise InvalidCursor(f"not a runs cursor: {cursor[:40]!r}")
    return float(created_at), run_id


def _conditions(query: RunQuery, run_id: str | None, dialect: Dialect,
                *, with_status: bool = True) -> tuple[list[str], dict[str, Any]]:
    """WHERE terms and their parameters; `run_id` is the run a search names (if it does)."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    for column in ("flow", "trigger") + (("status",) if with_status else ()):
        value = getattr(query, column)
        if value is not None:
            terms.append(f"{column} = {dialect.p(column)}")
            params[column] = value
    if query.since is not None:
        terms.append(f"created_at >= {dialect.p('since')}")
        params["since"] = query.since
    if query.until is not None:
        terms.append(f"created_at < {dialect.p('until')}")
        params["until"] = query.until
    if run_id is not None:  # the search named a run: that one, not a scan of every input
        terms.append(f"id = {dialect.p('search_id')}")
        params["search_id"] = run_id
    elif query.search:
        escaped = (query.search.replace("\\", "\\\\").replace("%", "\\%")
                   .replace("_", "\\_"))
        params["text"] = f"%{escaped}%"
        terms.append(f"input {dialect.ilike} {dialect.p('text')} ESCAPE '\\'")
    return terms, params


def page_sql(query: RunQuery, cursor: str | None, limit: int, run_id: str | None,
             dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The SELECT of one page: `limit + 1` rows, the extra one telling a next page exists."""
    terms, params = _conditions(query, run_id, dialect)
    if cursor is not None:
        params["c_at"], params["c_id"] = decode_cursor(cursor)
        at, cid = dialect.p("c_at"), dialect.p("c_id")
        # Spelled out (not a row value) so both planners use the index range on created_at.
        terms.append(f"created_at <= {at} AND (created_at < {at} OR id < {cid})")
    params["limit"] = limit + 1
    where = f"WHERE {' AND '.join(terms)} " if terms else ""
    sql = (f"SELECT {RUN_COLUMNS} FROM runs {where}"
           f"ORDER BY created_at DESC, id DESC LIMIT {dialect.p('limit')}")
    return sql, params


def count_sql(query: RunQuery, cap: int, run_id: str | None,
              dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """One SELECT of `(index in RUN_STATUSES, count)` rows, each count stopping at `cap`."""
    terms, params = _conditions(query, run_id, dialect, with_status=False)
    params["cap"] = cap
    parts = []
    for n, status in enumerate(RUN_STATUSES):
        params[f"s{n}"] = status
        where = " AND ".join([f"status = {dialect.p(f's{n}')}", *terms])
        parts.append(f"SELECT {n} AS k, (SELECT count(*) FROM "
                     f"(SELECT 1 FROM runs WHERE {where} LIMIT {dialect.p('cap')}) AS c{n}) AS n")
    return " UNION ALL ".join(parts), params
