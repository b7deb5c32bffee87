"""A connector's token, shared through the store by every process, refreshed one at a time.

Logging in is expensive and some APIs invalidate the previous session at each login, so when 50
requests in 5 processes all see a 401 they must cause *one* login, not 50. Two locks make sure:

- in a process, one `asyncio.Lock` per credential: the coroutines queue, and each one after
  the first finds a version newer than the one it saw and uses it;
- across processes, the store's named lock `auth:<connector>`: whoever takes it re-reads the
  credential, logs in only when nobody refreshed it meanwhile, stores the new version and
  unlocks; the others poll the store until a newer version appears, or take the lock
  themselves once it expires (its holder died mid-login).

"Newer" is judged by the credential's `version`, which the store increments at every refresh;
an exchange records the version it was sent with and passes it back as `seen_version`.
`refresh` says whether *it* logged in: a step whose 401 was answered to a version somebody
else already replaced has not used up a re-authentication (`Refreshed.logged_in` is False).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from interlink.errors import AuthError
from interlink.ids import new_id
from interlink.store import Credential, PutCredential, Store

__all__ = ["BeforeLogin", "Login", "Refreshed", "SharedCredential"]

#: Logs in and returns the token data and when it expires (epoch seconds, or None).
Login = Callable[[], Awaitable[tuple[dict[str, Any], float | None]]]
#: Called just before a refresh logs in, by the one caller whose refresh does (a step records
#: then, durably, that it used up a re-authentication).
BeforeLogin = Callable[[], Awaitable[None]]


class Refreshed(NamedTuple):
    """A credential newer than the one seen, and whether this refresh logged in for it."""

    credential: Credential
    logged_in: bool


class SharedCredential:
    """The store-backed token of one connector, with single-flight refresh."""

    def __init__(
        self,
        name: str,
        store: Store,
        login: Login,
        *,
        owner: str,
        lock_ttl: float = 30.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.name = name
        self.lock_name = f"auth:{name}"
        self._store = store
        self._login = login
        # Unique per instance: two clients of one process must not share (re-enter) the lock.
        self._owner = f"{owner}/{new_id()}"
        self._lock_ttl = lock_ttl
        self._poll = poll_interval
        self._local = asyncio.Lock()
        self._cached: Credential | None = None

    @staticmethod
    def usable(credential: Credential | None, now: float | None = None) -> bool:
        """True when `credential` exists and has not expired."""
        if credential is None:
            return False
        return credential.expires_at is None or credential.expires_at > (now or time.time())

    async def get(self) -> Credential:
        """The current token: cached, else from the store, else a fresh login."""
        if self.usable(self._cached):
            assert self._cached is not None
            return self._cached
        stored = await self._store.get_credential(self.name)
        if self.usable(stored):
            assert stored is not None
            self._cached = stored
            return stored
        refreshed = await self.refresh(stored.version if stored is not None else None)
        return refreshed.credential

    async def replaced(self, seen_version: int | None) -> bool:
        """Whether a usable credential newer than `seen_version` exists (here or in the
        store): a request refused with the old one should just be sent again."""
        if seen_version is None:
            return False
        if self._cached is not None and self._cached.version > seen_version and self.usable(
            self._cached
        ):
            return True
        stored = await self._store.get_credential(self.name)
        if stored is not None and stored.version > seen_version and self.usable(stored):
            self._cached = stored
            return True
        return False

    async def refresh(self, seen_version: int | None,
                      before_login: BeforeLogin | None = None) -> Refreshed:
        """A credential newer than `seen_version`: someone else's refresh, or our own login
        (`before_login` is awaited first, only then).

        Raises `AuthError` when logging in fails or another process's login never lands.
        """
        seen = seen_version or 0
        async with self._local:
            if self._cached is not None and self._cached.version > seen and self.usable(
                self._cached
            ):
                return Refreshed(self._cached, logged_in=False)
            refreshed = await self._refresh_shared(seen, before_login)
            self._cached = refreshed.credential
            return refreshed

    async def _refresh_shared(self, seen: int, before_login: BeforeLogin | None) -> Refreshed:
        # Long enough for a holder's login to time out and the lock to expire behind it.
        deadline = time.monotonic() + 2 * self._lock_ttl + 1.0
        while True:
            if await self._store.try_lock(self.lock_name, self._owner, self._lock_ttl):
                try:
                    return await self._refresh_locked(seen, before_login)
                finally:
                    await self._store.unlock(self.lock_name, self._owner)
            await asyncio.sleep(self._poll)
            stored = await self._store.get_credential(self.name)
            if stored is not None and stored.version > seen and self.usable(stored):
                return Refreshed(stored, logged_in=False)
            if time.monotonic() > deadline:
                raise AuthError(
                    f"refreshing credential {self.name}: another process held "
                    f"{self.lock_name} and no new token appeared"
                )

    async def _refresh_locked(self, seen: int, before_login: BeforeLogin | None) -> Refreshed:
        stored = await self._store.get_credential(self.name)
        if stored is not None and stored.version > seen and self.usable(stored):
            return Refreshed(stored, logged_in=False)
        if before_login is not None:
            await before_login()
        token, expires_at = await self._login()
        await self._store.write(PutCredential(self.name, token, expires_at))
        fresh = await self._store.get_credential(self.name)
        if fresh is None:
            raise AuthError(f"refreshing credential {self.name}: the store did not keep it")
        return Refreshed(fresh, logged_in=True)
