"""PostgreSQL's group commit sends prepared statements: each is prepared once a connection,
and one PostgreSQL cannot prepare is sent as it is."""

from __future__ import annotations

import psycopg
import pytest

from interlink.store._pg_commit import _numbered, _Prepared


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
