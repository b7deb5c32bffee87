"""A counting order API for `bench/chaos.py` and `bench/soak.py`, run as its own process.

    .venv/bin/python bench/_counting_upstream.py [--seed 1] [--session-orders 6]
        [--session-ttl 5] [--p503 0.15] [--p429 0.1] [--max-failures 2]
        [--p-slow 0] [--slow 3]

It prints `listening on PORT` once it serves on 127.0.0.1 and runs until killed.

- `POST /login` answers `{"token": …}`. A token expires after `--session-orders` orders or
  `--session-ttl` seconds, whichever comes first.
- `POST /orders` (`Authorization: Session <token>`, `Idempotency-Key`, a JSON order with an
  `id`) answers 401 for an unknown or expired token. To keep every order deliverable within a
  retry policy's attempts, a key refused once is not refused again with a *newer* token than
  the one refused (so only a client that really logged in again gets through). Then a key
  seen before gets its stored answer again (`Idempotent-Replayed: true`) without creating
  anything. Otherwise the request fails now and then — 503, or 429 with `Retry-After: 1`,
  decided by `--seed`, the key and how many requests that key has made, at most
  `--max-failures` times per key — or creates the order: `201 {"id": "WH-n", "order_id": …}`.
- A key's first request is slow now and then (`--p-slow`, decided by `--seed` and the key):
  it is answered `--slow` seconds after it arrived (longer than a worker's lease, so a worker
  that stopped renewing its leases meanwhile would see the call taken over).
- A **duplicate** is one order id created under two different keys. An **overlap** is a
  request arriving while another with the same key is still being answered to a client that
  is still connected: two engines running the same step at once (a lease not held). A request
  whose client was killed does not count: its connection is closed.
- `GET /_stats` counts what happened (and, with `?detail=1`, lists which keys created each
  order and how many requests each key made).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Token:
    """A session token: when it was issued (its serial orders tokens) and how much it did."""

    serial: int
    issued: float
    orders: int = 0


@dataclass
class CountingUpstream:
    """The API's state and its handlers."""

    seed: int = 1
    session_orders: int = 6
    session_ttl: float = 5.0
    p503: float = 0.15
    p429: float = 0.10
    max_failures: int = 2
    p_slow: float = 0.0
    slow: float = 3.0
    tokens: dict[str, Token] = field(default_factory=dict)
    serial: int = 0
    #: Idempotency-Key → requests to /orders with it (401s included)
    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    #: Idempotency-Key → the serial of the token it was last refused with (0: unknown token)
    refused_at: dict[str, int] = field(default_factory=dict)
    #: Idempotency-Key → the stored answer
    answers: dict[str, bytes] = field(default_factory=dict)
    #: order id → the keys it was created under (more than one: a duplicate)
    created: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    #: Idempotency-Key → the requests with it being answered now
    in_flight: dict[str, list[web.Request]] = field(default_factory=dict)
    #: Idempotency-Key → how many of its requests overlapped another (see the docstring)
    overlaps: Counter[str] = field(default_factory=Counter)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_post("/login", self.login)
        app.router.add_post("/orders", self.create_order)
        app.router.add_get("/_stats", self.stats)
        return app

    async def login(self, request: web.Request) -> web.Response:
        """Issue a fresh session token."""
        await request.read()
        self.serial += 1
        self.counts["logins"] += 1
        token = f"t{self.serial}-{secrets.token_hex(8)}"
        self.tokens[token] = Token(self.serial, time.monotonic())
        return web.json_response({"token": token})

    async def create_order(self, request: web.Request) -> web.Response:
        """Refuse, fail, replay or create, in that order."""
        raw = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        self.counts["requests"] += 1
        if not key:
            self.counts["no_key"] += 1
            return web.json_response({"error": "Idempotency-Key required"}, status=400)
        self.requests[key] += 1
        others = self.in_flight.setdefault(key, [])
        if any(_connected(other) for other in others):
            self.overlaps[key] += 1
            self.counts["overlapping"] += 1
        others.append(request)
        try:
            if self.requests[key] == 1 and self._draw(key, "slow") < self.p_slow:
                self.counts["slow"] += 1
                await asyncio.sleep(self.slow)
            return self._answer(request, key, raw)
        finally:
            others.remove(request)
            if not others:
                del self.in_flight[key]

    def _answer(self, request: web.Request, key: str, raw: bytes) -> web.Response:
        token, usable = self._token(request, key)
        if not usable:
            self.counts["refused_401"] += 1
            self.refused_at[key] = token.serial if token else 0
            return web.json_response({"error": "session expired"}, status=401)
        assert token is not None
        token.orders += 1
        if key in self.answers:
            self.counts["replayed"] += 1
            return web.Response(status=201, body=self.answers[key], content_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
        failure = self._failure(key)
        if failure is not None:
            return failure
        return self._create(key, raw)

    def _token(self, request: web.Request, key: str) -> tuple[Token | None, bool]:
        """The request's token (None: unknown) and whether it may be used."""
        words = request.headers.get("Authorization", "").split()
        token = self.tokens.get(words[-1]) if words else None
        if token is None:
            return None, False
        if key in self.refused_at and token.serial > self.refused_at[key]:
            return token, True  # a newer token than the one refused: the client logged in again
        fresh = (token.orders < self.session_orders
                 and time.monotonic() - token.issued < self.session_ttl)
        return token, fresh

    def _failure(self, key: str) -> web.Response | None:
        if self.failures[key] >= self.max_failures:
            return None
        draw = self._draw(key, str(self.requests[key]))
        if draw < self.p503:
            status, headers = 503, {}
        elif draw < self.p503 + self.p429:
            status, headers = 429, {"Retry-After": "1"}
        else:
            return None
        self.failures[key] += 1
        self.counts[f"injected_{status}"] += 1
        return web.json_response({"error": "try again"}, status=status, headers=headers)

    def _draw(self, key: str, what: str) -> float:
        return random.Random(f"{self.seed}:{key}:{what}").random()

    def _create(self, key: str, raw: bytes) -> web.Response:
        try:
            order = orjson.loads(raw)
            order_id = str(order["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.counts["bad_body"] += 1
            return web.json_response({"error": "an order needs an id"}, status=400)
        keys = self.created.setdefault(order_id, [])
        keys.append(key)
        self.counts["created"] += 1
        if len(keys) > 1:
            self.counts["duplicates"] += 1
        answer = orjson.dumps({"id": f"WH-{self.counts['created']}", "order_id": order_id,
                               "status": "accepted"})
        self.answers[key] = answer
        return web.Response(status=201, body=answer, content_type="application/json")

    async def stats(self, request: web.Request) -> web.Response:
        """Counts; with `?detail=1` also the keys per order and the requests per key."""
        per_key = self.requests.values()
        body: dict[str, Any] = {
            **self.counts,
            "orders": len(self.created),
            "duplicated_orders": sum(1 for keys in self.created.values() if len(keys) > 1),
            "keys": len(self.requests),
            "max_requests_per_key": max(per_key, default=0),
            "live_tokens": len(self.tokens),
        }
        if request.query.get("detail"):
            body["keys_per_order"] = self.created
            body["requests_per_key"] = self.requests
            body["overlaps_per_key"] = self.overlaps
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def forget_stale_tokens(self) -> None:
        """Drop tokens long past their lifetime, so a long soak does not grow this process."""
        limit = time.monotonic() - 10 * self.session_ttl
        self.tokens = {t: tok for t, tok in self.tokens.items() if tok.issued > limit}


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def serve(upstream: CountingUpstream, port: int) -> None:
    """Serve on 127.0.0.1:`port` (0: any free port), print the port, run until killed."""
    runner = web.AppRunner(upstream.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    while True:
        await asyncio.sleep(upstream.session_ttl)
        upstream.forget_stale_tokens()


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--session-orders", type=int, default=6)
    parser.add_argument("--session-ttl", type=float, default=5.0)
    parser.add_argument("--p503", type=float, default=0.15)
    parser.add_argument("--p429", type=float, default=0.10)
    parser.add_argument("--max-failures", type=int, default=2)
    parser.add_argument("--p-slow", type=float, default=0.0)
    parser.add_argument("--slow", type=float, default=3.0)
    args = parser.parse_args()
    upstream = CountingUpstream(args.seed, args.session_orders, args.session_ttl, args.p503,
                                args.p429, args.max_failures, args.p_slow, args.slow)
    try:
        asyncio.run(serve(upstream, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
