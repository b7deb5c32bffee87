"""A claim walks indexes only: its cost does not grow with the backlog (EXPLAIN on both)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from interlink.store import Enqueue, open_store
from interlink.store._sqlfiles import load_queries

BACKLOG = 3000


@pytest.mark.postgres
async def test_the_postgres_claim_uses_the_queue_indexes(postgres_url: str,
                                                         tmp_path: Path) -> None:
    """3,000 items queued, each naming its run: EXPLAIN of the claim shows index scans, no
    scan of the queue or of the runs (each claimed item's run is read by primary key)."""
    async with open_store(postgres_url, tmp_path) as store:
        now = time.time()
        await store.write(*(Enqueue(f"q{n}", "run", {"run_id": f"r{n}"},
                                    now - 1 if n % 3 else now + 3600)
                            for n in range(BACKLOG)))
    query = load_queries("postgres")["claim"]
    params = {"owner": "w", "now": time.time(), "expires_at": time.time() + 30, "limit": 64,
              "kinds": ["run"]}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO runs (id, flow, status, trigger, flow_spec, created_at) "
                     "SELECT 'r' || n, 'push', 'queued', 'api', '{}', %s "
                     "FROM generate_series(0, %s) AS n", (now, BACKLOG - 1))
        conn.execute("ANALYZE queue")
        conn.execute("ANALYZE runs")
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))
    assert "Index Scan using queue_ready" in plan, plan
    assert "Index Scan on queue_pkey" in plan or "Index Scan using queue_pkey" in plan, plan
    assert "Index Scan using runs_pkey" in plan, plan
    assert "Seq Scan" not in plan, plan


async def test_the_sqlite_claim_uses_the_queue_indexes(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN of the SQLite claim searches both partial indexes, scans nothing."""
    async with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path) as store:
        await store.write(*(Enqueue(f"q{n}", "run", {"n": n}) for n in range(BACKLOG)))
    query = load_queries("sqlite")["claim"]
    params = {"owner": "w", "now": time.time(), "expires_at": time.time() + 30, "limit": 64,
              "kinds": '["run"]'}
    with sqlite3.connect(tmp_path / "s.db") as conn:
        plan = "\n".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + query,
                                                              params))
    assert "USING INDEX queue_ready" in plan and "USING INDEX queue_leased" in plan, plan
    assert "SCAN queue\n" not in plan + "\n", plan
