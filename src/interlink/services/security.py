"""The security phase: a package's authentication, checked in constant time.

Every comparison of a secret uses `hmac.compare_digest` and runs over *all* configured keys
(no early exit), so neither the position of a matching key nor the existence of a user name
shows in the response time. Failure messages never say which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Protocol

from interlink.services.failures import SecurityFailure
from interlink.spec.project import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HmacAuth,
    NoAuth,
    PackageAuth,
)

__all__ = ["Authenticator", "build_authenticator"]

_MISSING = "missing credentials"
_INVALID = "invalid credentials"


class Authenticator(Protocol):
    """Checks one request; raises `SecurityFailure` when the caller is not let in."""

    #: True when the raw body is needed (HMAC); the body is then read before this phase.
    needs_body: bool
    #: header names and query names that carry credentials (dropped from queued requests)
    credential_headers: frozenset[str]
    credential_query: frozenset[str]

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
        """Raise `SecurityFailure` unless the request authenticates."""


def _any_equal(given: bytes, accepted: Iterable[bytes]) -> bool:
    # `|` not `or`: compare against every key, whatever matched first.
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(given, candidate)
    return found


class _NoAuth:
    needs_body = False
    credential_headers: frozenset[str] = frozenset()
    credential_query: frozenset[str] = frozenset()

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
        return None


class _BasicAuth:
    needs_body = False
    credential_headers = frozenset({"authorization"})
    credential_query: frozenset[str] = frozenset()

    def __init__(self, spec: BasicAuth) -> None:
        self._users = [(u.encode(), p.encode()) for u, p in spec.users.items()]
        realm = spec.realm.replace("\\", "\\\\").replace('"', '\\"')
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
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


class _ApiKeyAuth:
    needs_body = False

    def __init__(self, spec: ApiKeyAuth) -> None:
        self._keys = [k.encode() for k in spec.keys]
        self._query = spec.query
        self._header = None if spec.query else (spec.header or "X-API-Key").lower()
        self.credential_headers = frozenset({self._header} if self._header else set())
        self.credential_query = frozenset({self._query} if self._query else set())

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
        given = query.get(self._query) if self._query else headers.get(self._header or "")
        if not given:
            raise SecurityFailure("unauthorized", _MISSING)
        if not _any_equal(given.encode("utf-8", "surrogateescape"), self._keys):
            raise SecurityFailure("unauthorized", _INVALID)


class _BearerAuth:
    needs_body = False
    credential_headers = frozenset({"authorization"})
    credential_query: frozenset[str] = frozenset()
    challenge = "Bearer"

    def __init__(self, spec: BearerAuth) -> None:
        self._tokens = [t.encode() for t in spec.tokens]

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SecurityFailure("unauthorized", _MISSING, self.challenge)
        if not _any_equal(token.encode("utf-8", "surrogateescape"), self._tokens):
            raise SecurityFailure("unauthorized", _INVALID, self.challenge)


class _HmacAuth:
    needs_body = True
    credential_query: frozenset[str] = frozenset()

    def __init__(self, spec: HmacAuth) -> None:
        self._secret = spec.secret.encode()
        self._digest: Callable[[], hashlib._Hash] = getattr(hashlib, spec.algorithm)
        self._algorithm = spec.algorithm
        self._header = spec.header.lower()
        self._base64 = spec.encoding == "base64"
        self.credential_headers = frozenset({self._header})

    def check(self, headers: dict[str, str], query: dict[str, str], raw: bytes) -> None:
        given = headers.get(self._header, "").strip()
        # GitHub-style signatures carry the algorithm: `sha256=…`.
        prefix = self._algorithm + "="
        if given[: len(prefix)].lower() == prefix:
            given = given[len(prefix):]
        if not given:
            raise SecurityFailure("unauthorized", _MISSING)
        mac = hmac.new(self._secret, raw, self._digest).digest()
        if self._base64:
            expected = base64.b64encode(mac)
            candidate = given.encode("utf-8", "surrogateescape")
        else:
            expected = mac.hex().encode()
            candidate = given.lower().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(candidate, expected):
            raise SecurityFailure("unauthorized", _INVALID)


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
