"""`PostgresStore`: every table on PostgreSQL, shared by any number of processes and machines.

Concurrent `write()`s are batched into one transaction sent as one query (group commit,
`_pg_commit.py`), so many writers share one WAL flush. Claims lock their rows with
`FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on, or take, each other's items.
A trigger sends `NOTIFY interlink_queue` whenever an item becomes ready (delivered at commit);
one listening connection per store turns notifications into a wake-up of `wait_for_work()`.
Migrations run under an advisory lock, so processes opening at once apply them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from interlink.errors import StoreError, StoreUnavailable
from interlink.redaction import Redactor
from interlink.store import _listing, _rows
from interlink.store._pg_commit import GroupCommit, store_error
from interlink.store._plan import Planner
from interlink.store._reads import NamedQueryReads
from interlink.store._sqlfiles import load_migrations, load_queries
from interlink.store.ops import WriteOp
from interlink.store.records import QueueItem

__all__ = ["CHANNEL", "PostgresStore"]

CHANNEL = "interlink_queue"
"""The NOTIFY channel that announces claimable work."""

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
#: longest wait for a pooled connection (while the server is away, each read or write fails
#: after this: a webhook is answered 503 rather than held for psycopg's default of 30 s)
CONNECTION_WAIT_S = 5.0
_MIGRATION_LOCK = 0x1A7E_2C01  # pg_advisory_lock key: "interlink migrations"


def _placeholder(name: str) -> str:
    return f"%({name})s"


class PostgresStore(NamedQueryReads):
    """The durable store on a PostgreSQL database (psycopg 3, async, pooled)."""

    dialect = _listing.POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._queries = load_queries("postgres")
        self._planner = Planner(self._queries, _placeholder)
        self._commit = GroupCommit(self._connection)
        self._pool: AsyncConnectionPool | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._work = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the pool, apply migrations, start listening for work notifications."""
        self._work = asyncio.Event()
        self._listening = asyncio.Event()
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self.url, min_size=self.min_size, max_size=self.max_size, open=False,
            kwargs={"autocommit": True}, name="interlink-store",
            timeout=CONNECTION_WAIT_S,
        )
        try:
            await pool.open(wait=True, timeout=30.0)
            self._pool = pool
            await self._migrate()
        except (psycopg.Error, TimeoutError) as exc:
            await pool.close()
            self._pool = None
            raise StoreError(f"opening the store {self._redacted()}: {exc}") from exc
        self._commit = GroupCommit(self._connection)
        self._commit.start()
        self._listener = asyncio.create_task(self._listen(), name="interlink-store-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10.0)

    async def close(self) -> None:
        """Commit what is pending, stop listening and close every connection."""
        await self._commit.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _redacted(self) -> str:
        # Never put a password in an error message.
        return _PASSWORD.sub(r"\1***@", self.url)

    async def _migrate(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL "
                    "PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                cursor = await conn.execute("SELECT version FROM schema_migrations")
                applied = {row[0] for row in await cursor.fetchall()}
                for migration in load_migrations("postgres"):
                    if migration.version in applied:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) "
                            "VALUES (%s, %s, %s)",
                            (migration.version, migration.name, time.time()),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Work may have arrived while we were not listening.
                    self._work.set()
                    self._listening.set()
                    async for _ in conn.notifies():
                        self._work.set()
            except psycopg.Error:
                await asyncio.sleep(1.0)  # the server went away; wait_for_work keeps polling

    def _connection(self) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise StoreUnavailable(f"using the store {self._redacted()}: the store is not open")
        return self._pool.connection()

    # --- writes ----------------------------------------------------------------------------

    def redact_with(self, redactor: Redactor | None) -> None:
        """Redact what `redactor` knows from every later write; see `Store.redact_with`."""
        self._planner.set_redactor(redactor)

    @property
    def commits(self) -> int:
        """Transactions the group commit made (far fewer than writes)."""
        return self._commit.commits

    @property
    def jobs(self) -> int:
        """Writes the group commit applied."""
        return self._commit.jobs

    async def write(self, *ops: WriteOp) -> list[Any]:
        """Apply `ops` atomically in the next group commit; see `Store.write`."""
        now = time.time()
        return await self._commit.commit([self._planner.plan(op, now) for op in ops])

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return await self._select(self._queries[name], params, name)

    async def _select(self, sql: str, params: dict[str, Any],
                      name: str = "listing") -> list[tuple[Any, ...]]:
        try:
            async with self._connection() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall()
        except psycopg.Error as exc:
            raise store_error(f"querying the store ({name})", exc) from exc

    async def claim(
        self, owner: str, *, limit: int = 1, lease_s: float = 30.0,
        kinds: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        """Lease up to `limit` due items; see `Store.claim`."""
        now = time.time()
        rows = await self._fetch("claim", {
            "owner": owner, "now": now, "expires_at": now + lease_s, "limit": limit,
            "kinds": None if kinds is None else list(kinds),
        })
        items = [_rows.item_with_run_from_row(row) for row in rows]
        return sorted(items, key=lambda item: (-item.priority, item.run_at, item.id))

    async def extend_leases(self, owner: str, item_ids: Sequence[str], lease_s: float) -> set[str]:
        """Renew leases still held by `owner`; see `Store.extend_leases`."""
        now = time.time()
        rows = await self._fetch("extend_leases", {
            "owner": owner, "ids": list(item_ids), "now": now, "expires_at": now + lease_s,
        })
        return {row[0] for row in rows}

    async def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the named lock if it is free, expired or already ours."""
        now = time.time()
        rows = await self._fetch("try_lock", {
            "name": name, "owner": owner, "now": now, "expires_at": now + ttl_s,
        })
        return bool(rows)

    async def lock_owners(self, prefix: str) -> list[str]:
        """The owners of the unexpired locks whose name starts with `prefix`."""
        rows = await self._fetch("lock_owners", {"prefix": prefix, "now": time.time()})
        return [row[0] for row in rows]

    async def unlock(self, name: str, owner: str) -> None:
        """Release the named lock if `owner` holds it."""
        await self._execute("unlock", {"name": name, "owner": owner})

    async def _execute(self, name: str, params: dict[str, Any]) -> int:
        try:
            async with self._connection() as conn:
                cursor = await conn.execute(self._queries[name], params)
                return cursor.rowcount
        except psycopg.Error as exc:
            raise store_error(f"writing to the store ({name})", exc) from exc

    async def _purge_batch(self, name: str, params: dict[str, Any]) -> int:
        return await self._execute(name, params)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 (Store's API)
        """Return on a NOTIFY for the queue (from any process), or after `timeout`."""
        if not self._work.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # --- reads -----------------------------------------------------------------------------
