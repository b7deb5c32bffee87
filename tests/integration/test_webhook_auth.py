"""Webhook triggers with `package:` authenticate with its auth; a failure starts no run."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp
from tests.projects import write_project

from interlink.engine import Engine
from interlink.server import build_app
from interlink.services import call_app
from interlink.store import Store

SECRET = "hook-secret-0123"
BODY = b'{"order": 1}'

CONFIG = f"""
    name: t
    store: sqlite:///.interlink/t.db
    packages:
      basic: {{auth: {{type: basic, users: {{shop: pw-shop-1}}, realm: hooks}}}}
      api_key: {{auth: {{type: api_key, keys: [key-0123]}}}}
      bearer: {{auth: {{type: bearer, tokens: [tok-0123]}}}}
      hmac: {{auth: {{type: hmac, secret: {SECRET}}}}}
      stamped: {{auth: {{type: hmac, secret: {SECRET}, timestamp_header: X-Timestamp}}}}
      none: {{auth: {{type: none}}}}
    """


def flow(kind: str) -> str:
    """A flow whose webhook /hooks/KIND takes the credentials of package KIND."""
    return f"""
        name: hook-{kind.replace("_", "-")}
        trigger: {{type: webhook, path: /hooks/{kind}, package: {kind}}}
        steps:
          - {{id: s, type: script, script: scripts/s.py}}
        """


def stamped(body: bytes, path: str, stamp: int | None = None) -> dict[str, str]:
    """Replay-proof HMAC headers for POST `path`."""
    stamp = int(time.time()) if stamp is None else stamp
    message = f"{stamp}.POST.{path}.".encode() + body
    return {"X-HMAC-HASH": hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest(),
            "X-Timestamp": str(stamp)}


#: kind → (headers that pass, headers that do not)
CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "basic": ({"Authorization": "Basic " + base64.b64encode(b"shop:pw-shop-1").decode()},
              {"Authorization": "Basic " + base64.b64encode(b"shop:nope").decode()}),
    "api_key": ({"X-API-Key": "key-0123"}, {"X-API-Key": "key-9999"}),
    "bearer": ({"Authorization": "Bearer tok-0123"}, {"Authorization": "Bearer tok-9999"}),
    "hmac": ({"X-HMAC-HASH": hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()},
             {"X-HMAC-HASH": hmac.new(b"wrong", BODY, hashlib.sha256).hexdigest()}),
    "stamped": ({}, {}),  # signed when the test runs: a stamp goes stale (`credentials`)
}


def credentials(kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """CASES[kind], a replay-proof signature stamped now (a long test run outlasts the
    tolerance of one stamped at import)."""
    if kind == "stamped":
        return stamped(BODY, "/hooks/stamped"), stamped(BODY, "/hooks/other")
    return CASES[kind]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[ASGIApp, Store]]:
    """The served app of a project with one webhook per package kind, and its store."""
    files = {f"flows/{kind}.yaml": flow(kind) for kind in [*CASES, "none"]}
    files |= {"interlink.yaml": CONFIG, "scripts/s.py": "def handle(data):\n    return data\n"}
    project = write_project(tmp_path, files)
    async with Engine(project) as engine:
        yield build_app(engine, None), engine.store


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_each_auth_kind_guards_its_webhook(app: tuple[ASGIApp, Store], kind: str) -> None:
    """The package's credentials start a run (202); wrong or none are 401 and start nothing."""
    served, store = app
    good, bad = credentials(kind)
    path = f"/hooks/{kind}"
    for headers in (bad, {}):
        refused = await call_app(served, "POST", path, headers=headers, body=BODY)
        assert refused.status == 401
        assert refused.json()["error"]["phase"] == "security"
    assert await store.list_runs() == []
    accepted = await call_app(served, "POST", path, headers=good, body=BODY)
    assert accepted.status == 202
    runs = await store.list_runs()
    assert [(r.id, r.input) for r in runs] == [(accepted.json()["run_id"], {"order": 1})]


async def test_a_basic_webhook_sends_its_challenge(app: tuple[ASGIApp, Store]) -> None:
    """A refused basic-auth webhook call carries the package's WWW-Authenticate."""
    served, _ = app
    refused = await call_app(served, "POST", "/hooks/basic", body=BODY)
    assert refused.headers["www-authenticate"] == 'Basic realm="hooks", charset="UTF-8"'


async def test_a_replay_proof_webhook_accepts_a_signed_call_once(
        app: tuple[ASGIApp, Store]) -> None:
    """The same signed webhook call twice: 202 then 401; an old timestamp: 401."""
    served, store = app
    headers = stamped(BODY, "/hooks/stamped")
    first = await call_app(served, "POST", "/hooks/stamped", headers=headers, body=BODY)
    again = await call_app(served, "POST", "/hooks/stamped", headers=headers, body=BODY)
    old = await call_app(served, "POST", "/hooks/stamped", body=BODY,
                         headers=stamped(BODY, "/hooks/stamped", int(time.time()) - 600))
    assert (first.status, again.status, old.status) == (202, 401, 401)
    assert len(await store.list_runs()) == 1


async def test_a_package_without_auth_lets_everyone_in(app: tuple[ASGIApp, Store]) -> None:
    """`package:` naming an `auth: none` package checks nothing."""
    served, _ = app
    assert (await call_app(served, "POST", "/hooks/none", body=BODY)).status == 202
