"""Shared fixtures: a `store` on every backend, and a throwaway PostgreSQL server.

`store` (and `store_url`) are parametrized over SQLite and PostgreSQL, so one suite covers both.
PostgreSQL comes from `INTERLINK_TEST_POSTGRES_URL` when set, otherwise a server is started for
the session from the local installation (`initdb`/`pg_ctl`). Without one the postgres params are
skipped, except under CI (`CI=true`), where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from interlink.store import Store, open_store
from interlink.store._pgserver import TemporaryPostgres, find_pg_bin


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """The URL of a PostgreSQL server for this test session, or None when there is none."""
    from_env = os.environ.get("INTERLINK_TEST_POSTGRES_URL")
    if from_env:
        yield from_env
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        yield None
        return
    server = TemporaryPostgres(bin_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: str | None) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema, dropped after the test."""
    if postgres_server is None:
        message = (
            "no PostgreSQL found: set INTERLINK_TEST_POSTGRES_URL or install PostgreSQL "
            "(initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store on each backend, closed after the test."""
    async with open_store(store_url, tmp_path) as opened:
        yield opened
