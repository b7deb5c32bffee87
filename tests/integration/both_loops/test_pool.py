"""The connectors' HTTP/1.1 client (`connectors.pool`) against raw loopback servers that
answer with chosen bytes: framing, keep-alive, failures, TLS."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trustme
from yarl import URL

from interlink.connectors.pool import CallFailed, ConnectionPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


class RawServer:
    """A loopback TCP server whose `handler` writes raw answers; it counts connections and
    keeps every request it read (`read_request`)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_by_client = asyncio.Event()
        self.port = 0

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(handler: Handler, *,
                     tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()


def answer(status: str = "200 OK", body: bytes = b'{"ok":true}', *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         server: RawServer) -> None:
    """Answer every request on the connection with a small JSON."""
    while await server.read_request(reader) is not None:
        writer.write(answer("200 OK", b'{"ok":true}', "Content-Type: application/json"))
        await writer.drain()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    opened = ConnectionPool()
    yield opened
    await opened.close()


def url(server: RawServer, path: str = "/orders", scheme: str = "http") -> URL:
    return URL(f"{scheme}://127.0.0.1:{server.port}{path}")


async def test_requests_reuse_one_keep_alive_connection(pool: ConnectionPool) -> None:
    """Two calls in a row go over one connection; the request carries Host, a User-Agent,
    the caller's headers, Content-Length and the body."""
    async with raw_server(keep_answering) as server:
        for n in (1, 2):
            got = await pool.request("POST", url(server, "/orders?x=a%20b"),
                                     {"Idempotency-Key": f"k{n}"}, b'{"id":1}', timeout=5)
            assert (got.status, got.body, got.text()) == (200, b'{"ok":true}', '{"ok":true}')
            assert got.header("content-type") == "application/json"
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /orders?x=a%20b HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in first
    assert b"Idempotency-Key: k1\r\n" in first
    assert b"User-Agent: interlink/" in first
    assert first.endswith(b"Content-Length: 8\r\n\r\n{\"id\":1}")


async def test_a_post_without_a_body_says_content_length_0(pool: ConnectionPool) -> None:
    async with raw_server(keep_answering) as server:
        await pool.request("POST", url(server), {}, None, timeout=5)
        await pool.request("GET", url(server), {}, None, timeout=5)
    post, get = server.requests
    assert b"Content-Length: 0\r\n" in post
    assert b"Content-Length" not in get


async def test_the_caller_cannot_set_the_framing(pool: ConnectionPool) -> None:
    """A Content-Length or Transfer-Encoding from the caller is not sent: a second framing
    would let the upstream read another request out of the body (request smuggling)."""
    async with raw_server(keep_answering) as server:
        await pool.request("POST", url(server), {"Content-Length": "0",
                                                 "Transfer-Encoding": "chunked"},
                           b"GET /admin HTTP/1.1\r\n\r\n", timeout=5)
    [sent] = server.requests
    assert sent.count(b"Content-Length") == 1
    assert b"Content-Length: 23\r\n" in sent
    assert b"Transfer-Encoding" not in sent


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\0b"])
async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
        pool: ConnectionPool, value: str) -> None:
    async with raw_server(keep_answering) as server:
        with pytest.raises(ValueError, match="line break or NUL"):
            await pool.request("GET", url(server), {"X-Note": value}, None, timeout=5)
    assert server.connections == 0


async def test_chunked_and_gzip_bodies_are_assembled_and_decoded(pool: ConnectionPool) -> None:
    packed = gzip.compress(b'{"items":[1,2,3]}')

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Encoding: gzip\r\nContent-Type: application/json\r\n\r\n")
        for start in range(0, len(packed), 7):  # small chunks, in separate packets
            piece = packed[start:start + 7]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\nX-Checksum: abc\r\n\r\n")  # a trailer field
        await writer.drain()
        await reader.read()

    async with raw_server(chunked) as server:
        got = await pool.request("GET", url(server), {"Accept-Encoding": "gzip"}, None,
                                 timeout=5)
    assert got.body == b'{"items":[1,2,3]}'
    # Trailer fields are not headers (RFC 9110 §6.5: not merged unless known to be safe).
    assert [name for name, _ in got.headers] == [
        "Transfer-Encoding", "Content-Encoding", "Content-Type"]


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(("encoding", "packed"), [
    ("deflate", zlib.compress(b"plain")),      # as RFC 9110 says: zlib
    ("deflate", _raw_deflate(b"plain")),       # as some servers send it: raw deflate
    ("x-gzip", gzip.compress(b"plain")),
])
async def test_deflate_either_way_and_x_gzip(pool: ConnectionPool, encoding: str,
                                             packed: bytes) -> None:
    async def packs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer("200 OK", packed, f"Content-Encoding: {encoding}"))

    async with raw_server(packs) as server:
        got = await pool.request("GET", url(server), {}, None, timeout=5)
    assert got.body == b"plain"


async def test_a_body_ended_by_the_connection_close(pool: ConnectionPool) -> None:
    """No Content-Length and no chunking: the body is what came before the close (RFC 9112
    §6.3), and that connection is not reused."""
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"it")

    async with raw_server(until_close) as server:
        first = await pool.request("GET", url(server), {}, None, timeout=5)
        second = await pool.request("GET", url(server), {}, None, timeout=5)
    assert first.body == second.body == b"all of it"
    assert server.connections == 2


async def test_informational_answers_are_skipped_and_head_has_no_body(
        pool: ConnectionPool) -> None:
    async def hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                             + answer("201 Created", b"made"))
            await writer.drain()

    async with raw_server(hints) as server:
        got = await pool.request("POST", url(server), {}, b"x", timeout=5)
        head = await pool.request("HEAD", url(server), {}, None, timeout=5)
    assert (got.status, got.body, got.header("Link")) == (201, b"made", None)
    assert (head.status, head.body) == (200, b"")


async def test_a_redirect_is_the_answer(pool: ConnectionPool) -> None:
    """Redirects are not followed: the caller's script or classifier sees the 3xx."""
    async def moved(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer("302 Found", b"", "Location: http://elsewhere.example/"))

    async with raw_server(moved) as server:
        got = await pool.request("POST", url(server), {"Authorization": "Bearer t"}, b"{}",
                                 timeout=5)
    assert (got.status, got.header("Location")) == (302, "http://elsewhere.example/")
    assert len(server.requests) == 1


async def test_an_idle_connection_the_server_closed_is_not_used(pool: ConnectionPool) -> None:
    """The upstream closes a keep-alive connection between calls: the next call opens a new
    one instead of failing on the dead one."""
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(answer())  # keep-alive by default in HTTP/1.1, then closes anyway

    async with raw_server(once) as server:
        await pool.request("GET", url(server), {}, None, timeout=5)
        await asyncio.sleep(0.05)  # the close reaches the client
        got = await pool.request("GET", url(server), {}, None, timeout=5)
    assert got.status == 200
    assert server.connections == 2


async def closes_when_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           server: RawServer) -> None:
    """Answer the first request, then read the next one and close without answering: an
    upstream whose idle timeout fired as the request crossed it."""
    await server.read_request(reader)
    writer.write(answer())
    await writer.drain()
    await server.read_request(reader)


async def first_connection_closes_when_idle(reader: asyncio.StreamReader,
                                            writer: asyncio.StreamWriter,
                                            server: RawServer) -> None:
    if server.connections == 1:
        await closes_when_idle(reader, writer, server)
    else:
        await keep_answering(reader, writer, server)


@pytest.mark.parametrize(("method", "headers"), [
    ("GET", {}), ("PUT", {}), ("POST", {"Idempotency-Key": "run-1:push:0"})])
async def test_a_request_crossing_an_idle_close_is_sent_again_when_that_is_safe(
        pool: ConnectionPool, method: str, headers: dict[str, str]) -> None:
    """The upstream closed the reused connection without a byte of answer: the same request
    goes once more on a new connection (as Go's net/http does), not a failed attempt."""
    body = None if method == "GET" else b"{}"
    async with raw_server(first_connection_closes_when_idle) as server:
        await pool.request(method, url(server), headers, body, timeout=5)
        got = await pool.request(method, url(server), headers, body, timeout=5)
    assert got.status == 200
    assert server.connections == 2
    assert len(server.requests) == 3  # the one that crossed the close, read and not answered


async def test_a_post_without_a_key_is_not_sent_twice(pool: ConnectionPool) -> None:
    """Without an Idempotency-Key a POST that may have been acted upon fails the call: the
    caller's policy decides whether to send it again."""
    async with raw_server(first_connection_closes_when_idle) as server:
        await pool.request("POST", url(server), {}, b"{}", timeout=5)
        with pytest.raises(CallFailed) as caught:
            await pool.request("POST", url(server), {}, b"{}", timeout=5)
    assert (caught.value.kind, caught.value.message) == (
        "disconnected", "the server closed the connection without answering")
    assert server.connections == 1


async def test_a_fresh_connection_closed_unanswered_is_not_sent_again(
        pool: ConnectionPool) -> None:
    """Only a reused connection can have crossed an idle close: on a new one, no answer is
    the upstream's doing, and the call fails."""
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: RawServer) -> None:
        await server.read_request(reader)

    async with raw_server(hang_up) as server:
        with pytest.raises(CallFailed):
            await pool.request("GET", url(server), {}, None, timeout=5)
    assert server.connections == 1


async def test_a_body_on_a_get_retires_the_connection(pool: ConnectionPool) -> None:
    """An upstream may leave a GET's body unread and take it for the next request's start:
    the connection is not used again."""
    async with raw_server(keep_answering) as server:
        await pool.request("GET", url(server), {}, b'{"id":1}', timeout=5)
        await pool.request("GET", url(server), {}, None, timeout=5)
        await pool.request("GET", url(server), {}, None, timeout=5)
    assert server.connections == 2


async def test_an_idle_connection_expires(pool: ConnectionPool) -> None:
    short = ConnectionPool(keepalive_s=0.05)
    try:
        async with raw_server(keep_answering) as server:
            await short.request("GET", url(server), {}, None, timeout=5)
            await asyncio.sleep(0.1)
            await short.request("GET", url(server), {}, None, timeout=5)
            await asyncio.wait_for(server.closed_by_client.wait(), 5)
        assert server.connections == 2
    finally:
        await short.close()


async def test_bytes_sent_while_idle_retire_the_connection(pool: ConnectionPool) -> None:
    """An answer nobody asked for means the framing cannot be trusted: the connection is
    closed and the next call gets a fresh one (never that stale answer)."""
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(answer(body=b"first"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(answer(body=b"unasked"))
        await writer.drain()
        if await server.read_request(reader) is not None:
            writer.write(answer(body=b"wrong"))
        await reader.read()

    async def fresh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        if server.connections == 1:
            await chatty(reader, writer, server)
        else:
            await keep_answering(reader, writer, server)

    async with raw_server(fresh) as server:
        first = await pool.request("GET", url(server), {}, None, timeout=5)
        await asyncio.sleep(0.1)
        second = await pool.request("GET", url(server), {}, None, timeout=5)
    assert (first.body, second.body) == (b"first", b'{"ok":true}')
    assert server.connections == 2


@pytest.mark.parametrize(("reply", "kind", "message"), [
    (b"", "disconnected", "the server closed the connection without answering"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "disconnected",
     "the server closed the connection before the answer was complete"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "disconnected",
     "the server closed the connection before the answer was complete"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
     "protocol", "the response body could not be decoded (gzip)"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\n"
     + gzip.compress(b"a long enough text")[:12], "protocol",
     "the response body could not be decoded (gzip): the compressed stream is cut short"),
    (b"220 smtp.example ESMTP ready\r\n", "protocol",
     "the answer is not HTTP (it starts '220 smtp.example ESMTP ready'): is this the right "
     "port?"),
    (b"\x16\x03\x01\x00\xa5\x01", "protocol",
     "the answer is not HTTP (it starts with bytes 16 03 01 00 a5 01)"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "protocol", "malformed response: "),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 300_000, "protocol",  # a head without end
     "malformed response: headers over 64 KiB"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 300_000 + b"\r\nContent-Length: 0\r\n\r\n",
     "protocol", "malformed response: headers over 64 KiB"),  # a whole long head at once
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: a\r\n" * 8000 + b"Content-Length: 0\r\n\r\n",
     "protocol", "malformed response: headers over 64 KiB"),  # many short headers
])
async def test_a_broken_answer_is_a_call_failure(pool: ConnectionPool, reply: bytes,
                                                 kind: str, message: str) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with raw_server(broken) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server), {}, None, timeout=5)
    assert caught.value.kind == kind
    assert caught.value.message.startswith(message)


async def test_a_large_answer_in_one_packet_is_not_taken_for_long_headers(
        pool: ConnectionPool) -> None:
    big = b"x" * 300_000

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer(body=big))
            await writer.drain()

    async with raw_server(large) as server:
        got = await pool.request("GET", url(server), {}, None, timeout=5)
    assert got.body == big


@pytest.mark.parametrize(("encoding", "body"), [
    (None, b"x" * 2000),
    ("gzip", gzip.compress(b"x" * 10_000_000)),  # 10 KB that would unpack to 10 MB
])
async def test_a_body_over_the_limit_fails_the_call(pool: ConnectionPool, encoding: str | None,
                                                     body: bytes) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            extra = [f"Content-Encoding: {encoding}"] if encoding else []
            writer.write(answer("200 OK", body, *extra))
            await writer.drain()

    async with raw_server(big) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server), {}, None, timeout=5, max_body=1024)
        small = await pool.request("GET", url(server), {}, None, timeout=5, max_body=20_000_000)
    assert (caught.value.kind, caught.value.message) == (
        "protocol", "the response body is over 1KB (the connector's max_response)")
    assert len(small.body) == (2000 if encoding is None else 10_000_000)


async def test_a_timeout_covers_the_whole_answer_and_drops_the_connection(
        pool: ConnectionPool) -> None:
    """Headers arrive, the body never does: `timed out after 200ms`, and the connection is
    closed (its late bytes could be taken for the next call's answer)."""
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: RawServer) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
            await writer.drain()
            await reader.read()
            server.closed_by_client.set()
        else:
            await keep_answering(reader, writer, server)

    async with raw_server(stalls) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server), {}, None, timeout=0.2)
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        again = await pool.request("GET", url(server), {}, None, timeout=5)
    assert (caught.value.kind, caught.value.message) == ("timeout", "timed out after 200ms")
    assert again.body == b'{"ok":true}'
    assert server.connections == 2


async def test_nothing_listening_and_no_such_host(pool: ConnectionPool) -> None:
    async with raw_server(keep_answering) as server:
        port = server.port
    with pytest.raises(CallFailed) as refused:
        await pool.request("GET", URL(f"http://127.0.0.1:{port}/"), {}, None, timeout=5)
    assert (refused.value.kind, refused.value.message) == (
        "connect", f"connection refused (127.0.0.1:{port})")
    with pytest.raises(CallFailed) as unknown:
        await pool.request("GET", URL("http://no-such-host.invalid/"), {}, None, timeout=5)
    assert unknown.value.kind in ("dns", "timeout")  # a resolver may be unreachable here
    if unknown.value.kind == "dns":
        assert unknown.value.message == "cannot resolve host no-such-host.invalid"


async def test_tls_is_verified(tmp_path: object) -> None:
    """Over https the certificate is checked against the CA store (the default one refuses a
    private CA) and then the call works like any other."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    strict, private = ConnectionPool(), ConnectionPool(ssl_context=trusting)
    try:
        async with raw_server(keep_answering, tls=server_context) as server:
            with pytest.raises(CallFailed) as refused:
                await strict.request("GET", url(server, scheme="https"), {}, None, timeout=5)
            got = await private.request("POST", url(server, scheme="https"), {}, b"{}",
                                        timeout=5)
    finally:
        await strict.close()
        await private.close()
    assert refused.value.kind == "tls"
    assert "certificate verify failed" in refused.value.message
    assert got.status == 200


# --- what a review found (each reproduced against the first version) ------------------------


async def test_a_second_answer_in_the_read_that_ended_the_first_retires_the_connection(
        pool: ConnectionPool) -> None:
    """Bytes after an answer in the same read are an answer nobody asked for: parsed on, they
    made the next call's answer (a 503) read as this stray one's 200."""
    async def stray(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        if server.connections > 1:
            await keep_answering(reader, writer, server)
            return
        await server.read_request(reader)
        writer.write(answer(body=b"ok") + b"HTTP/1.1 200 OK\r\nX-Stale: ")
        await writer.drain()
        await server.read_request(reader)
        writer.write(answer("503 Service Unavailable", b"busy"))
        await reader.read()

    async with raw_server(stray) as server:
        first = await pool.request("GET", url(server), {}, None, timeout=5)
        second = await pool.request("GET", url(server), {}, None, timeout=5)
    assert (first.status, first.body, first.headers) == (200, b"ok", [("Content-Length", "2")])
    assert (second.status, second.body) == (200, b'{"ok":true}')
    assert server.connections == 2


async def test_a_body_cut_by_a_reset_is_not_an_answer(pool: ConnectionPool) -> None:
    """A body that runs to the connection's end is whole only if the connection ended well:
    a reset mid-body is a cut answer, not a short one."""
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"status":"accep')
        await writer.drain()
        await asyncio.sleep(0.05)
        linger_0 = struct.pack("ii", 1, 0)  # close with a reset (RST), not a FIN
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   linger_0)
        writer.transport.abort()

    async with raw_server(reset) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server), {}, None, timeout=5)
    assert caught.value.kind == "disconnected"


async def test_closing_the_pool_cuts_a_call_off_without_sending_it_again() -> None:
    """Our own close is not the upstream's: a keyed request in flight on a reused connection
    is not replayed on a new one (it was, to an upstream that had read it)."""
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.3)
            writer.write(answer())

    pool = ConnectionPool()
    async with raw_server(slow) as server:
        await pool.request("GET", url(server), {}, None, timeout=5)
        call = asyncio.ensure_future(pool.request("POST", url(server), {"Idempotency-Key": "k"},
                                                  b"{}", timeout=5))
        await asyncio.sleep(0.1)
        await pool.close()
        with pytest.raises(CallFailed) as caught:
            await call
        with pytest.raises(CallFailed, match="the connection pool is closed"):
            await pool.request("GET", url(server), {}, None, timeout=5)
    assert caught.value.kind == "network"
    assert "this process closed its connections" in caught.value.message
    assert (server.connections, len(server.requests)) == (1, 2)


async def test_a_trailer_that_never_ends_is_refused(pool: ConnectionPool) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                     b"X-Trailer: ")
        for _ in range(40):
            writer.write(b"a" * 8192)
            await writer.drain()
        await reader.read()

    async with raw_server(endless) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server), {}, None, timeout=5)
    assert (caught.value.kind, caught.value.message) == (
        "protocol", "malformed response: its chunk framing and trailer fields are over 128 KiB")


async def test_many_small_chunks_are_not_taken_for_framing_abuse(pool: ConnectionPool) -> None:
    body = b"x" * 50_000

    async def tiny_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     b"".join(b"1;ext=value\r\nx\r\n" for _ in body) + b"0\r\n\r\n")
        await reader.read()

    async with raw_server(tiny_chunks) as server:
        got = await pool.request("GET", url(server), {}, None, timeout=5)
    assert got.body == body


@pytest.mark.parametrize("charset", ["base64", "rot13", "idna", "punycode", "no-such"])
def test_a_charset_that_is_no_text_encoding_reads_as_utf_8(charset: str) -> None:
    from interlink.connectors.pool import Answer
    got = Answer(200, [("Content-Type", f"text/plain; charset={charset}")], "é ok".encode())
    assert got.text() == "é ok"


async def test_a_host_name_the_resolver_cannot_encode_is_a_dns_failure(
        pool: ConnectionPool) -> None:
    for host in ("a..example", "a" * 64 + ".example"):
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", URL(f"http://{host}/"), {}, None, timeout=5)
        assert (caught.value.kind, caught.value.message) == (
            "dns", f"cannot resolve host {host}: not a valid host name")


@pytest.mark.parametrize(("body", "expected"), [
    (gzip.compress(b'{"items":[1,') + gzip.compress(b"2]}"), b'{"items":[1,2]}'),
    (gzip.compress(b"plain") + b"\0\0\0", b"plain"),
    (gzip.compress(b"plain") + b"garbage", None),
])
async def test_gzip_members_are_joined_and_garbage_after_them_refused(
        pool: ConnectionPool, body: bytes, expected: bytes | None) -> None:
    async def packed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(answer("200 OK", body, "Content-Encoding: gzip"))
        await reader.read()

    async with raw_server(packed) as server:
        if expected is None:
            with pytest.raises(CallFailed, match="could not be decoded"):
                await pool.request("GET", url(server), {}, None, timeout=5)
        else:
            got = await pool.request("GET", url(server), {}, None, timeout=5)
            assert got.body == expected


@pytest.mark.parametrize("coding", ["chunked, identity", "gzip, chunked, br", "x-notchunked"])
async def test_a_body_without_chunked_last_runs_to_the_close(pool: ConnectionPool,
                                                             coding: str) -> None:
    """RFC 9112 §6.3, as llhttp reads it: `chunked` frames a body only as the last coding."""
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n".encode() +
                     b"body-until-close")
        await writer.drain()

    async with raw_server(until_close) as server:
        got = await pool.request("GET", url(server), {}, None, timeout=5)
    assert got.body == b"body-until-close"


async def test_idle_connections_are_closed_without_another_call() -> None:
    """A host called once is not kept open for ever: its connection closes after the
    keep-alive time, and leaves the pool."""
    short = ConnectionPool(keepalive_s=0.05)
    try:
        async with raw_server(keep_answering) as server:
            await short.request("GET", url(server), {}, None, timeout=5)
            await asyncio.wait_for(server.closed_by_client.wait(), 5)
            await asyncio.sleep(0.01)
            assert short._open == set() and short._idle == {}
    finally:
        await short.close()


async def test_a_connection_the_caller_says_to_close_is_not_kept(pool: ConnectionPool) -> None:
    async with raw_server(keep_answering) as server:
        await pool.request("GET", url(server), {"Connection": "close"}, None, timeout=5)
        await pool.request("GET", url(server), {}, None, timeout=5)
    assert server.connections == 2


def test_a_header_that_is_not_valid_text_is_refused() -> None:
    from interlink.connectors.pool import check_header
    with pytest.raises(ValueError, match="'X-Order' is not valid text"):
        check_header("X-Order", "order-\ud800")
    check_header("X-Name", "Zoë")  # not ASCII, still text: sent as UTF-8


async def test_an_answer_before_the_whole_body_was_sent_retires_the_connection(
        pool: ConnectionPool) -> None:
    """An upstream that answers (a 413, say) without reading the body keeps the connection:
    the rest of the body, still being sent, must not be read as the next request."""
    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        if server.connections > 1:
            await keep_answering(reader, writer, server)
            return
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer("413 Content Too Large", b"no"))
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(early) as server:
        first = await pool.request("POST", url(server), {}, b"x" * 32_000_000, timeout=5)
        # a POST without a key: not replayable, so only a fresh connection can answer it
        second = await pool.request("POST", url(server), {}, b"{}", timeout=5)
    assert (first.status, second.status) == (413, 200)
    assert server.connections == 2


async def test_https_to_a_plain_http_port_says_so(pool: ConnectionPool) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: RawServer) -> None:
        await reader.read(100)  # a TLS ClientHello: an HTTP server answers 400 to it
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(plain) as server:
        with pytest.raises(CallFailed) as caught:
            await pool.request("GET", url(server, scheme="https"), {}, None, timeout=5)
    assert caught.value.kind == "tls"
    assert caught.value.message.endswith(
        "TLS: what answered does not speak TLS (WRONG_VERSION_NUMBER): is it an http:// port?")
