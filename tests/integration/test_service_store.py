"""Services with a real SQLite store: sessions, queue_when, async execution, replay."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from interlink.services import (
    QUEUE_KIND,
    ActivityResult,
    build_services_app,
    call_app,
    replay_request,
)
from interlink.services.queueing import request_payload
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.spec.service import ServiceSpec as _ServiceSpec
from interlink.store import Store, open_store


class Runner:
    """Activity runner: counts visits in the session, fails when asked to."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, service: _ServiceSpec, context: dict[str, Any], *,
                  run_id: str = "") -> ActivityResult:
        """Bump `session.visits` (stateful services) and echo the page."""
        self.calls += 1
        if context["page"].get("fail"):
            raise RuntimeError("upstream down")
        if context["session"] is not None:
            context["session"]["visits"] = context["session"].get("visits", 0) + 1
        return ActivityResult("succeeded", context["page"], f"run_{self.calls}")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in the test's folder."""
    async with open_store("sqlite:///store.db", tmp_path) as opened:
        yield opened


def _project(root: Path, services: list[dict[str, Any]], packages: dict[str, Any]) -> Project:
    return Project(
        root=root,
        config=ProjectConfig.model_validate({"name": "t", "packages": packages}),
        services={s["name"]: ServiceSpec.model_validate(s) for s in services},
    )


STATEFUL = {"web": {"processing": "stateful", "session": {"cookie": "SID", "ttl": "10m"}}}


async def test_stateful_cookie_round_trip(tmp_path: Path, store: Store) -> None:
    """The first answer sets the cookie; the next request with it sees the stored session."""
    project = _project(tmp_path, [{
        "name": "visit", "path": "/visit", "package": "web",
        "request": {"map": {"session.last": "request.body.name", "page.prev": "session.visits"}},
        "activity": {"flow": "f"},
        "responses": [{"on": "default", "status": 200, "body": {"from": "json", "value": {
            "visits": "{{ session.visits }}", "last": "{{ session.last }}",
            "prev": "{{ page.prev }}"}}}],
    }], STATEFUL)
    app = build_services_app(project, activity_runner=Runner(), store=store)

    first = await call_app(app, "POST", "/visit", body=b'{"name": "ann"}')
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("SID=")
    assert "; HttpOnly" in cookie
    assert "; SameSite=Lax" in cookie
    assert "; Path=/" in cookie
    assert first.json() == {"visits": "1", "last": "ann", "prev": "None"}
    session_id = cookie.split(";")[0].removeprefix("SID=")

    second = await call_app(app, "POST", "/visit", headers={"Cookie": f"a=b; SID={session_id}"},
                            body=b'{"name": "bob"}')
    assert second.json() == {"visits": "2", "last": "bob", "prev": "1"}
    assert second.headers["set-cookie"].startswith(f"SID={session_id};")
    record = await store.get_session(session_id, 0)
    assert record is not None
    assert record.data == {"last": "bob", "visits": 2}

    unknown = await call_app(app, "POST", "/visit", headers={"Cookie": "SID=" + "z" * 43},
                             body=b'{"name": "cy"}')
    assert unknown.json()["visits"] == "1"
    assert not unknown.headers["set-cookie"].startswith("SID=" + "z" * 43)


async def test_session_id_is_readable_in_rules(tmp_path: Path, store: Store) -> None:
    """`session.id` is the cookie's session (requestor) id; it is not stored as data."""
    project = _project(tmp_path, [{
        "name": "v", "path": "/v", "package": "web",
        "request": {"map": {"session.n": "1"}},
        "responses": [{"when": "session.id is not none", "headers": [
            {"name": "X-Requestor", "from": "context", "key": "session.id"}]}],
    }], STATEFUL)
    app = build_services_app(project, store=store)
    r = await call_app(app, "POST", "/v")
    session_id = r.headers["set-cookie"].split(";")[0].removeprefix("SID=")
    assert (r.status, r.headers["x-requestor"]) == (200, session_id)
    record = await store.get_session(session_id, 0)
    assert record is not None and record.data == {"n": 1}
    again = await call_app(app, "POST", "/v", headers={"Cookie": f"SID={session_id}"})
    assert again.headers["x-requestor"] == session_id


async def test_rule_set_cookie_replaces_the_session_cookie(tmp_path: Path, store: Store) -> None:
    """A rule mapping its own Set-Cookie is the only Set-Cookie sent."""
    project = _project(tmp_path, [{
        "name": "v", "path": "/v", "package": "web", "responses": [{
            "on": "default", "status": 200,
            "headers": [{"name": "Set-Cookie", "from": "constant", "value": "mine=1"}]}],
    }], STATEFUL)
    app = build_services_app(project, store=store)
    r = await call_app(app, "POST", "/v")
    assert r.header_list("set-cookie") == ["mine=1"]


async def test_unauthenticated_caller_gets_no_session(tmp_path: Path, store: Store) -> None:
    """A security failure on a stateful package sets no cookie."""
    packages = {"web": {**STATEFUL["web"], "auth": {"type": "bearer", "tokens": ["t"]}}}
    project = _project(tmp_path, [{"name": "v", "path": "/v", "package": "web"}], packages)
    app = build_services_app(project, store=store)
    r = await call_app(app, "POST", "/v")
    assert r.status == 401
    assert "set-cookie" not in r.headers


async def test_queue_when_enqueues_and_answers_with_the_item_id(
    tmp_path: Path, store: Store
) -> None:
    """A matching queue_when queues the request (credentials dropped) and answers its id."""
    secret = "hk"
    packages = {"p": {"auth": {"type": "hmac", "secret": secret}}}
    project = _project(tmp_path, [{
        "name": "orders", "path": "/orders/{id}", "package": "p",
        "request": {"map": {"page.fail": "request.body.fail"}},
        "activity": {"flow": "f"},
        "responses": [
            {"queue_when": "error is not none", "status": 202,
             "headers": [{"name": "X-Queue-Item", "from": "context", "key": "queue_item_id"}],
             "body": {"from": "json", "value": {"queued": "{{ queue_item_id }}"}}},
            {"on": "default", "status": 200},
        ],
    }], packages)
    runner = Runner()
    app = build_services_app(project, activity_runner=runner, store=store)
    body = b'{"fail": true}'
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    r = await call_app(app, "POST", "/orders/9?x=1",
                       headers={"X-HMAC-HASH": signature, "X-Trace": "t1"}, body=body)
    assert r.status == 202
    item_id = r.json()["queued"]
    assert r.headers["x-queue-item"] == item_id
    item = await store.get_item(item_id)
    assert item is not None
    assert item.kind == QUEUE_KIND
    assert item.status == "ready"
    assert item.payload == {
        "service": "orders", "method": "POST", "path": "/orders/9",
        "path_params": {"id": "9"}, "query": {"x": "1"},
        "headers": {"x-trace": "t1", "content-length": "14"},
        "session_id": None, "body": '{"fail": true}',
        "run_id": item.payload["run_id"],
    }
    assert re.fullmatch(r"r_[0-9a-z]{36}", item.payload["run_id"])  # the request's run

    ok = await call_app(app, "POST", "/orders/9", headers={"X-HMAC-HASH": hmac.new(
        secret.encode(), b"{}", hashlib.sha256).hexdigest()}, body=b"{}")
    assert ok.status == 200

    context = await replay_request(project, item.payload, store=store, queue_item_id=item_id)
    assert context["page"] == {"fail": True}
    assert context["request"]["path_params"] == {"id": "9"}
    assert context["queue_item_id"] == item_id


async def test_async_execution_queues_at_once(tmp_path: Path, store: Store) -> None:
    """`execution: async` queues without running the activity and answers 202 + the id."""
    project = _project(tmp_path, [{
        "name": "later", "path": "/later", "execution": "async", "activity": {"flow": "f"},
        "request": {"body": "text"},
    }], {})
    runner = Runner()
    app = build_services_app(project, activity_runner=runner, store=store)
    r = await call_app(app, "POST", "/later", body=b"hello")
    assert r.status == 202
    item = await store.get_item(r.json()["queue_item_id"])
    assert item is not None
    assert runner.calls == 0
    assert item.payload["body"] == "hello"


def test_binary_bodies_are_queued_as_base64() -> None:
    """A body that is not UTF-8 is kept byte for byte, base64-encoded."""
    context = {"request": {"method": "POST", "path": "/b", "path_params": {}, "query": {},
                           "headers": {}}}
    payload = request_payload("b", context, b"\xffbin", drop_headers=frozenset(),
                              drop_query=frozenset(), session_id=None)
    assert payload["body_base64"] == "/2Jpbg=="
    assert "body" not in payload


async def test_replay_of_a_stateful_request_loads_the_session(
    tmp_path: Path, store: Store
) -> None:
    """`replay_request` rebuilds the session from the stored session id."""
    project = _project(tmp_path, [{
        "name": "v", "path": "/v", "package": "web", "execution": "async",
        "request": {"map": {"session.seen": "true"}},
    }], STATEFUL)
    app = build_services_app(project, store=store)
    r = await call_app(app, "POST", "/v", body=b'{"a": 1}')
    item = await store.get_item(r.json()["queue_item_id"])
    assert item is not None
    assert item.payload["session_id"]
    context = await replay_request(project, item.payload, store=store)
    assert context["session"] == {"seen": True, "id": item.payload["session_id"]}
    assert context["request"]["body"] == {"a": 1}
