"""Records to table rows and back, the same for every backend.

JSON values are stored as text (orjson output); `None` is stored as SQL NULL, so a JSON `null`
and a missing value read back alike, as `None`. Queries select columns in the order of the
record's fields, so a decoded row maps positionally onto its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import orjson

from interlink.errors import ValueRefused
from interlink.redaction import Redactor
from interlink.store.records import (
    AttemptRecord,
    Credential,
    LogLine,
    QueueItem,
    RunRecord,
    SessionRecord,
    StepRecord,
)

__all__ = [
    "RUN_COLUMNS",
    "RUN_JSON_COLUMNS",
    "Encoder",
    "attempt_from_row",
    "attempt_params",
    "credential_from_row",
    "dump_json",
    "item_from_row",
    "load_json",
    "log_from_row",
    "log_params",
    "named_runs",
    "run_from_row",
    "run_params",
    "session_from_row",
    "step_from_row",
    "step_params",
    "with_runs",
]

RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))
"""Columns of `runs`: the names of `RunRecord`'s fields."""

# Field names read once: `fields()` builds a new tuple on every call (several per run).
_ATTEMPT_COLUMNS = tuple(f.name for f in fields(AttemptRecord))
_LOG_COLUMNS = tuple(f.name for f in fields(LogLine))

RUN_JSON_COLUMNS = frozenset({"input", "flow_spec", "bucket", "variables"})

Row = Sequence[Any]


def dump_json(value: Any) -> str | None:
    """`value` as JSON text, or None for None."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ValueRefused(f"encoding a value for the store: {exc}") from exc


def storable(text: str) -> str:
    """`text` as every backend can keep it in a text column: a NUL (PostgreSQL refuses it) as
    U+FFFD, a lone surrogate (a byte no decoder took: `surrogateescape`, as in an upstream's
    Latin-1 header) as `?`. Nothing else changes; checked in two fast scans."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return _utf8(text)


def _utf8(text: str) -> str:
    """`text` with each lone surrogate as `?` (a fast scan when it has none)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _storable_data(value: Any) -> Any:
    """JSON-like `value` with every string (string keys too) `_utf8` (JSON escapes a NUL);
    `ValueRefused` if two keys of a mapping become one."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = _utf8(k) if isinstance(k, str) else k
            if key in out:
                raise ValueRefused(f"encoding a value for the store: keys {key!r} collide "
                                   "once undecodable characters are replaced")
            out[key] = _storable_data(v)
        return out
    if isinstance(value, list | tuple):
        return [_storable_data(v) for v in value]
    return value


def load_json(text: str | bytes | None) -> Any:
    """The value of a JSON column (None for NULL)."""
    return None if text is None else orjson.loads(text)


class Encoder:
    """Values to column values, with secrets replaced by `***`: the store's boundary.

    Everything a write stores (run inputs and outputs, errors, attempts, log lines, queue
    payloads and results) passes through here, so no secret the redactor knows can reach the
    store, and from there `interlink runs`, the API or the UI. JSON is scanned as text first
    (one regex search); only a value that holds a secret is walked and encoded again.
    """

    __slots__ = ("redactor",)

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor

    def json(self, value: Any) -> str | None:
        """`value` as JSON text, secrets replaced; a lone surrogate in a string as `?`
        (orjson refuses them; an upstream's undecodable header byte holds one)."""
        try:
            text = dump_json(value)
        except ValueRefused:
            value = _storable_data(value)
            text = dump_json(value)  # a value JSON cannot hold at all is refused still
        redactor = self.redactor
        if text is None or redactor is None or not redactor.found(text):
            return text
        return dump_json(redactor.data(value))

    def text(self, value: str | None) -> str | None:
        """A text column, secrets replaced, `storable`."""
        if value is None:
            return None
        value = storable(value)
        return value if self.redactor is None else self.redactor.text(value)


def run_params(run: RunRecord, encode: Encoder) -> dict[str, Any]:
    """Query parameters of `insert_run`."""
    params = {name: getattr(run, name) for name in RUN_COLUMNS}
    for name in RUN_JSON_COLUMNS:
        params[name] = encode.json(params[name])
    params["error"] = encode.text(run.error)
    return params


def run_from_row(row: Row) -> RunRecord:
    """A `runs` row selected in field order."""
    (id_, flow, status, trigger, input_, flow_spec, created_at, retry_of, retry_count,
     step_index, bucket, error, started_at, finished_at, updated_at, redrive, variables,
     wake) = row
    return RunRecord(
        id=id_, flow=flow, status=status, trigger=trigger, input=load_json(input_),
        flow_spec=load_json(flow_spec), created_at=created_at, retry_of=retry_of,
        retry_count=retry_count, step_index=step_index, bucket=load_json(bucket), error=error,
        started_at=started_at, finished_at=finished_at, updated_at=updated_at, redrive=redrive,
        variables=load_json(variables), wake=wake,
    )


def step_params(step: StepRecord, encode: Encoder) -> dict[str, Any]:
    """Query parameters of `save_step`."""
    return {
        "run_id": step.run_id, "idx": step.index, "step_id": step.step_id,
        "status": step.status, "started_at": step.started_at, "finished_at": step.finished_at,
        "error": encode.text(step.error), "output": encode.json(step.output),
    }


def step_from_row(row: Row) -> StepRecord:
    """A `steps` row selected in field order."""
    run_id, idx, step_id, status, started_at, finished_at, error, output = row
    return StepRecord(run_id, idx, step_id, status, started_at, finished_at, error,
                      load_json(output))


def attempt_params(attempt: AttemptRecord, encode: Encoder) -> dict[str, Any]:
    """Query parameters of `save_attempt`."""
    params = {name: getattr(attempt, name) for name in _ATTEMPT_COLUMNS}
    params["request"] = encode.json(attempt.request)
    params["response"] = encode.json(attempt.response)
    params["output"] = encode.json(attempt.output)
    params["message"] = encode.text(attempt.message)
    params["error"] = encode.text(attempt.error)
    params["reauth"] = int(attempt.reauth)  # an INTEGER column on both backends
    return params


def attempt_from_row(row: Row) -> AttemptRecord:
    """An `attempts` row selected in field order."""
    (run_id, step_id, n, request, response, code, decision, created_at, message, wait_s, error,
     item, redrive, reauth, output, page) = row
    return AttemptRecord(run_id, step_id, n, load_json(request), load_json(response), code,
                         decision, created_at, message, wait_s, error, item, redrive,
                         bool(reauth), load_json(output), page)


def log_params(line: LogLine, encode: Encoder) -> dict[str, Any]:
    """Query parameters of `insert_log`."""
    params = {name: getattr(line, name) for name in _LOG_COLUMNS}
    params["message"] = encode.text(line.message)
    return params


def log_from_row(row: Row) -> LogLine:
    """A `logs` row selected in field order."""
    return LogLine(*row)


def item_from_row(row: Row, run: RunRecord | None = None) -> QueueItem:
    """A `queue` row selected in field order (and the run it names, if read with it)."""
    (id_, kind, payload, status, priority, run_at, attempts, created_at, updated_at,
     lease_owner, lease_expires_at, last_error, result) = row
    return QueueItem(id_, kind, load_json(payload), status, priority, run_at, attempts,
                     created_at, updated_at, lease_owner, lease_expires_at, last_error,
                     load_json(result), run)


#: how many columns of a row of `queue` joined with `runs` are the item's
_ITEM_COLUMNS = 13


def item_with_run_from_row(row: Row) -> QueueItem:
    """A `queue` row joined with the run its payload names (all NULL if none)."""
    run = row[_ITEM_COLUMNS:]
    return item_from_row(row[:_ITEM_COLUMNS], None if run[0] is None else run_from_row(run))


def named_runs(items: Sequence[QueueItem]) -> list[str]:
    """The run ids claimed items name in their payload (`run_id`)."""
    return [item.payload["run_id"] for item in items
            if isinstance(item.payload, dict) and isinstance(item.payload.get("run_id"), str)]


def with_runs(items: Sequence[QueueItem], rows: Sequence[Row]) -> list[QueueItem]:
    """`items`, each with the run its payload names (of `rows`, as SQLite's `claimed_runs`)."""
    runs = {run.id: run for run in map(run_from_row, rows)}
    return [replace(item, run=runs.get(str(item.payload.get("run_id"))))
            if isinstance(item.payload, dict) else item for item in items]


def session_from_row(row: Row) -> SessionRecord:
    """A `sessions` row."""
    id_, data, expires_at, principal = row
    return SessionRecord(id_, load_json(data), expires_at, principal)


def credential_from_row(row: Row) -> Credential:
    """A `credentials` row."""
    name, token, version, expires_at = row
    return Credential(name, load_json(token), version, expires_at)
