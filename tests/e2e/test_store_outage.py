"""The store goes away under a running `interlink serve` (PostgreSQL stopped at once, as a
crash would, then started again): serve stays up, answers what it cannot accept with 503 and
Retry-After rather than holding the caller or crashing, and once the store is back accepts
and runs webhooks again, each exactly once."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.processes import free_port, interlink, wait_all_ended, wait_healthy
from tests.projects import write_project
from tests.upstream import Upstream

from interlink.store import open_store
from interlink.store._pgserver import TemporaryPostgres, find_pg_bin

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_postgres() -> Iterator[TemporaryPostgres]:
    """A PostgreSQL server of this test's own (the test stops it), durable: its immediate
    stop is a crash, and a commit acknowledged before it must survive it."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no PostgreSQL binaries (initdb, pg_ctl)")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl)")
    server = TemporaryPostgres(bin_dir, durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def project(root: Path, store: str, upstream: str) -> None:
    """A webhook-triggered flow posting each payload to the upstream; quick polls."""
    write_project(root, {
        "connectors/wh.yaml": f"name: wh\nbase_url: {upstream}\ntimeout: 5s\n"
                              "endpoints: {create: {method: POST, path: /orders}}\n",
        "flows/push.yaml": "name: push\ntrigger: {type: webhook, path: /hooks/orders}\n"
                           "steps:\n  - {id: push, type: connector, connector: wh,"
                           " endpoint: create}\n",
    }, store=f"'{store}'")
    path = root / "interlink.yaml"
    path.write_text(path.read_text() + "worker: {lease: 2s, poll: 50ms, concurrency: 4}\n")


async def post(port: int, n: int) -> tuple[int, Any, dict[str, str]]:
    """One webhook; its status, JSON answer and headers."""
    async with aiohttp.ClientSession() as http, \
            http.post(f"http://127.0.0.1:{port}/hooks/orders", json={"n": n}) as answer:
        return answer.status, await answer.json(), dict(answer.headers)


async def test_serve_outlives_a_store_outage_and_runs_each_webhook_once_after_it(
        tmp_path: Path, own_postgres: TemporaryPostgres) -> None:
    """Stop PostgreSQL under serve, send a webhook, start it again: 503 meanwhile, then every
    accepted webhook runs, and nothing else does."""
    port, log = free_port(), tmp_path / "serve.log"
    async with Upstream() as up:
        up.route("/orders")
        project(tmp_path, own_postgres.url, up.url)
        with interlink("serve", str(tmp_path), "--port", str(port), log=log) as proc:
            await wait_healthy(port, proc)
            status, first, _ = await post(port, 0)
            assert status == 202, first
            accepted = [first["run_id"]]

            own_postgres.pause()
            await asyncio.sleep(2)  # the worker's claims fail for a while (50 ms polls)
            assert proc.poll() is None, log.read_text()
            status, body, answered = await post(port, 1)  # within CONNECTION_WAIT_S
            assert status == 503, body  # not accepted: the sender may send it again
            assert body["error"]["phase"] == "store" and answered["Retry-After"] == "5", body
            own_postgres.resume()

            # Once the store is back, webhooks are accepted again and their runs run.
            for n in range(2, 12):
                for _ in range(100):
                    status, body, _ = await post(port, n)
                    if status == 202:
                        break
                    await asyncio.sleep(0.1)
                assert status == 202, body
                accepted.append(body["run_id"])
            async with open_store(own_postgres.url, tmp_path) as store:
                ended = await wait_all_ended(store, len(accepted))
                runs = await store.list_runs(limit=100)
            assert proc.poll() is None, log.read_text()
    assert sorted(r.id for r in ended) == sorted(r.id for r in runs) == sorted(accepted)
    assert {r.status for r in ended} == {"succeeded"}
    keys = Counter(r.headers["Idempotency-Key"] for r in up.requests_to("/orders"))
    assert sorted({key.split(":")[0] for key in keys}) == sorted(accepted)
    assert len(keys) == len(accepted)  # one Idempotency-Key per run: the upstream sees one
    # Only the run in flight when the store went away may have been sent twice: its outcome
    # could not be written, so it was sent again (same key) once its lease had expired.
    assert all(count == 1 for key, count in keys.items() if not key.startswith(accepted[0]))
    text = log.read_text()
    assert "claiming queue items failed" in text
