"""Replay-proof HMAC on a real store (both backends): timestamp window, path and query signed,
each signature accepted once."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from interlink.services import ActivityResult, build_services_app, call_app
from interlink.services.security import signed_message
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.spec.service import ServiceSpec as _ServiceSpec
from interlink.store import Store

SECRET = "s3cret-shared-with-the-partner"
BODY = b'{"order": 7}'


class Runner:
    """Counts the activities run."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, service: _ServiceSpec, context: dict[str, Any], *,
                  run_id: str = "") -> ActivityResult:
        """Count and succeed."""
        self.calls += 1
        return ActivityResult("succeeded", {"ok": True}, "run_1")


def sign(stamp: int | str, method: str, target: str, body: bytes, secret: str = SECRET) -> str:
    """The documented signature, computed the way docs/security.md shows (not with our code)."""
    message = f"{stamp}.{method}.{target}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(signature: str, stamp: int | str) -> dict[str, str]:
    """The signature and timestamp headers."""
    return {"X-Signature": signature, "X-Timestamp": str(stamp),
            "Content-Type": "application/json"}


@pytest.fixture
def app_and_runner(tmp_path: Path, store: Store) -> tuple[Any, Runner]:
    """Two services of one replay-proof HMAC package (tolerance 5m) on a real store."""
    auth = {"type": "hmac", "secret": SECRET, "header": "X-Signature",
            "timestamp_header": "X-Timestamp", "tolerance": "5m"}
    project = Project(
        root=tmp_path,
        config=ProjectConfig.model_validate({"name": "t", "packages": {"p": {"auth": auth}}}),
        services={name: ServiceSpec.model_validate(
            {"name": name, "path": path, "package": "p", "activity": {"flow": "f"}})
            for name, path in (("x", "/x"), ("y", "/y"))},
    )
    runner = Runner()
    return build_services_app(project, activity_runner=runner, store=store), runner


def test_the_signed_string_is_exactly_the_documented_one() -> None:
    """`{timestamp}.{METHOD}.{path?query}.{body}`: the bytes docs/security.md promises."""
    assert signed_message("1700000000", "post", b"/orders?page=2", b'{"a": 1}') == \
        b'1700000000.POST./orders?page=2.{"a": 1}'
    assert signed_message("1700000000", "GET", b"/orders", b"") == b"1700000000.GET./orders."


async def test_a_signed_request_is_accepted_once(app_and_runner: tuple[Any, Runner]) -> None:
    """The same signed request sent twice: 200, then 401 and no second activity."""
    app, runner = app_and_runner
    now = int(time.time())
    signed = headers(sign(now, "POST", "/x?a=1", BODY), now)
    first = await call_app(app, "POST", "/x?a=1", headers=signed, body=BODY)
    second = await call_app(app, "POST", "/x?a=1", headers=signed, body=BODY)
    assert (first.status, second.status) == (200, 401)
    assert second.json() == {"error": {"phase": "security", "message": "invalid credentials"}}
    assert runner.calls == 1


@pytest.mark.parametrize("offset", [-301, 301, -3600])
async def test_a_timestamp_outside_the_tolerance_is_refused(
        app_and_runner: tuple[Any, Runner], offset: int) -> None:
    """A correct signature over a timestamp more than 5 minutes off (either way) is 401."""
    app, runner = app_and_runner
    stamp = int(time.time()) + offset
    answer = await call_app(app, "POST", "/x", body=BODY,
                            headers=headers(sign(stamp, "POST", "/x", BODY), stamp))
    assert answer.status == 401
    assert runner.calls == 0


async def test_a_timestamp_within_the_tolerance_is_accepted(
        app_and_runner: tuple[Any, Runner]) -> None:
    """Four minutes behind or ahead is within a 5-minute tolerance."""
    app, _ = app_and_runner
    for offset in (-240, 240):
        stamp = int(time.time()) + offset
        answer = await call_app(app, "POST", "/x", body=BODY,
                                headers=headers(sign(stamp, "POST", "/x", BODY), stamp))
        assert answer.status == 200


@pytest.mark.parametrize(("method", "url"), [
    ("POST", "/x?a=2"),  # another query
    ("POST", "/x"),      # the query dropped
    ("POST", "/y?a=1"),  # another path of the same package
])
async def test_the_path_and_query_are_signed(
        app_and_runner: tuple[Any, Runner], method: str, url: str) -> None:
    """A signature for POST /x?a=1 does not work for another path or query."""
    app, runner = app_and_runner
    now = int(time.time())
    answer = await call_app(app, method, url, body=BODY,
                            headers=headers(sign(now, "POST", "/x?a=1", BODY), now))
    assert answer.status == 401
    assert runner.calls == 0


@pytest.mark.parametrize("stamp", ["", "12.5", "+1700000000", "1_700_000_000", "now"])
async def test_a_missing_or_malformed_timestamp_is_refused(
        app_and_runner: tuple[Any, Runner], stamp: str) -> None:
    """Only integer Unix seconds are a timestamp; a body-only signature is not enough."""
    app, _ = app_and_runner
    body_only = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    for signature in (sign(stamp, "POST", "/x", BODY), body_only):
        answer = await call_app(app, "POST", "/x", body=BODY, headers=headers(signature, stamp))
        assert answer.status == 401
