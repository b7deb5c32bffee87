"""Sessions of stateful packages: a cookie carries the session id, the store keeps the data.

The session is loaded after the caller authenticated (an unauthenticated caller never gets a
session or a cookie) and saved before the answer is sent, so the caller's next request sees
what this one wrote. Every answer of a stateful service sends the cookie again, which slides
its expiry (`session.ttl`); a rule that maps its own `Set-Cookie` replaces it.

A session is bound to the principal that authenticated it (`principal_hash`: a SHA-256 of the
user name, key or token, never the secret itself): a cookie presented with other credentials
does not load it, the caller gets a new session instead. A stolen cookie is no use without
its owner's credentials, and one caller never sees another's session data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from interlink.services.security import Caller
from interlink.spec.project import SessionConfig
from interlink.store import PutSession, SessionRecord, Store

__all__ = ["Session", "SessionKeeper", "principal_hash"]

_ID = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def principal_hash(caller: Caller) -> str:
    """What a session records of the caller that authenticated it (hex SHA-256)."""
    named = b"interlink-session-principal\0" + caller.principal.encode("utf-8", "surrogateescape")
    return hashlib.sha256(named).hexdigest()


@dataclass(slots=True)
class Session:
    """A loaded session: its id, its data (the context's `session`), a snapshot, and the
    hash of the principal it belongs to."""

    id: str
    data: dict[str, Any]
    snapshot: bytes | None
    expires_at: float
    principal: str


class SessionKeeper:
    """Loads and saves the sessions of one stateful package."""

    __slots__ = ("cookie", "store", "ttl")

    def __init__(self, config: SessionConfig, store: Store) -> None:
        self.cookie = config.cookie
        self.ttl = config.ttl
        self.store = store

    def session_id(self, headers: dict[str, str]) -> str | None:
        """The session id the request's cookie carries, if well-formed."""
        cookies = headers.get("cookie")
        if not cookies:
            return None
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie and _ID.match(value):
                return value
        return None

    async def load(self, headers: dict[str, str], caller: Caller) -> Session:
        """The caller's live session, or a new empty one (not stored until `save`).

        A cookie naming a session another principal authenticated loads nothing: the caller
        gets a new session (and cookie), the other's stays as it was.
        """
        principal = principal_hash(caller)
        session_id = self.session_id(headers)
        if session_id is not None:
            record = await self.store.get_session(session_id, time.time())
            if record is not None and hmac.compare_digest(record.principal or "", principal):
                data = dict(record.data)
                return Session(record.id, data, _snapshot(data), record.expires_at, principal)
        return Session(secrets.token_urlsafe(32), {}, None, 0.0, principal)

    async def save(self, session: Session) -> None:
        """Store the session when it is new, changed, or its expiry needs sliding."""
        now = time.time()
        expires_at = now + self.ttl
        # An unchanged session is rewritten at most about once a minute just to slide its
        # expiry, so idle time is measured to within a minute without a write per request.
        slack = min(60.0, self.ttl / 10)
        if (
            session.snapshot is not None
            and _snapshot(session.data) == session.snapshot
            and session.expires_at - now > self.ttl - slack
        ):
            return
        await self.store.write(PutSession(SessionRecord(session.id, session.data, expires_at,
                                                        session.principal)))

    def set_cookie(self, session: Session) -> str:
        """The `Set-Cookie` value carrying the session id."""
        return (
            f"{self.cookie}={session.id}; Max-Age={int(self.ttl)}; Path=/; HttpOnly; "
            "SameSite=Lax"
        )


def _snapshot(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS)

