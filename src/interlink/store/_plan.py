"""Write operations as SQL statements: the part of `Store.write()` every backend shares.

`plan()` turns one op into the statements that apply it. A statement may name a lease: when it
changes no row, the op's owner lost that lease and the backend raises `LeaseLost`, rolling back
the whole `write()` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.errors import StoreError
from interlink.store import _rows
from interlink.store.base import (
    Complete,
    DeleteSession,
    Enqueue,
    Fail,
    InsertAttempt,
    InsertLogs,
    InsertRun,
    PutCredential,
    PutSession,
    Release,
    Requeue,
    SaveStep,
    UpdateRun,
    WriteOp,
)

__all__ = ["Statement", "plan", "wakes_workers"]

Placeholder = Callable[[str], str]
"""Spells a named parameter in a backend's SQL (`:name` or `%(name)s`)."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a write, with what its row count means."""

    sql: str
    params: dict[str, Any] | list[dict[str, Any]]
    many: bool = False
    lease: tuple[str, str] | None = None
    """(item id, owner): no row changed means the lease was lost."""
    found: bool = False
    """The op's result is whether a row changed (`Requeue`)."""


def wakes_workers(op: WriteOp) -> bool:
    """Whether committing `op` may make a queue item claimable."""
    return isinstance(op, Enqueue | Release | Requeue)


def plan(
    op: WriteOp, now: float, queries: Mapping[str, str], placeholder: Placeholder
) -> list[Statement]:
    """The statements that apply `op`, in order."""
    q = queries
    match op:
        case InsertRun(run):
            return [Statement(q["insert_run"], _rows.run_params(run))]
        case UpdateRun(run_id, fields):
            return _update_run(run_id, fields, now, placeholder)
        case SaveStep(step):
            return [Statement(q["save_step"], _rows.step_params(step))]
        case InsertAttempt(attempt):
            return [Statement(q["insert_attempt"], _rows.attempt_params(attempt))]
        case InsertLogs(lines):
            if not lines:
                return []
            return [Statement(q["insert_log"], [_rows.log_params(x) for x in lines], many=True)]
        case Enqueue(item_id, kind, payload, run_at, priority, owner, lease_s):
            return [Statement(q["enqueue"], {
                "id": item_id, "kind": kind, "payload": _rows.dump_json(payload),
                "priority": priority, "run_at": now if run_at is None else run_at, "now": now,
                "status": "ready" if owner is None else "leased",
                "attempts": 0 if owner is None else 1, "owner": owner,
                "lease_expires_at": None if owner is None else now + lease_s,
            })]
        case Complete(item_id, owner, result, keep):
            if keep:
                params = {"id": item_id, "owner": owner, "result": _rows.dump_json(result),
                          "now": now}
                return [Statement(q["complete_keep"], params, lease=(item_id, owner))]
            return [Statement(q["complete_delete"], {"id": item_id, "owner": owner},
                              lease=(item_id, owner))]
        case Release(item_id, owner, run_at, error, payload, replace_payload):
            return [Statement(q["release"], {
                "id": item_id, "owner": owner, "run_at": run_at, "error": error, "now": now,
                "replace_payload": replace_payload,
                "payload": _rows.dump_json(payload) if replace_payload else None,
            }, lease=(item_id, owner))]
        case Fail(item_id, owner, error, status, result):
            if status not in ("failed", "broken"):
                raise StoreError(f"failing queue item {item_id}: unknown status {status!r}")
            return [Statement(q["fail"], {
                "id": item_id, "owner": owner, "error": error, "status": status,
                "result": _rows.dump_json(result), "now": now,
            }, lease=(item_id, owner))]
        case Requeue(item_id):
            return [Statement(q["requeue"], {"id": item_id, "now": now}, found=True)]
        case PutSession(session):
            return [Statement(q["put_session"], {
                "id": session.id, "data": _rows.dump_json(session.data),
                "expires_at": session.expires_at,
            })]
        case DeleteSession(session_id):
            return [Statement(q["delete_session"], {"id": session_id})]
        case PutCredential(name, token, expires_at):
            return [Statement(q["put_credential"], {
                "name": name, "token": _rows.dump_json(token), "expires_at": expires_at,
            })]
    raise StoreError(f"writing to the store: unknown operation {op!r}")


def _update_run(
    run_id: str, fields: Mapping[str, Any], now: float, placeholder: Placeholder
) -> list[Statement]:
    unknown = set(fields) - set(_rows.RUN_COLUMNS) | ({"id"} & set(fields))
    if unknown:
        raise StoreError(f"updating run {run_id}: unknown fields {sorted(unknown)}")
    values = dict(fields)
    values.setdefault("updated_at", now)
    params = {
        name: _rows.dump_json(value) if name in _rows.RUN_JSON_COLUMNS else value
        for name, value in values.items()
    }
    # Column names come from RunRecord's fields (checked above), never from the caller.
    assignments = ", ".join(f"{name} = {placeholder(name)}" for name in params)
    params["id"] = run_id
    return [Statement(f"UPDATE runs SET {assignments} WHERE id = {placeholder('id')}", params)]
