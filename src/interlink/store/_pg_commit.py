"""Group commit on PostgreSQL: concurrent `write()`s batched into one transaction.

Each `write()` is a *job* (its planned statements). One writer task takes every job pending,
sends all their statements in one transaction over one connection as a single query (no round
trip per statement), commits once — one WAL flush for the whole batch — then answers each
caller. As on SQLite, the batch first runs optimistically; if a job fails (`LeaseLost`,
`Conflict`, a constraint) the transaction is rolled back and the batch runs again with a
savepoint per job, so that job fails alone and the others commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from interlink.errors import StoreError, StoreUnavailable, ValueRefused
from interlink.store._plan import Statement

__all__ = ["GroupCommit", "store_error"]

log = logging.getLogger(__name__)

Planned = list[list[Statement]]
Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]


#: SQLSTATE classes and codes of errors the same request may get past later: connection
#: (08), transaction rollback — serialization, deadlock (40), insufficient resources — disk
#: full, too many connections (53), operator intervention — shutdown, crash, cancel (57),
#: system (58); a read-only server (a demoted primary during failover), an idle-transaction
#: timeout, a lock not available, an object in use.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_STATES = frozenset({"25006", "25P03", "55P03", "55006"})


def store_error(what: str, exc: BaseException) -> StoreError:
    """`exc` from psycopg as a `StoreError`: `StoreUnavailable` when the server, the network
    or the pool failed, so the same request may work later; a plain `StoreError` when the
    request itself was refused and will be refused again — `ValueRefused` when for a value
    (a data exception, a program limit such as a value too large).

    By SQLSTATE, not by psycopg's class: `OperationalError` also holds program limits (54),
    and a read-only server's refusal is an `InternalError`. An error with no SQLSTATE is the
    client's: a lost connection, a pool timeout (`InterfaceError`, `OperationalError`)."""
    state = getattr(exc, "sqlstate", None)
    kind: type[StoreError] = StoreError
    if isinstance(exc, OSError) or (
            state is None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))):
        kind = StoreUnavailable
    elif state is not None and state != "40002" and (
            state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES):
        kind = StoreUnavailable  # (40002: a constraint checked at commit, refused again)
    elif isinstance(exc, psycopg.DataError) or (state is not None and state[:2] in ("22", "54")):
        kind = ValueRefused  # data exception (22), program limit (54): the value's fault
    error = kind(f"{what}: {exc}")
    error.__cause__ = exc
    return error


#: a batch stops growing once its values reach this many characters (it holds at least one
#: job): it is one query, and 1,000 webhook bodies of `server.limits.max_body` would be GBs
MAX_BATCH_CHARS = 16 * 1024 * 1024


@dataclass(slots=True)
class _Job:
    planned: Planned
    future: asyncio.Future[list[Any]]
    #: the characters of its text values: what it adds to the batch's query, about
    size: int


class _JobFailed(Exception):
    """A job of an optimistic batch failed: run the batch again, each job isolated."""


class GroupCommit:
    """The writer: `await commit(planned)` returns the job's results once it committed."""

    def __init__(self, connect: Connect, *, max_batch: int = 1000,
                 max_chars: int = MAX_BATCH_CHARS) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._max_chars = max_chars
        self._pending: list[_Job] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._prepared = _Prepared()
        self.commits = 0
        """Transactions committed; with group commit far fewer than writes."""
        self.jobs = 0
        """Writes committed (or refused)."""

    def start(self) -> None:
        """Start the writer task (on the running loop)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="interlink-store-commit")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None

    async def commit(self, planned: Planned) -> list[Any]:
        """Apply one write's statements in the next batch; its result per op."""
        if self._task is None:
            raise StoreUnavailable("writing to the store: the store is not open")
        job = _Job(planned, asyncio.get_running_loop().create_future(), _size(planned))
        self._pending.append(job)
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._next_batch()
                del self._pending[:len(batch)]
                await self._batch(batch)
            if self._stopping:
                return

    def _next_batch(self) -> list[_Job]:
        """The pending jobs, in order, up to `max_batch` of them and `max_chars` (at least
        one)."""
        chars = 0
        for n, job in enumerate(self._pending[:self._max_batch]):
            chars += job.size
            if chars > self._max_chars and n > 0:
                return self._pending[:n]
        return self._pending[:self._max_batch]

    async def _batch(self, batch: list[_Job]) -> None:
        try:
            async with self._connect() as conn:
                try:
                    outcomes = await _optimistic(conn, batch, self._prepared)
                except _JobFailed:
                    outcomes = await _isolated(conn, batch)
        except (psycopg.Error, OSError) as exc:  # the connection or the server failed
            outcomes = [store_error("writing to the store", exc)] * len(batch)
        except asyncio.CancelledError:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(StoreUnavailable("writing to the store: it closed"))
            raise
        except Exception as exc:  # a bug: its callers see it, later batches still commit
            log.exception("the store's group commit failed")
            outcomes = [exc] * len(batch)
        self.commits += 1
        self.jobs += len(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done():
                continue  # its caller was cancelled; the write may still have committed
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)


async def _optimistic(conn: psycopg.AsyncConnection[Any], batch: list[_Job],
                      prepared: _Prepared) -> list[Any]:
    """Every job's statements in one transaction, sent as one query; `_JobFailed` if one
    fails.

    psycopg's pipeline mode costs ~28 µs of Python a statement (a cursor, a conversion and a
    socket wait each; measured with 100-statement transactions). Instead each statement is an
    `EXECUTE` of a statement prepared once a connection, its values bound client-side
    (psycopg's quoting, as `ClientCursor` does), all joined after `BEGIN` into one simple
    query: one message and one wait for the whole batch, ~9 µs a statement, and no parsing
    or planning on the server. The row counts are checked before `COMMIT`."""
    binder = psycopg.AsyncClientCursor(conn)
    texts = ["BEGIN"]
    sent: list[Statement] = []
    cur = conn.cursor()
    counts: list[int] = []
    try:
        # Inside the try: a value psycopg cannot bind (a NUL in a text) fails its job alone,
        # in the isolated run, not every job of the batch.
        for job in batch:
            for statements in job.planned:
                for statement in statements:
                    call = await prepared.call(conn, statement.sql)
                    for params in _rows_of(statement):
                        texts.append(binder.mogrify(call, params))
                        sent.append(statement)
        # A newline before each `;`: a statement may end in a `--` comment.
        await cur.execute("\n;\n".join(texts))
        while cur.nextset():
            counts.append(cur.rowcount)
        if any(s.must_change is not None and n != 1 for s, n in zip(sent, counts, strict=True)):
            await conn.execute("ROLLBACK")
            raise _JobFailed
        await conn.execute("COMMIT")
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.errors.InvalidSqlStatementName):
            prepared.forget(conn)  # someone ran DISCARD ALL / DEALLOCATE ALL: prepare again
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise _JobFailed from exc
    results: list[Any] = []
    changed = iter(counts)
    for job in batch:
        job_results = []
        for statements in job.planned:
            result = None
            for statement in statements:
                rows = sum(next(changed) for _ in _rows_of(statement))
                if statement.found:
                    result = rows > 0
            job_results.append(result)
        results.append(job_results)
    return results


def _size(planned: Planned) -> int:
    """The characters of the text values of a job's statements (JSON columns are text by
    now): what its part of the query is, give or take its SQL."""
    return sum(len(value) for statements in planned for statement in statements
               for params in _rows_of(statement) for value in params.values()
               if isinstance(value, str))


def _rows_of(statement: Statement) -> list[dict[str, Any]]:
    """The parameter sets of a statement: one, or one a row for a `many` one."""
    if statement.many:
        assert isinstance(statement.params, list)
        return statement.params
    assert isinstance(statement.params, dict)
    return [statement.params]


class _Prepared:
    """The statements prepared on each connection of the pool, by SQL text.

    `call(conn, sql)` gives what to send for `sql` on `conn`: `EXECUTE name(%(a)s, …)` once
    `sql` is prepared there (it is, the first time), or `sql` itself if PostgreSQL could not
    infer its parameters' types (it is then parsed each time, which costs only speed)."""

    def __init__(self) -> None:
        self._names: dict[str, str | None] = {}  # SQL → prepared statement name, or None
        self._calls: dict[str, str] = {}  # SQL → its EXECUTE, with named placeholders
        self._done: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], set[str]] = \
            weakref.WeakKeyDictionary()

    def forget(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """`conn` lost its prepared statements: prepare each again when next used there."""
        self._done.pop(conn, None)

    async def call(self, conn: psycopg.AsyncConnection[Any], sql: str) -> str:
        name = self._names.get(sql, "")
        if name is None:
            return sql
        done = self._done.setdefault(conn, set())
        if name in done:
            return self._calls[sql]
        if not name:
            name = self._names[sql] = f"interlink_{len(self._names)}"
        numbered, order = _numbered(sql)
        try:
            await conn.execute(f"PREPARE {name} AS {numbered}")
        except psycopg.OperationalError:
            raise  # the connection, not the statement
        except psycopg.Error:
            self._names[sql] = None
            return sql
        done.add(name)
        args = ", ".join(f"%({param})s" for param in order)
        self._calls[sql] = f"EXECUTE {name}({args})" if order else f"EXECUTE {name}"
        return self._calls[sql]


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _numbered(sql: str) -> tuple[str, list[str]]:
    """`sql` with `%(name)s` placeholders as `$1`, `$2`…, and the names in that order."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        param = match.group(1)
        if param not in order:
            order.append(param)
        return f"${order.index(param) + 1}"

    return _PLACEHOLDER.sub(number, sql), order


async def _isolated(conn: psycopg.AsyncConnection[Any], batch: list[_Job]) -> list[Any]:
    """Each job in a savepoint of one transaction: a failing one rolls back alone."""
    outcomes: list[Any] = []
    async with conn.transaction():
        for job in batch:
            try:
                async with conn.transaction(), conn.cursor() as cur:  # a savepoint
                    outcomes.append(await _apply(cur, job.planned))
            except psycopg.Error as exc:
                outcomes.append(store_error("writing to the store", exc))
            except StoreError as exc:  # LeaseLost, Conflict
                outcomes.append(exc)
    return outcomes


async def _apply(cur: psycopg.AsyncCursor[Any], planned: Planned) -> list[Any]:
    results: list[Any] = []
    for statements in planned:
        result = None
        for statement in statements:
            if statement.many:
                assert isinstance(statement.params, list)
                await cur.executemany(statement.sql, statement.params)
            else:
                await cur.execute(statement.sql, statement.params)
            if statement.must_change is not None and cur.rowcount != 1:
                raise statement.must_change
            if statement.found:
                result = cur.rowcount > 0
        results.append(result)
    return results
