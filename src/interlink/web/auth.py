"""Who may use the UI: sign-in with the admin token, sessions, and forms that only the UI can
post (CSRF).

| `admin.token` | the caller | the UI |
|---|---|---|
| set | has a live session cookie | served |
| set | has none | 303 to the sign-in page |
| not set | connects from 127.0.0.0/8 or ::1 | served, no sign-in |
| not set | connects from elsewhere | the 403 page |

Signing in checks the token with the engine endpoints' own check (`AdminAccess.refusal`, the
bearer authenticator: constant time, every accepted token compared). The session is a store
row (`sessions`, durable, shared by every process on the store) keyed by a fresh random id,
bound to a hash of the token it was opened with: once that token is removed from `admin.token`
its sessions stop working. The cookie is HttpOnly, SameSite=Strict, Path=/_interlink/ui, and
Secure on https.

A form carries a token bound to what identifies the viewer: the session id, or (on the sign-in
page and in loopback mode, where there is no session) a random cookie of its own. The token is
an HMAC under a key derived from the admin tokens (the same in every process and across
restarts) or, without tokens, a key made at start. A POST must carry the right token *and* come
from a page of this host (`Origin`, else `Referer`, names the `Host`), or it is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from interlink.admin import AdminAccess
from interlink.ids import new_id
from interlink.services.context import decode_headers
from interlink.spec.project import AdminConfig
from interlink.store import DeleteSession, PutSession, SessionRecord, Store

__all__ = ["FORM_COOKIE", "SESSION_COOKIE", "SESSION_TTL_S", "UI_PATH", "UiAuth", "Viewer"]

#: where the UI is served
UI_PATH = "/_interlink/ui"
#: the session cookie (token mode)
SESSION_COOKIE = "interlink_ui"
#: what forms are bound to where there is no session (the sign-in page, loopback mode)
FORM_COOKIE = "interlink_ui_form"
#: how long a session lasts after signing in
SESSION_TTL_S = 12 * 3600.0

_PURPOSE = b"interlink-ui-csrf\0"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page, and what its forms are bound to."""

    #: the session id (token mode), None in loopback mode
    session_id: str | None
    #: the form-binding cookie to set with the answer (a first visit without a session)
    new_form_cookie: str | None
    #: the CSRF token every form of the page carries
    csrf: str
    #: whether the page was asked for over https (then cookies are Secure)
    https: bool = False


class UiAuth:
    """The UI's sign-in, sessions and CSRF check over one listener's `AdminAccess`."""

    def __init__(self, access: AdminAccess, admin: AdminConfig, store: Store) -> None:
        self.access = access
        self.store = store
        self.tokens = admin.tokens
        #: the hashes sessions may be bound to: one per accepted token
        self._principals = frozenset(_principal(token) for token in admin.tokens)
        # Derived from the tokens so every process (and a restarted one) accepts the forms
        # the others rendered; an attacker without a token cannot compute it.
        self._key = (hashlib.sha256(_PURPOSE + "\0".join(sorted(admin.tokens)).encode()).digest()
                     if admin.tokens else os.urandom(32))

    @property
    def signs_in(self) -> bool:
        """Whether the UI asks for the admin token (else: loopback callers only)."""
        return bool(self.tokens)

    def loopback_refused(self, request: Request) -> bool:
        """In loopback mode: whether this caller is not on this machine."""
        return self.access.refusal(request.scope, {}) is not None

    async def session(self, request: Request) -> str | None:
        """The id of the caller's live UI session, or None."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id or len(session_id) > 100:
            return None
        record = await self.store.get_session(session_id, time.time())
        if record is None or not (record.data or {}).get("ui"):
            return None  # expired, signed out, or a services' session id
        if record.principal not in self._principals:
            return None  # opened with a token that is no longer accepted
        return record.id

    def viewer(self, request: Request, session_id: str | None) -> Viewer:
        """The viewer of a page: bound to the session, else to the form cookie (made now
        when the caller has none)."""
        https = request.url.scheme == "https"
        if session_id is not None:
            return Viewer(session_id, None, self.csrf_token(session_id), https)
        cookie = request.cookies.get(FORM_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 100:
            cookie = fresh = new_id("f_")
        return Viewer(None, fresh, self.csrf_token(cookie), https)

    async def sign_in(self, request: Request, token: str) -> str | None:
        """A new session for a caller that gave an accepted admin token; None otherwise."""
        if not self.tokens or not token or len(token) > 4096:
            return None
        headers = {"authorization": f"Bearer {token}"}
        if self.access.refusal(request.scope, headers) is not None:
            return None
        session = SessionRecord(new_id("ui_"), {"ui": True}, time.time() + SESSION_TTL_S,
                                _principal(token))
        await self.store.write(PutSession(session))
        return session.id

    async def sign_out(self, session_id: str) -> None:
        """End a session."""
        await self.store.write(DeleteSession(session_id))

    def csrf_token(self, binding: str) -> str:
        """The form token for `binding` (a session id or a form cookie)."""
        return hmac.new(self._key, binding.encode(), hashlib.sha256).hexdigest()

    def form_allowed(self, request: Request, session_id: str | None, token: str) -> bool:
        """Whether a POST comes from one of this UI's pages: same origin, right token."""
        if not same_origin(decode_headers(request.scope["headers"])):
            return False
        binding = session_id or request.cookies.get(FORM_COOKIE)
        if not binding or not token:
            return False
        return hmac.compare_digest(self.csrf_token(binding), token)


def same_origin(headers: dict[str, str]) -> bool:
    """Whether the request names this host as where it comes from (`Origin`, else `Referer`).

    Only the host and port are compared: behind a TLS-terminating proxy the scheme the browser
    used is not the one this server sees. A request naming neither is refused: every browser
    sends `Origin` with a form POST.
    """
    host = headers.get("host")
    origin = headers.get("origin")
    source = origin if origin and origin != "null" else headers.get("referer")
    if not host or not source:
        return False
    return hmac.compare_digest(urlsplit(source).netloc.lower(), host.lower())


def _principal(token: str) -> str:
    """What a session stores about the token that opened it: a hash, never the token."""
    return hashlib.sha256(b"interlink-ui-principal\0" + token.encode()).hexdigest()
