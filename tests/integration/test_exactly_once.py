"""One accepted request, one run, each payload delivered once: the request processor, queue_when,
activity timeouts and stale credentials, against a real engine, worker, SQLite and upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.types import ASGIApp
from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink import worker as worker_module
from interlink.engine import Engine
from interlink.errors import StoreError, StoreUnavailable, ValueRefused
from interlink.server import build_app
from interlink.services import call_app
from interlink.spec import Project
from interlink.store import Release, SaveAttempt, UpdateRun

CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\nworker: {poll: 50ms}\n"


def connector(url: str, retry: str = "{max_attempts: 1}", auth: str = "") -> str:
    """A connector `wh` to `url` with endpoints /a, /b and /orders."""
    return f"""
        name: wh
        base_url: {url}
        timeout: 5s
        retry: {retry}
        {auth}
        endpoints:
          a: {{method: POST, path: /a}}
          b: {{method: POST, path: /b}}
          create_order: {{method: POST, path: /orders}}
        """


#: the flow `push`: one connector step posting the payload to /orders
PUSH = ("name: push\nsteps:\n"
        "  - {id: push, type: connector, connector: wh, endpoint: create_order}\n")


def service(responses: str, *, processor: str = "{max_attempts: 6, delay: 50ms, backoff: 1}",
            extra: str = "") -> str:
    """A service `orders` at POST /orders whose activity is the flow `push`."""
    return f"""
        name: orders
        path: /orders
        request: {{map: {{page.order: request.body}}}}
        activity: {{flow: push{extra}}}
        request_processor: {processor}
        responses:
        {responses}
        """


QUEUE_ON_ERROR = """
          - queue_when: "error is not none"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}"}}
          - on: default
            body: {from: context, key: result.payload}
"""


def make(root: Path, files: dict[str, str]) -> Project:
    """The project: interlink.yaml with a fast worker poll, plus `files`."""
    return write_project(root, {"interlink.yaml": CONFIG, **files})


async def post(app: ASGIApp, body: Any) -> Any:
    """POST `body` as JSON to /orders; the answer's status and JSON."""
    answer = await call_app(app, "POST", "/orders", body=orjson.dumps(body),
                            headers={"Content-Type": "application/json"})
    return answer.status, answer.json()


async def item_done(engine: Engine, item_id: str) -> Any:
    """Wait (10 s at most) until a queue item has ended; return it."""
    async with asyncio.timeout(10):
        while True:
            item = await engine.store.get_item(item_id)
            assert item is not None
            if item.status in ("done", "broken", "failed"):
                return item
            await asyncio.sleep(0.02)


async def test_processor_retries_continue_the_requests_run_with_its_keys(tmp_path: Path) -> None:
    """A queued request retried by the processor re-drives its one run: same key every time."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 503, 503, 200], body={"created": True})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service(QUEUE_ON_ERROR),
        })
        async with running_engine(project) as engine:
            status, answer = await post(build_app(engine, None), {"id": 1})
            item = await item_done(engine, answer["queued"])
            runs = await engine.store.list_runs()
            attempts = await engine.store.get_attempts(runs[0].id)

    assert status == 202
    assert item.status == "done"
    assert item.result["status"] == "succeeded"
    assert len(runs) == 1  # every processor attempt continued the request's run
    assert item.result["run_id"] == runs[0].id
    assert runs[0].redrive == 3
    keys = {r.headers["Idempotency-Key"] for r in up.requests_to("/orders")}
    assert keys == {f"{runs[0].id}:push:0"}
    assert len(up.requests_to("/orders")) == 4
    assert [(a.n, a.redrive, a.decision) for a in attempts] == [
        (1, 0, "fail"), (2, 1, "fail"), (3, 2, "fail"), (4, 3, "continue")]
    # Each re-drive had one attempt: its 503 asked for a retry, but none was left.
    assert attempts[0].message is not None
    assert attempts[0].message.startswith("no attempts left (the answer asked retry_step:")


async def test_a_redriven_run_does_not_send_the_steps_that_succeeded(tmp_path: Path) -> None:
    """Step `a` succeeded before `b` failed: the processor's re-drive sends only `b` again."""
    async with Upstream() as up:
        up.route("/a", body={"a": "done"})
        up.route("/b", statuses=[503, 200], body={"b": "done"})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": "name: push\nsteps:\n"
                               "  - {id: a, type: connector, connector: wh, endpoint: a}\n"
                               "  - {id: b, type: connector, connector: wh, endpoint: b}\n",
            "services/orders.yaml": service(QUEUE_ON_ERROR),
        })
        async with running_engine(project) as engine:
            _, answer = await post(build_app(engine, None), {"id": 2})
            item = await item_done(engine, answer["queued"])

    assert item.result["payload"] == {"b": "done"}
    assert len(up.requests_to("/a")) == 1
    assert [r.json for r in up.requests_to("/b")] == [{"a": "done"}, {"a": "done"}]
    assert len({r.headers["Idempotency-Key"] for r in up.requests_to("/b")}) == 1


async def test_queue_when_after_a_success_does_not_run_the_activity_again(tmp_path: Path) -> None:
    """A `queue_when` on the result queues the request with it; the processor sends nothing."""
    rules = """
          - queue_when: "result.payload.state == 'pending'"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}"}}
          - on: default
            body: {from: context, key: result.payload}
"""
    async with Upstream() as up:
        up.route("/orders", body={"state": "pending"})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service(rules),
        })
        async with running_engine(project) as engine:
            status, answer = await post(build_app(engine, None), {"id": 3})
            item = await item_done(engine, answer["queued"])
            runs = await engine.store.list_runs()

    assert status == 202
    assert item.status == "done"
    assert item.result["payload"] == {"state": "pending"}
    assert item.result["run_id"] == runs[0].id
    assert len(runs) == 1
    assert len(up.requests_to("/orders")) == 1


async def test_queue_when_not_reading_the_outcome_runs_the_activity_only_later(
    tmp_path: Path,
) -> None:
    """`queue_when: page…` is decided before the activity: it runs once, in the processor."""
    rules = """
          - when: "page.order.kind == 'vip'"
            status: 201
          - queue_when: "page.order.priority == 'low'"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}"}}
          - on: default
            body: {from: context, key: result.payload}
"""
    async with Upstream() as up:
        up.route("/orders", body={"stored": True})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service(rules),
        })
        async with running_engine(project) as engine:
            app = build_app(engine, None)
            status, answer = await post(app, {"id": 4, "priority": "low"})
            sent_before_processing = len(up.requests_to("/orders"))
            item = await item_done(engine, answer["queued"])
            vip_status, _ = await post(app, {"id": 5, "priority": "low", "kind": "vip"})

    assert status == 202
    assert sent_before_processing <= 1
    assert item.result == {"status": "succeeded", "payload": {"stored": True},
                           "run_id": item.payload["run_id"]}
    assert vip_status == 201  # an earlier `when` that matches still wins (and runs it in place)
    assert [r.json["order"]["id"] for r in up.requests_to("/orders")] == [4, 5]


async def test_a_timed_out_activity_goes_on_and_the_processor_takes_its_result(
    tmp_path: Path,
) -> None:
    """The activity outlives its timeout; the queued request waits for that run, sends nothing."""
    async with Upstream() as up:
        up.route("/orders", delay=1.0, body={"slow": "but done"})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service(QUEUE_ON_ERROR, extra=", timeout: 200ms"),
        })
        async with running_engine(project) as engine:
            status, answer = await post(build_app(engine, None), {"id": 6})
            item = await item_done(engine, answer["queued"])
            runs = await engine.store.list_runs()

    assert status == 202
    assert item.status == "done"
    assert item.result["payload"] == {"slow": "but done"}
    assert len(runs) == 1 and runs[0].redrive == 0
    assert len(up.requests_to("/orders")) == 1


async def test_execution_async_runs_once_under_the_items_run(tmp_path: Path) -> None:
    """An async request's processor runs the flow once, as the run the item names."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200], body={"ok": 1})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service("""
          - on: default
            status: 202
            body: {from: json, value: {queue_item_id: "{{ queue_item_id }}"}}
""").replace("activity:", "execution: async\n        activity:"),
        })
        async with running_engine(project) as engine:
            status, answer = await post(build_app(engine, None), {"id": 7})
            item = await item_done(engine, answer["queue_item_id"])
            runs = await engine.store.list_runs()

    assert status == 202
    assert item.result["status"] == "succeeded"
    assert [r.id for r in runs] == [item.payload["run_id"]]
    assert runs[0].redrive == 1
    assert len({r.headers["Idempotency-Key"] for r in up.requests_to("/orders")}) == 1


SESSION = """auth: {type: session, login: {path: /login}, token: response.json.token,
                value: "Session {{ token }}"}"""


async def test_a_401_for_a_replaced_token_does_not_use_up_the_reauthentication(
    tmp_path: Path,
) -> None:
    """Sent with a token another process replaced: retried free; a real 401 still re-logs in."""
    async with Upstream() as up:
        # For this key: a 401 (to the replaced token), a 401 (a real one), then success.
        up.route("/orders", statuses=[401, 401, 200], body={"ok": True})
        files = {
            "connectors/wh.yaml": connector(up.url, "{max_attempts: 4, initial: 1ms}", SESSION),
            "flows/push.yaml": PUSH,
        }
        project = make(tmp_path, files)
        async with running_engine(project) as engine:
            await engine.runner.connector("wh").auth.apply()  # logged in: token 1
            async with Engine(project) as other:  # another process replaces it: token 2
                await other.runner.connector("wh").reauthenticate(1)
            run_id = await engine.runner.start("push", {"id": 8})
            run = await engine.runner.wait_for(run_id, 10)
            attempts = await engine.store.get_attempts(run_id)

    assert run.status == "succeeded", run.error
    assert up.login_calls == 3
    sent = [r.headers["Authorization"] for r in up.requests_to("/orders")]
    assert sent == ["Session session-1", "Session session-2", "Session session-3"]
    assert [(a.decision, a.reauth) for a in attempts] == [
        ("reauth", False), ("reauth", True), ("continue", False)]
    assert "replaced credential" in (attempts[0].message or "")


async def test_concurrent_401s_make_one_login_and_count_once(tmp_path: Path) -> None:
    """20 runs refused at once: one login; only the run whose call logged in counts it."""
    async with Upstream() as up:
        up.route("/orders", requires_login=True)
        files = {
            "connectors/wh.yaml": connector(up.url, "{max_attempts: 3, max_reauth: 1}", SESSION),
            "flows/push.yaml": PUSH,
        }
        async with running_engine(make(tmp_path, files)) as engine:
            await engine.runner.connector("wh").auth.apply()
            up.revoke_tokens()
            ids = await asyncio.gather(*(engine.runner.start("push", {"id": n})
                                         for n in range(20)))
            runs = [await engine.runner.wait_for(i, 20) for i in ids]
            counted = [sum(a.reauth for a in await engine.store.get_attempts(i)) for i in ids]

    assert {r.status for r in runs} == {"succeeded"}
    assert up.login_calls == 2
    assert Counter(counted) == {0: 19, 1: 1}


async def test_a_run_in_a_durable_wait_is_left_to_the_workers(tmp_path: Path) -> None:
    """The request's run waits out a Retry-After; processor looks are not attempts."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200], retry_after="2", body={"later": True})
        project = make(tmp_path, {
            "connectors/wh.yaml": connector(up.url, "{max_attempts: 2}"),
            "flows/push.yaml": PUSH,
            "services/orders.yaml": service(QUEUE_ON_ERROR, extra=", timeout: 300ms",
                                            processor="{max_attempts: 2, delay: 50ms}"),
        })
        async with running_engine(project) as engine:
            status, answer = await post(build_app(engine, None), {"id": 9})
            item = await item_done(engine, answer["queued"])
            runs = await engine.store.list_runs()

    assert status == 202
    assert item.status == "done"  # not broken, though it was looked at many times
    assert item.attempts == 1
    assert item.result["payload"] == {"later": True}
    assert len(runs) == 1 and runs[0].redrive == 0
    assert len(up.requests_to("/orders")) == 2


@contextlib.asynccontextmanager
async def refusing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    refusal: Callable[[tuple[Any, ...]], Exception | None], *,
    statuses: list[int] | None = None, body: Any = None, retry: str = "{max_attempts: 1}",
) -> AsyncIterator[tuple[Engine, Upstream]]:
    """A running engine whose flow `push` posts to an upstream answering `statuses` (200 by
    default); each write raises what `refusal(ops)` returns, or goes through on None. A
    crashed item is claimed again at once."""
    monkeypatch.setattr(worker_module, "CRASH_BACKOFF_S", 0.0)
    async with Upstream() as up:
        up.route("/orders", statuses=statuses, body={"ok": True} if body is None else body)
        project = make(tmp_path, {"connectors/wh.yaml": connector(up.url, retry),
                                  "flows/push.yaml": PUSH})
        async with running_engine(project) as engine:
            write = engine.store.write

            async def refusing(*ops: Any) -> Any:
                error = refusal(ops)
                if error is not None:
                    raise error
                return await write(*ops)

            monkeypatch.setattr(engine.store, "write", refusing)
            yield engine, up


async def push(engine: Engine) -> Any:
    """Start a run of `push` and wait for its end."""
    return await engine.runner.wait_for(await engine.runner.start("push", {"id": 1}), 10)


def saves_an_attempt(ops: tuple[Any, ...], decision: str | None = None) -> bool:
    return any(isinstance(op, SaveAttempt) and decision in (None, op.attempt.decision)
               for op in ops)


async def test_a_store_failure_during_a_step_leaves_the_run_to_be_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write refused by the store in mid-step (a lost connection) is not the step's failure:
    the run is not failed but resumed from its item, and the payload still arrives once."""
    refused: list[str] = []

    def once(ops: tuple[Any, ...]) -> Exception | None:
        # The attempt's own save (before it is sent) fails once, as a store outage.
        if not refused and saves_an_attempt(ops):
            refused.append("once")
            return StoreUnavailable("writing to the store: the connection is lost")
        return None

    async with refusing_store(tmp_path, monkeypatch, once) as (engine, up):
        run = await push(engine)

    assert refused == ["once"]
    assert (run.status, run.error) == ("succeeded", None)
    assert len(up.requests_to("/orders")) == 1


async def test_a_write_the_store_refuses_during_a_step_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the store refuses for what it holds (not an outage: trying again cannot help)
    fails the step and the run, saying why; the run is not left `running`. What was to ride
    with the refused write (the run's start, its log lines; for a run executed at once, the
    run itself) is written with the failure, not dropped."""

    def attempts(ops: tuple[Any, ...]) -> Exception | None:
        if saves_an_attempt(ops):
            return ValueRefused("writing to the store: invalid byte sequence")
        return None

    async with refusing_store(tmp_path, monkeypatch, attempts) as (engine, _):
        run = await push(engine)
        now = await engine.runner.run_now("push", {"id": 2}, trigger="service")
        logs = [line.message for line in await engine.store.get_logs(now.id)]

    assert run.status == "failed" and run.started_at is not None
    assert "invalid byte sequence" in (run.error or "")
    assert now.status == "failed" and now.input == {"id": 2} and now.started_at is not None
    assert any("invalid byte sequence" in line for line in logs)


async def test_an_outcome_the_store_refuses_leaves_the_attempt_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream accepted, but the store refuses the step's outcome (a value it cannot
    hold): the step and the run fail, the call is not sent again, and the accepted attempt is
    not stored as accepted without its output (a re-drive would take a null for it): it stays
    unknown, as after a crash."""

    def outcomes(ops: tuple[Any, ...]) -> Exception | None:  # the step's output, say a Decimal
        if any(isinstance(op, UpdateRun) and "bucket" in op.fields for op in ops):
            return ValueRefused("encoding a value for the store: Type is not JSON "
                                "serializable: decimal.Decimal")
        return None

    async with refusing_store(tmp_path, monkeypatch, outcomes, statuses=[503, 200],
                              retry="{max_attempts: 2, initial: 1ms}") as (engine, up):
        run = await push(engine)
        attempts = await engine.store.get_attempts(run.id)
        items = await engine.store.list_items()

    assert run.status == "failed" and "saving its outcome" in (run.error or "")
    assert len(up.requests_to("/orders")) == 2
    assert [(a.n, a.decision) for a in attempts][-1] == (2, "unknown")
    assert all(item.status != "broken" for item in items)


async def test_a_wait_the_store_refuses_fails_the_run_instead_of_crashing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 whose backoff is a durable wait, and the wait's cursor is what the store cannot
    hold: the step fails with the store's message (claimed again, the item would be refused
    again and again until set aside broken); the call went out once."""

    def waits(ops: tuple[Any, ...]) -> Exception | None:
        if any(isinstance(op, Release) for op in ops):
            return ValueRefused("encoding a value for the store: Integer exceeds 64-bit range")
        return None

    async with refusing_store(tmp_path, monkeypatch, waits, statuses=[503, 200],
                              retry="{max_attempts: 2, initial: 2s, jitter: none}"
                              ) as (engine, up):
        run = await push(engine)
        items = await engine.store.list_items()

    assert run.status == "failed" and "saving its wait" in (run.error or "")
    assert len(up.requests_to("/orders")) == 1
    assert all(item.status != "broken" for item in items)


async def test_an_attempt_the_store_refuses_does_not_keep_the_run_from_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When what rode with the step's failure is itself what the store refuses (the failed
    attempt's record), the failure is written without the attempt: the run ends `failed`
    with the upstream's answer named, not crashed again and again until its item is set
    aside; the call went out once."""

    def failed_attempts(ops: tuple[Any, ...]) -> Exception | None:
        if saves_an_attempt(ops, "fail"):
            return ValueRefused("writing to the store: value out of range")
        return None

    async with refusing_store(tmp_path, monkeypatch, failed_attempts, statuses=[400],
                              body={"error": "bad order"}) as (engine, up):
        run = await push(engine)
        items = await engine.store.list_items()

    assert run.status == "failed" and "HTTP 400" in (run.error or "")
    assert len(up.requests_to("/orders")) == 1
    assert all(item.status != "broken" for item in items)


async def test_a_refusal_that_is_the_servers_does_not_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that is no value's fault (a permission revoked, a table missing in a rolling
    deploy) does not fail the run: the item is tried again, and once the store is fixed the
    step resumes and the call goes out once."""
    refused: list[int] = []

    def misconfigured(ops: tuple[Any, ...]) -> Exception | None:
        if saves_an_attempt(ops) and len(refused) < 2:
            refused.append(1)
            return StoreError("writing to the store: permission denied for table attempts")
        return None

    async with refusing_store(tmp_path, monkeypatch, misconfigured) as (engine, up):
        run = await push(engine)

    assert len(refused) == 2
    assert (run.status, run.error) == ("succeeded", None)
    assert len(up.requests_to("/orders")) == 1
