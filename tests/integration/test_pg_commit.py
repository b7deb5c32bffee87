"""PostgreSQL's group commit sends prepared statements: each is prepared once a connection,
one PostgreSQL cannot prepare is sent as it is, statements a connection lost are prepared
again; a lost connection is `StoreUnavailable`; the writer outlives a bug."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import string
from typing import Any

import psycopg
import pytest
from tests.integration.test_store import a_run

from interlink.errors import StoreError, StoreUnavailable
from interlink.store import InsertRun, _pg_commit
from interlink.store._pg_commit import _numbered, _Prepared
from interlink.store.postgres import PostgresStore


def test_placeholders_are_numbered_once_a_name() -> None:
    """A name used twice is one parameter; the EXECUTE passes each name once, in order."""
    assert _numbered("UPDATE t SET a = %(a)s, b = %(b)s WHERE a <> %(a)s") == (
        "UPDATE t SET a = $1, b = $2 WHERE a <> $1", ["a", "b"])
    assert _numbered("DELETE FROM t") == ("DELETE FROM t", [])


@pytest.mark.postgres
async def test_a_statement_is_prepared_once_a_connection(postgres_url: str) -> None:
    prepared = _Prepared()
    sql = "SELECT %(a)s::integer + %(b)s::integer + %(a)s::integer"
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as one, \
            await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as two:
        call = await prepared.call(one, sql)
        assert call == "EXECUTE interlink_0(%(a)s, %(b)s)"
        assert await prepared.call(one, sql) == call
        assert await prepared.call(two, sql) == call  # prepared there too, same name
        for conn in (one, two):
            cursor = psycopg.AsyncClientCursor(conn)
            await cursor.execute(call, {"a": 1, "b": 10})
            assert await cursor.fetchall() == [(12,)]
            names = await (await conn.execute("SELECT name FROM pg_prepared_statements")) \
                .fetchall()
            assert names == [("interlink_0",)]


@pytest.mark.postgres
async def test_a_statement_postgresql_cannot_prepare_is_sent_as_it_is(postgres_url: str) -> None:
    """`$1 + $2` of unknown types cannot be prepared; the statement then goes unprepared."""
    prepared = _Prepared()
    sql = "SELECT %(a)s + %(b)s"
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        assert await prepared.call(conn, sql) == sql
        assert await prepared.call(conn, sql) == sql  # not tried again
        cursor = psycopg.AsyncClientCursor(conn)
        await cursor.execute(await prepared.call(conn, sql), {"a": 1, "b": 2})
        assert await cursor.fetchall() == [(3,)]


def one_connection_store(postgres_url: str) -> PostgresStore:
    """A store whose writes and reads all go through one pooled connection."""
    return PostgresStore(postgres_url, min_size=1, max_size=1)


@pytest.mark.postgres
async def test_statements_the_connection_lost_are_prepared_again(postgres_url: str) -> None:
    """Someone ran `DEALLOCATE ALL` on the store's connection (a pooler resetting it): the next
    batch still commits (unprepared), and the one after is prepared again, not unprepared for
    good."""
    async with one_connection_store(postgres_url) as store:
        await store.write(InsertRun(a_run("r1")))
        async with store._connection() as conn:
            await conn.execute("DEALLOCATE ALL")
        await store.write(InsertRun(a_run("r2")))
        await store.write(InsertRun(a_run("r3")))
        async with store._connection() as conn:
            names = await (await conn.execute("SELECT name FROM pg_prepared_statements")) \
                .fetchall()
        assert {r.id for r in await store.list_runs()} == {"r1", "r2", "r3"}
    assert names


@pytest.mark.postgres
async def test_a_lost_connection_is_unavailable_then_replaced(postgres_url: str) -> None:
    """The server ended the store's connection (a restart, a failover): the write in flight
    fails as `StoreUnavailable` (worth trying again) and the next one commits on a new
    connection."""
    async with one_connection_store(postgres_url) as store:
        await store.write(InsertRun(a_run("r1")))
        async with store._connection() as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone() or [0])[0]
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable):
            await store.write(InsertRun(a_run("r2")))
        assert await store.write(InsertRun(a_run("r2"))) == [None]


@pytest.mark.postgres
async def test_a_read_only_server_is_unavailable_a_program_limit_is_refused(
    postgres_url: str
) -> None:
    """By SQLSTATE, not psycopg's class: a primary demoted to read-only in a failover
    (25006, an `InternalError`) is an outage worth waiting out; a value too large for an
    index (54000, an `OperationalError`) is refused for good — else a worker would release
    its item every 5 s for ever."""
    async with one_connection_store(postgres_url) as store:
        async with store._connection() as conn:
            await conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.write(InsertRun(a_run("r1")))
        async with store._connection() as conn:
            await conn.execute("SET default_transaction_read_only = off")
        huge = "".join(random.Random(5).choices(string.ascii_letters, k=20_000))
        with pytest.raises(StoreError, match="index row") as refused:
            await store.write(InsertRun(a_run("r2", flow=huge)))
        assert not isinstance(refused.value, StoreUnavailable)
        assert await store.write(InsertRun(a_run("r3"))) == [None]


@pytest.mark.postgres
async def test_the_writer_outlives_a_bug_in_one_batch(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception while committing a batch reaches that batch's callers; the
    writer goes on, so later writes do not hang."""
    real = _pg_commit._optimistic
    calls = 0

    async def buggy(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await real(*args)

    monkeypatch.setattr(_pg_commit, "_optimistic", buggy)
    async with one_connection_store(postgres_url) as store:
        with pytest.raises(RuntimeError, match="a bug"):
            await asyncio.wait_for(store.write(InsertRun(a_run("r1"))), 10)
        assert await asyncio.wait_for(store.write(InsertRun(a_run("r2"))), 10) == [None]


@pytest.mark.postgres
async def test_a_batch_stops_growing_at_its_size_cap(postgres_url: str) -> None:
    """Ten concurrent writes of 4,000-character inputs under a 10,000-character cap commit two
    at a time, in their order, all of them: one query never holds every pending body."""
    async with PostgresStore(postgres_url) as store:
        store._commit._max_chars = 10_000
        commits = store._commit.commits
        runs = [dataclasses.replace(a_run(f"big-{n}"), input={"text": "x" * 4000})
                for n in range(10)]
        await asyncio.gather(*(store.write(InsertRun(run)) for run in runs))
        assert store._commit.commits - commits == 5
        for run in runs:
            stored = await store.get_run(run.id)
            assert stored is not None and stored.input == run.input
