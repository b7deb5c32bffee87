"""Write operations as SQL statements: the part of `Store.write()` every backend shares.

`Planner.plan()` turns one op into the statements that apply it, its values encoded by the
store's `Encoder` (secrets redacted). A statement may carry the error to raise when it changes
no row — `LeaseLost` when the op's owner lost the lease, `Conflict` when the record is no longer
in the state the op expects — and the backend then rolls back the whole `write()` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.errors import Conflict, LeaseLost, StoreError
from interlink.redaction import Redactor
from interlink.store import _rows
from interlink.store.ops import (
    Complete,
    DeleteSession,
    Enqueue,
    Fail,
    HoldLease,
    InsertLogs,
    InsertRun,
    MarkSeen,
    PutCache,
    PutCredential,
    PutSession,
    RecordNonce,
    Release,
    Requeue,
    SaveAttempt,
    SaveStep,
    UpdateRun,
    Wake,
    WriteOp,
)

__all__ = ["Planner", "Statement", "wakes_workers"]

Placeholder = Callable[[str], str]
"""Spells a named parameter in a backend's SQL (`:name` or `%(name)s`)."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a write, with what its row count means."""

    sql: str
    params: dict[str, Any] | list[dict[str, Any]]
    many: bool = False
    must_change: Conflict | None = None
    """Raised (rolling the write back) when the statement changes no row."""
    found: bool = False
    """The op's result is whether a row changed (`Requeue`)."""

    @property
    def checked(self) -> bool:
        """Whether the statement's row count matters (it must be run on its own)."""
        return self.must_change is not None or self.found


def wakes_workers(op: WriteOp) -> bool:
    """Whether committing `op` may make a queue item claimable (one written leased is its
    owner's already)."""
    if isinstance(op, Enqueue):
        return op.owner is None
    return isinstance(op, Release | Requeue | Wake)


class Planner:
    """Plans a backend's writes: its named queries, its parameter style, its `Encoder`."""

    def __init__(self, queries: Mapping[str, str], placeholder: Placeholder) -> None:
        self.queries = queries
        self.placeholder = placeholder
        self.encode = _rows.Encoder()

    def set_redactor(self, redactor: Redactor | None) -> None:
        """Redact what `redactor` knows from everything written from now on."""
        self.encode = _rows.Encoder(redactor)

    def plan(self, op: WriteOp, now: float) -> list[Statement]:
        """The statements that apply `op`, in order."""
        q, enc = self.queries, self.encode
        match op:
            case InsertRun(run, exclusive, key, parent):
                conflict = None
                if exclusive:
                    conflict = Conflict(f"creating run {run.id}: it exists already")
                elif key is not None:
                    conflict = Conflict(f"creating a run for {key}: one exists already")
                return [Statement(q["insert_run"], {**_rows.run_params(run, enc),
                                                    "start_key": key, "parent_id": parent},
                                  must_change=conflict)]
            case UpdateRun(run_id, fields, expect):
                return [self._update_run(run_id, fields, expect, now)]
            case SaveStep(step):
                return [Statement(q["save_step"], _rows.step_params(step, enc))]
            case SaveAttempt(attempt):
                return [Statement(q["save_attempt"], _rows.attempt_params(attempt, enc))]
            case InsertLogs(lines):
                if not lines:
                    return []
                return [Statement(q["insert_log"], [_rows.log_params(x, enc) for x in lines],
                                  many=True)]
            case Enqueue(item_id, kind, payload, run_at, priority, owner, lease_s):
                return [Statement(q["enqueue"], {
                    "id": item_id, "kind": kind, "payload": enc.json(payload),
                    "priority": priority, "run_at": now if run_at is None else run_at,
                    "now": now, "status": "ready" if owner is None else "leased",
                    "attempts": 0 if owner is None else 1, "owner": owner,
                    "lease_expires_at": None if owner is None else now + lease_s,
                })]
            case Complete(item_id, owner, result, keep):
                lost = LeaseLost(item_id, owner)
                if keep:
                    params = {"id": item_id, "owner": owner, "result": enc.json(result),
                              "now": now}
                    return [Statement(q["complete_keep"], params, must_change=lost)]
                return [Statement(q["complete_delete"], {"id": item_id, "owner": owner},
                                  must_change=lost)]
            case HoldLease(item_id, owner, for_s, exact):
                return [Statement(q["hold_lease"], {
                    "id": item_id, "owner": owner, "expires_at": now + for_s, "exact": exact,
                }, must_change=LeaseLost(item_id, owner))]
            case Release(item_id, owner, run_at, error, payload, replace_payload, count):
                return [Statement(q["release"], {
                    "id": item_id, "owner": owner, "run_at": run_at,
                    "error": enc.text(error), "now": now, "replace_payload": replace_payload,
                    "payload": enc.json(payload) if replace_payload else None,
                    "count_attempt": count,
                }, must_change=LeaseLost(item_id, owner))]
            case Fail(item_id, owner, error, status, result):
                if status not in ("failed", "broken"):
                    raise StoreError(f"failing queue item {item_id}: unknown status {status!r}")
                return [Statement(q["fail"], {
                    "id": item_id, "owner": owner, "error": enc.text(error), "status": status,
                    "result": enc.json(result), "now": now,
                }, must_change=LeaseLost(item_id, owner))]
            case Requeue(item_id):
                return [Statement(q["requeue"], {"id": item_id, "now": now}, found=True)]
            case MarkSeen(scope, key, run_id, expires_at):
                return [Statement(q["mark_seen"], {"scope": scope, "key": key, "run_id": run_id,
                                                   "expires_at": expires_at, "now": now},
                                  found=True)]
            case PutCache(scope, key, value, expires_at):
                return [Statement(q["put_cache"], {"scope": scope, "key": key,
                                                   "value": enc.json(value),
                                                   "expires_at": expires_at})]
            case Wake(item_id):
                return [Statement(q["wake_item"], {"id": item_id, "now": now})]
            case PutSession(session):
                return [Statement(q["put_session"], {
                    "id": session.id, "data": enc.json(session.data),
                    "expires_at": session.expires_at, "principal": session.principal,
                })]
            case DeleteSession(session_id):
                return [Statement(q["delete_session"], {"id": session_id})]
            case RecordNonce(key, expires_at):
                seen = Conflict("recording a request signature: it was seen already")
                return [Statement(q["insert_nonce"], {"key": key, "expires_at": expires_at},
                                  must_change=seen)]
            case PutCredential(name, token, expires_at):
                # Not redacted: this is the token store itself (shared by every process).
                return [Statement(q["put_credential"], {
                    "name": name, "token": _rows.dump_json(token), "expires_at": expires_at,
                })]
        raise StoreError(f"writing to the store: unknown operation {op!r}")

    def _update_run(self, run_id: str, fields: Mapping[str, Any],
                    expect: Mapping[str, Any] | None, now: float) -> Statement:
        ph = self.placeholder
        given = set(fields) | set(expect or ())
        unknown = given - set(_rows.RUN_COLUMNS) | ({"id"} & given)
        if unknown:
            raise StoreError(f"updating run {run_id}: unknown fields {sorted(unknown)}")
        values = dict(fields)
        values.setdefault("updated_at", now)
        params = {name: self._column(name, value) for name, value in values.items()}
        # Column names come from RunRecord's fields (checked above), never from the caller.
        assignments = ", ".join(f"{name} = {ph(name)}" for name in params)
        where = [f"id = {ph('id')}"]
        params["id"] = run_id
        for name, value in (expect or {}).items():
            where.append(f"{name} = {ph('expect_' + name)}")
            params["expect_" + name] = self._column(name, value)
        conflict = None
        if expect:
            state = ", ".join(f"{name} {value}" for name, value in expect.items())
            conflict = Conflict(f"updating run {run_id}: its {state} changed meanwhile")
        return Statement(f"UPDATE runs SET {assignments} WHERE {' AND '.join(where)}", params,
                         must_change=conflict)

    def _column(self, name: str, value: Any) -> Any:
        if name in _rows.RUN_JSON_COLUMNS:
            return self.encode.json(value)
        if name == "error":
            return self.encode.text(value)
        return value
