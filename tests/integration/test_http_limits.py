"""`server.limits` on the wire: header and body clocks, header caps, the connection cap.

A real uvicorn with `interlink serve`'s settings on loopback, raw sockets, short clocks
(300 ms). The app reads the whole body with the services' reader and records what it got, so
a test can tell that nothing acted on a request the limits cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send
from tests.served import body_of, exchange, post, serving, status_of

from interlink.services.body import read_body
from interlink.services.responses import Response, send_response
from interlink.spec.project import ServerLimits

LIMITS = ServerLimits.model_validate({
    "header_timeout": "300ms", "body_timeout": "300ms", "idle_timeout": "300ms",
    "max_headers": 50, "max_header_bytes": "8KB", "max_connections": 8,
})
GET = b"GET / HTTP/1.1\r\nHost: x\r\n"


class Recorder:
    """An ASGI app answering 200 with the body's length once it has read all of it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body, record it, answer."""
        body = await read_body(receive, None, 10 * 1024 * 1024)
        self.bodies.append(body)
        await send_response(send, Response(200, str(len(body)).encode()))


@pytest.fixture
def app() -> Recorder:
    """The recording app."""
    return Recorder()


@pytest.fixture
async def port(app: Recorder) -> AsyncIterator[int]:
    """The recording app served with `LIMITS`."""
    async with serving(app, LIMITS) as bound:
        yield bound


def assert_refused(answer: bytes, status: int) -> None:
    """`answer` is the engine's refusal: `status`, the error body, the connection closed."""
    assert status_of(answer) == status, answer[:200]
    assert b"\r\nconnection: close\r\n" in answer
    error = body_of(answer)
    assert isinstance(error, dict) and error["error"]["phase"] == "http"


async def test_headers_sent_too_slowly_are_408(port: int, app: Recorder) -> None:
    """Headers trickling in a byte every 50 ms are cut off at 300 ms: 408, closed."""
    slow = [bytes([b]) for b in GET + b"X-Slow: " + b"y" * 20 + b"\r\n\r\n"]
    assert_refused(await exchange(port, *slow, pause=0.05), 408)
    assert app.bodies == []


async def test_a_silent_connection_is_408(port: int) -> None:
    """A connection that never sends a byte is closed after the header timeout."""
    assert_refused(await exchange(port), 408)


async def test_a_body_sent_too_slowly_is_408_and_never_read(port: int, app: Recorder) -> None:
    """The body clock runs from the end of the headers; the app sees a disconnect, not a body."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"
    assert_refused(await exchange(port, head, *[b"x"] * 20, pause=0.05), 408)
    await asyncio.sleep(0.05)
    assert app.bodies == []


async def test_too_many_header_lines_are_431(port: int) -> None:
    """200 header lines, with the cap at 50: 431, closed."""
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(200))
    assert_refused(await exchange(port, GET + many + b"\r\n"), 431)


@pytest.mark.parametrize("size", [9 * 1024, 1024 * 1024], ids=["9KB", "1MB"])
async def test_headers_over_the_byte_cap_are_431(port: int, size: int) -> None:
    """One header line larger than `max_header_bytes` (8 KB): 431, closed."""
    assert_refused(await exchange(port, GET + b"X-Big: " + b"v" * size + b"\r\n\r\n"), 431)


async def test_a_url_over_the_byte_cap_is_414(port: int) -> None:
    """A 10 KB URL: 414, closed."""
    assert_refused(await exchange(port, b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\n\r\n"), 414)


async def test_headers_under_the_caps_are_served(port: int, app: Recorder) -> None:
    """40 headers, 6 KB in all, and a body: answered as usual."""
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 150) for n in range(40))
    request = post("/", b"hello").replace(b"Host: x\r\n", b"Host: x\r\n" + headers)
    answer = await exchange(port, request)
    assert (status_of(answer), app.bodies) == (200, [b"hello"])


async def test_connections_over_the_cap_are_503(port: int) -> None:
    """With 8 connections open the 9th is answered 503 and closed; later ones are served."""
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
    try:
        assert_refused(await exchange(port), 503)
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.1)
    assert status_of(await exchange(port, post("/", b"x"))) == 200


async def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    """After an answer, a connection that sends nothing is closed at `idle_timeout`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(post("/", b"x", close=False))
        head = await reader.readuntil(b"\r\n\r\n")
        assert status_of(head) == 200
        assert await reader.readexactly(1) == b"1"
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, nothing more said
    finally:
        writer.close()


async def test_blank_lines_do_not_keep_a_connection_open(port: int) -> None:
    """Blank lines between requests are allowed, but they do not stop the header clock."""
    first = post("/", b"x", close=False)
    answer = await exchange(port, first, *[b"\r\n"] * 12, pause=0.1)
    statuses = [int(part[:3]) for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 408]


async def test_pipelined_requests_are_all_answered(port: int, app: Recorder) -> None:
    """Three requests in one write on one connection: three answers, in order."""
    requests = post("/", b"a", close=False) + post("/", b"bb", close=False) + post("/", b"ccc")
    answer = await exchange(port, requests)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert app.bodies == [b"a", b"bb", b"ccc"]


@pytest.mark.parametrize("request_bytes", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
], ids=["garbage", "non-ascii-path", "bad-content-length", "two-content-lengths"])
async def test_malformed_requests_are_400(port: int, request_bytes: bytes) -> None:
    """Requests that are not valid HTTP: 400 with the error body, closed."""
    assert_refused(await exchange(port, request_bytes), 400)


async def test_an_upgrade_we_do_not_speak_is_plain_http(
    port: int, app: Recorder, caplog: pytest.LogCaptureFixture,
) -> None:
    """`Upgrade: h2c` on a GET (no websockets or HTTP/2 here) is answered as HTTP, quietly."""
    answer = await exchange(port, GET + b"Connection: Upgrade, HTTP2-Settings, close\r\n"
                            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    assert (status_of(answer), app.bodies) == (200, [b""])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_an_upgrade_with_a_body_is_400(port: int, app: Recorder) -> None:
    """The parser would drop the body of a request asking to upgrade: refused, never run."""
    request = post("/", b"body").replace(
        b"Connection: close\r\n", b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
    assert_refused(await exchange(port, request), 400)
    await asyncio.sleep(0.05)
    assert app.bodies == []
