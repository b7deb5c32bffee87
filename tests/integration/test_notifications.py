"""Failure notifications over real loopback webhooks: a real engine, worker and SQLite store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from tests.notifying import SECRET, delivered, notify_config, notifying_project
from tests.projects import running_engine
from tests.upstream import Upstream

from interlink import worker as worker_module
from interlink.notifications import NOTIFICATION_KIND, Notices
from interlink.redaction import Redactor
from interlink.server import build_app
from interlink.services import call_app
from interlink.spec.project import ProjectConfig
from interlink.store import QueueItem, open_store
from interlink.worker import Worker

JSON_HOOK = "{webhook: {url: '%s/hook', format: json}}"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_TEST_TOKEN", SECRET)


def refuse(up: Upstream) -> None:
    """/orders answers 500 with a body that names the token it was sent."""
    up.route("/orders", answer=lambda r: (500, {"error": f"refused {r.headers['X-Token']}"}, {}))


def bodies(up: Upstream, path: str = "/hook") -> list[dict[str, object]]:
    return [r.json for r in up.requests_to(path)]


async def test_a_failed_run_sends_one_message_with_a_redacted_error_and_a_link(
        tmp_path: Path) -> None:
    """A run that fails → one message: project, flow, run id, step, error (***), UI link."""
    async with Upstream() as up:
        refuse(up)
        project = notifying_project(tmp_path, up.url, notify_config({"ops": JSON_HOOK % up.url}))
        async with running_engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            run = await engine.runner.wait_for(run_id, 10)
            items = await delivered(engine.store, 1)
            [request] = up.requests_to("/hook")
            message = request.json
            # The link is the UI's page of the run (served on loopback without a token).
            page = await call_app(build_app(engine, None), "GET",
                                  message["url"].removeprefix("http://ui.example"))
    assert run.status == "failed"
    assert len(items) == 1
    assert SECRET not in request.body
    assert message["event"] == "run_failed"
    assert (message["project"], message["flow"], message["run_id"], message["step"]) == (
        "shop", "push", run_id, "push")
    assert "refused ***" in message["error"]
    assert message["url"] == f"http://ui.example/_interlink/ui/runs/{run_id}"
    assert request.headers["Idempotency-Key"] == message["event_id"]
    assert page.status == 200 and run_id in page.text


async def test_slack_and_teams_channels_each_get_their_format(tmp_path: Path) -> None:
    """One event, two channels: a Slack `text` + `blocks` body and a Teams MessageCard."""
    async with Upstream() as up:
        refuse(up)
        config = notify_config({
            "slack": f"{{webhook: {{url: '{up.url}/slack', format: slack}}}}",
            "teams": f"{{webhook: {{url: '{up.url}/teams', format: teams}}}}"})
        project = notifying_project(tmp_path, up.url, config)
        async with running_engine(project) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            await delivered(engine.store, 2)
    [slack] = bodies(up, "/slack")
    [teams] = bodies(up, "/teams")
    link = f"http://ui.example/_interlink/ui/runs/{run_id}"
    assert "run of flow push failed at step push" in str(slack["text"])
    assert link in orjson.dumps(slack["blocks"]).decode()
    assert teams["@type"] == "MessageCard"
    assert teams["potentialAction"] == [{"@type": "OpenUri", "name": "Open in Interlink",
                                         "targets": [{"os": "default", "uri": link}]}]
    assert {"name": "Run", "value": run_id} in teams["sections"][0]["facts"]  # type: ignore[index]
    assert SECRET not in orjson.dumps([slack, teams]).decode()


async def test_only_the_last_flow_retry_is_told(tmp_path: Path) -> None:
    """Response code 2 queues a retry run: the failure that has no retry after it is told."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        retrying = "def handle(data):\n    data['response_code'] = 2\n    return data\n"
        project = notifying_project(
            tmp_path, up.url, notify_config({"ops": JSON_HOOK % up.url}),
            flow_extra="retry: {max_flow_retries: 1, delay: 10ms}\n",
            files={"scripts/judge.py": retrying})
        async with running_engine(project) as engine:
            first = await engine.runner.start("push", {"id": 1})
            retry = engine.runner.retry_id(await engine.runner.wait_for(first, 10))
            await engine.runner.wait_for(retry, 10)
            items = await delivered(engine.store, 1)
    assert len(items) == 1
    assert [m["run_id"] for m in bodies(up)] == [retry]


async def test_a_flow_adds_or_replaces_the_channels_told(tmp_path: Path) -> None:
    """`notify: {run_failed: [team], replace: true}` in a flow tells its team only."""
    async with Upstream() as up:
        refuse(up)
        config = notify_config({"ops": JSON_HOOK % up.url,
                                "team": f"{{webhook: {{url: '{up.url}/team'}}}}"})
        project = notifying_project(tmp_path, up.url, config,
                                    flow_extra="notify: {run_failed: [team], replace: true}\n")
        async with running_engine(project) as engine:
            await engine.runner.start("push", {"id": 1})
            items = await delivered(engine.store, 1)
    assert [item.payload["channel"] for item in items] == ["team"]
    assert len(up.requests_to("/team")) == 1
    assert up.requests_to("/hook") == []


async def test_a_broken_queue_item_sends_a_message(tmp_path: Path) -> None:
    """A queued request that runs out of attempts (broken) → a message linking the item."""
    service = """
        name: orders
        path: /orders-in
        activity: {flow: push}
        request_processor: {max_attempts: 2, delay: 50ms, keep_failed: true}
        responses:
          - queue_when: "error is not none"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}"}}
          - on: default
            status: 200
        """
    async with Upstream() as up:
        refuse(up)
        config = notify_config({"ops": JSON_HOOK % up.url}, "run_failed: []\n")
        project = notifying_project(tmp_path, up.url, config,
                                    files={"services/orders.yaml": service})
        async with running_engine(project) as engine:
            answer = await call_app(build_app(engine, None), "POST", "/orders-in",
                                    body=b'{"id": 3}',
                                    headers={"Content-Type": "application/json"})
            item_id = answer.json()["queued"]
            await delivered(engine.store, 1)
            item = await engine.store.get_item(item_id)
    [message] = bodies(up)
    assert item is not None and item.status == "broken"
    assert message["event"] == "item_broken"
    assert message["item_id"] == item_id
    assert message["url"] == f"http://ui.example/_interlink/ui/queue/{item_id}"
    assert message["error"] == f"activity: run {message['run_id']} ended failed"
    assert message["attempts"] == 2


async def test_a_refused_delivery_is_retried_and_delivered_once(tmp_path: Path) -> None:
    """The receiver answers 500, then 200: the same message (same key) is sent again, once."""
    async with Upstream() as up:
        refuse(up)
        up.route("/hook", statuses=[500, 200])  # per Idempotency-Key
        project = notifying_project(tmp_path, up.url, notify_config({"ops": JSON_HOOK % up.url}))
        async with running_engine(project) as engine:
            await engine.runner.start("push", {"id": 1})
            [item] = await delivered(engine.store, 1)
    first, second = up.requests_to("/hook")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body
    assert item.attempts == 2
    assert item.result is not None and "sent_at" in item.result


async def test_a_failure_rate_over_the_threshold_is_told_once(tmp_path: Path) -> None:
    """20 failed attempts of one connector, looked at twice: one alert, not one per attempt."""
    async with Upstream() as up:
        refuse(up)
        # `every: 1h`: the test makes the looks itself, so it knows when they happened.
        config = notify_config({"ops": JSON_HOOK % up.url}, """
run_failed: []
connector_failure_rate: {threshold: 0.5, window: 1h, min_attempts: 10, every: 1h}
""")
        project = notifying_project(tmp_path, up.url, config)
        async with running_engine(project) as engine:
            watch = engine.notifications.watch
            assert watch is not None
            for batch in range(2):
                runs = [await engine.runner.start("push", {"id": n}) for n in range(10)]
                for run_id in runs:
                    await engine.runner.wait_for(run_id, 10)
                await watch.check(time.time())
                items = await delivered(engine.store, 1)
                assert len(items) == 1, f"after batch {batch}"
    [message] = bodies(up)
    assert message["event"] == "connector_failure_rate"
    assert message["connector"] == "wh"
    assert (message["attempts"], message["failures"]) == (10, 10)
    assert "refused ***" in str(message["error"])


async def test_the_worker_watches_failure_rates_under_a_lock(tmp_path: Path) -> None:
    """Two engines (two lock owners) looking every 50 ms: a connector failing 10 times is
    told once."""
    async with Upstream() as up:
        refuse(up)
        config = notify_config({"ops": JSON_HOOK % up.url}, """
run_failed: []
connector_failure_rate: {threshold: 0.5, window: 1h, min_attempts: 10, every: 50ms}
""")
        project = notifying_project(tmp_path, up.url, config)
        async with running_engine(project) as engine, running_engine(project) as other:
            assert engine.owner != other.owner
            for n in range(10):
                await engine.runner.start("push", {"id": n})
            items = await delivered(engine.store, 1)
            # One more run fails, and the lock holder looks again (its lock is renewed).
            await engine.runner.wait_for(await engine.runner.start("push", {"id": 10}), 10)
            await asyncio.sleep(0.3)
            again = await engine.store.list_items(kind=NOTIFICATION_KIND)
    assert len(items) == len(again) == 1
    assert len(up.requests_to("/hook")) == 1


async def test_many_failures_at_once_become_a_digest(tmp_path: Path) -> None:
    """20 runs fail at once with a limit of 5 per 3 s: 5 messages, then a digest; every run
    is in exactly one of them."""
    async with Upstream() as up:
        refuse(up)
        hook = f"{{webhook: {{url: '{up.url}/hook'}}, rate_limit: {{messages: 5, per: 3s}}}}"
        project = notifying_project(tmp_path, up.url, notify_config({"ops": hook}))
        async with running_engine(project) as engine:
            runs = [await engine.runner.start("push", {"id": n}) for n in range(20)]
            await delivered(engine.store, 20)
    messages = bodies(up)
    singles = [m["run_id"] for m in messages if m["event"] == "run_failed"]
    digests = [m for m in messages if m["event"] == "digest"]
    in_digests = [e["run_id"] for d in digests for e in d["events"]]  # type: ignore[attr-defined]
    assert len(singles) >= 5  # more only if the runs took longer than a window to fail
    assert digests and len(messages) < 20
    assert sorted(singles + in_digests) == sorted(runs)
    assert f"{len(digests[0]['events'])} runs of flow push failed" in str(digests[0]["title"])
    assert all(d["count"] == len(d["events"]) for d in digests)  # type: ignore[arg-type]


async def test_a_notify_step_sends_to_a_configured_channel(tmp_path: Path) -> None:
    """`notify` with `channel: ops` posts to the channel (text → `{"text": …}` for Slack)."""
    async with Upstream() as up:
        config = notify_config(
            {"ops": f"{{webhook: {{url: '{up.url}/slack', format: slack}}}}"})
        flow = """
            name: tell
            steps:
              - {id: say, type: notify, channel: ops, body: "'order ' ~ payload.id ~ ' in'"}
            """
        project = notifying_project(tmp_path, up.url, config, files={"flows/tell.yaml": flow})
        async with running_engine(project) as engine:
            run = await engine.runner.wait_for(await engine.runner.start("tell", {"id": 7}), 10)
            attempts = await engine.store.get_attempts(run.id)
    [request] = up.requests_to("/slack")
    assert run.status == "succeeded"
    assert request.json == {"text": "order 7 in"}
    assert request.headers["Idempotency-Key"].startswith("n_")
    assert [a.decision for a in attempts] == ["continue"]
    assert attempts[0].request["url"] == "channel:ops"


async def test_an_item_whose_handler_keeps_crashing_is_told_once_broken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker marks an item broken after MAX_CRASHES; its notification is in that write."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.0)
    config = ProjectConfig.model_validate({"name": "shop", "notify": {
        "channels": {"ops": {"webhook": {"url": "http://127.0.0.1:9/hook"}}}}})
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as store:

        async def crash(item: QueueItem, owner: str) -> None:
            raise RuntimeError(f"bug near {SECRET}")

        await store.enqueue("k", {"run_id": "r_x"}, item_id="q1")
        worker = Worker(store, {"k": crash}, poll_s=0.02,
                        notices=Notices(config, Redactor([SECRET])))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(10):
            while True:
                item = await store.get_item("q1")
                if item is not None and item.status == "broken":
                    break
                await asyncio.sleep(0.02)
        stop.set()
        await task
        [told] = await store.list_items(kind=NOTIFICATION_KIND)
    event = told.payload["event"]
    assert told.status == "ready"  # nobody handles `notification` here: it waits, durably
    assert (event["kind"], event["item_id"], event["run_id"]) == ("item_broken", "q1", "r_x")
    assert event["error"] == "handler crashed: RuntimeError: bug near ***"
    assert event["facts"]["attempts"] == worker_module.MAX_CRASHES


@pytest.mark.postgres
async def test_a_failed_run_is_told_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The same event, store and delivery on PostgreSQL: one message, one done item."""
    async with Upstream() as up:
        refuse(up)
        project = notifying_project(tmp_path, up.url, notify_config({"ops": JSON_HOOK % up.url}))
        async with running_engine(project, store_url=postgres_url) as engine:
            run_id = await engine.runner.start("push", {"id": 1})
            items = await delivered(engine.store, 1)
    assert [m["run_id"] for m in bodies(up)] == [run_id]
    assert len(items) == 1
