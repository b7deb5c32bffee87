"""The durable store: runs, steps, attempts, logs, queue, sessions, credentials, locks
and nonces.

One interface (`Store`, in `base.py`; what it keeps in `records.py`, how it is changed in
`ops.py`) with two backends chosen by URL:

- `sqlite:///relative/path.db` (relative to the project folder) or `sqlite:////abs/path.db`:
  the embedded default, `SqliteStore`. Query options: `synchronous=normal|full`.
- `postgresql://…` or `postgres://…`: `PostgresStore`, shared by many processes and machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast
from urllib.parse import parse_qs, urlsplit

from interlink.errors import StoreError
from interlink.store.base import Store
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
from interlink.store.records import (
    ENDED,
    RUN_STATUSES,
    UNKNOWN_DECISION,
    AttemptOutcome,
    AttemptRecord,
    Credential,
    LogLine,
    QueueItem,
    QueueStatus,
    RunPage,
    RunQuery,
    RunRecord,
    RunStatus,
    SessionRecord,
    StepRecord,
)

__all__ = [
    "ENDED",
    "RUN_STATUSES",
    "UNKNOWN_DECISION",
    "AttemptOutcome",
    "AttemptRecord",
    "Complete",
    "Credential",
    "DeleteSession",
    "Enqueue",
    "Fail",
    "HoldLease",
    "InsertLogs",
    "InsertRun",
    "LogLine",
    "MarkSeen",
    "PutCache",
    "PutCredential",
    "PutSession",
    "QueueItem",
    "QueueStatus",
    "RecordNonce",
    "Release",
    "Requeue",
    "RunPage",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "SaveAttempt",
    "SaveStep",
    "SessionRecord",
    "StepRecord",
    "Store",
    "UpdateRun",
    "Wake",
    "WriteOp",
    "backend_of",
    "open_store",
]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def backend_of(url: str) -> Literal["postgres", "sqlite"]:
    """Which backend the store `url` names, read from its scheme alone (nothing is opened)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    # The scheme alone: the rest of a URL may hold a password.
    raise StoreError(f"opening the store: unknown scheme {scheme[:20]!r} "
                     "(use sqlite:/// or postgresql://)")


def open_store(url: str, base_dir: Path) -> Store:
    """The store `url` names (not yet opened: `await store.open()` or `async with`).

    A relative SQLite path is resolved against `base_dir` (the project folder).
    """
    if backend_of(url) == "postgres":
        from interlink.store.postgres import PostgresStore

        return PostgresStore(url)
    return _sqlite_store(url, base_dir)


def _sqlite_store(url: str, base_dir: Path) -> Store:
    from interlink.store.sqlite import SqliteStore, Synchronous

    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.path in ("/", "/:memory:"):
        raise StoreError(
            f"opening the store {url!r}: expected sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    raw = parts.path[1:]  # sqlite:///a.db → "a.db"; sqlite:////abs/a.db → "/abs/a.db"
    path = Path(raw) if raw.startswith("/") else Path(base_dir) / raw
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    synchronous = options.pop("synchronous", "NORMAL").upper()
    if synchronous not in _SYNCHRONOUS:
        raise StoreError(f"opening the store {url!r}: synchronous must be normal or full")
    if options:
        raise StoreError(f"opening the store {url!r}: unknown options {sorted(options)}")
    return SqliteStore(path, synchronous=cast(Synchronous, synchronous))
