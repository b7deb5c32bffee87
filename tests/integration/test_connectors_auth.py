"""Token auth through the store: OAuth2 client credentials, session login, single-flight re-auth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.upstream import Upstream

from interlink.connectors import ConnectorClient, Exchange
from interlink.errors import AuthError
from interlink.flows.decision import classify
from interlink.redaction import MASK
from interlink.spec.connector import ConnectorSpec
from interlink.store import PutCredential, Store, open_store


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


def connector(base_url: str, auth: dict[str, Any]) -> ConnectorSpec:
    """A connector with a `private` endpoint (the upstream's login-protected route)."""
    return ConnectorSpec.model_validate({
        "name": "wh",
        "base_url": base_url,
        "auth": auth,
        "endpoints": {"private": {"method": "POST", "path": "/private"}},
    })


OAUTH = {"type": "oauth2_client_credentials", "token_url": "/oauth/token",
         "client_id": "shop", "client_secret": "client-secret-9", "scope": "orders"}
SESSION = {
    "type": "session",
    "login": {"path": "/login", "json": {"user": "amy", "password": "amy-password-7"}},
    "token": "response.json.token",
    "value": "Session {{ token }}",
}


async def call_with_reauth(client: ConnectorClient) -> Exchange:
    """What the flow runner does: send, and on a code 4 re-authenticate and send again."""
    reauths = 0
    while True:
        exchange = await client.send("private", {}, {"n": 1})
        decision = classify(exchange.status, exchange.error, reauths,
                            client.retry_policy.max_reauth)
        if decision.name != "reauth":
            return exchange
        await client.reauthenticate(exchange.credential_version)
        reauths += 1


async def test_oauth_token_fetched_once_and_reused(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """One token request serves many calls; the grant is a form with the client's secret."""
    async with Upstream(client_id="shop", client_secret="client-secret-9") as up:
        up.route("/private", requires_login=True)
        client = ConnectorClient(connector(up.url, OAUTH), store, http, owner="p1")
        first = await client.send("private", {}, None)
        second = await client.send("private", {}, None)
        assert (first.status, second.status) == (200, 200)
        assert up.token_calls == 1
        [grant] = up.requests_to("/oauth/token")
        assert grant.body.count("client_secret=client-secret-9") == 1
        assert "grant_type=client_credentials" in grant.body
        assert "scope=orders" in grant.body
        assert [r.headers["Authorization"] for r in up.requests_to("/private")] == [
            "Bearer oauth-1", "Bearer oauth-1"]
        assert first.credential_version == second.credential_version == 1
        assert first.request.headers["Authorization"] == MASK
        # the token obtained at run time is a secret from now on
        assert client.redactor.text("saw oauth-1") == f"saw {MASK}"
        assert "client-secret-9" not in str(first.record())
        credential = await store.get_credential("wh")
        assert credential is not None
        assert credential.token["access_token"] == "oauth-1"


async def test_oauth_token_shared_by_two_clients_through_the_store(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """Two clients (two processes, in effect) sharing a store fetch one token between them."""
    async with Upstream() as up, aiohttp.ClientSession() as other_http:
        up.route("/private", requires_login=True)
        one = ConnectorClient(connector(up.url, OAUTH), store, http, owner="p1")
        two = ConnectorClient(connector(up.url, OAUTH), store, other_http, owner="p2")
        results = await asyncio.gather(
            *(c.send("private", {}, None) for c in (one, two) for _ in range(10))
        )
        assert all(e.status == 200 for e in results)
        assert up.token_calls == 1
        # the second client never saw the token come in, yet redacts it
        assert two.redactor.text("oauth-1") == MASK


async def test_expired_oauth_token_is_fetched_again(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """A token past `expires_in` (minus the margin) is replaced before it is used."""
    async with Upstream(token_ttl=0.3) as up:
        up.route("/private", requires_login=True)
        client = ConnectorClient(connector(up.url, OAUTH), store, http, owner="p1")
        assert (await client.send("private", {}, None)).status == 200
        await asyncio.sleep(0.35)
        again = await client.send("private", {}, None)
        assert again.status == 200
        assert up.token_calls == 2
        assert again.credential_version == 2
        assert up.requests_to("/private")[-1].headers["Authorization"] == "Bearer oauth-2"


async def test_refreshed_tokens_replace_the_connectors_old_ones_in_the_redactor(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """After two refreshes the current and previous tokens are masked, the first is not."""
    async with Upstream(token_ttl=0.2) as up:
        up.route("/private", requires_login=True)
        client = ConnectorClient(connector(up.url, OAUTH), store, http, owner="p1")
        for _ in range(3):
            assert (await client.send("private", {}, None)).status == 200
            await asyncio.sleep(0.25)
        assert up.token_calls == 3
        assert client.redactor.text("oauth-3 oauth-2 oauth-1") == f"{MASK} {MASK} oauth-1"


async def test_session_login_token_expression_and_header_value(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """The login request is sent as written, the token taken by the expression, and sent in
    the configured header with the configured value."""
    auth = dict(SESSION, header="X-Session")
    async with Upstream(login_expect={"user": "amy", "password": "amy-password-7"}) as up:
        client = ConnectorClient(connector(up.url, auth), store, http, owner="p1")
        exchange = await client.send("private", {}, None)
        assert exchange.status == 200
        [login] = up.requests_to("/login")
        assert login.method == "POST"
        assert login.json == {"user": "amy", "password": "amy-password-7"}
        assert login.headers["Content-Type"] == "application/json"
        [seen] = up.requests_to("/private")
        assert seen.headers["X-Session"] == "Session session-1"
        assert "Authorization" not in seen.headers
        assert exchange.request.headers["X-Session"] == f"Session {MASK}"
        assert client.redactor.text("amy-password-7") == MASK


async def test_session_ttl_forces_a_new_login(store: Store, http: aiohttp.ClientSession) -> None:
    """With `ttl`, a session older than the ttl is replaced without waiting for a 401."""
    auth = dict(SESSION, header="Authorization", ttl="200ms")
    async with Upstream() as up:
        client = ConnectorClient(connector(up.url, auth), store, http, owner="p1")
        await client.send("private", {}, None)
        await asyncio.sleep(0.25)
        await client.send("private", {}, None)
        assert up.login_calls == 2
        assert up.requests_to("/private")[-1].headers["Authorization"] == "Session session-2"


async def test_fifty_concurrent_401s_cause_exactly_one_login(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """50 calls from two clients all see 401 after the session is revoked; one login
    refreshes it for everyone and every call then succeeds."""
    async with Upstream(login_delay=0.05) as up, aiohttp.ClientSession() as other_http:
        up.route("/private", requires_login=True)
        one = ConnectorClient(connector(up.url, SESSION), store, http, owner="p1")
        two = ConnectorClient(connector(up.url, SESSION), store, other_http, owner="p2")
        assert (await one.send("private", {}, None)).status == 200
        assert (await two.send("private", {}, None)).status == 200
        assert up.login_calls == 1
        up.revoke_tokens()
        results = await asyncio.gather(
            *(call_with_reauth(c) for c in (one, two) for _ in range(25))
        )
        assert [e.status for e in results] == [200] * 50
        assert up.login_calls == 2
        assert {e.credential_version for e in results} == {2}
        refused = [r for r in up.requests_to("/private")
                   if r.headers["Authorization"] == "Session session-1"]
        assert len(refused) >= 50  # each call really did see its 401 first


async def test_a_dead_lock_holder_does_not_block_login_forever(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """A process that took the auth lock and died: the lock expires and we log in."""
    async with Upstream() as up:
        assert await store.try_lock("auth:wh", "dead-process", 0.3)
        client = ConnectorClient(connector(up.url, SESSION), store, http, owner="p1")
        started = time.monotonic()
        exchange = await client.send("private", {}, None)
        assert exchange.status == 200
        assert up.login_calls == 1
        assert time.monotonic() - started >= 0.25  # it did wait for the lock to expire


async def test_failed_login_is_reported_not_raised_by_send(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """A refused login makes the exchange an error (retryable); reauthenticate raises."""
    async with Upstream(login_status=500) as up:
        client = ConnectorClient(connector(up.url, SESSION), store, http, owner="p1")
        exchange = await client.send("private", {}, {"x": 1})
        assert exchange.response is None
        assert exchange.error is not None
        assert exchange.error.startswith("logging in for wh: HTTP 500")
        assert up.requests_to("/private") == []
        with pytest.raises(AuthError, match="logging in for wh: HTTP 500"):
            await client.reauthenticate(None)
        # the lock was released: a later success is possible at once
        up.login_status = 200
        assert (await client.send("private", {}, None)).status == 200


async def test_token_expression_that_finds_nothing_is_an_auth_error(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """A token expression that yields nothing names itself in the error."""
    auth = dict(SESSION, token="response.json.missing")
    async with Upstream() as up:
        client = ConnectorClient(connector(up.url, auth), store, http, owner="p1")
        with pytest.raises(AuthError, match=r"token expression 'response\.json\.missing'"):
            await client.reauthenticate(None)


async def test_a_stored_token_of_another_auth_type_is_replaced(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """A token left in the store by the connector's former auth type is logged over."""
    await store.write(PutCredential("wh", {"access_token": "from-oauth-days"}, None))
    async with Upstream() as up:
        up.route("/private", requires_login=True)
        client = ConnectorClient(connector(up.url, SESSION), store, http, owner="p1")
        exchange = await client.send("private", {}, None)
        assert exchange.status == 200
        assert exchange.credential_version == 2
        assert up.login_calls == 1
