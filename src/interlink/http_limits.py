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
Headers are counted per read, not per line (a callback per header costs every request): an
incomplete header section is refused once the bytes read since its request began pass the
cap, so a read that also holds the end of the previous request (pipelining) counts in full;
a complete one is counted exactly, and only when its reads add up to more than the cap.
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

    url = b""  # uvicorn sets it when a request begins; blank lines may come before
    _reading = "headers"  # "headers", "body" or "" (between requests)
    _timer: asyncio.TimerHandle | None = None
    _received = 0  # bytes received while reading this request's headers (an upper bound)
    _chunk = 0  # size of the chunk being parsed
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
        self._chunk = len(data)
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
        reading = self._reading
        if reading == "headers":
            self._received += len(data)
            limits = self.limits
            # `headers` is None until a request began (blank lines may come first).
            if self._received > limits.max_header_bytes or (
                    self.headers is not None and len(self.headers) > limits.max_headers):
                self._refuse(*self._too_large())
            elif self._timer is None:
                self._arm(limits.header_timeout)
        elif self._timer is None and (reading == "body" or self._idle()):
            # Between requests only blank lines were read: they start the header clock
            # (uvicorn's idle clock stopped at the first byte).
            self._arm(self.limits.body_timeout if reading == "body" else
                      self.limits.header_timeout)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _too_large(self) -> tuple[int, str]:
        if len(self.url) > self.limits.max_header_bytes:
            return 414, "the request URL is too long"
        if self.headers is not None and len(self.headers) > self.limits.max_headers:
            return 431, "the request has too many headers"
        return 431, "the request headers are too large"

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing to warn about: an `Upgrade` we do not speak is answered as plain HTTP."""

    def send_400_response(self, msg: str) -> None:
        """A malformed request: 400 with the engine's error body, and close."""
        self._refuse(400, "the request is not valid HTTP")

    # Parser callbacks
    def on_message_begin(self) -> None:
        """A request starts: count its header bytes from zero."""
        super().on_message_begin()
        self._reading = "headers"
        # The chunk being parsed may hold the end of the previous request too: counting it
        # whole makes `_received` an upper bound, exact counts are taken when it matters.
        self._received = 0

    def on_headers_complete(self) -> None:
        """The headers are in: stop their clock; the body's starts if it is not all here."""
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._stop(*self._too_large())
        # Only a request whose reads add up to more than the cap is counted exactly.
        if self._received + self._chunk > limits.max_header_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > limits.max_header_bytes:
                self._stop(*self._too_large())
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
