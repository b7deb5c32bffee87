"""A programmable HTTP server on loopback that plays "the other system" in tests.

```python
async with Upstream() as up:
    up.route("/orders", statuses=[503, 200], retry_after="1")   # per request id
    up.route("/slow", delay=2.0)
    up.route("/page", bodies=[{"error": "Invalid session"}, {"ok": True}])
    up.route("/private", requires_login=True)                   # 401 until logged in
    ... call up.url + "/orders" ...
    assert up.requests_to("/orders")[0].headers["Idempotency-Key"] == "k1"
    assert up.login_calls == 1 and up.max_in_flight <= 5
```

Every request is recorded (`requests`: method, path, query, headers, body, arrival time).
A path without a route answers 200 with an echo of the request as JSON.

- `POST /login` counts `login_calls` and answers `{"token": "session-N"}` (status
  `login_status`, after `login_delay`), checking the JSON body against `login_expect` if set.
- `POST /oauth/token` counts `token_calls`, checks the client-credentials form (against
  `client_id`/`client_secret` if set) and answers `{"access_token": "oauth-N", "token_type":
  "bearer", "expires_in": token_ttl}` (no `expires_in` when `token_ttl` is None).
- A route with `requires_login` answers 401 unless the `Authorization` header's last word is a
  token issued by one of those endpoints and not yet expired or revoked (`revoke_tokens()`).
- The n-th request with the same request id (`X-Request-Id`, else `Idempotency-Key`, else none)
  to a route gets `statuses[n]` (the last one repeats).
- A route with `answer` (a function of the recorded request returning `(status, body,
  headers)`) answers whatever it returns: pages by query parameter, `Link` headers, …
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["RecordedRequest", "Route", "Upstream"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the upstream received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    #: `time.monotonic()` when the request arrived
    at: float
    request_id: str | None

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


@dataclass
class Route:
    """How one path answers."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    #: dict/list → JSON, str → text, None → an echo of the request as JSON
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: `Retry-After` value sent with every non-2xx answer
    retry_after: str | None = None
    requires_login: bool = False
    #: per-attempt bodies (like `statuses`; the last repeats); overrides `body`
    bodies: list[Any] | None = None
    #: computes the answer from the request: (status, body, headers); overrides the rest
    answer: Callable[[RecordedRequest], tuple[int, Any, dict[str, str]]] | None = None


class Upstream:
    """The server: `async with Upstream() as up:` starts it on 127.0.0.1 at a free port."""

    def __init__(
        self,
        *,
        token_ttl: float | None = 3600,
        client_id: str | None = None,
        client_secret: str | None = None,
        login_status: int = 200,
        login_delay: float = 0.0,
        login_expect: Any = None,
    ) -> None:
        self.token_ttl = token_ttl
        self.client_id = client_id
        self.client_secret = client_secret
        self.login_status = login_status
        self.login_delay = login_delay
        self.login_expect = login_expect
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.login_calls = 0
        self.token_calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        #: valid tokens → monotonic expiry (None: never)
        self.tokens: dict[str, float | None] = {}
        self._counts: dict[tuple[str, str | None], int] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- programming ---------------------------------------------------------------------

    def route(
        self,
        path: str,
        *,
        statuses: list[int] | None = None,
        delay: float = 0.0,
        body: Any = None,
        headers: dict[str, str] | None = None,
        retry_after: str | None = None,
        requires_login: bool = False,
        bodies: list[Any] | None = None,
        answer: Callable[[RecordedRequest], tuple[int, Any, dict[str, str]]] | None = None,
    ) -> Route:
        """Program how `path` answers (replacing any earlier program)."""
        route = Route(
            statuses or [200], delay, body, headers or {}, retry_after, requires_login, bodies,
            answer,
        )
        self.routes[path] = route
        self._counts = {k: v for k, v in self._counts.items() if k[0] != path}
        return route

    def revoke_tokens(self) -> None:
        """Forget every issued token: routes that require login answer 401 again."""
        self.tokens.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests received for `path`, in arrival order."""
        return [r for r in self.requests if r.path == path]

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Upstream:
        """Listen on 127.0.0.1 at a free port; sets `url`."""
        app = web.Application()
        app.router.add_post("/login", self._login)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Upstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- handlers --------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.text()
        headers = dict(request.headers)
        request_id = request.headers.get("X-Request-Id") or request.headers.get("Idempotency-Key")
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), headers, body,
            time.monotonic(), request_id,
        )
        self.requests.append(recorded)
        return recorded

    def _issue(self, prefix: str, n: int) -> str:
        token = f"{prefix}-{n}"
        expiry = None if self.token_ttl is None else time.monotonic() + self.token_ttl
        self.tokens[token] = expiry
        return token

    def _logged_in(self, headers: dict[str, str]) -> bool:
        words = headers.get("Authorization", "").split()
        if not words or words[-1] not in self.tokens:
            return False
        expiry = self.tokens[words[-1]]
        return expiry is None or expiry > time.monotonic()

    async def _login(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        self.login_calls += 1
        if self.login_delay:
            await asyncio.sleep(self.login_delay)
        if self.login_status != 200:
            return web.json_response({"error": "login refused"}, status=self.login_status)
        if self.login_expect is not None and _json_or_none(recorded.body) != self.login_expect:
            return web.json_response({"error": "bad credentials"}, status=401)
        token = self._issue("session", self.login_calls)
        return web.json_response({"token": token}, headers={"X-Session-Token": token})

    async def _token(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.token_calls += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if (self.client_id is not None and form.get("client_id") != self.client_id) or (
            self.client_secret is not None and form.get("client_secret") != self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        answer: dict[str, Any] = {
            "access_token": self._issue("oauth", self.token_calls),
            "token_type": "bearer",
        }
        if self.token_ttl is not None:
            answer["expires_in"] = self.token_ttl
        return web.json_response(answer)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            route = self.routes.get(request.path, Route())
            if route.delay:
                await asyncio.sleep(route.delay)
            if route.requires_login and not self._logged_in(recorded.headers):
                return web.json_response({"error": "not logged in"}, status=401)
            if route.answer is not None:
                status, body, headers = route.answer(recorded)
                if isinstance(body, str):
                    return web.Response(text=body, status=status, headers=headers)
                return web.json_response(body, status=status, headers=headers)
            key = (request.path, recorded.request_id)
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            status = route.statuses[min(n, len(route.statuses) - 1)]
            headers = dict(route.headers)
            if route.retry_after is not None and not 200 <= status < 300:
                headers["Retry-After"] = route.retry_after
            body = route.bodies[min(n, len(route.bodies) - 1)] if route.bodies else route.body
            if body is None:
                echo = {"method": recorded.method, "path": recorded.path,
                        "query": recorded.query, "headers": recorded.headers,
                        "body": recorded.body, "attempt": n + 1}
                return web.json_response(echo, status=status, headers=headers)
            if isinstance(body, str):
                return web.Response(text=body, status=status, headers=headers)
            return web.json_response(body, status=status, headers=headers)
        finally:
            self.in_flight -= 1


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
