"""Who may use the engine's endpoints: holders of the admin token, or loopback callers.

The engine's endpoints are everything under `/_interlink/` but `/_interlink/health`, and
`/metrics`. `AdminAccess` decides, from `admin:` in interlink.yaml:

| `admin.token` | the caller | the answer |
|---|---|---|
| set (one, or several while rotating) | sends `Authorization: Bearer <a token>` | served |
| set | sends anything else, or nothing | 401 with `WWW-Authenticate: Bearer` |
| not set | connects from 127.0.0.0/8 or ::1 | served |
| not set | connects from another address | 403, saying how to set a token |

Tokens are checked by the bearer authenticator of `services.security` (constant time, every
token compared). A refusal is the small error body and says nothing about what was asked for,
not even whether it exists. `AdminGuard` applies the decision in front of the endpoints;
`GET /_interlink/queue/{id}` decides itself (`engine_api`), because it also takes the package
credentials of the queued request's service; the web UI under `/_interlink/ui/` decides itself
too (`web.auth`: the same tokens, given once in a sign-in form, then a session cookie).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from interlink.loopback import is_loopback
from interlink.services.context import decode_headers
from interlink.services.failures import SecurityFailure
from interlink.services.responses import Response, error_body, send_response
from interlink.services.security import build_authenticator
from interlink.services.sources import JSON
from interlink.spec.project import AdminConfig, BearerAuth

__all__ = ["HEALTH_PATH", "AdminAccess", "AdminGuard", "is_engine_path"]

#: the one engine endpoint anyone may call (load balancers, orchestrators)
HEALTH_PATH = "/_interlink/health"
#: where queued requests are read; its endpoint checks access itself
QUEUE_PREFIX = "/_interlink/queue/"
#: the web UI, which signs its users in itself (interlink.web.auth): a browser gets a
#: sign-in page there, not a 401
UI_PREFIX = "/_interlink/ui"

_LOOPBACK_ONLY = (
    "the engine endpoints answer callers on this machine only: set admin.token in "
    'interlink.yaml (token: "{{ env.INTERLINK_ADMIN_TOKEN }}") and send '
    "Authorization: Bearer <token>"
)
_ELSEWHERE = "invalid credentials"


def is_engine_path(path: str) -> bool:
    """Whether `path` is one of the engine's endpoints (health included)."""
    return path.startswith("/_interlink/") or path == "/metrics"


class AdminAccess:
    """The admin check of one listener.

    `here=False` is the main listener when `admin.listen` serves the engine endpoints
    elsewhere: no admin credential is accepted on it (a partner may still read its own queued
    request there, with its package's credentials).
    """

    def __init__(self, config: AdminConfig, *, here: bool = True) -> None:
        tokens = list(config.tokens)
        self.here = here
        self.tokens = len(tokens)
        self._bearer = build_authenticator(BearerAuth(type="bearer", tokens=tokens)) \
            if tokens else None

    def refusal(self, scope: Scope, headers: dict[str, str]) -> Response | None:
        """None when the caller may use the engine endpoints, else the answer refusing it."""
        if not self.here:
            return Response(401, error_body("security", _ELSEWHERE), JSON)
        if self._bearer is None:
            client = scope.get("client")
            if is_loopback(client[0] if client else None):
                return None
            return Response(403, error_body("security", _LOOPBACK_ONLY), JSON)
        try:
            self._bearer.check(headers, {}, b"", scope)
        except SecurityFailure as failure:
            return Response(401, error_body("security", failure.message), JSON,
                            [("WWW-Authenticate", "Bearer")])
        return None

    def describe(self) -> str:
        """The line `interlink serve` prints at start: which mode is in force."""
        what = "engine endpoints (/metrics, and /_interlink/* but health)"
        if self._bearer is not None:
            count = "1 token" if self.tokens == 1 else f"{self.tokens} tokens"
            return f"{what}: admin token required (Authorization: Bearer; {count} accepted)"
        return (f"{what}: loopback callers only, no admin.token is set "
                "(set one to let other callers in)")


class AdminGuard:
    """ASGI: the engine endpoints behind `access` (health open; queue items check it)."""

    def __init__(self, app: ASGIApp, access: AdminAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the refusal, or pass the request on."""
        # Without `here` only health and queue items are served, and those check themselves.
        if scope["type"] == "http" and self.access.here:
            path = scope["path"]
            checked_here = is_engine_path(path) and path != HEALTH_PATH and not (
                scope["method"] == "GET" and path.startswith(QUEUE_PREFIX)) and not (
                path == UI_PREFIX or path.startswith(UI_PREFIX + "/"))
            if checked_here:
                refusal = self.access.refusal(scope, decode_headers(scope["headers"]))
                if refusal is not None:
                    await send_response(send, refusal)
                    return
        await self.app(scope, receive, send)
