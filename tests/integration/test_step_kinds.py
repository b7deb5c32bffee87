"""The flow building blocks (map, filter, split, batch, join, set, route, dedupe, assert, try,
run_flow, notify, delay) end to end: a real engine and worker, SQLite, a loopback upstream."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import format_run, run_json
from interlink.spec import Project

CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\nworker: {poll: 50ms}\n"


def project(root: Path, url: str, flows: dict[str, str],
            files: dict[str, str] | None = None) -> Project:
    """A connector `wh` to `url` (endpoints a, b, orders, fail) and the given flows."""
    return write_project(root, {
        "interlink.yaml": CONFIG,
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {url}
            retry: {{max_attempts: 1}}
            endpoints:
              a: {{method: POST, path: /a}}
              b: {{method: POST, path: /b}}
              orders: {{method: POST, path: /orders}}
              fail: {{method: POST, path: /fail}}
            """,
        **{f"flows/{name}.yaml": textwrap.dedent(text) for name, text in flows.items()},
        **(files or {}),
    })


async def finished(engine: Engine, flow: str, payload: Any) -> dict[str, Any]:
    """Start `flow` with `payload`; its JSON once it ended (20 s at most)."""
    run = await engine.runner.wait_for(await engine.runner.start(flow, payload), 20)
    return await run_json(engine.store, run)


SHAPING = """
name: shaping
steps:
  - {id: each, type: split, items: payload.orders}
  - {id: paid, type: filter, when: "payload.status == 'paid'"}
  - {id: shape, type: map, value: "{'id': payload.id, 'total': payload.total * 100}"}
  - {id: count, type: set, variables: {count: "bucket | length", first: "payload.id"}}
  - {id: note, type: map, template: templates/note.json}
  - {id: pairs, type: batch, size: 2}
"""


async def test_split_filter_map_set_batch_shape_a_bucket(tmp_path: Path) -> None:
    """A list is split, filtered (missing fields drop), mapped, counted and batched."""
    orders = [{"id": 1, "status": "paid", "total": 2}, {"id": 2, "status": "open"},
              {"id": 3, "status": "paid", "total": 4}, {"id": 4},
              {"id": 5, "status": "paid", "total": 1}]
    note = '{"order": "{{ payload.id }}", "of": "{{ variables.count }}", "cents": 1}'
    async with Upstream() as up, running_engine(project(
            tmp_path, up.url, {"shaping": SHAPING}, {"templates/note.json": note})) as engine:
        run = await finished(engine, "shaping", {"orders": orders})
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == [
        [{"order": "1", "of": "3", "cents": 1}, {"order": "3", "of": "3", "cents": 1}],
        [{"order": "5", "of": "3", "cents": 1}]]


async def test_join_gathers_the_bucket_and_a_failing_filter_names_the_payload(
    tmp_path: Path,
) -> None:
    """`join` makes one list; `filter … else: fail` fails the run naming the payload."""
    flows = {
        "joined": "name: joined\nsteps:\n  - {id: each, type: split, items: payload}\n"
                  "  - {id: all, type: join}\n",
        "strict": "name: strict\nsteps:\n  - {id: each, type: split, items: payload}\n"
                  "  - {id: ok, type: filter, when: 'payload > 1', else: fail}\n",
    }
    async with Upstream() as up, running_engine(project(tmp_path, up.url, flows)) as engine:
        joined = await finished(engine, "joined", [1, 2, 3])
        strict = await finished(engine, "strict", [2, 1])
    assert joined["output"] == [[1, 2, 3]]
    assert strict["status"] == "failed"
    assert strict["error"] == "step ok: payload 1 does not match 'payload > 1': 1"


ROUTING = """
name: routing
steps:
  - {id: each, type: split, items: payload}
  - id: by_country
    type: route
    routes:
      - when: "payload.country == 'DE'"
        steps: [{id: to_a, type: connector, connector: wh, endpoint: a}]
      - when: "payload.country == 'FR'"
        steps:
          - {id: to_b, type: connector, connector: wh, endpoint: b}
          - {id: shape_b, type: map, value: "{'b': payload.n}"}
"""


async def test_route_sends_each_payload_down_one_branch_and_keeps_input_order(
    tmp_path: Path,
) -> None:
    """DE → /a, FR → /b, others pass through unchanged; outputs in the input order."""
    orders = [{"n": 1, "country": "FR"}, {"n": 2, "country": "DE"}, {"n": 3, "country": "US"},
              {"n": 4, "country": "FR"}]
    async with Upstream() as up:
        up.route("/a", body={"a": "ok"})
        up.route("/b", body={"n": "from-b"})
        async with running_engine(project(tmp_path, up.url, {"routing": ROUTING})) as engine:
            run = await finished(engine, "routing", orders)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == [{"b": "from-b"}, {"a": "ok"}, {"n": 3, "country": "US"},
                             {"b": "from-b"}]
    assert [r.json["n"] for r in up.requests_to("/b")] == [1, 4]
    assert [r.json["n"] for r in up.requests_to("/a")] == [2]
    keys = {r.headers["Idempotency-Key"] for r in up.requests_to("/b")}
    assert keys == {f"{run['id']}:to_b:0", f"{run['id']}:to_b:1"}
    # The branches' attempts are in the run log, under the route step, each naming its step.
    route = run["steps"][1]
    assert route["id"] == "by_country"
    assert sorted((a["step"], a["item"]) for a in route["attempts"]) == [
        ("to_a", 0), ("to_b", 0), ("to_b", 1)]
    assert "to_b #1 POST" in format_run(run)


DEDUPING = """
name: deduping
steps:
  - {id: each, type: split, items: payload}
  - {id: new, type: dedupe, key: payload.id, ttl: 1h}
  - {id: push, type: connector, connector: wh, endpoint: orders}
"""


async def test_dedupe_drops_what_an_earlier_run_saw(tmp_path: Path) -> None:
    """Keys seen by an earlier run (or earlier in the bucket) are dropped, new ones pass."""
    async with Upstream() as up, running_engine(
            project(tmp_path, up.url, {"deduping": DEDUPING})) as engine:
        first = await finished(engine, "deduping", [{"id": 1}, {"id": 2}, {"id": 1}])
        second = await finished(engine, "deduping", [{"id": 2}, {"id": 3}])
    assert len(first["output"]) == 2
    assert len(second["output"]) == 1
    assert [r.json["id"] for r in up.requests_to("/orders")] == [1, 2, 3]
    assert any("dropped 1 payload(s) seen before" in line["message"] for line in second["logs"])


async def test_dedupe_keeps_the_keys_of_a_run_retried_after_code_2(tmp_path: Path) -> None:
    """A retry run (code 2) owns the keys its failed first run saw: they are delivered."""
    flows = {"deduping": DEDUPING.replace("name: deduping", "name: deduping\n"
                                          "retry: {max_flow_retries: 1, delay: 100ms}")
             .replace("endpoint: orders}", "endpoint: orders,\n"
                      "     response_script: scripts/once.py}")}
    once = '''
def handle(data):
    if data["meta"]["retry_count"] == 0:
        data["response_code"] = 2
        data["message"] = "try the flow again"
    return data
'''
    async with Upstream() as up, running_engine(project(tmp_path, up.url, flows,
                                      {"scripts/once.py": once})) as engine:
        first_id = await engine.runner.start("deduping", [{"id": 7}])
        first = await engine.runner.wait_for(first_id, 20)
        retried = None
        for _ in range(200):
            runs = await engine.store.list_runs()
            retried = next((r for r in runs if r.retry_of == first_id
                            and r.status == "succeeded"), None)
            if retried is not None:
                break
            await asyncio.sleep(0.05)
    assert first.status == "failed"
    assert retried is not None and retried.bucket is not None and len(retried.bucket) == 1
    assert len(up.requests_to("/orders")) == 2  # the first run's, then the retry's


TRYING = """
name: trying
steps:
  - id: push_or_park
    type: try
    steps:
      - {id: push, type: connector, connector: wh, endpoint: fail}
    catch:
      - {id: park, type: connector, connector: wh, endpoint: b,
         body: "{'order': payload, 'why': error.message}"}
    finally:
      - {id: done, type: set, variables: {handled: "true"}}
  - {id: check, type: assert, that: "payload.parked", message: "{{ payload }} not parked"}
"""


async def test_try_runs_catch_with_the_error_then_finally(tmp_path: Path) -> None:
    """The failed push is caught; catch sees `error.message`; finally sets a variable."""
    async with Upstream() as up:
        up.route("/fail", statuses=[400])
        up.route("/b", body={"parked": True})
        async with running_engine(project(tmp_path, up.url, {"trying": TRYING})) as engine:
            run = await finished(engine, "trying", {"id": 9})
            record = await engine.store.get_run(run["id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == [{"parked": True}]
    parked = up.requests_to("/b")[0].json
    assert parked["order"] == {"id": 9}
    assert parked["why"] == "calling wh.fail: HTTP 400 (attempt 1 of 1)"
    assert record is not None and record.variables == {"handled": True}


async def test_assert_fails_the_run_with_its_message(tmp_path: Path) -> None:
    """A payload the assertion does not hold for fails the run, with the rendered message."""
    async with Upstream() as up:
        up.route("/fail", statuses=[400])
        up.route("/b", body={"parked": False})
        async with running_engine(project(tmp_path, up.url, {"trying": TRYING})) as engine:
            run = await finished(engine, "trying", {"id": 10})
    assert run["status"] == "failed"
    assert run["error"] == "step check: {'parked': False} not parked"


async def statuses_seen(engine: Engine, run_id: str) -> list[str]:
    """The run's statuses as looked at every 20 ms until it succeeded (3 s at most)."""
    seen: list[str] = []
    for _ in range(150):
        record = await engine.store.get_run(run_id)
        assert record is not None
        seen.append(record.status)
        if record.status == "succeeded":
            break
        await asyncio.sleep(0.02)
    return seen


async def test_delay_waits_durably_then_goes_on(tmp_path: Path) -> None:
    """A delay is a durable wait (the run is `waiting`), then the run goes on."""
    flows = {"later": "name: later\nsteps:\n  - {id: pause, type: delay, for: 1500ms}\n"
                      "  - {id: push, type: connector, connector: wh, endpoint: orders}\n"}
    async with Upstream() as up, running_engine(project(tmp_path, up.url, flows)) as engine:
        run_id = await engine.runner.start("later", {"id": 11})
        statuses = await statuses_seen(engine, run_id)
        logs = await engine.store.get_logs(run_id)
    assert "waiting" in statuses
    assert statuses[-1] == "succeeded"
    assert up.requests_to("/orders")[0].json == {"id": 11}
    # Waiting as told is not a warning (a connector's retry wait is: an attempt failed).
    [wait] = [line for line in logs if "waiting until" in line.message]
    assert wait.level == "info"


async def test_a_short_delay_is_slept_in_place(tmp_path: Path) -> None:
    """Two delays under a second: the run never goes `waiting` (no queue round trip) and
    logs no wait."""
    flows = {"soon": "name: soon\nsteps:\n  - {id: a, type: delay, for: 150ms}\n"
                     "  - {id: b, type: delay, for: 200ms}\n"
                     "  - {id: push, type: connector, connector: wh, endpoint: orders}\n"}
    async with Upstream() as up, running_engine(project(tmp_path, up.url, flows)) as engine:
        run_id = await engine.runner.start("soon", {"id": 12})
        statuses = await statuses_seen(engine, run_id)
        logs = await engine.store.get_logs(run_id)
    assert statuses[-1] == "succeeded"
    assert "waiting" not in statuses
    assert not any("waiting until" in line.message for line in logs)
    assert up.requests_to("/orders")[0].json == {"id": 12}


PARENT = """
name: parent
steps:
  - {id: each, type: split, items: payload}
  - {id: enrich, type: run_flow, flow: child}
"""

CHILD = """
name: child
steps:
  - {id: remember, type: set, variables: {order: payload.id}}
  - {id: push, type: connector, connector: wh, endpoint: orders}
  - {id: shape, type: map, value: "{'child_of': variables.order}"}
"""


async def test_run_flow_waits_for_its_children_and_takes_their_outputs(tmp_path: Path) -> None:
    """One child run per payload, waited for durably; outputs in order; ids idempotent."""
    flows = {"parent": PARENT, "child": CHILD,
             "fire": "name: fire\nsteps:\n"
                     "  - {id: go, type: run_flow, flow: child, wait: false}\n"}
    async with Upstream() as up:
        up.route("/orders", delay=0.3, body=None)
        async with running_engine(project(tmp_path, up.url, flows)) as engine:
            parent = await finished(engine, "parent", [{"id": 1}, {"id": 2}])
            fired = await finished(engine, "fire", {"id": 3})
            children = [r for r in await engine.store.list_runs() if r.flow == "child"]
    assert parent["status"] == "succeeded", parent["error"]
    assert parent["output"] == [{"child_of": 1}, {"child_of": 2}]
    assert fired["output"][0]["run_id"].startswith("r_")
    assert {r.trigger for r in children} == {"flow:parent", "flow:fire"}
    assert len(children) == 3
    assert sorted(r.json["id"] for r in up.requests_to("/orders")) == [1, 2, 3]


async def test_a_failed_child_fails_the_parent(tmp_path: Path) -> None:
    """The parent fails naming the child run that failed."""
    flows = {"parent": PARENT, "child": CHILD.replace("endpoint: orders", "endpoint: fail")}
    async with Upstream() as up:
        up.route("/fail", statuses=[500])
        async with running_engine(project(tmp_path, up.url, flows)) as engine:
            parent = await finished(engine, "parent", [{"id": 1}])
    assert parent["status"] == "failed"
    assert "of child failed: calling wh.fail: HTTP 500" in parent["error"]



async def test_a_child_outlives_keep_runs_while_its_parent_is_kept(tmp_path: Path) -> None:
    """Past `keep_runs`, a succeeded child of a failed (kept) parent is not purged: re-driving
    the parent at its run_flow step would find it gone and run it again — its order sent a
    second time, long after any upstream remembers the key."""
    flows = {"parent": PARENT, "child": CHILD}
    async with Upstream() as up:
        up.route("/orders", answer=lambda req: (400 if req.json["id"] == 2 else 200, {}, {}))
        async with running_engine(project(tmp_path, up.url, flows)) as engine:
            parent = await finished(engine, "parent", [{"id": 1}, {"id": 2}])
            assert parent["status"] == "failed"
            # 40 days on (only the children: a parent's time is part of its children's ids)
            with sqlite3.connect(tmp_path / ".interlink" / "test.db") as db:
                db.execute("UPDATE runs SET created_at = created_at - :d, "
                           "updated_at = updated_at - :d WHERE flow = 'child'",
                           {"d": 40 * 86_400})
            purged = await engine.store.purge_runs(before=time.time() - 30 * 86_400,
                                                   statuses=("succeeded", "stopped"))
            assert await engine.runner.redrive(parent["id"]) == parent["id"]
            again = await engine.runner.wait_for(parent["id"], 20)
    assert sorted(r.json["id"] for r in up.requests_to("/orders")) == [1, 2]
    assert purged == 0
    assert again.status == "failed"  # the child that failed still has

NOTIFYING = """
name: notifying
steps:
  - id: tell
    type: notify
    url: "{{ variables.hook }}"
    template: templates/told.json
  - {id: push, type: connector, connector: wh, endpoint: orders}
"""


async def test_notify_posts_a_message_and_an_undelivered_one_is_only_logged(
    tmp_path: Path,
) -> None:
    """The rendered JSON template is POSTed; a 500 from the hook is logged, the run goes on."""
    told = '{"text": "order {{ payload.id }} received", "id": "{{ payload.id }}"}'
    async with Upstream() as up:
        flows = {"notifying": NOTIFYING.replace("name: notifying",
                                                f"name: notifying\nvariables: {{hook: "
                                                f"'{up.url}/hook'}}")}
        async with running_engine(project(tmp_path, up.url, flows,
                                          {"templates/told.json": told})) as engine:
            ok = await finished(engine, "notifying", {"id": 12})
            up.route("/hook", statuses=[500])
            logged = await finished(engine, "notifying", {"id": 13})
    assert ok["status"] == "succeeded"
    assert up.requests_to("/hook")[0].json == {"text": "order 12 received", "id": "12"}
    assert ok["steps"][0]["attempts"][0]["decision"] == "continue"
    assert logged["status"] == "succeeded"
    assert any("notifying failed: HTTP 500" in line["message"] for line in logged["logs"])


NESTED_WAIT = """
name: nested
steps:
  - id: guarded
    type: try
    steps:
      - {id: push, type: connector, connector: wh, endpoint: orders}
      - {id: tell, type: notify, url: "{{ variables.hook }}", body: payload}
      - {id: pause, type: delay, for: 1200ms}
    catch:
      - {id: never, type: map, value: "'caught'"}
"""


async def test_a_composite_resumed_after_a_durable_wait_keeps_what_its_steps_did(
    tmp_path: Path,
) -> None:
    """A try whose steps wait durably runs again on resume: the push and the notify are not
    sent again, and the push's output is still the step's."""
    async with Upstream() as up:
        up.route("/orders", body={"pushed": True})
        flows = {"nested": NESTED_WAIT.replace("name: nested", f"name: nested\nvariables: "
                                               f"{{hook: '{up.url}/hook'}}")}
        async with running_engine(project(tmp_path, up.url, flows)) as engine:
            run = await finished(engine, "nested", {"id": 14})
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == [{"pushed": True}]
    assert len(up.requests_to("/orders")) == 1
    assert len(up.requests_to("/hook")) == 1


async def test_catch_sees_the_id_of_the_nested_step_that_failed(tmp_path: Path) -> None:
    """`error.step` names the step inside the try that failed, not the try."""
    flows = {"trying": """
        name: trying
        steps:
          - id: outer
            type: try
            steps:
              - {id: fine, type: map, value: payload}
              - {id: broken, type: connector, connector: wh, endpoint: fail}
            catch:
              - {id: why, type: map, value: "error.step"}
        """}
    async with Upstream() as up:
        up.route("/fail", statuses=[400])
        async with running_engine(project(tmp_path, up.url, flows)) as engine:
            run = await finished(engine, "trying", {"id": 15})
    assert run["output"] == ["broken"]
