"""Limits on what a connection may send before the app sees a request (`server.limits`).

uvicorn's httptools protocol accepts headers of any size and count and waits for them, and
for a body, as long as the client likes; one process then holds thousands of slow
connections ("slowloris"). `limited_protocol(limits)` is that protocol with caps:

| cap | when | answer |
|---|---|---|
| `max_connections` | a connection opens while that many are open | 503, closed |
| `header_timeout` | the request line and headers are not complete in time | 408, closed |
| `max_header_bytes` | request line and headers grow past it | 431 (414 in the URL), closed |
| `max_headers` | more header lines | 431, closed |
| `body_timeout` | the body is not complete in time after the headers | 408, closed |
| (none) | a request asking to switch protocols (`Upgrade`) carries a body | 400, closed |

The timers are armed only when a request is still incomplete at the end of the bytes received
so far (and once when a connection opens): a request that arrives in one piece costs no timer.
A header section split across reads is counted per completed line, plus the incomplete rest,
so one huge header line is stopped at most one read (256 KB) past the cap.
A refusal's body is the engine's error body, `{"error": {"phase": "http", "message": …}}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from interlink.services.responses import error_body
from interlink.spec.project import ServerLimits

__all__ = ["LimitedHttpProtocol", "limited_protocol"]

log = logging.getLogger("interlink.http")


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the caps of `limits` (a subclass sets them)."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    _reading = "headers"  # "headers", "body" or "" (between requests)
    _timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _header_lines = 0
    _progress = False  # a parser callback ran during the current `data_received`
    _unparsed = 0  # bytes received since the last callback, while reading headers
    _refusal: tuple[int, str] | None = None  # set by a callback before it stops the parser

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection over `max_connections`, else start the header clock."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too many open connections")
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock; uvicorn does the rest."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse `data`; refuse what exceeds a cap; arm a clock when a request is incomplete."""
        self._unset_keepalive_if_required()
        self._progress = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            # A callback that found a cap exceeded stopped the parser (raised); else the
            # request is malformed (a non-ASCII path is one too).
            self._refuse(*(self._refusal or (400, "the request is not valid HTTP")))
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                return
            # Not a websocket we serve: the request goes on as plain HTTP.
        if self._reading == "headers":
            self._unparsed = 0 if self._progress else self._unparsed + len(data)
            if self._header_bytes + self._unparsed > self.limits.max_header_bytes:
                self._refuse(431, "the request headers are too large")
            elif self._timer is None:
                self._arm(self.limits.header_timeout)
        elif self._reading == "body" and self._timer is None:
            self._arm(self.limits.body_timeout)

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing to warn about: an `Upgrade` we do not speak is answered as plain HTTP."""

    def send_400_response(self, msg: str) -> None:
        """A malformed request: 400 with the engine's error body, and close."""
        self._refuse(400, "the request is not valid HTTP")

    # Parser callbacks
    def on_message_begin(self) -> None:
        """A request starts: count its headers from zero."""
        super().on_message_begin()
        self._reading = "headers"
        self._header_bytes = self._header_lines = self._unparsed = 0
        self._progress = True

    def on_url(self, url: bytes) -> None:
        """Count the URL against `max_header_bytes`."""
        self._progress = True
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            self._stop(414, "the request URL is too long")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header against `max_header_bytes` and `max_headers`."""
        self._progress = True
        self._header_bytes += len(name) + len(value) + 4
        self._header_lines += 1
        if self._header_lines > self.limits.max_headers:
            self._stop(431, "the request has too many headers")
        if self._header_bytes > self.limits.max_header_bytes:
            self._stop(431, "the request headers are too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The headers are in: stop their clock; the body's starts if it is not all here."""
        if self.parser.should_upgrade() and not self._should_upgrade() and self._has_body():
            # httptools skips the body of any request asking to switch protocols: served as
            # plain HTTP, it would reach the app as an empty body (and start a run with none).
            self._stop(400, "a request asking to switch protocols cannot carry a body here")
        self._disarm()
        self._reading = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The body is in: stop its clock."""
        self._disarm()
        self._reading = ""
        super().on_message_complete()

    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length"
                                                and value.strip() not in (b"", b"0")):
                return True
        return False

    # Clocks and refusals
    def _stop(self, status: int, message: str) -> None:
        """From a parser callback: stop parsing (the parser turns the raise into an error)."""
        self._refusal = (status, message)
        raise RuntimeError(message)

    def _arm(self, seconds: float) -> None:
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        what = "body" if self._reading == "body" else "headers"
        self._refuse(408, f"the request {what} did not arrive in time")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` unless the app's answer is under way, and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if answering and not cycle.response_started:
            # The app waits for the rest of the body: it sees a disconnect instead (so it
            # never acts on a partial body), and whatever it answers then is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if not answering or not cycle.response_started:
            body = error_body("http", message)
            self.transport.write(b"".join([
                STATUS_LINE[status],
                b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
                b"server: interlink\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
                body,
            ]))
        log.info("refused a request from %s: %s %s", _peer(self.client), status, message)
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown peer"


def limited_protocol(limits: ServerLimits) -> type[LimitedHttpProtocol]:
    """The protocol class uvicorn should run (`uvicorn.Config(http=…)`) to apply `limits`."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})
