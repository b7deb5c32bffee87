"""ConnectorClient against a real loopback upstream: requests, static auth, limits, failures."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.upstream import Upstream

from interlink.connectors import ConnectorClient
from interlink.connectors.exchange import EXCERPT_LIMIT
from interlink.errors import ConnectorError, ExpressionError
from interlink.flows.decision import classify
from interlink.redaction import MASK
from interlink.spec.connector import ConnectorSpec
from interlink.store import Store, open_store


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """A programmable upstream on loopback."""
    async with Upstream() as up:
        yield up


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in a temporary folder."""
    async with open_store(f"sqlite:///{tmp_path}/s.db", tmp_path) as opened:
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session, as the engine shares one per process."""
    async with aiohttp.ClientSession() as session:
        yield session


def connector(base_url: str, **fields: Any) -> ConnectorSpec:
    """A connector spec with an `echo` endpoint unless `endpoints` is given."""
    data: dict[str, Any] = {
        "name": "wh",
        "base_url": base_url,
        "endpoints": {"echo": {"method": "POST", "path": "/echo"}},
    }
    data.update(fields)
    return ConnectorSpec.model_validate(data)


async def test_send_renders_the_endpoint_and_merges_headers(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """Path, query and headers interpolate the context; defaults, call headers and the
    idempotency key are all sent, and the JSON answer is parsed."""
    spec = connector(
        upstream.url + "/api",
        headers={"Accept": "application/json", "X-Channel": "{{ variables.channel }}"},
        endpoints={"get": {"method": "PUT", "path": "/orders/{{ payload.id }}",
                           "query": {"v": "{{ variables.v }}"},
                           "headers": {"X-Order": "{{ payload.id }}"}}},
    )
    client = ConnectorClient(spec, store, http, owner="t")
    context = {"payload": {"id": 42}, "variables": {"channel": "web", "v": "2"}}
    exchange = await client.send(
        "get", context, {"id": 42, "qty": 1}, headers={"X-Call": "yes"}, query={"dry": "1"},
        idempotency_key="run1:push",
    )
    assert exchange.ok
    assert exchange.error is None
    [seen] = upstream.requests_to("/api/orders/42")
    assert seen.method == "PUT"
    assert seen.query == {"v": "2", "dry": "1"}
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["X-Channel"] == "web"
    assert seen.headers["X-Order"] == "42"
    assert seen.headers["X-Call"] == "yes"
    assert seen.headers["Idempotency-Key"] == "run1:push"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {"id": 42, "qty": 1}
    assert exchange.request.method == "PUT"
    assert exchange.request.url == f"{upstream.url}/api/orders/42?v=2&dry=1"
    assert exchange.request.body == '{"id":42,"qty":1}'
    assert exchange.response is not None
    assert exchange.response.has_json
    assert exchange.response.json["path"] == "/api/orders/42"
    assert exchange.response.script_view()["json"]["method"] == "PUT"
    assert exchange.credential_version is None
    assert exchange.record()["response"]["status"] == 200


@pytest.mark.parametrize(
    ("body", "content_type", "sent"),
    [
        ("plain words", "text/plain; charset=utf-8", "plain words"),
        ([1, 2], "application/json", "[1,2]"),
        (None, None, ""),
    ],
)
async def test_body_kinds(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession,
    body: Any, content_type: str | None, sent: str,
) -> None:
    """str is sent as text, lists and dicts as JSON, None as no body at all."""
    client = ConnectorClient(connector(upstream.url), store, http, owner="t")
    await client.send("echo", {}, body)
    [seen] = upstream.requests
    assert seen.body == sent
    assert seen.headers.get("Content-Type") == content_type


async def test_statuses_never_raise_and_retry_after_is_read(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """A 503 with Retry-After is an exchange, not an exception; the next attempt with the
    same request id gets the next programmed status."""
    upstream.route("/echo", statuses=[503, 200], body="busy, come back", retry_after="3")
    client = ConnectorClient(connector(upstream.url), store, http, owner="t")
    first = await client.send("echo", {}, None, idempotency_key="k1")
    assert first.status == 503
    assert first.retry_after == 3.0
    assert first.response is not None
    assert not first.response.has_json
    assert first.response.body == "busy, come back"
    assert "json" not in first.response.script_view()
    decision = classify(first.status, first.error, 0, 1, first.retry_after)
    assert (decision.name, decision.retry_after) == ("retry_step", 3.0)
    second = await client.send("echo", {}, None, idempotency_key="k1")
    assert second.status == 200
    assert second.retry_after is None
    other = await client.send("echo", {}, None, idempotency_key="k2")
    assert other.status == 503


async def test_upstream_bodies_follow_the_attempt(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """The upstream can answer 200 with a different body per attempt (for response scripts)."""
    upstream.route("/echo", bodies=[{"error": "Invalid session"}, {"ok": True}])
    client = ConnectorClient(connector(upstream.url), store, http, owner="t")
    first = await client.send("echo", {}, None, headers={"X-Request-Id": "r1"})
    second = await client.send("echo", {}, None, headers={"X-Request-Id": "r1"})
    assert first.response is not None
    assert second.response is not None
    assert (first.response.json, second.response.json) == ({"error": "Invalid session"},
                                                          {"ok": True})


async def test_an_upstreams_integer_past_64_bits_is_read_exactly(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """orjson alone reads 2**100 as 1.2676506002282294e+30: the id would be passed on changed."""
    upstream.route("/echo", body={"id": 2**100, "n": 7})
    client = ConnectorClient(connector(upstream.url), store, http, owner="t")
    sent = await client.send("echo", {}, None, headers={"X-Request-Id": "r1"})
    assert sent.response is not None
    assert sent.response.json == {"id": 2**100, "n": 7}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("auth", "header", "value", "query"),
    [
        ({"type": "none"}, None, None, {}),
        ({"type": "basic", "username": "amy", "password": "pw-secret-1"},
         "Authorization", _basic("amy", "pw-secret-1"), {}),
        ({"type": "bearer", "token": "tok-secret-2"}, "Authorization", "Bearer tok-secret-2", {}),
        ({"type": "api_key", "key": "key-secret-3"}, "X-API-Key", "key-secret-3", {}),
        ({"type": "api_key", "key": "key-secret-4", "header": "X-Partner-Key"},
         "X-Partner-Key", "key-secret-4", {}),
        ({"type": "api_key", "key": "key/secret+5", "query": "api_key"},
         None, None, {"api_key": "key/secret+5"}),
    ],
)
async def test_static_auth_kinds_send_their_credentials(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession,
    auth: dict[str, Any], header: str | None, value: str | None, query: dict[str, str],
) -> None:
    """Each static auth kind sends what it should, and the record shows none of it."""
    client = ConnectorClient(connector(upstream.url, auth=auth), store, http, owner="t")
    exchange = await client.send("echo", {}, {"note": "hello"})
    [seen] = upstream.requests
    if header is not None:
        assert seen.headers[header] == value
        assert exchange.request.headers[header] == MASK
    else:
        assert "Authorization" not in seen.headers
    assert seen.query == query
    secret = next((v for k, v in auth.items() if k in ("password", "token", "key")), None)
    if secret is not None:
        assert secret not in str(exchange.record())
        assert client.redactor.text(secret) == MASK
    if query:
        assert exchange.request.url == f"{upstream.url}/echo?api_key={MASK}"
    await client.reauthenticate(exchange.credential_version)  # nothing to refresh


async def test_secrets_never_reach_the_request_record(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """Secrets in headers, URL and body are masked; the body excerpt stays within 2 KB."""
    spec = connector(
        upstream.url,
        auth={"type": "bearer", "token": "tok-very-secret"},
        headers={"X-Echo": "carry tok-very-secret"},
        endpoints={"echo": {"method": "POST", "path": "/echo/tok-very-secret"}},
    )
    client = ConnectorClient(spec, store, http, owner="t")
    body = {"token": "tok-very-secret", "filler": "x" * 5000}
    exchange = await client.send("echo", {}, body, headers={"Cookie": "sid=1"})
    record = str(exchange.record())
    assert "tok-very-secret" not in record
    assert exchange.request.headers["Cookie"] == MASK
    assert exchange.request.headers["X-Echo"] == f"carry {MASK}"
    assert exchange.request.body is not None
    assert len(exchange.request.body) <= EXCERPT_LIMIT
    assert exchange.request.body.startswith(f'{{"token":"{MASK}"')
    assert exchange.response_record is not None
    assert len(exchange.response_record["body"]) <= EXCERPT_LIMIT
    # the payload itself is the real answer, unredacted
    assert exchange.response is not None
    assert "tok-very-secret" in exchange.response.body


async def test_timeout_becomes_an_exchange_error(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """A slow upstream yields `timed out after …` with the endpoint's or connector's timeout."""
    upstream.route("/slow", delay=2.0)
    spec = connector(
        upstream.url, timeout="300ms",
        endpoints={"slow": {"path": "/slow"}, "slower": {"path": "/slow", "timeout": "200ms"}},
    )
    client = ConnectorClient(spec, store, http, owner="t")
    exchange = await client.send("slow", {}, None)
    assert exchange.response is None
    assert exchange.error == "timed out after 300ms"
    assert exchange.status is None
    assert classify(exchange.status, exchange.error, 0, 1).name == "retry_step"
    exchange = await client.send("slower", {}, None)
    assert exchange.error == "timed out after 200ms"


async def test_connection_refused_becomes_an_exchange_error(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """Nothing listening: the exchange says `connection refused (host:port)`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ConnectorClient(connector(f"http://127.0.0.1:{port}"), store, http, owner="t")
    exchange = await client.send("echo", {}, {"a": 1})
    assert exchange.response is None
    assert exchange.error == f"connection refused (127.0.0.1:{port})"
    assert exchange.request.url == f"http://127.0.0.1:{port}/echo"


async def test_rate_limit_makes_requests_wait(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """6 requests at 5 per second all succeed, the sixth arriving ≥ ~1 s after the first."""
    spec = connector(upstream.url, rate_limit={"requests": 5, "per": "1s"})
    client = ConnectorClient(spec, store, http, owner="t")
    exchanges = await asyncio.gather(*(client.send("echo", {}, None) for _ in range(6)))
    assert all(e.ok for e in exchanges)
    arrivals = sorted(r.at for r in upstream.requests)
    assert arrivals[5] - arrivals[0] >= 0.9
    assert max(e.waited for e in exchanges) >= 0.9


async def test_concurrency_cap_limits_requests_in_flight(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """With `concurrency: 3` the upstream never sees more than 3 requests at once."""
    upstream.route("/echo", delay=0.1)
    client = ConnectorClient(connector(upstream.url, concurrency=3), store, http, owner="t")
    exchanges = await asyncio.gather(*(client.send("echo", {}, None) for _ in range(10)))
    assert all(e.ok for e in exchanges)
    assert 1 < upstream.max_in_flight <= 3


async def test_unknown_endpoint_is_a_connector_error(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """Naming an endpoint the connector lacks raises, naming the ones it has."""
    client = ConnectorClient(connector(upstream.url), store, http, owner="t")
    with pytest.raises(ConnectorError, match=r"calling wh.nope: no such endpoint \(known: echo\)"):
        await client.send("nope", {}, None)


async def test_a_header_rendered_with_a_line_break_is_never_sent(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """A header value built from the payload that holds CR/LF would split the request (a
    second request, or a forged header, smuggled in): the call is refused before anything
    leaves, as a failure to build the request (the step fails; it is not retried)."""
    spec = connector(upstream.url, endpoints={"echo": {
        "method": "POST", "path": "/echo", "headers": {"X-Note": "{{ payload.note }}"}}})
    client = ConnectorClient(spec, store, http, owner="t")
    with pytest.raises(ExpressionError, match="'X-Note' contains a line break or NUL"):
        await client.send("echo", {"payload": {"note": "hi\r\nX-Admin: yes"}}, None)
    assert upstream.requests == []


async def test_an_answer_over_max_response_fails_the_attempt(
    upstream: Upstream, store: Store, http: aiohttp.ClientSession
) -> None:
    """`max_response` bounds what an answer may hold in memory: over it, no response, an
    error the classifier retries like any failed call (`protocol`)."""
    upstream.route("/echo", body={"pad": "x" * 3000})
    client = ConnectorClient(connector(upstream.url, max_response="2KB"), store, http,
                             owner="t")
    exchange = await client.send("echo", {}, None)
    assert exchange.response is None
    assert (exchange.error_type, exchange.error) == (
        "protocol", "the response body is over 2KB (the connector's max_response)")
    assert classify(None, exchange.error, 0, 1, None).name == "retry_step"
