"""The security phase: every package auth kind accepts the right caller and rejects others."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from test_service_support import Runner, make_app, service

from interlink.services import call_app

BODY = b'{"n": 1}'


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _app(tmp_path: Path, auth: dict):
    runner = Runner()
    app = make_app(tmp_path, [service(package="p", activity={"flow": "f"})],
                   packages={"p": {"auth": auth}}, runner=runner)
    return app, runner


BASIC = {"type": "basic", "users": {"alice": "pw-a", "bob": "pw-b"}, "realm": "shop"}
API_HEADER = {"type": "api_key", "keys": ["k-1", "k-2"]}
API_QUERY = {"type": "api_key", "keys": ["k-1"], "query": "api_key"}
BEARER = {"type": "bearer", "tokens": ["t-1"]}


@pytest.mark.parametrize(("auth", "url", "headers", "status"), [
    (BASIC, "/x", {"Authorization": _basic("alice", "pw-a")}, 200),
    (BASIC, "/x", {"Authorization": _basic("bob", "pw-b")}, 200),
    (BASIC, "/x", {"Authorization": _basic("alice", "pw-b")}, 401),
    (BASIC, "/x", {"Authorization": _basic("carol", "pw-a")}, 401),
    (BASIC, "/x", {"Authorization": "Basic !!!notbase64"}, 401),
    (BASIC, "/x", {"Authorization": "Basic " + base64.b64encode(b"alice").decode()}, 401),
    (BASIC, "/x", {}, 401),
    (API_HEADER, "/x", {"X-API-Key": "k-2"}, 200),
    (API_HEADER, "/x", {"x-api-key": "k-1"}, 200),
    (API_HEADER, "/x", {"X-API-Key": "k-3"}, 401),
    (API_HEADER, "/x", {"X-API-Key": "k-1x"}, 401),
    (API_HEADER, "/x?X-API-Key=k-1", {}, 401),
    (API_QUERY, "/x?api_key=k-1", {}, 200),
    (API_QUERY, "/x?api_key=k-2", {}, 401),
    (API_QUERY, "/x", {"X-API-Key": "k-1"}, 401),
    (BEARER, "/x", {"Authorization": "Bearer t-1"}, 200),
    (BEARER, "/x", {"Authorization": "bearer t-1"}, 200),
    (BEARER, "/x", {"Authorization": "Bearer t-2"}, 401),
    (BEARER, "/x", {"Authorization": "Basic t-1"}, 401),
    (BEARER, "/x", {"Authorization": "Bearer"}, 401),
])
async def test_auth_kinds_accept_and_reject(
    tmp_path: Path, auth: dict, url: str, headers: dict[str, str], status: int
) -> None:
    """Each auth kind lets the right caller in and keeps every other one out."""
    app, runner = _app(tmp_path, auth)
    r = await call_app(app, "POST", url, headers=headers, body=BODY)
    assert r.status == status
    assert len(runner.calls) == (1 if status == 200 else 0)


async def test_no_package_lets_everyone_in(tmp_path: Path) -> None:
    """A service without a package needs no credentials."""
    app = make_app(tmp_path, [service()])
    assert (await call_app(app, "POST", "/x", body=BODY)).status == 200


async def test_basic_failure_sends_www_authenticate(tmp_path: Path) -> None:
    """A basic-auth failure answers 401 with a WWW-Authenticate challenge naming the realm."""
    app, _ = _app(tmp_path, BASIC)
    r = await call_app(app, "POST", "/x", headers={"Authorization": _basic("alice", "x")})
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Basic realm="shop", charset="UTF-8"'
    assert r.json() == {"error": {"phase": "security", "message": "invalid credentials"}}


async def test_bearer_failure_sends_bearer_challenge(tmp_path: Path) -> None:
    """A bearer failure answers 401 with `WWW-Authenticate: Bearer`."""
    app, _ = _app(tmp_path, BEARER)
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.headers["www-authenticate"]) == (401, "Bearer")


def _sign(body: bytes, secret: str = "s3", algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


@pytest.mark.parametrize(("auth", "signature", "body", "status"), [
    ({}, _sign(BODY), BODY, 200),
    ({}, _sign(BODY).upper(), BODY, 200),
    ({}, "sha256=" + _sign(BODY), BODY, 200),
    ({}, _sign(BODY), BODY + b" ", 401),          # the raw body is what is signed
    ({}, _sign(BODY, secret="other"), BODY, 401),
    ({}, "", BODY, 401),
    ({"algorithm": "sha1"}, _sign(BODY, algorithm="sha1"), BODY, 200),
    ({"algorithm": "sha512"}, _sign(BODY, algorithm="sha256"), BODY, 401),
    ({"encoding": "base64"},
     base64.b64encode(hmac.new(b"s3", BODY, hashlib.sha256).digest()).decode(), BODY, 200),
    ({"encoding": "base64"}, _sign(BODY), BODY, 401),
    ({"header": "X-Sig"}, _sign(BODY), BODY, 200),
])
async def test_hmac_over_the_raw_body(
    tmp_path: Path, auth: dict, signature: str, body: bytes, status: int
) -> None:
    """HMAC checks the signature of the exact raw body, in the configured header/encoding."""
    spec = {"type": "hmac", "secret": "s3", **auth}
    app, runner = _app(tmp_path, spec)
    header = auth.get("header", "X-HMAC-HASH")
    r = await call_app(app, "POST", "/x", headers={header: signature} if signature else {},
                       body=body)
    assert r.status == status
    if status == 200:
        assert runner.calls[0][1]["request"]["body"] == {"n": 1}


async def test_non_ascii_credentials_are_rejected_cleanly(tmp_path: Path) -> None:
    """Credentials outside ASCII are compared (as bytes) and rejected, not crashed on."""
    app, _ = _app(tmp_path, API_HEADER)
    r = await call_app(app, "POST", "/x", headers={"X-API-Key": "kü-1"})
    assert r.status == 401
