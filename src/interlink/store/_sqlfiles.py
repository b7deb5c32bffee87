"""The SQL of each backend, kept in `.sql` files: numbered migrations and named queries.

`sql/<backend>/NNNN_name.sql` are migrations, applied in order by the backend on open;
`sql/<backend>/queries.sql` holds every query as a `-- name: <query>` block (procrastinate's
layout), read once per process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["Migration", "load_migrations", "load_queries"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_QUERY_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change of one backend."""

    version: int
    name: str
    sql: str


def _backend_dir(backend: str) -> Traversable:
    return resources.files("interlink.store").joinpath("sql", backend)


@functools.cache
def load_migrations(backend: str) -> tuple[Migration, ...]:
    """The migrations of `backend` ("sqlite" or "postgres"), oldest first."""
    found = []
    for entry in _backend_dir(backend).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return tuple(found)


@functools.cache
def load_queries(backend: str) -> dict[str, str]:
    """The named queries of `backend`, by name."""
    text = _backend_dir(backend).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _QUERY_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, …]
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = body.strip().rstrip(";")
    return queries
