"""The engine endpoints behind the admin token, or loopback-only without one; queue items
readable with the package credentials of the queued request; 413 over admin.max_body."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from starlette.types import ASGIApp
from tests.projects import write_project
from tests.unit.test_ids import random_part

from interlink.engine import Engine
from interlink.server import build_app
from interlink.services import CallResult, call_app

TOKEN = "admin-token-0123456789"
OLD_TOKEN = "admin-token-previous-42"
PARTNER_KEY = "partner-key-0123"
OTHER_KEY = "other-key-0123456"
OUTSIDE = ("203.0.113.9", 40000)

FILES = {
    "flows/greet.yaml": """
        name: greet
        steps:
          - {id: s, type: script, script: scripts/s.py}
        """,
    "scripts/s.py": "def handle(data):\n    return data\n",
    # Queued at once (execution: async): the answer names the queue item.
    "services/orders.yaml": """
        name: orders
        path: /orders
        package: partners
        execution: async
        activity: {flow: greet}
        """,
    "services/other.yaml": """
        name: other
        path: /other
        package: others
        execution: async
        activity: {flow: greet}
        """,
    "services/open.yaml": """
        name: open
        path: /open
        execution: async
        activity: {flow: greet}
        """,
}


def config(admin: str) -> str:
    """interlink.yaml with `admin` and two API-key packages."""
    return f"""
        name: t
        store: sqlite:///.interlink/t.db
        {admin}
        packages:
          partners: {{auth: {{type: api_key, keys: ["{PARTNER_KEY}"]}}}}
          others: {{auth: {{type: api_key, keys: ["{OTHER_KEY}"]}}}}
        """


DEFAULT_ADMIN = f'admin: {{token: ["{TOKEN}", "{OLD_TOKEN}"]}}'


@contextlib.asynccontextmanager
async def serving(root: Path, admin: str = DEFAULT_ADMIN) -> AsyncIterator[
        tuple[ASGIApp, dict[str, str]]]:
    """The served app of a project with `admin`; and the ids of a run, of a partner's queued
    request, of another package's and of an open service's."""
    project = write_project(root, {**FILES, "interlink.yaml": config(admin)})
    async with Engine(project) as engine:
        app = build_app(engine, None)
        ids = {"run": await engine.runner.start("greet", {"secret-ish": "payload"})}
        for name, path, key in (("queued", "/orders", PARTNER_KEY),
                                ("other", "/other", OTHER_KEY), ("open", "/open", None)):
            answer = await call_app(app, "POST", path, headers={"X-API-Key": key} if key else {})
            ids[name] = answer.json()["queue_item_id"]
        yield app, ids


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ASGIApp, dict[str, str]]]:
    """`serving` with two admin tokens."""
    async with serving(tmp_path) as app_and_ids:
        yield app_and_ids


def endpoints(ids: dict[str, str]) -> list[tuple[str, str]]:
    """Every engine endpoint but health, with real ids."""
    return [("POST", "/_interlink/flows/greet/runs"), ("GET", f"/_interlink/runs/{ids['run']}"),
            ("GET", f"/_interlink/queue/{ids['queued']}"), ("GET", "/_interlink/openapi.json"),
            ("GET", "/metrics"), ("GET", "/_interlink/anything"),
            ("GET", "/_interlink/runs"), ("POST", f"/_interlink/runs/{ids['run']}/stop"),
            ("POST", "/_interlink/runs/retry?flow=greet"),
            ("POST", f"/_interlink/queue/{ids['queued']}/requeue")]


def reveals_nothing(answer: CallResult, ids: dict[str, str]) -> bool:
    """The answer names no run, item, flow or payload."""
    text = answer.text
    return not any(value in text for value in [*ids.values(), "greet", "secret-ish", "orders"])


def bearer(token: str) -> dict[str, str]:
    """The admin credential header."""
    return {"Authorization": f"Bearer {token}"}


async def test_anonymous_callers_get_401_and_learn_nothing(
        served: tuple[ASGIApp, dict[str, str]]) -> None:
    """Without credentials each engine endpoint answers 401, a Bearer challenge, a bare body."""
    app, ids = served
    for method, path in endpoints(ids):
        for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": "Basic eA=="}):
            answer = await call_app(app, method, path, headers=headers, client=OUTSIDE)
            assert answer.status == 401, (method, path)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"]["phase"] == "security"
            assert answer.json()["error"]["message"] in ("missing credentials",
                                                         "invalid credentials")
            assert reveals_nothing(answer, ids)
    # Loopback callers are no exception once a token is set.
    answer = await call_app(app, "GET", f"/_interlink/runs/{ids['run']}")
    assert answer.status == 401


async def test_the_admin_token_opens_every_endpoint(
        served: tuple[ASGIApp, dict[str, str]]) -> None:
    """With the token each endpoint answers as usual, from any address."""
    app, ids = served
    statuses = [(await call_app(app, method, path, headers=bearer(TOKEN), client=OUTSIDE)).status
                for method, path in endpoints(ids)]
    # The run is stopped (200), so the bulk retry finds no failed run (200); a ready item
    # cannot be requeued (409).
    assert statuses == [202, 200, 200, 200, 200, 404, 200, 200, 200, 409]
    run = await call_app(app, "GET", f"/_interlink/runs/{ids['run']}", headers=bearer(TOKEN))
    assert run.json()["id"] == ids["run"]


async def test_every_listed_token_works_while_rotating(
        served: tuple[ASGIApp, dict[str, str]], tmp_path: Path) -> None:
    """Both tokens of the list work; once the old one is removed it is refused."""
    app, ids = served
    path = f"/_interlink/runs/{ids['run']}"
    for token in (TOKEN, OLD_TOKEN):
        assert (await call_app(app, "GET", path, headers=bearer(token))).status == 200
    rotated = write_project(tmp_path / "rotated",
                            {**FILES, "interlink.yaml": config(f'admin: {{token: "{TOKEN}"}}')})
    async with Engine(rotated) as engine:
        app = build_app(engine, None)
        run_id = await engine.runner.start("greet", None)
        path = f"/_interlink/runs/{run_id}"
        assert (await call_app(app, "GET", path, headers=bearer(TOKEN))).status == 200
        assert (await call_app(app, "GET", path, headers=bearer(OLD_TOKEN))).status == 401


async def test_health_is_open_to_anyone(served: tuple[ASGIApp, dict[str, str]]) -> None:
    """/_interlink/health needs no credentials, from any address."""
    app, _ = served
    answer = await call_app(app, "GET", "/_interlink/health", client=OUTSIDE)
    assert answer.status == 200


async def test_without_a_token_only_loopback_callers_are_answered(tmp_path: Path) -> None:
    """No admin.token: a non-loopback client gets 403 saying how to set one; loopback is served."""
    async with serving(tmp_path, admin="") as (app, ids):
        await _loopback_only(app, ids)


async def _loopback_only(app: ASGIApp, ids: dict[str, str]) -> None:
    for method, path in endpoints(ids):
        refused = await call_app(app, method, path, client=OUTSIDE)
        assert refused.status == 403, (method, path)
        assert "admin.token" in refused.json()["error"]["message"]
        assert reveals_nothing(refused, ids)
        for client in (("127.0.0.1", 5), ("127.8.9.10", 5), ("::1", 5)):
            served_answer = await call_app(app, method, path, client=client)
            assert served_answer.status in (200, 202, 404, 409), (method, path, client)
    assert (await call_app(app, "GET", "/_interlink/health", client=OUTSIDE)).status == 200


async def test_a_partner_reads_its_own_queued_request_with_its_package_credentials(
        served: tuple[ASGIApp, dict[str, str]]) -> None:
    """The key that queued a request reads it; another package's key, none, or one for an
    item of an open service or a run's item does not."""
    app, ids = served
    queued = f"/_interlink/queue/{ids['queued']}"
    mine = await call_app(app, "GET", queued, headers={"X-API-Key": PARTNER_KEY},
                          client=OUTSIDE)
    assert mine.status == 200
    assert mine.json()["id"] == ids["queued"]
    for path, key in ((queued, OTHER_KEY), (queued, "guess"),
                      (f"/_interlink/queue/{ids['other']}", PARTNER_KEY),
                      (f"/_interlink/queue/{ids['open']}", PARTNER_KEY),
                      ("/_interlink/queue/q_nope", PARTNER_KEY)):
        refused = await call_app(app, "GET", path, headers={"X-API-Key": key}, client=OUTSIDE)
        assert refused.status == 401, (path, key)
        assert reveals_nothing(refused, ids)
    # The package key opens nothing else.
    run = await call_app(app, "GET", f"/_interlink/runs/{ids['run']}",
                         headers={"X-API-Key": PARTNER_KEY}, client=OUTSIDE)
    assert run.status == 401


async def test_a_runs_body_over_admin_max_body_is_413(tmp_path: Path) -> None:
    """Over admin.max_body the runs endpoint answers 413 (counted while streaming, too)."""
    async with serving(tmp_path, f'admin: {{token: "{TOKEN}", max_body: 1KB}}') as (app, _):
        await _limited(app)


async def _limited(app: ASGIApp) -> None:
    path = "/_interlink/flows/greet/runs"
    small = orjson.dumps({"x": "a" * 900})
    large = orjson.dumps({"x": "a" * 1100})
    assert (await call_app(app, "POST", path, headers=bearer(TOKEN), body=small)).status == 202
    too_large = await call_app(app, "POST", path, headers=bearer(TOKEN), body=large)
    assert too_large.status == 413
    assert too_large.json()["error"]["phase"] == "mapping"
    chunked = await call_app(app, "POST", path, headers=bearer(TOKEN), body=large,
                             content_length=False, chunk_size=100)
    assert chunked.status == 413


async def test_the_default_admin_max_body_is_one_megabyte(
        served: tuple[ASGIApp, dict[str, str]]) -> None:
    """1 MB is accepted by default, one byte more is not (webhooks keep server.limits)."""
    app, _ = served
    path = "/_interlink/flows/greet/runs"
    body = b'"' + b"a" * (1024 * 1024 - 2) + b'"'
    assert (await call_app(app, "POST", path, headers=bearer(TOKEN), body=body)).status == 202
    answer = await call_app(app, "POST", path, headers=bearer(TOKEN), body=body + b" ")
    assert answer.status == 413


async def test_ids_handed_to_callers_have_128_random_bits(
        served: tuple[ASGIApp, dict[str, str]]) -> None:
    """Run and queue item ids from the API and the services are full-length random ids."""
    app, ids = served
    started = await call_app(app, "POST", "/_interlink/flows/greet/runs", headers=bearer(TOKEN))
    handed = [started.json()["run_id"], ids["run"], ids["queued"], ids["other"]]
    assert all(re.fullmatch(r"[rq]_[0-9a-hjkmnp-tv-z]{36}", i) for i in handed), handed
    assert len({random_part(i) for i in handed}) == len(handed)


def test_admin_tokens_and_package_keys_are_secrets_even_when_written_literally(
        tmp_path: Path) -> None:
    """Credentials written in interlink.yaml (not from env) are masked by the engine's redactor."""
    project = write_project(tmp_path, {**FILES, "interlink.yaml": config(DEFAULT_ADMIN)})
    redactor = Engine(project).redactor
    assert redactor.text(f"{TOKEN} {OLD_TOKEN} {PARTNER_KEY} {OTHER_KEY}") == "*** *** *** ***"
