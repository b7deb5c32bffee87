"""Which store errors are outages (`StoreUnavailable`: the same request may work later) and
which are refusals (a plain `StoreError`: it will be refused again). A refusal taken for an
outage releases its queue item every 5 s for ever; an outage taken for a refusal fails a run
for good. The real servers' errors are in tests/integration/test_pg_commit.py and
test_store.py."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg_pool
import pytest

from interlink.errors import StoreError, StoreUnavailable, ValueRefused
from interlink.store._pg_commit import store_error
from interlink.store.sqlite import _store_error

OUTAGES = [
    psycopg.OperationalError("connection lost"),  # no SQLSTATE: the client's
    psycopg.InterfaceError("the connection is closed"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.CannotConnectNow("the database system is starting up"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
    psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    psycopg.errors.TooManyConnections("sorry, too many clients already"),
    psycopg.errors.DiskFull("could not extend file"),
    psycopg.errors.LockNotAvailable("could not obtain lock"),
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    OSError("Connection reset by peer"),
]
#: refused for a value: `ValueRefused` (a webhook's 422)
VALUES = [
    psycopg.errors.ProgramLimitExceeded("index row size exceeds btree maximum"),
    psycopg.errors.CharacterNotInRepertoire("invalid byte sequence for encoding"),
    psycopg.errors.NumericValueOutOfRange("value out of range for type bigint"),
    psycopg.DataError("a value psycopg cannot send"),
]
#: refused for something else, the server's (a 500)
REFUSALS = [
    psycopg.errors.UniqueViolation("duplicate key value"),
    psycopg.errors.UndefinedColumn("column does not exist"),
    psycopg.errors.InsufficientPrivilege("permission denied for table runs"),
    psycopg.errors.TransactionIntegrityConstraintViolation("deferred constraint"),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_postgresql_outages(exc: Exception) -> None:
    assert isinstance(store_error("writing to the store", exc), StoreUnavailable)


@pytest.mark.parametrize("exc", VALUES, ids=lambda e: type(e).__name__)
def test_postgresql_values_refused(exc: Exception) -> None:
    error = store_error("writing to the store", exc)
    assert type(error) is ValueRefused and error.__cause__ is exc


@pytest.mark.parametrize("exc", REFUSALS, ids=lambda e: type(e).__name__)
def test_postgresql_refusals(exc: Exception) -> None:
    error = store_error("writing to the store", exc)
    assert type(error) is StoreError and error.__cause__ is exc


def test_sqlite_closing_is_an_outage_a_constraint_a_refusal() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as constraint:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError) as closed:
        conn.execute("SELECT 1")
    assert type(_store_error("reading", constraint.value)) is StoreError
    assert isinstance(_store_error("reading", closed.value), StoreUnavailable)
