"""A webhook call sent again with the same `Idempotency-Key` (or the trigger's
`delivery_header`) starts no second run: it is answered with the first call's run — also when
the first call's answer was lost (a 503 whose commit went through), and for a replay-proof
signed call sent again as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp
from tests.integration.test_webhook_auth import BODY, SECRET, stamped
from tests.projects import write_project

from interlink.engine import Engine
from interlink.errors import StoreError, StoreUnavailable, ValueRefused
from interlink.server import build_app
from interlink.services import call_app
from interlink.store import Store

CONFIG = f"""
    name: t
    store: sqlite:///.interlink/t.db
    packages:
      stamped: {{auth: {{type: hmac, secret: {SECRET}, timestamp_header: X-Timestamp}}}}
      keyed: {{auth: {{type: api_key, keys: [key-of-ann, key-of-bob]}}}}
    """


def flow(name: str, trigger: str = "") -> str:
    """A flow `name` whose webhook is /hooks/NAME (`trigger`: more trigger fields)."""
    return f"""
        name: {name}
        trigger: {{type: webhook, path: /hooks/{name}{trigger}}}
        steps:
          - {{id: s, type: script, script: scripts/s.py}}
        """


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ASGIApp, Engine]]:
    """`plain` (Idempotency-Key), `github` (X-GitHub-Delivery), `off` (no key), `other`,
    `stamped` (replay-proof HMAC), `keyed` (two API keys); no worker, so every run stays queued."""
    project = write_project(tmp_path, {
        "interlink.yaml": CONFIG,
        "scripts/s.py": "def handle(data):\n    return data\n",
        "flows/plain.yaml": flow("plain"),
        "flows/other.yaml": flow("other"),
        "flows/github.yaml": flow("github", ", delivery_header: X-GitHub-Delivery"),
        "flows/off.yaml": flow("off", ", delivery_header: null"),
        "flows/stamped.yaml": flow("stamped", ", package: stamped"),
        "flows/keyed.yaml": flow("keyed", ", package: keyed"),
    })
    async with Engine(project) as engine:
        yield build_app(engine, None), engine


async def hook(app: ASGIApp, name: str, headers: dict[str, str],
               body: bytes = BODY) -> tuple[int, Any]:
    answer = await call_app(app, "POST", f"/hooks/{name}", headers=headers, body=body)
    return answer.status, answer.json()


async def runs_of(store: Store, flow: str) -> list[str]:
    return [run.id for run in await store.list_runs(flow=flow)]


async def test_the_same_delivery_twice_is_one_run(served: tuple[ASGIApp, Engine]) -> None:
    app, engine = served
    key = {"Idempotency-Key": "order-7-created"}
    first, again = await hook(app, "plain", key), await hook(app, "plain", key)
    assert first[0] == again[0] == 202
    assert first[1] == again[1] == {"run_id": first[1]["run_id"], "status": "queued"}
    assert await runs_of(engine.store, "plain") == [first[1]["run_id"]]
    # Another key, no key: new runs. The same key for another flow: that flow's own run.
    await hook(app, "plain", {"Idempotency-Key": "order-8-created"})
    await hook(app, "plain", {})
    other = await hook(app, "other", key)
    assert len(await runs_of(engine.store, "plain")) == 3
    assert await runs_of(engine.store, "other") == [other[1]["run_id"]]


async def test_the_header_is_the_triggers_own_or_none(served: tuple[ASGIApp, Engine]) -> None:
    app, engine = served
    github = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert (await hook(app, "github", github))[1] == (await hook(app, "github", github))[1]
    await hook(app, "github", {"Idempotency-Key": "k1"})
    await hook(app, "github", {"Idempotency-Key": "k1"})  # not this trigger's header
    assert len(await runs_of(engine.store, "github")) == 3
    await hook(app, "off", {"Idempotency-Key": "k1"})
    await hook(app, "off", {"Idempotency-Key": "k1"})
    assert len(await runs_of(engine.store, "off")) == 2


async def test_a_key_sent_again_with_another_body_is_refused(
    served: tuple[ASGIApp, Engine]
) -> None:
    """The same key with a different body is a sender's bug, not a retry: 422, no run, and
    the key still names its first run (as the IETF Idempotency-Key draft and Stripe do)."""
    app, engine = served
    key = {"Idempotency-Key": "order-10"}
    first = await hook(app, "plain", key, b'{"order": 10}')
    other = await hook(app, "plain", key, b'{"order": 11}')
    assert other[0] == 422 and other[1]["error"]["phase"] == "request"
    assert "Idempotency-Key" in other[1]["error"]["message"]
    assert await runs_of(engine.store, "plain") == [first[1]["run_id"]]
    # The same document differently spaced, its keys in another order, is the same body;
    # `true` is not `1`.
    assert await hook(app, "plain", key, b'{ "order" : 10 }') == first
    paid = {"Idempotency-Key": "order-12"}
    first = await hook(app, "plain", paid, b'{"order": 12, "paid": true}')
    assert await hook(app, "plain", paid, b'{"paid": true, "order": 12}') == first
    assert (await hook(app, "plain", paid, b'{"order": 12, "paid": 1}'))[0] == 422


async def test_callers_have_keys_of_their_own(served: tuple[ASGIApp, Engine]) -> None:
    """Two callers let in by different credentials who pick the same key make a run each:
    neither is answered with (nor learns the id of) the other's run."""
    app, engine = served
    ann, bob = {"X-API-Key": "key-of-ann"}, {"X-API-Key": "key-of-bob"}
    key = {"Idempotency-Key": "delivery-1"}
    anns = await hook(app, "keyed", {**ann, **key})
    bobs = await hook(app, "keyed", {**bob, **key})
    assert (anns[0], bobs[0]) == (202, 202)
    assert anns[1]["run_id"] != bobs[1]["run_id"]
    assert await hook(app, "keyed", {**ann, **key}) == anns
    assert len(await runs_of(engine.store, "keyed")) == 2
    # The store keeps no credential, only a hash of it, in the run's key.
    files = list((engine.project.root / ".interlink").glob("t.db*"))
    assert files and not any(b"key-of" in f.read_bytes() for f in files)


async def test_a_key_too_long_is_refused(served: tuple[ASGIApp, Engine]) -> None:
    app, engine = served
    status, body = await hook(app, "plain", {"Idempotency-Key": "k" * 256})
    assert status == 400 and "Idempotency-Key" in body["error"]["message"]
    assert await runs_of(engine.store, "plain") == []
    assert (await hook(app, "plain", {"Idempotency-Key": "k" * 255}))[0] == 202


async def test_a_call_whose_answer_was_lost_is_answered_with_its_run(
    served: tuple[ASGIApp, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store commits the run, then the connection breaks before it says so: 503. The
    sender sends the call again and gets the run that was committed, not a second one."""
    app, engine = served
    write = engine.store.write

    async def committed_then_lost(*ops: Any) -> Any:
        await write(*ops)
        monkeypatch.setattr(engine.store, "write", write)
        raise StoreUnavailable("writing to the store: the connection is lost")

    monkeypatch.setattr(engine.store, "write", committed_then_lost)
    key = {"Idempotency-Key": "order-9"}
    lost = await hook(app, "plain", key)
    again = await hook(app, "plain", key)
    assert lost[0] == 503
    assert again[0] == 202
    assert await runs_of(engine.store, "plain") == [again[1]["run_id"]]


async def test_a_signed_call_sent_again_gets_its_run_a_replay_without_key_is_refused(
    served: tuple[ASGIApp, Engine]
) -> None:
    app, engine = served
    signed = stamped(BODY, "/hooks/stamped")
    first = await hook(app, "stamped", {**signed, "Idempotency-Key": "d-1"})
    again = await hook(app, "stamped", {**signed, "Idempotency-Key": "d-1"})
    assert (first[0], again[0]) == (202, 202) and first[1] == again[1]
    # Without a key the nonce alone decides: the same signed call twice is a replay.
    fresh = stamped(BODY + b" ", "/hooks/stamped")
    status = [(await call_app(app, "POST", "/hooks/stamped", headers=fresh,
                              body=BODY + b" ")).status for _ in range(2)]
    assert status == [202, 401]
    assert len(await runs_of(engine.store, "stamped")) == 2


async def test_an_integer_past_64_bits_is_refused_not_passed_on_as_a_float(
    served: tuple[ASGIApp, Engine]
) -> None:
    """orjson would read 2**64 as 1.8446744073709552e+19, and the run would send that on: the
    call is refused when its body is read, and starts nothing."""
    app, engine = served
    status, body = await hook(app, "plain", {"Content-Type": "application/json"},
                              b'{"order": {"id": 18446744073709551616}}')
    assert status == 400
    assert body["error"]["phase"] == "mapping"
    assert "past 64 bits" in body["error"]["message"]
    assert await runs_of(engine.store, "plain") == []
    status, _ = await hook(app, "plain", {}, b'{"order": {"id": 18446744073709551615}}')
    assert status == 202  # the widest integer the store holds


async def test_a_body_said_to_be_json_must_be_json(served: tuple[ASGIApp, Engine]) -> None:
    """`Content-Type: application/json` (or `+json`) with a truncated body: 400, no run — it
    used to start a run whose payload was the broken text. Without a JSON type, text is a
    text payload."""
    app, engine = served
    for kind in ("application/json", "application/vnd.api+json; charset=utf-8"):
        status, body = await hook(app, "plain", {"Content-Type": kind}, b'{"id":')
        assert (status, body["error"]) == (400, {"phase": "mapping",
                                                 "message": "request body is not valid JSON"})
    assert await runs_of(engine.store, "plain") == []
    status, body = await hook(app, "plain", {"Content-Type": "text/plain"}, b'{"id":')
    assert status == 202
    run = await engine.store.get_run(body["run_id"])
    assert run is not None and run.input == '{"id":'


async def test_a_body_the_store_refuses_is_a_422_not_a_503_to_retry(
    served: tuple[ASGIApp, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value the store refuses (not a write it could not make) would be refused again:
    422, which no sender retries; another refusal (a permission, a missing table) is the
    server's 500; nothing of the store's message in either body."""
    app, engine = served
    raised: list[Exception] = []

    async def refused(*ops: Any) -> Any:
        raise raised[-1]

    monkeypatch.setattr(engine.store, "write", refused)
    raised.append(ValueRefused("writing to the store: value out of range for type bigint"))
    status, body = await hook(app, "plain", {})
    assert status == 422
    assert body["error"] == {"phase": "store", "message": "the store cannot keep this call's body"}
    raised.append(StoreError("writing to the store: permission denied for table runs"))
    status, body = await hook(app, "plain", {})
    assert status == 500
    assert body["error"] == {"phase": "store", "message": "the store refused this call's run"}
