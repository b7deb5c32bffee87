"""Services with real activities: a real engine and worker, SQLite, a loopback upstream.

Requests go through the served app (`build_app`: the services plus `/_interlink/`) in-process
with `call_app`; flows call the upstream over real HTTP; queued requests are re-run by the
engine's worker under the service's `request_processor`.
"""

from __future__ import annotations

import asyncio
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp
from tests.projects import push_to, queued_orders, running_engine, write_project
from tests.upstream import Upstream

from interlink.activities import _result
from interlink.server import build_app
from interlink.services import CallResult, call_app
from interlink.spec import Project
from interlink.store import Requeue, RunRecord

#: a short worker poll so retries due in 100 ms are picked up promptly
CONFIG = """
name: test
store: sqlite:///.interlink/test.db
worker: {poll: 50ms}
"""

VALIDATE = '''
def handle(data):
    order = data["payload"]
    if order.get("qty", 0) <= 0:
        data["response_code"] = 3
        data["message"] = "qty must be positive"
        return data
    data["payload"] = {"accepted": order["id"], "qty": order["qty"],
                       "service": data["meta"]["service"]}
    return data
'''

ANSWERS = '''
def receipt(context):
    payload = context["result"]["payload"]
    return {"receipt": "R-%s" % payload["accepted"], "path": context["request"]["path"]}


def receipt_header(context):
    return "R-%s" % context["result"]["payload"]["accepted"]
'''


def project(root: Path, upstream: Upstream, services: dict[str, str]) -> Project:
    """A project whose flow `push` posts its input to the upstream's /orders (one attempt)."""
    files = {
        "interlink.yaml": CONFIG,
        **push_to(upstream.url),
        "scripts/validate.py": VALIDATE,
        "scripts/answers.py": ANSWERS,
        **{f"services/{name}.yaml": text for name, text in services.items()},
    }
    return write_project(root, files)


async def post(app: ASGIApp, path: str, body: Any) -> CallResult:
    """POST `body` as JSON to the app."""
    return await call_app(app, "POST", path, body=orjson.dumps(body),
                          headers={"Content-Type": "application/json"})


async def queue_item(app: ASGIApp, item_id: str, *statuses: str) -> dict[str, Any]:
    """`GET /_interlink/queue/{id}` until the item is in one of `statuses` (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            answer = await call_app(app, "GET", f"/_interlink/queue/{item_id}")
            assert answer.status == 200, answer.text
            item: dict[str, Any] = answer.json()
            if item["status"] in statuses:
                return item
            await asyncio.sleep(0.02)


ORDERS = """
name: orders
path: /orders
request:
  map: {page.order: request.body.order}
activity: {flow: push, input: page.order}
responses:
  - when: "result.payload.status == 'HELD'"
    status: 202
    headers:
      - {name: X-Order-Id, from: context, key: result.payload.id}
    body: {from: json, value: {held: "{{ result.payload.id }}", run: "{{ result.run_id }}"}}
  - on: default
    status: 200
    headers:
      - {name: X-Run-Id, from: context, key: result.run_id}
    body: {from: context, key: result.payload}
"""


async def test_flow_activity_answers_by_default_and_when_rules(tmp_path: Path) -> None:
    """A flow activity's result answers by the default rule, or by a `when` rule on it."""
    async with Upstream() as up:
        up.route("/orders", body={"id": 7, "status": "OK"})
        async with running_engine(project(tmp_path, up, {"orders": ORDERS})) as engine:
            app = build_app(engine, None)
            ok = await post(app, "/orders", {"order": {"id": 7, "qty": 2}})
            run_id = ok.headers["x-run-id"]
            run = await engine.store.get_run(run_id)
            up.route("/orders", body={"id": 8, "status": "HELD"})
            held = await post(app, "/orders", {"order": {"id": 8, "qty": 1}})
            held_run = await engine.store.get_run(held.json()["run"])

    assert ok.status == 200
    assert ok.body == b'{"id":7,"status":"OK"}'
    names = [name for name, _ in ok.raw_headers]
    assert sorted(names) == ["cache-control", "content-length", "content-type", "date",
                             "server", "x-run-id"]
    assert ok.headers["content-type"] == "application/json"
    assert ok.headers["content-length"] == str(len(ok.body))
    assert ok.headers["server"] == "interlink"
    assert ok.headers["cache-control"] == "no-store"
    parsedate_to_datetime(ok.headers["date"])
    assert run is not None and run.status == "succeeded"
    assert run.trigger == "service:orders" and run.input == {"id": 7, "qty": 2}

    assert held.status == 202
    assert held.headers["x-order-id"] == "8"
    assert held.json()["held"] == "8"
    assert held_run is not None and held_run.status == "succeeded"
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 7, "qty": 2},
                                                           {"id": 8, "qty": 1}]


async def test_queue_when_answers_202_and_completes_once_upstream_is_back(
    tmp_path: Path,
) -> None:
    """Upstream down: 202 with the queue item id; upstream back: the item ends done, kept."""
    processor = "{max_attempts: 20, delay: 100ms, backoff: 1}"
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        services = {"orders": queued_orders(processor)}
        async with running_engine(project(tmp_path, up, services)) as engine:
            app = build_app(engine, None)
            answer = await post(app, "/orders", {"id": 1})
            item_id = answer.json()["queued"]
            queued = await queue_item(app, item_id, "ready", "leased")
            up.route("/orders", body={"id": 1, "stored": True})
            done = await queue_item(app, item_id, "done")
            run = await engine.store.get_run(done["result"]["run_id"])

    assert answer.status == 202
    assert answer.headers["content-type"] == "application/json"
    assert item_id.startswith("q_")
    assert queued["kind"] == "service_request"
    assert queued["result"] is None
    assert set(done) >= {"id", "kind", "status", "attempts", "run_at", "last_error", "result"}
    assert done["id"] == item_id
    assert done["attempts"] >= 1
    assert done["result"]["status"] == "succeeded"
    assert done["result"]["payload"] == {"id": 1, "stored": True}
    assert run is not None and run.status == "succeeded"
    sent = up.requests_to("/orders")
    assert all(r.json == {"id": 1} for r in sent)  # every replay sent the request's body
    assert sent[-1].headers.get("Authorization") is None


async def test_exhausted_item_is_broken_and_requeue_revives_it(tmp_path: Path) -> None:
    """After max_attempts the item is broken (keep_failed); a requeue completes it later."""
    processor = "{max_attempts: 2, delay: 100ms, keep_failed: true}"
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        services = {"orders": queued_orders(processor)}
        async with running_engine(project(tmp_path, up, services)) as engine:
            app = build_app(engine, None)
            item_id = (await post(app, "/orders", {"id": 2})).json()["queued"]
            broken = await queue_item(app, item_id, "broken", "failed", "done")
            tries_while_down = len(up.requests_to("/orders"))
            up.route("/orders", body={"id": 2, "stored": True})
            revived = await engine.store.write(Requeue(item_id), Requeue("q_nope"))
            done = await queue_item(app, item_id, "done", "broken")
            again = await engine.store.write(Requeue(item_id))
            missing = await call_app(app, "GET", "/_interlink/queue/q_nope")

    assert broken["status"] == "broken"
    assert broken["attempts"] == 2
    assert broken["last_error"].startswith("activity: ")
    assert tries_while_down == 3  # the request itself, then the two processor attempts
    assert revived == [True, False]
    assert done["status"] == "done"
    assert done["attempts"] == 1  # a requeue resets the attempts
    assert done["result"]["payload"] == {"id": 2, "stored": True}
    assert again == [False]  # only broken or failed items come back
    assert missing.status == 404
    assert missing.headers["content-type"] == "application/json"
    assert "error" in missing.json()


async def test_exhausted_item_without_keep_failed_is_failed(tmp_path: Path) -> None:
    """With keep_failed false an exhausted item ends failed, not broken."""
    processor = "{max_attempts: 1, delay: 100ms, keep_failed: false}"
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        services = {"orders": queued_orders(processor)}
        async with running_engine(project(tmp_path, up, services)) as engine:
            app = build_app(engine, None)
            item_id = (await post(app, "/orders", {"id": 3})).json()["queued"]
            failed = await queue_item(app, item_id, "broken", "failed", "done")
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1


ASYNC_ORDERS = """
name: {name}
path: /{name}
execution: async
activity: {{flow: push}}
request_processor: {{delay: 100ms, keep_results: {keep}}}
"""


async def test_async_execution_answers_at_once_and_the_processor_runs_it(
    tmp_path: Path,
) -> None:
    """`execution: async` answers 202 with the item id; the worker runs the flow once."""
    services = {"orders": ASYNC_ORDERS.format(name="orders", keep="true"),
                "fire": ASYNC_ORDERS.format(name="fire", keep="false")}
    async with Upstream() as up:
        up.route("/orders", body={"ok": True})
        async with running_engine(project(tmp_path, up, services)) as engine:
            app = build_app(engine, None)
            answer = await post(app, "/orders", {"id": 4})
            item_id = answer.json()["queue_item_id"]
            done = await queue_item(app, item_id, "done", "broken", "failed")
            fired = (await post(app, "/fire", {"id": 5})).json()["queue_item_id"]
            not_kept = await queue_item(app, fired, "done", "broken", "failed")

    assert answer.status == 202
    assert answer.json() == {"queue_item_id": item_id}
    assert done["status"] == "done" and done["attempts"] == 1
    assert done["result"]["status"] == "succeeded"
    assert done["result"]["payload"] == {"ok": True}
    assert not_kept["status"] == "done" and not_kept["result"] is None
    # the activity ran in the worker only, once per request
    assert [r.json for r in up.requests_to("/orders")] == [{"id": 4}, {"id": 5}]


INTAKE = """
name: intake
path: /intake
activity: {script: scripts/validate.py}
responses:
  - on: service_error
    status: 422
    body: {from: json, value: {error: "{{ error.type }}", detail: "{{ error.detail }}"}}
  - on: default
    status: 201
    headers:
      - {name: X-Receipt, from: function, function: "scripts/answers.py:receipt_header"}
    body: {from: function, function: "scripts/answers.py:receipt"}
"""


async def test_script_activity_and_function_body_through_the_script_pool(
    tmp_path: Path,
) -> None:
    """A script activity's payload is the result; `from: function` builds header and body."""
    async with (
        Upstream() as up,
        running_engine(project(tmp_path, up, {"intake": INTAKE})) as engine,
    ):
        app = build_app(engine, None)
        ok = await post(app, "/intake", {"id": 9, "qty": 3})
        refused = await post(app, "/intake", {"id": 10, "qty": 0})

    assert ok.status == 201, ok.text
    assert ok.json() == {"receipt": "R-9", "path": "/intake"}
    assert ok.headers["content-type"] == "application/json"
    assert ok.headers["x-receipt"] == "R-9"
    assert refused.status == 422
    assert refused.json()["error"] == "activity_failed"
    assert "qty must be positive" in refused.json()["detail"]
    assert up.requests == []


async def test_result_payload_is_the_runs_one_payload_unwrapped(tmp_path: Path) -> None:
    """`result.payload` is the run's only output payload, not the one-item bucket the run's
    `output` shows."""
    service = """
        name: unwrap
        path: /unwrap
        activity: {flow: push}
        responses:
          - when: "result.payload.ref == 'WH-7'"
            body: {from: json, value: {order: "{{ result.payload.id }}",
                                       run: "{{ result.run_id }}"}}
        """
    async with Upstream() as up:
        up.route("/orders", body={"id": 7, "ref": "WH-7"})
        async with running_engine(project(tmp_path, up, {"unwrap": service})) as engine:
            app = build_app(engine, None)
            answer = await post(app, "/unwrap", {"id": 7})
            run = await call_app(app, "GET", f"/_interlink/runs/{answer.json()['run']}")
    assert (answer.status, answer.json()["order"]) == (200, "7")
    assert run.json()["output"] == [{"id": 7, "ref": "WH-7"}]


def test_result_payload_unwraps_exactly_one_payload() -> None:
    """One payload is unwrapped; none or several stay a list; a failed run has none."""

    def run(bucket: list[Any], status: Any = "succeeded") -> RunRecord:
        return RunRecord("r_1", "f", status, "api", None, {}, 0.0, bucket=bucket)

    assert _result(run([{"a": 1}])).payload == {"a": 1}
    assert _result(run([[1, 2]])).payload == [1, 2]  # one payload that is a list
    assert _result(run([])).payload == []
    assert _result(run([{"a": 1}, {"b": 2}])).payload == [{"a": 1}, {"b": 2}]
    assert _result(run([{"a": 1}], "failed")).payload is None
