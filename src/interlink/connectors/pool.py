"""Pooled HTTP/1.1 connections: how a connector call goes on the wire.

```
pool = ConnectionPool()
answer = await pool.request("POST", URL("https://api.example/orders"), headers, body, timeout=10)
answer.status, answer.headers, answer.body, answer.text()     # or raises CallFailed(kind, …)
await pool.close()
```

Our own, not aiohttp's client (docs/decisions/0016-connector-calls-on-httptools.md): a connector
call through aiohttp cost 90–140 µs of CPU, a fifth of a durable run, where the
same call on uvloop's transports and `httptools` (the parser uvicorn uses) costs about a third
of that (`bench/client.py`).

What it does: HTTP/1.1 over TCP or TLS (the system's CA store; the host name is checked),
keep-alive connections reused per (scheme, host, port) and dropped after `KEEPALIVE_S` idle,
response bodies framed by Content-Length, chunked encoding or the connection's end, gzip and
deflate decoded (sent only if the caller asked for them with `Accept-Encoding`), informational
(1xx) answers skipped, and one total timeout covering connecting, sending and the whole answer.

What it does not, on purpose: follow redirects (a 3xx is the answer: the response script or the
classifier decides, and credentials never travel to a host nobody configured), resend a request
by itself (every request sent is one attempt the caller counted; the one exception: a request
written to an idle connection as the upstream closed it, not a byte answered, is sent once more
on a new connection when repeating it is safe — idempotent, or an Idempotency-Key), cookies,
proxies, HTTP/2.
"""

from __future__ import annotations

import asyncio
import codecs
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from typing import cast

import httptools
from yarl import URL

from interlink import __version__
from interlink.connectors.transport import format_seconds
from interlink.errors import ConnectorError

__all__ = ["KEEPALIVE_S", "MAX_HEADER_BYTES", "Answer", "CallFailed", "ConnectionPool",
           "check_header"]

#: an idle connection is closed after this long (aiohttp's default; most servers keep longer)
KEEPALIVE_S = 15.0
#: an answer whose headers are longer than this is refused (aiohttp refused 8 KiB per line)
MAX_HEADER_BYTES = 64 * 1024
_USER_AGENT = f"interlink/{__version__}"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORBIDDEN = ("\r", "\n", "\0")
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NO_ANSWER = "the server closed the connection without answering"


class CallFailed(ConnectorError):
    """A call got no complete answer. `kind` is what response scripts see as `error.type`:
    `timeout`, `dns`, `connect`, `tls` (the certificate or the protocol refused: it will be
    again), `disconnected` (closed before the whole answer), `protocol` (an answer we refuse:
    malformed, not HTTP, over a limit) or `network`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def check_header(name: str, value: str) -> None:
    """Refuse a header that would split the request (a line break or NUL): `ValueError`."""
    for text in (name, value):
        if any(c in text for c in _FORBIDDEN):
            raise ValueError(f"header {name!r} contains a line break or NUL: it cannot be sent")
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:  # a lone surrogate: no bytes stand for it
                raise ValueError(f"header {name!r} is not valid text: it cannot be sent"
                                 ) from None
    if not name or " " in name or ":" in name:
        raise ValueError(f"header name {name!r} is not a valid HTTP token")


class Answer:
    """A complete response: status, headers as received (in order), body (decoded if it was
    gzip or deflate)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        """The body as text: the Content-Type's charset (UTF-8 if none or unknown), with
        undecodable bytes replaced."""
        try:
            return self.body.decode(_charset(self.header("Content-Type")), "replace")
        except UnicodeError:  # idna, punycode: text codecs that take no error handler
            return self.body.decode("utf-8", "replace")


def _charset(content_type: str | None) -> str:
    if content_type:
        for part in content_type.split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset":
                name = value.strip().strip('"')
                try:
                    codec = codecs.lookup(name)
                except LookupError:
                    break
                # base64, rot13, zip…: codecs, but not text encodings (bytes.decode refuses)
                if codec._is_text_encoding:
                    return codec.name
                break
    return "utf-8"


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, key: tuple[str, str, int],
                 on_lost: Callable[[_Connection], None]) -> None:
        self.key = key
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._closed_here = False  # closed by this side (pool.close, a failure, a cancel)
        self._peer_closed = False  # lost before this side closed it
        self._waiter: asyncio.Future[Answer] | None = None
        self._head_only = False
        self._max_body: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0  # received while the head was unfinished
        self._header_bytes = 0  # of the headers parsed
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._received = 0
        self._chunks = 0
        self._got_bytes = False
        self._headers_done = False
        self._answered = False
        self._framed = False
        self._keep_alive = False

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, unregistered

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection's framing cannot be trusted
            return
        if not self._got_bytes:
            self._got_bytes = True
            if not data.startswith(b"HTTP/"[:len(data)]):
                self._fail(CallFailed("protocol", "the answer is not HTTP (it starts "
                                                  f"{_shown(data)}): is this the right port?"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(CallFailed("protocol", "malformed response: an upgrade was not asked for"))
            return
        except httptools.HttpParserError as exc:
            self._fail(CallFailed("protocol", f"malformed response: {exc}"))
            return
        if not self._headers_done:  # all of `data` was head
            # httptools has no limit of its own: a head that never ends would fill memory
            # (one that ends is counted header by header, in on_header).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._fail(_head_too_long())
            return
        # What is not body — the head, chunk sizes, a trailer field that never ends — is
        # bounded too: twice the head's limit, and a few bytes per chunk.
        self._received += len(data)
        if self._received - self._body_bytes > 2 * MAX_HEADER_BYTES + 16 * self._chunks:
            self._fail(CallFailed("protocol", "malformed response: its chunk framing and trailer "
                                              f"fields are over {MAX_HEADER_BYTES // 512} KiB"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_closed = not self._closed_here
        self.closed = True
        self._on_lost(self)
        if self._waiter is None or self._waiter.done():
            return
        if self._closed_here:  # pool.close() while the call was in flight
            self._fail(CallFailed("network", "the call was cut off: this process closed its "
                                             "connections (it is stopping)"))
        elif self._headers_done and not self._framed and exc is None:
            self._finish()  # a body delimited by the connection's end (RFC 9112 §6.3)
        elif not self._got_bytes:
            self._fail(CallFailed("disconnected", _NO_ANSWER))
        else:  # a server that stopped mid-answer may answer in full next time: not malformed
            self._fail(CallFailed("disconnected", "the server closed the connection before "
                                  "the answer was complete"))

    # --- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answered:
            # A second answer in the read that ended the first: nobody asked for it, so the
            # connection's framing cannot be trusted (the next call would read its rest).
            # Parsed on into fresh lists, away from the answer already given.
            self._headers, self._body = [], []
            self.close()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # trailer fields count too
        if self._header_bytes > MAX_HEADER_BYTES:
            self._fail(_head_too_long())
            return
        if self._headers_done:
            return  # a chunked body's trailer field: not a header (RFC 9110 §6.5.1)
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "replace")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # informational: the real answer follows (on_message_complete resets)
        self._status = status
        self._headers_done = True
        self._framed = _framed(self._headers)
        if self._head_only:
            # A HEAD answer has no body whatever Content-Length says; the parser does not
            # know the method, so this connection is not reused.
            self._finish()
            self.close()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._max_body is not None and self._body_bytes > self._max_body:
            self._fail(_too_large(self._max_body))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._headers_done:  # the end of a 1xx answer
            self._headers = []
            return
        # Only known while the parser is at the end of a message (llhttp_should_keep_alive).
        # An answer that came while the request was still going out (an upstream refusing a
        # body it will not read): the rest of the body would be read as the next request.
        assert self.transport is not None
        self._keep_alive = self.parser.should_keep_alive() and \
            not self.transport.get_write_buffer_size()
        self._answered = True
        self._finish()

    # --- requests -------------------------------------------------------------------------

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            body = _decoded(b"".join(self._body), self._headers, self._max_body)
        except CallFailed as exc:
            self._fail(exc)
            return
        waiter.set_result(Answer(self._status, self._headers, body))

    def _fail(self, exc: CallFailed) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def unanswered(self) -> bool:
        """Whether the upstream closed the connection without sending a byte of an answer
        (our own close does not count)."""
        return self._peer_closed and not self._got_bytes

    def reusable(self) -> bool:
        return not self.closed and self._keep_alive

    async def exchange(self, data: bytes, *, head_only: bool, max_body: int | None) -> Answer:
        assert self.transport is not None
        self._reset()
        self._head_only = head_only
        self._max_body = max_body
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(data)
            return await self._waiter
        except BaseException:
            self.close()  # cancelled or timed out mid-answer: what follows cannot be parsed
            raise
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = self._closed_here = True
        if self.transport is not None:
            self.transport.close()


def _framed(headers: list[tuple[str, str]]) -> bool:
    """Whether the body's end is in the message (RFC 9112 §6.3): chunked as the last transfer
    coding, or a Content-Length without a Transfer-Encoding; otherwise the connection's end
    ends it — as llhttp reads it."""
    coding = length = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == "transfer-encoding":
            coding = value
        elif lowered == "content-length":
            length = value
    if coding is not None:
        return coding.rsplit(",", 1)[-1].strip().lower() == "chunked"
    return length is not None


def _decoded(body: bytes, headers: list[tuple[str, str]], max_body: int | None) -> bytes:
    encoding = next((v.strip().lower() for k, v in headers if k.lower() == "content-encoding"),
                    "identity")
    if encoding not in ("gzip", "x-gzip", "deflate") or not body:
        return body
    # 47: zlib or gzip, told apart by their header; raw deflate (what some servers send as
    # "deflate") needs -15. Decoded up to the limit and no further: a small body can unpack
    # to gigabytes.
    why = ""
    for wbits in (47, -15) if encoding == "deflate" else (47,):
        try:
            return _inflate(body, wbits, max_body, members=encoding != "deflate")
        except zlib.error as exc:
            why = str(exc)
    raise CallFailed("protocol", f"the response body could not be decoded ({encoding}): {why}")


def _inflate(data: bytes, wbits: int, max_body: int | None, *, members: bool) -> bytes:
    """`data` decompressed; gzip may hold several members one after the other (RFC 1952
    §2.2), which `gzip.decompress` joins too. Raises `zlib.error`, or `CallFailed` over the
    limit."""
    parts: list[bytes] = []
    size = 0
    while True:
        unpack = zlib.decompressobj(wbits)
        part = unpack.decompress(data, 0 if max_body is None else max_body - size + 1)
        size += len(part)
        if max_body is not None and size > max_body:
            raise _too_large(max_body)
        if not unpack.eof:
            raise zlib.error("the compressed stream is cut short")
        parts.append(part)
        data = unpack.unused_data
        if not data.strip(b"\0"):  # gzip(1) allows zeros as padding after the last member
            return b"".join(parts)
        if not members:
            raise zlib.error("bytes after the end of the compressed stream")


def _shown(data: bytes) -> str:
    """The first line of what answered, quoted as text when it is text (`'SSH-2.0-…'`)."""
    line = data[:40].split(b"\n", 1)[0].rstrip(b"\r")
    if line.isascii() and line.decode().isprintable():
        return f"'{line.decode()}'"
    return f"with bytes {data[:16].hex(' ')}"


def _head_too_long() -> CallFailed:
    return CallFailed("protocol", f"malformed response: headers over {MAX_HEADER_BYTES // 1024} "
                                  "KiB")


def _too_large(max_body: int) -> CallFailed:
    return CallFailed("protocol", f"the response body is over {_size(max_body)} "
                                  "(the connector's max_response)")


def _size(n: int) -> str:
    """`16777216` → `16MB`, as sizes are written in the project files."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections shared by every connector of a process.

    No limit of its own: each connector caps its calls in flight (`concurrency`), so a host
    has at most that many connections. `ssl_context` replaces the default one (the system's
    CA store, host names checked) — for tests with a private CA.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        self._ssl = ssl_context
        self._keepalive_s = keepalive_s
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None

    async def request(self, method: str, url: URL, headers: Mapping[str, str],
                      body: bytes | None, *, timeout: float,  # noqa: ASYNC109 (per call)
                      max_body: int | None = None) -> Answer:
        """Send one request and read its whole answer (a body over `max_body` bytes, once
        decoded, fails it). Raises `CallFailed`, and `ValueError` for a header that cannot
        be sent (`check_header`)."""
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise CallFailed("connect", f"cannot call {url.scheme or '?'}: URLs over HTTP")
        if self._closed:
            raise CallFailed("network", "not sent: the connection pool is closed")
        port = url.port if url.port is not None else 443 if url.scheme == "https" else 80
        key = (url.scheme, url.raw_host, port)
        data, keep = _request_bytes(method, url, headers, body)
        head_only = method == "HEAD"
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = self._take(key)
                if conn is not None:
                    try:
                        answer = await conn.exchange(data, head_only=head_only,
                                                     max_body=max_body)
                    except CallFailed:
                        self._open.discard(conn)
                        # An idle connection the server closed as this request crossed its
                        # close: not one byte came back, so it was not answered. Sent once
                        # more on a new connection, if sending it twice is safe — as Go's
                        # net/http does (Request.isReplayable).
                        if not conn.unanswered() or not _replayable(method, headers):
                            raise
                        conn = None
                if conn is None:
                    conn = await self._connect(key)
                    answer = await conn.exchange(data, head_only=head_only, max_body=max_body)
        except BaseException as exc:
            if conn is not None:
                self._open.discard(conn)  # exchange() closed it
            if isinstance(exc, TimeoutError):
                raise CallFailed("timeout", f"timed out after {format_seconds(timeout)}"
                                 ) from None
            raise
        # A body on a GET or DELETE may be left unread by the upstream, which would then take
        # it for the start of the connection's next request.
        if conn.reusable() and keep and not self._closed and (
                not body or method in _BODY_METHODS):
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(
                    self._keepalive_s, self._close_expired)
        else:
            conn.close()
            self._open.discard(conn)
        return answer

    def _close_expired(self) -> None:
        """Close the connections idle for `keepalive_s`; come back when the next one is due
        (a host called once is not kept open for ever)."""
        self._sweep = None
        now = time.monotonic()
        due: float | None = None
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if conn.closed or now - conn.idle_since >= self._keepalive_s:
                    conn.close()
                    self._open.discard(conn)
                else:
                    kept.append(conn)
                    expires = conn.idle_since + self._keepalive_s
                    due = expires if due is None else min(due, expires)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if due is not None and not self._closed:
            self._sweep = asyncio.get_running_loop().call_later(max(due - now, 0.01),
                                                               self._close_expired)

    def _forget(self, conn: _Connection) -> None:
        """A connection ended (closed by either side): out of the pool."""
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle is not None and conn in idle:
            idle.remove(conn)

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recent: the least likely to have been closed
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.close()
            self._open.discard(conn)
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(key, self._forget), host, port, ssl=context,
                server_hostname=host if context is not None else None)
        except OSError as exc:
            raise _connect_failed(exc, host, port) from None
        except UnicodeError:  # an empty or over-long label: the IDNA codec refuses it
            raise CallFailed("dns", f"cannot resolve host {host}: not a valid host name"
                             ) from None
        if self._closed:  # closed while this connection was being opened
            conn.close()
            raise CallFailed("network", "not sent: the connection pool is closed")
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        """Close every connection (idle or not); later answers are not kept."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run


def _connect_failed(exc: OSError, host: str, port: int) -> CallFailed:
    if isinstance(exc, socket.gaierror):
        return CallFailed("dns", f"cannot resolve host {host}")
    where = f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return CallFailed("connect", f"connection refused ({where})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CallFailed("tls", f"cannot connect to {where}: TLS: certificate verify "
                                 f"failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        # WRONG_VERSION_NUMBER: what answered does not speak TLS (a plain-HTTP port); both
        # fail the same way again, unlike a handshake cut short.
        if exc.reason == "WRONG_VERSION_NUMBER":
            return CallFailed("tls", f"cannot connect to {where}: TLS: what answered does not "
                                     "speak TLS (WRONG_VERSION_NUMBER): is it an http:// port?")
        return CallFailed("connect", f"cannot connect to {where}: TLS: {exc.reason or exc}")
    return CallFailed("connect", f"cannot connect to {where}: "
                                 f"{exc.strerror or str(exc) or type(exc).__name__}")


def _replayable(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request may reach the upstream twice: an idempotent method, or a key the
    upstream deduplicates by (every connector step sends one)."""
    return method in _IDEMPOTENT_METHODS or any(
        name.lower() in ("idempotency-key", "x-idempotency-key") for name in headers)


def _request_bytes(method: str, url: URL, headers: Mapping[str, str],
                   body: bytes | None) -> tuple[bytes, bool]:
    """The request's bytes, and whether its connection may be kept (the caller did not say
    `Connection: close`)."""
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1",
             f"Host: {url.host_port_subcomponent}"]
    named: set[str] = set()
    keep = True
    for name, value in headers.items():
        check_header(name, value)
        lowered = name.lower()
        if lowered in _FRAMING:
            # The body's framing is ours to say: a second, different one would let the
            # upstream read another request out of this one's body.
            continue
        if lowered == "host":
            lines[1] = f"Host: {value}"
            continue
        if lowered == "connection" and "close" in value.lower():
            keep = False
        named.add(lowered)
        lines.append(f"{name}: {value}")
    if "user-agent" not in named:
        lines.append(f"User-Agent: {_USER_AGENT}")
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return (head + body if body else head), keep

