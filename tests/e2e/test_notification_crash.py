"""A worker SIGKILLed while it sends a notification: delivered after a restart, still one item."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from tests.notifying import SECRET, delivered, notify_config, notifying_project
from tests.processes import interlink, wait_until
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.notifications import NOTIFICATION_KIND


async def test_a_worker_killed_mid_send_still_delivers_once_per_event(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver holds the first delivery; the worker is killed; a new worker sends the
    same message again (same Idempotency-Key): at least once, and one notification item."""
    monkeypatch.setenv("NOTIFY_TEST_TOKEN", SECRET)
    async with Upstream() as up:
        up.route("/orders", answer=lambda r: (500, {"error": "refused"}, {}))
        up.route("/hook", delay=60)  # the first delivery never gets its answer
        config = notify_config({"ops": f"{{webhook: {{url: '{up.url}/hook', timeout: 90s}}}}"})
        # Short leases so the second worker takes the killed one's item over quickly.
        config = config.replace("worker: {poll: 50ms}", "worker: {poll: 50ms, lease: 1s}")
        project = notifying_project(tmp_path, up.url, config)
        async with Engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
        log = tmp_path / "worker.log"
        with interlink("worker", str(tmp_path), log=log) as first:
            await wait_until("the first delivery", lambda: up.requests_to("/hook"))
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        up.route("/hook")  # answers 200 from now on
        async with Engine(project) as engine:
            with interlink("worker", str(tmp_path), log=log):
                items = await delivered(engine.store, 1, limit_s=30)
                run = await engine.store.get_run(run_id)
            # Read once the worker is gone: nothing more can be written.
            again = await engine.store.list_items(kind=NOTIFICATION_KIND)
    sent = up.requests_to("/hook")
    assert run is not None and run.status == "failed"
    assert len(items) == len(again) == 1, log.read_text()[-3000:]
    assert items[0].status == "done" and items[0].attempts == 2
    assert len(sent) == 2
    assert {r.headers["Idempotency-Key"] for r in sent} == {items[0].payload["event"]["id"]}
    assert {r.json["run_id"] for r in sent} == {run_id}
