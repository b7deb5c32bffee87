"""The security phase: a package's authentication, checked in constant time.

One mechanism for every door that takes a package's credentials — a service, a webhook
trigger with `package:`, a partner polling its queued request — and for the admin token
(a bearer check): `build_authenticator(spec)` compiles the check once, `admit(...)` runs it.

Every comparison of a secret uses `hmac.compare_digest` and runs over *all* configured keys
(no early exit), so neither the position of a matching key nor the existence of a user name
shows in the response time. Failure messages never say which part was wrong.

A check that passes names the `Caller`: its principal (the user name, the key or token given,
or `hmac:` — everyone holding the shared secret is one caller), which a stateful package binds
its session to (hashed). HMAC with `timestamp_header` signs
`{timestamp}.{METHOD}.{path?query}.{body}` and also returns the signature as a *nonce*:
`admit` records it in the store, so the same signed request is accepted once, by any process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Scope

from interlink.errors import Conflict
from interlink.services.failures import SecurityFailure
from interlink.spec.project import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HmacAuth,
    NoAuth,
    PackageAuth,
)
from interlink.store import RecordNonce, Store

__all__ = ["ANONYMOUS", "Authenticator", "Caller", "admit", "build_authenticator",
           "nonce_writes", "replayed", "signed_message"]

_MISSING = "missing credentials"
_INVALID = "invalid credentials"
_TIMESTAMP = re.compile(r"^[0-9]{1,15}$")


# Not frozen: a frozen dataclass takes four times as long to build, and one is built per
# request on the services' hot path. Treat it as read-only.
@dataclass(slots=True)
class Caller:
    """Who a request authenticated as.

    `principal` may hold the credential itself (a key, a token): compare it or hash it, never
    log it or store it. `nonce` is a signature to accept once, until `nonce_expires_at`.
    """

    principal: str
    nonce: str | None = None
    nonce_expires_at: float = 0.0


#: the caller of a package without authentication
ANONYMOUS = Caller("")


class Authenticator(Protocol):
    """Checks one request; raises `SecurityFailure` when the caller is not let in."""

    #: True when the raw body is needed (HMAC); the body is then read before this phase.
    needs_body: bool
    #: True when a passed check returns a nonce that `admit` must record (a store is needed)
    needs_store: bool
    #: header names and query names that carry credentials (dropped from queued requests)
    credential_headers: frozenset[str]
    credential_query: frozenset[str]

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        """The caller, or `SecurityFailure` unless the request authenticates."""


async def admit(auth: Authenticator, store: Store | None, headers: dict[str, str],
                query: dict[str, str], raw: bytes, scope: Scope) -> Caller:
    """Check a request with `auth` and record its nonce, if it has one, in `store`.

    A nonce recorded already (the same signed request seen before, by this process or any
    other on the store) is a `SecurityFailure`, like a wrong signature.
    """
    caller = auth.check(headers, query, raw, scope)
    if caller.nonce is not None:
        if store is None:
            raise SecurityFailure("unauthorized", _INVALID, detail="no store for nonces")
        try:
            await store.write(*nonce_writes(caller))
        except Conflict:
            raise replayed() from None
    return caller


def nonce_writes(caller: Caller) -> list[RecordNonce]:
    """The write that records `caller`'s nonce (none without one); it raises `Conflict` for
    a nonce recorded already. A webhook commits it with its run (`webhooks`)."""
    if caller.nonce is None:
        return []
    return [RecordNonce(caller.nonce, caller.nonce_expires_at)]


def replayed() -> SecurityFailure:
    """The failure of a signed request whose nonce was recorded already (a replay)."""
    return SecurityFailure("unauthorized", _INVALID,
                           detail="this signature was accepted once already")


def signed_message(timestamp: str, method: str, target: bytes, body: bytes) -> bytes:
    """What replay-proof HMAC signs: `{timestamp}.{METHOD}.{path?query}.{body}` (bytes).

    `target` is the path and query as sent (`/orders?page=2`; the path alone without a query).
    """
    return b"%s.%s.%s.%s" % (timestamp.encode("ascii"), method.upper().encode("ascii"),
                             target, body)


def _target(scope: Scope) -> bytes:
    """The request's path and query as sent (`raw_path`; the decoded path without one)."""
    path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path


def _any_equal(given: bytes, accepted: Iterable[bytes]) -> bool:
    # `|` not `or`: compare against every key, whatever matched first.
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(given, candidate)
    return found


class _NoAuth:
    needs_body = False
    needs_store = False
    credential_headers: frozenset[str] = frozenset()
    credential_query: frozenset[str] = frozenset()

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        return ANONYMOUS


class _BasicAuth:
    needs_body = False
    needs_store = False
    credential_headers = frozenset({"authorization"})
    credential_query: frozenset[str] = frozenset()

    def __init__(self, spec: BasicAuth) -> None:
        self._users = [(u.encode(), p.encode()) for u, p in spec.users.items()]
        realm = spec.realm.replace("\\", "\\\\").replace('"', '\\"')
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise SecurityFailure("unauthorized", _MISSING, self.challenge)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SecurityFailure("unauthorized", _INVALID, self.challenge) from None
        user, sep, password = decoded.partition(b":")
        found = False
        for known_user, known_password in self._users:
            # `&` and `|`: both halves are compared for every user, whatever matched.
            found |= hmac.compare_digest(user, known_user) & hmac.compare_digest(
                password, known_password
            )
        if not (found and sep):
            raise SecurityFailure("unauthorized", _INVALID, self.challenge)
        return Caller("basic:" + user.decode("utf-8", "surrogateescape"))


class _ApiKeyAuth:
    needs_body = False
    needs_store = False

    def __init__(self, spec: ApiKeyAuth) -> None:
        self._keys = [k.encode() for k in spec.keys]
        self._query = spec.query
        self._header = None if spec.query else (spec.header or "X-API-Key").lower()
        self.credential_headers = frozenset({self._header} if self._header else set())
        self.credential_query = frozenset({self._query} if self._query else set())

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        given = query.get(self._query) if self._query else headers.get(self._header or "")
        if not given:
            raise SecurityFailure("unauthorized", _MISSING)
        if not _any_equal(given.encode("utf-8", "surrogateescape"), self._keys):
            raise SecurityFailure("unauthorized", _INVALID)
        return Caller("api_key:" + given)


class _BearerAuth:
    needs_body = False
    needs_store = False
    credential_headers = frozenset({"authorization"})
    credential_query: frozenset[str] = frozenset()
    challenge = "Bearer"

    def __init__(self, spec: BearerAuth) -> None:
        self._tokens = [t.encode() for t in spec.tokens]

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SecurityFailure("unauthorized", _MISSING, self.challenge)
        if not _any_equal(token.encode("utf-8", "surrogateescape"), self._tokens):
            raise SecurityFailure("unauthorized", _INVALID, self.challenge)
        return Caller("bearer:" + token)


class _HmacAuth:
    needs_body = True
    credential_query: frozenset[str] = frozenset()

    def __init__(self, spec: HmacAuth) -> None:
        self._secret = spec.secret.encode()
        self._digest: Callable[[], hashlib._Hash] = getattr(hashlib, spec.algorithm)
        self._algorithm = spec.algorithm
        self._header = spec.header.lower()
        self._base64 = spec.encoding == "base64"
        self._timestamp = spec.timestamp_header.lower() if spec.timestamp_header else None
        self._tolerance = spec.tolerance
        self.needs_store = self._timestamp is not None
        self.credential_headers = frozenset({self._header})

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes,
              scope: Scope) -> Caller:
        given = headers.get(self._header, "").strip()
        # GitHub-style signatures carry the algorithm: `sha256=…`.
        prefix = self._algorithm + "="
        if given[: len(prefix)].lower() == prefix:
            given = given[len(prefix):]
        if not given:
            raise SecurityFailure("unauthorized", _MISSING)
        if self._timestamp is None:
            return self._verify(given, raw, None)
        stamp = headers.get(self._timestamp, "").strip()
        if not stamp:
            raise SecurityFailure("unauthorized", _MISSING)
        if not _TIMESTAMP.match(stamp):
            raise SecurityFailure("unauthorized", _INVALID,
                                  detail="the timestamp is not integer Unix seconds")
        message = signed_message(stamp, scope["method"], _target(scope), raw)
        return self._verify(given, message, int(stamp))

    def _verify(self, given: str, message: bytes, stamp: int | None) -> Caller:
        mac = hmac.new(self._secret, message, self._digest).digest()
        if self._base64:
            expected = base64.b64encode(mac)
            candidate = given.encode("utf-8", "surrogateescape")
        else:
            expected = mac.hex().encode()
            candidate = given.lower().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(candidate, expected):
            raise SecurityFailure("unauthorized", _INVALID)
        if stamp is None:
            return Caller("hmac:")
        # Checked after the signature, so only a holder of the secret learns about clocks.
        skew = time.time() - stamp
        if abs(skew) > self._tolerance:
            raise SecurityFailure(
                "unauthorized", _INVALID, detail=f"the timestamp is {abs(skew):.0f}s "
                f"{'behind' if skew > 0 else 'ahead of'} the server's clock (tolerance "
                f"{self._tolerance:g}s)")
        return Caller("hmac:", "hmac:" + mac.hex(), stamp + self._tolerance)


def build_authenticator(spec: PackageAuth | None) -> Authenticator:
    """The authenticator of a package's `auth` (no package: everyone is let in)."""
    if spec is None or isinstance(spec, NoAuth):
        return _NoAuth()
    if isinstance(spec, BasicAuth):
        return _BasicAuth(spec)
    if isinstance(spec, ApiKeyAuth):
        return _ApiKeyAuth(spec)
    if isinstance(spec, BearerAuth):
        return _BearerAuth(spec)
    return _HmacAuth(spec)
