"""Migrations: both backends end at the same logical schema; applying them is idempotent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from interlink.store import open_store
from interlink.store._sqlfiles import load_migrations

LogicalSchema = tuple[dict[str, list[tuple[str, str, bool]]], set[tuple[str, str]]]

_SQLITE_TYPES = {"TEXT": "text", "REAL": "float", "INTEGER": "int"}
_POSTGRES_TYPES = {"text": "text", "double precision": "float", "integer": "int", "bigint": "int"}


def sqlite_schema(path: Path) -> LogicalSchema:
    """Tables → [(column, logical type, nullable)], and {(index, table)} of a SQLite file."""
    conn = sqlite3.connect(path)
    try:
        tables: dict[str, list[tuple[str, str, bool]]] = {}
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in names:
            tables[table] = sorted(
                (name, _SQLITE_TYPES[type_.upper()], not notnull)
                for _, name, type_, notnull, _, _ in conn.execute(f"PRAGMA table_info({table})")
            )
        indexes = set(conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    finally:
        conn.close()
    return tables, indexes


def postgres_schema(url: str) -> LogicalSchema:
    """The same description of the current schema of a PostgreSQL database."""
    with psycopg.connect(url) as conn:
        tables: dict[str, list[tuple[str, str, bool]]] = {}
        for table, column, type_, nullable in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ):
            tables.setdefault(table, []).append((column, _POSTGRES_TYPES[type_], nullable == "YES"))
        indexes = set(conn.execute(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexname NOT LIKE '%\\_pkey'"
        ).fetchall())
    return {table: sorted(columns) for table, columns in tables.items()}, indexes


@pytest.mark.postgres
async def test_both_backends_have_the_same_logical_schema(
    postgres_url: str, tmp_path: Path
) -> None:
    """Tables, columns (logical type, nullability) and index names match across backends."""
    async with open_store("sqlite:///store.db", tmp_path), open_store(postgres_url, tmp_path):
        pass
    lite_tables, lite_indexes = sqlite_schema(tmp_path / "store.db")
    pg_tables, pg_indexes = postgres_schema(postgres_url)
    assert set(lite_tables) == {"schema_migrations", "runs", "steps", "attempts", "logs",
                                "queue", "sessions", "credentials", "locks", "dedupe",
                                "cache", "nonces"}
    assert lite_tables == pg_tables
    assert lite_indexes == pg_indexes


async def test_migrations_apply_once_when_opened_concurrently(
    store_url: str, tmp_path: Path
) -> None:
    """Two stores opening at once, then a reopen, leave each migration recorded once."""
    first, second = open_store(store_url, tmp_path), open_store(store_url, tmp_path)
    await asyncio.gather(first.open(), second.open())
    await asyncio.gather(first.close(), second.close())
    async with open_store(store_url, tmp_path):
        pass
    query = "SELECT version FROM schema_migrations ORDER BY version"
    if store_url.startswith("sqlite"):
        with sqlite3.connect(tmp_path / "store.db") as conn:
            versions = [row[0] for row in conn.execute(query)]
    else:
        with psycopg.connect(store_url) as pg:
            versions = [row[0] for row in pg.execute(query)]
    assert versions == [m.version for m in load_migrations("sqlite")]
    assert versions == [m.version for m in load_migrations("postgres")]
