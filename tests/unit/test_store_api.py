"""The store package's public names, URL parsing and named-query files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import interlink.store
from interlink.errors import StoreError
from interlink.store import open_store
from interlink.store._sqlfiles import load_migrations, load_queries
from interlink.store.postgres import PostgresStore
from interlink.store.sqlite import SqliteStore


def test_exported_members() -> None:
    """`__all__` lists exactly the public API (locked so changes are deliberate)."""
    assert set(interlink.store.__all__) == {
        "AttemptOutcome", "AttemptRecord", "Complete", "Credential", "DeleteSession",
        "ENDED", "Enqueue", "Fail", "HoldLease",
        "InsertLogs", "InsertRun", "LogLine", "MarkSeen", "PutCache", "PutCredential",
        "PutSession", "QueueItem", "QueueStatus", "RecordNonce", "Release", "Requeue",
        "RUN_STATUSES", "RunPage", "RunQuery", "RunRecord", "RunStatus",
        "SaveAttempt", "SaveStep", "SessionRecord", "StepRecord", "Store", "UNKNOWN_DECISION",
        "UpdateRun", "Wake", "WriteOp", "backend_of", "open_store",
    }
    for name in interlink.store.__all__:
        assert hasattr(interlink.store, name)


def test_sqlite_relative_url_resolves_against_base_dir(tmp_path: Path) -> None:
    """sqlite:///data/x.db is data/x.db inside the project folder."""
    store = open_store("sqlite:///data/x.db", tmp_path)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "data" / "x.db"
    assert store.synchronous == "NORMAL"


def test_sqlite_absolute_url_and_options(tmp_path: Path) -> None:
    """sqlite:////abs/x.db is absolute; ?synchronous=full is honoured."""
    store = open_store(f"sqlite:///{tmp_path}/x.db?synchronous=full", Path("/elsewhere"))
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "x.db"
    assert store.synchronous == "FULL"


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u:p@h:5433/db"])
def test_postgres_urls(url: str) -> None:
    """Both PostgreSQL schemes choose PostgresStore."""
    assert isinstance(open_store(url, Path()), PostgresStore)


@pytest.mark.parametrize("url", [
    "mysql://h/db", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?synchronous=maybe",
    "sqlite:///x.db?journal=off",
])
def test_bad_urls_are_refused(url: str) -> None:
    """Unknown schemes, hosts on SQLite and unknown options raise StoreError naming the URL."""
    with pytest.raises(StoreError, match="opening the store"):
        open_store(url, Path())


def test_both_backends_define_the_same_queries_with_the_same_parameters() -> None:
    """Every named query exists on both backends and takes the same parameters."""
    lite, pg = load_queries("sqlite"), load_queries("postgres")
    # SQLite's claim reads its runs with a second query, and a run purge deletes a run's rows
    # with three more; PostgreSQL joins them, and deletes them in the same statement.
    assert set(lite) - {"claimed_runs", "purge_run_steps", "purge_run_attempts",
                        "purge_run_logs"} == set(pg)
    for name in pg:
        lite_params = set(re.findall(r"(?<![:\w]):(\w+)", lite[name]))
        pg_params = set(re.findall(r"%\((\w+)\)s", pg[name]))
        assert lite_params == pg_params, name


def test_migrations_are_numbered_alike() -> None:
    """Both backends have the same migration versions and names."""
    assert [(m.version, m.name) for m in load_migrations("sqlite")] == [
        (m.version, m.name) for m in load_migrations("postgres")]


def test_an_unknown_scheme_is_named_without_the_rest_of_the_url() -> None:
    """The rest of a store URL may hold a password: the error names the scheme only."""
    with pytest.raises(StoreError, match="unknown scheme 'mysql'") as raised:
        open_store("mysql://app:s3cret-pw@db.internal/prod", Path())
    assert "s3cret-pw" not in str(raised.value)
