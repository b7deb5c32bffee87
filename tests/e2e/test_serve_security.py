"""`interlink serve` as real processes: a separate admin listener, the start-up line naming the
admin mode, replay-proof HMAC across two servers on one PostgreSQL store, and the CLI working
without any token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from tests.processes import free_port, interlink, wait_healthy, wait_until
from tests.projects import write_project

TOKEN = "admin-token-0123456789abcdef"
KEY = "partner-key-0123"
SECRET = "hmac-secret-0123456789"

FLOW = """
    name: greet
    trigger: {type: webhook, path: /hooks/greet, package: partners}
    steps:
      - {id: s, type: script, script: scripts/s.py}
    """
ORDERS = """
    name: orders
    path: /orders
    package: partners
    execution: async
    activity: {flow: greet}
    """
SIGNED = """
    name: signed
    path: /signed
    package: signed
    activity: {flow: greet}
    """
SCRIPT = "def handle(data):\n    return data\n"


def files(admin: str, *, store: str = "sqlite:///.interlink/t.db") -> dict[str, str]:
    """A project: a partners-only webhook and queued service, a replay-proof HMAC service."""
    return {
        "interlink.yaml": f"""
            name: t
            store: '{store}'
            worker: {{poll: 50ms}}
            {admin}
            packages:
              partners: {{auth: {{type: api_key, keys: ["{KEY}"]}}}}
              signed: {{auth: {{type: hmac, secret: "{SECRET}", timestamp_header: X-Timestamp}}}}
            """,
        "flows/greet.yaml": FLOW, "services/orders.yaml": ORDERS,
        "services/signed.yaml": SIGNED, "scripts/s.py": SCRIPT,
    }


async def status(http: aiohttp.ClientSession, method: str, url: str,
                 headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """The status and body of one request."""
    async with http.request(method, url, headers=headers or {}, data=body) as answer:
        return answer.status, await answer.read()


async def test_a_separate_admin_listener_takes_the_engine_endpoints(tmp_path: Path) -> None:
    """With admin.listen the engine endpoints answer there only; the main listener keeps
    services, webhooks, health and partners' queue polls; serve names the mode at start."""
    main, admin = free_port(), free_port()
    listen = f'admin: {{token: "{TOKEN}", listen: {{host: 127.0.0.1, port: {admin}}}}}'
    write_project(tmp_path, files(listen))
    log = tmp_path / "serve.log"
    key, token = {"X-API-Key": KEY}, {"Authorization": f"Bearer {TOKEN}"}
    with interlink("serve", str(tmp_path), "--port", str(main), log=log) as proc:
        await wait_healthy(main, proc)
        base, engine = f"http://127.0.0.1:{main}", f"http://127.0.0.1:{admin}"
        async with aiohttp.ClientSession() as http:
            code, body = await status(http, "POST", f"{base}/hooks/greet", key, b'{"a": 1}')
            assert code == 202
            run_id = json.loads(body)["run_id"]
            code, body = await status(http, "POST", f"{base}/orders", key, b"{}")
            item_id = json.loads(body)["queue_item_id"]
            # The main listener: no engine endpoint, whatever the credentials.
            for path in (f"/_interlink/runs/{run_id}", "/metrics", "/_interlink/openapi.json",
                         "/_interlink/flows/greet/runs"):
                method = "POST" if path.endswith("/runs") else "GET"
                assert (await status(http, method, base + path, token))[0] == 404, path
            assert (await status(http, "GET", f"{base}/_interlink/queue/{item_id}", key))[0] \
                == 200
            assert (await status(http, "GET", f"{base}/_interlink/queue/{item_id}", token))[0] \
                == 401
            # The admin listener: the engine endpoints with the token, nothing else.
            assert (await status(http, "GET", f"{engine}/_interlink/runs/{run_id}", token))[0] \
                == 200
            assert (await status(http, "GET", f"{engine}/_interlink/runs/{run_id}"))[0] == 401
            assert (await status(http, "GET", f"{engine}/metrics", token))[0] == 200
            assert (await status(http, "GET", f"{engine}/_interlink/health"))[0] == 200
            assert (await status(http, "POST", f"{engine}/orders", key, b"{}"))[0] == 404
            assert (await status(http, "POST", f"{engine}/hooks/greet", key, b"{}"))[0] == 404
    text = log.read_text()
    assert "admin token required (Authorization: Bearer; 1 token accepted) on " \
           f"http://127.0.0.1:{admin} only" in text
    assert TOKEN not in text and KEY not in text


async def test_serve_says_when_the_engine_endpoints_are_loopback_only(tmp_path: Path) -> None:
    """Without admin.token the start-up line says loopback only, and how to open it."""
    port = free_port()
    write_project(tmp_path, files(""))
    log = tmp_path / "serve.log"
    line = "loopback callers only, no admin.token is set (set one to let other callers in)"
    with interlink("serve", str(tmp_path), "--port", str(port), log=log) as proc:
        await wait_healthy(port, proc)
        # logged just after the listeners answer, so it may come a moment after health does
        await wait_until("the start-up lines", lambda: line in log.read_text())


def signed(path: str, body: bytes) -> dict[str, str]:
    """Replay-proof HMAC headers for POST `path` with `body`, signed now."""
    stamp = str(int(time.time()))
    message = f"{stamp}.POST.{path}.".encode() + body
    return {"X-HMAC-HASH": hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest(),
            "X-Timestamp": stamp, "Content-Type": "application/json"}


@pytest.mark.postgres
async def test_a_signed_request_replayed_to_another_server_is_refused(
        tmp_path: Path, postgres_url: str) -> None:
    """Two `interlink serve`s on one PostgreSQL store: a request accepted by one is 401 at the
    other (the nonce is in the store), and a fresh signature is accepted by either."""
    write_project(tmp_path, files(f'admin: {{token: "{TOKEN}"}}', store=postgres_url))
    first, second = free_port(), free_port()
    with interlink("serve", str(tmp_path), "--port", str(first), log=tmp_path / "a.log") as a, \
            interlink("serve", str(tmp_path), "--port", str(second),
                      log=tmp_path / "b.log") as b:
        await wait_healthy(first, a)
        await wait_healthy(second, b)
        async with aiohttp.ClientSession() as http:
            body = b'{"n": 1}'
            headers = signed("/signed", body)
            accepted = await status(http, "POST", f"http://127.0.0.1:{first}/signed", headers,
                                    body)
            replayed = await status(http, "POST", f"http://127.0.0.1:{second}/signed",
                                    headers, body)
            assert (accepted[0], replayed[0]) == (200, 401)
            await asyncio.sleep(1.1)  # a new timestamp: a new signature
            fresh = await status(http, "POST", f"http://127.0.0.1:{second}/signed",
                                 signed("/signed", body), body)
            assert fresh[0] == 200


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `interlink ARGS` to the end."""
    return subprocess.run([sys.executable, "-m", "interlink.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_cli_needs_no_token(tmp_path: Path) -> None:
    """With admin.token set, run, runs, call and queue work without it (they use the store)."""
    write_project(tmp_path, files(f'admin: {{token: "{TOKEN}"}}'))
    root = str(tmp_path)
    ran = cli("run", "greet", root, "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    listed = cli("runs", root, "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    assert cli("runs", "show", run_id, "-p", root, "--json").returncode == 0
    called = cli("call", "orders", root, "-H", f"X-API-Key:{KEY}", "--json")
    assert called.returncode == 0, called.stderr
    queued = cli("queue", root, "--json")
    assert queued.returncode == 0 and len(json.loads(queued.stdout)) == 1
