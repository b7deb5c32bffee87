"""`SqliteStore`: the embedded default store, one SQLite file in WAL mode.

Writes go through one writer thread per process that commits in groups: every `write()` call
(and every claim, lease renewal and lock) becomes a job on a queue; the writer takes all pending
jobs, runs them in one `BEGIN IMMEDIATE` transaction, commits once, then resolves each
caller's future. The batch runs without savepoints (a job rarely fails); when one fails
(`LeaseLost`, `Conflict`, a constraint) the batch runs again with a SAVEPOINT per job, so that
job rolls back alone. One commit then carries hundreds of callers' writes. Reads use their own
connection on their own thread and never wait for the writer (WAL readers see the last commit).

Other processes may use the same file: `BEGIN IMMEDIATE` (with a busy timeout) serialises
writers across processes, which makes claims exclusive. Work enqueued by this process wakes
`wait_for_work()` at once; work from other processes is noticed by polling `PRAGMA data_version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from interlink.errors import StoreError, StoreUnavailable, ValueRefused
from interlink.redaction import Redactor
from interlink.store import _listing, _rows
from interlink.store._plan import Planner, Statement, wakes_workers
from interlink.store._reads import NamedQueryReads
from interlink.store._sqlfiles import load_migrations, load_queries
from interlink.store.ops import WriteOp
from interlink.store.records import QueueItem

__all__ = ["SqliteStore", "Synchronous"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")
JobFn = Callable[[sqlite3.Connection, float], Any]


@dataclass(slots=True)
class _Job:
    fn: JobFn
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    wakes: bool


class _JobFailed(Exception):
    """A job of an optimistic (savepoint-less) batch failed: run the batch again, isolated."""


#: SQLite's primary result codes that say the database, not the request, failed: busy or
#: locked by another process, out of memory, I/O error, disk full, cannot open, read-only.
_TRANSIENT = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
#: primary result codes of a value SQLite cannot hold: too big, of the wrong type, out of range
_VALUE = frozenset({18, 20, 25})


def _store_error(what: str, exc: sqlite3.Error) -> StoreError:
    """`exc` as a `StoreUnavailable` when the same request may work later, else a
    `StoreError` (the request itself was refused: a constraint; `ValueRefused`: a value)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    kind: type[StoreError] = StoreError
    # A read racing close() meets the module's "closed database" (no SQLite code): the
    # store is closing, which the next process or the reopened store gets past.
    if primary in _TRANSIENT or (
            isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc)):
        kind = StoreUnavailable
    elif primary in _VALUE or isinstance(exc, sqlite3.DataError):
        kind = ValueRefused
    error = kind(f"{what}: {exc}")
    error.__cause__ = exc
    return error


def _placeholder(name: str) -> str:
    return f":{name}"


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL, waiting for a process that holds the file while it migrates a new one:
    SQLite answers this pragma "database is locked" at once, without its busy timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _script_statements(script: str) -> Iterator[str]:
    """Split a migration into statements (`executescript` would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""


class SqliteStore(NamedQueryReads):
    """The durable store in one SQLite file, shared safely by several processes."""

    dialect = _listing.SQLITE

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        max_batch: int = 2000,
        poll_interval_s: float = 0.1,
    ) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self.max_batch = max_batch
        self.poll_interval_s = poll_interval_s
        self.commits = 0
        """Transactions committed by the writer; with group commit far fewer than writes."""
        self.jobs = 0
        """Jobs (`write()` calls, claims, …) the writer has run."""
        self._queries = load_queries("sqlite")
        self._planner = Planner(self._queries, _placeholder)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None,
            check_same_thread=False, cached_statements=256,
        )
        _enable_wal(conn, self.busy_timeout_s)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -32000")
        return conn

    async def open(self) -> None:
        """Create the file if needed, apply migrations, start the writer thread."""
        self._loop = asyncio.get_running_loop()
        self._work = asyncio.Event()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_conn = await asyncio.to_thread(self._connect_and_migrate)
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="interlink-store-read")
            self._read_conn = await self._loop.run_in_executor(self._reader, self._connect)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"opening the store {self.path}: {exc}") from exc
        self._writer = threading.Thread(
            target=self._write_loop, args=(write_conn,), name="interlink-store-writer",
            daemon=True,
        )
        self._writer.start()

    async def close(self) -> None:
        """Let the writer finish every queued job, then close both connections."""
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            read_conn = self._read_conn
            if read_conn is not None:
                await asyncio.get_running_loop().run_in_executor(self._reader, read_conn.close)
            self._reader.shutdown(wait=True)
            self._reader = None
            self._read_conn = None

    def _connect_and_migrate(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            # IMMEDIATE: a second process opening at the same time waits, then sees our work.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL "
                "PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in load_migrations("sqlite"):
                if migration.version in applied:
                    continue
                for statement in _script_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn

    # --- the writer ------------------------------------------------------------------------

    async def _submit(self, fn: JobFn, *, wakes: bool = False) -> Any:
        if self._writer is None:
            raise StoreUnavailable(f"writing to the store {self.path}: the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop, wakes))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    batch.append(more)
                self._run_batch(conn, batch)
                if stopping:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        # Optimistic: the batch runs as one transaction with no savepoints (a job rarely
        # fails); only when one does is it run again with a savepoint per job, so the failing
        # job rolls back alone and the others still commit.
        try:
            outcomes = self._transaction(conn, batch, isolate=False)
        except _JobFailed:
            outcomes = self._transaction(conn, batch, isolate=True)
        self.jobs += len(batch)
        self._deliver(batch, outcomes)

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Job],
                     *, isolate: bool) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            for job in batch:
                if isolate:
                    conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn, now)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise  # the whole transaction is gone (disk full, I/O error)
                    if not isolate:
                        raise _JobFailed from exc
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((False, self._store_error(exc)))
                else:
                    if isolate:
                        conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
            self.commits += 1
        except _JobFailed:
            conn.execute("ROLLBACK")
            raise
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self._store_error(exc)
            outcomes = [(False, error)] * len(batch)
        return outcomes

    def _store_error(self, exc: Exception) -> Exception:
        if isinstance(exc, OverflowError):  # an int past 64 bits, refused by the module
            return ValueRefused(f"writing to the store {self.path}: {exc}")
        if not isinstance(exc, sqlite3.Error):
            return exc  # LeaseLost, StoreError, or a bug that should surface as itself
        return _store_error(f"writing to the store {self.path}", exc)

    def _deliver(self, batch: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, tuple[bool, Any]]]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job, outcome))
        wake = any(ok and job.wakes for job, (ok, _) in zip(batch, outcomes, strict=True))
        for loop, pairs in by_loop.items():
            # RuntimeError: that caller's loop is closed; nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, pairs)
        if wake and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._work.set)

    # --- writes ----------------------------------------------------------------------------

    def redact_with(self, redactor: Redactor | None) -> None:
        """Redact what `redactor` knows from every later write; see `Store.redact_with`."""
        self._planner.set_redactor(redactor)

    async def write(self, *ops: WriteOp) -> list[Any]:
        """Apply `ops` atomically in the next group commit; see `Store.write`."""
        now = time.time()
        planned = [self._planner.plan(op, now) for op in ops]
        return await self._submit(  # type: ignore[no-any-return]
            lambda conn, _now: _apply(conn, planned),
            wakes=any(wakes_workers(op) for op in ops),
        )

    async def claim(
        self, owner: str, *, limit: int = 1, lease_s: float = 30.0,
        kinds: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        """Lease up to `limit` due items; see `Store.claim`."""
        query = self._queries["claim"]
        kinds_json = None if kinds is None else orjson.dumps(list(kinds)).decode()

        runs_query = self._queries["claimed_runs"]

        def claim(conn: sqlite3.Connection, now: float) -> list[QueueItem]:
            rows = conn.execute(query, {
                "owner": owner, "now": now, "expires_at": now + lease_s, "limit": limit,
                "kinds": kinds_json,
            }).fetchall()
            items = [_rows.item_from_row(row) for row in rows]
            named = _rows.named_runs(items)
            if named:
                found = conn.execute(runs_query, {"ids": orjson.dumps(named).decode()})
                items = _rows.with_runs(items, found.fetchall())
            return _claim_order(items)

        return await self._submit(claim)  # type: ignore[no-any-return]

    async def extend_leases(self, owner: str, item_ids: Sequence[str], lease_s: float) -> set[str]:
        """Renew leases still held by `owner`; see `Store.extend_leases`."""
        query = self._queries["extend_leases"]
        ids_json = orjson.dumps(list(item_ids)).decode()

        def extend(conn: sqlite3.Connection, now: float) -> set[str]:
            params = {"owner": owner, "ids": ids_json, "now": now, "expires_at": now + lease_s}
            return {row[0] for row in conn.execute(query, params).fetchall()}

        return await self._submit(extend)  # type: ignore[no-any-return]

    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the named lock if it is free, expired or already ours."""
        query = self._queries["try_lock"]

        def lock(conn: sqlite3.Connection, now: float) -> bool:
            params = {"name": name, "owner": owner, "now": now, "expires_at": now + ttl_s}
            return bool(conn.execute(query, params).fetchall())

        return await self._submit(lock)  # type: ignore[no-any-return]

    async def lock_owners(self, prefix: str) -> list[str]:
        """The owners of the unexpired locks whose name starts with `prefix`."""
        rows = await self._fetch("lock_owners", {"prefix": prefix, "now": time.time()})
        return [row[0] for row in rows]

    async def unlock(self, name: str, owner: str) -> None:
        """Release the named lock if `owner` holds it."""
        query = self._queries["unlock"]

        def unlock(conn: sqlite3.Connection, _now: float) -> None:
            conn.execute(query, {"name": name, "owner": owner})

        await self._submit(unlock)

    async def _purge_batch(self, name: str, params: dict[str, Any]) -> int:
        query = self._queries[name]
        if "statuses" in params:
            params = {**params, "statuses": orjson.dumps(params["statuses"]).decode()}

        def batch(conn: sqlite3.Connection, _now: float) -> int:
            cursor = conn.execute(query, params)
            if name != "purge_runs":
                return int(cursor.rowcount)
            # The runs' own rows go in the same job: no reader sees a run without its steps.
            ids = [row[0] for row in cursor]
            if ids:
                listed = {"ids": orjson.dumps(ids).decode()}
                for rows in _RUN_ROWS:
                    conn.execute(self._queries[rows], listed)
            return len(ids)

        deleted: int = await self._submit(batch)
        return deleted

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (Store's API)
        """Return on a local enqueue/release, on any commit by another process, or at timeout."""
        if self._work.is_set():
            self._work.clear()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        version, commits = await self._read(_data_version), self.commits
        while (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._work.wait(), min(remaining, self.poll_interval_s))
            except TimeoutError:
                now_version = await self._read(_data_version)
                if now_version == version:
                    continue
                # The read connection sees this process's own commits as changes too: when
                # ours may explain it, return only if a claim would find something.
                if self.commits == commits or await self._claimable():
                    return
                version, commits = now_version, self.commits
            else:
                self._work.clear()
                return

    async def _claimable(self) -> bool:
        rows = await self._fetch("claimable", {"now": time.time()})
        return bool(rows[0][0])

    # --- reads -----------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None or self._read_conn is None:
            raise StoreUnavailable(f"reading the store {self.path}: the store is not open")
        conn = self._read_conn
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)
        except sqlite3.Error as exc:
            raise _store_error(f"reading the store {self.path}", exc) from exc

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[Any]:
        return await self._select(self._queries[name], params)

    async def _select(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return await self._read(lambda conn: conn.execute(sql, params).fetchall())


#: the queries deleting a purged run's steps, attempts and log lines (`purge_runs`)
_RUN_ROWS = ("purge_run_steps", "purge_run_attempts", "purge_run_logs")


def _apply(conn: sqlite3.Connection, planned: list[list[Statement]]) -> list[Any]:
    results: list[Any] = []
    for statements in planned:
        result = None
        for statement in statements:
            if statement.many:
                assert isinstance(statement.params, list)
                cursor = conn.executemany(statement.sql, statement.params)
            else:
                cursor = conn.execute(statement.sql, statement.params)
            if statement.must_change is not None and cursor.rowcount != 1:
                raise statement.must_change
            if statement.found:
                result = cursor.rowcount > 0
        results.append(result)
    return results


def _claim_order(items: list[QueueItem]) -> list[QueueItem]:
    # RETURNING gives rows in no promised order.
    return sorted(items, key=lambda item: (-item.priority, item.run_at, item.id))


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _resolve(pairs: list[tuple[_Job, tuple[bool, Any]]]) -> None:
    for job, (ok, value) in pairs:
        if job.future.done():
            continue  # the caller was cancelled; its write may still have been committed
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
