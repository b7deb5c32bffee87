"""A stand-in warehouse API for the shop example: logins, orders, and the trouble real APIs make.

    python examples/shop/warehouse.py --port 9000 [--seed N] [--session-orders 6]

- `POST /login` with JSON `{"user", "password"}` (checked against `WH_USER` / `WH_PASSWORD`)
  answers `{"token": "..."}`, or 401.
- `POST /orders` needs `Authorization: Session <token>`. An unknown token gets 401. A session
  lasts `--session-orders` orders; the request after that gets **200 with the body
  `Invalid session`** (the way some APIs really do it) and so does every later one using that
  token, so the client has to log in again.
- It fails now and then: about 20 % of order requests answer 503, about 8 % answer 429 with
  `Retry-After: 1`, and about 5 % store the order but answer 503 anyway (the answer is "lost").
  Never more than two failures in a row for the same order, so a client that retries 4 times
  always gets through.
- `Idempotency-Key` is honoured: a key seen before answers the stored order again
  (`Idempotent-Replayed: true`) instead of creating a duplicate.
- Success is `201 {"id", "ref": "WH-…", "status": "accepted", "order_id", "order"}`.
- `GET /orders/{id}` (with a session) answers a stored order; `GET /stats` counts what happened.

Which request fails is decided by `--seed`, the order's own `id` (or its idempotency key) and how
many times that order was sent, not by arrival order, so a run with the same seed and the same
orders meets the same failures however the requests interleave. One line is printed per request.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: chance, per order request, of each injected failure (checked in this order)
FAILURES = (("503", 0.20), ("429", 0.08), ("lost_answer", 0.05))
#: an order never fails more often than this in a row
MAX_FAILURES_IN_A_ROW = 2


@dataclass
class Session:
    """A logged-in session: how many orders it created, and whether it has expired."""

    token: str
    orders: int = 0
    expired: bool = False


@dataclass
class Warehouse:
    """The warehouse's state and its HTTP handlers."""

    user: str
    password: str
    seed: int = 0
    session_orders: int = 6
    sessions: dict[str, Session] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Idempotency-Key → the stored order's id
    by_key: dict[str, int] = field(default_factory=dict)
    #: per order (its id or key): requests that reached the order logic, failures in a row
    sent: Counter[str] = field(default_factory=Counter)
    failing_streak: Counter[str] = field(default_factory=Counter)
    created_per_order: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def app(self) -> web.Application:
        """The aiohttp application serving this warehouse."""
        app = web.Application(middlewares=[self._log])
        app.router.add_post("/login", self.login)
        app.router.add_post("/orders", self.create_order)
        app.router.add_get("/orders/{id}", self.get_order)
        app.router.add_get("/stats", self.get_stats)
        return app

    # --- handlers ---------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        """Check the credentials and open a session."""
        body = await _json(request)
        if not isinstance(body, dict) or (body.get("user"), body.get("password")) != (
                self.user, self.password):
            self.stats["failed_logins"] += 1
            return _note(web.json_response({"error": "bad credentials"}, status=401),
                         "bad credentials")
        self.stats["logins"] += 1
        token = secrets.token_urlsafe(16)
        self.sessions[token] = Session(token)
        return _note(web.json_response({"token": token}), f"session #{self.stats['logins']}")

    async def create_order(self, request: web.Request) -> web.Response:
        """Store an order once per idempotency key, failing now and then on purpose."""
        body = await _json(request)
        session = self._session(request)
        if session is None:
            return _note(web.json_response({"error": "not logged in"}, status=401),
                         "no valid session")
        if session.expired or session.orders >= self.session_orders:
            if not session.expired:
                session.expired = True
                self.stats["sessions_expired"] += 1
            # Some APIs really answer 200 with an error text: only a response script catches it.
            return _note(web.Response(text="Invalid session", status=200), "session expired")
        key = request.headers.get("Idempotency-Key")
        order_id = str(body["id"]) if isinstance(body, dict) and "id" in body else None
        who = order_id or key or secrets.token_hex(4)
        self.sent[who] += 1
        failure = self._failure(who)
        if failure in ("503", "429"):
            self.injected[failure] += 1
            headers = {"Retry-After": "1"} if failure == "429" else {}
            status = int(failure)
            answer = {"error": "busy, try again" if status == 503 else "too many requests"}
            return _note(web.json_response(answer, status=status, headers=headers),
                         f"{who}: injected failure")
        if key is not None and key in self.by_key:
            self.stats["replays"] += 1
            stored = self.orders[self.by_key[key]]
            return _note(web.json_response(stored, status=201,
                                           headers={"Idempotent-Replayed": "true"}),
                         f"{who}: {stored['ref']} again (same Idempotency-Key, not duplicated)")
        number = len(self.orders) + 1
        stored = {"id": number, "ref": f"WH-{number:06d}", "status": "accepted",
                  "order_id": order_id, "order": body}
        self.orders[number] = stored
        if key is not None:
            self.by_key[key] = number
        session.orders += 1
        self.stats["orders_created"] += 1
        self.created_per_order[who] += 1
        if failure == "lost_answer":
            self.injected["lost_answer"] += 1
            return _note(web.json_response({"error": "gateway timeout"}, status=503),
                         f"{who}: stored as {stored['ref']} but the answer is lost (injected)")
        return _note(web.json_response(stored, status=201), f"{who}: created {stored['ref']}")

    async def get_order(self, request: web.Request) -> web.Response:
        """A stored order by its warehouse id."""
        if self._session(request) is None:
            return _note(web.json_response({"error": "not logged in"}, status=401),
                         "no valid session")
        try:
            stored = self.orders.get(int(request.match_info["id"]))
        except ValueError:
            stored = None
        if stored is None:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(stored)

    async def get_stats(self, request: web.Request) -> web.Response:
        """What has happened so far: orders created (per order id), logins, failures injected."""
        return web.json_response({
            "orders_created": self.stats["orders_created"],
            "created_per_order": dict(self.created_per_order),
            "logins": self.stats["logins"],
            "failed_logins": self.stats["failed_logins"],
            "sessions_expired": self.stats["sessions_expired"],
            "replays": self.stats["replays"],
            "failures_injected": {name: self.injected[name] for name, _ in FAILURES},
            "requests": self.stats["requests"],
        })

    # --- helpers ----------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.sessions.get(token.strip()) if scheme == "Session" else None

    def _failure(self, who: str) -> str | None:
        """The failure to inject into this request for order `who`, or None."""
        if self.failing_streak[who] >= MAX_FAILURES_IN_A_ROW:
            self.failing_streak[who] = 0
            return None
        # A string seed is hashed with SHA-512: the same in every process and Python run.
        roll = random.Random(f"{self.seed}:{who}:{self.sent[who]}").random()
        threshold = 0.0
        for name, chance in FAILURES:
            threshold += chance
            if roll < threshold:
                self.failing_streak[who] += 1
                return name
        self.failing_streak[who] = 0
        return None

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.stats["requests"] += 1
        response: web.StreamResponse = await handler(request)
        note = getattr(response, "note", "")
        print(f"[warehouse] {request.method} {request.path} → {response.status}"
              + (f"  {note}" if note else ""), flush=True)
        return response


def _note(response: web.Response, note: str) -> web.Response:
    """Attach the text the request log line shows after the status."""
    response.note = note  # type: ignore[attr-defined]
    return response


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--seed", type=int, default=0, help="decides which requests fail")
    parser.add_argument("--session-orders", type=int, default=6,
                        help="orders a session may create before it expires")
    args = parser.parse_args(argv)
    user, password = os.environ.get("WH_USER"), os.environ.get("WH_PASSWORD")
    if not user or not password:
        sys.exit("warehouse: set WH_USER and WH_PASSWORD (see examples/shop/.env)")
    warehouse = Warehouse(user, password, seed=args.seed, session_orders=args.session_orders)
    print(f"[warehouse] listening on http://{args.host}:{args.port} (seed {args.seed}, "
          f"sessions last {args.session_orders} orders)", flush=True)
    web.run_app(warehouse.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
