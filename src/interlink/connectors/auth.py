"""Auth providers: what each connector `auth.type` adds to a request, and how it logs in.

| type                        | sends                                             | refreshable |
|-----------------------------|---------------------------------------------------|-------------|
| `none`                      | nothing                                           | no          |
| `basic`                     | `Authorization: Basic …`                          | no          |
| `bearer`                    | `Authorization: Bearer <token>`                   | no          |
| `api_key`                   | the key in a header (`X-API-Key`) or query param  | no          |
| `oauth2_client_credentials` | `Authorization: Bearer <token from token_url>`    | yes         |
| `session`                   | `<header>: <value>` with a token from a login     | yes         |

Refreshable tokens live in the store (`SharedCredential`), so all processes share one token
and one refresh. Every token obtained becomes the connector's current token in the `Redactor`
at once (which keeps it and the one before).
The client id and secret go in the token request's form body (`client_secret_post`), which
every provider we know accepts; `Authorization: Basic` for the client is not sent as well,
because RFC 6749 forbids using two client authentication methods at once.
"""

from __future__ import annotations

import abc
import base64
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from interlink import json_numbers
from interlink.connectors.credentials import BeforeLogin, SharedCredential
from interlink.connectors.exchange import excerpt
from interlink.connectors.transport import describe_error, join_url
from interlink.errors import AuthError
from interlink.expressions import compile_expression, compile_interpolation, render_data
from interlink.redaction import Redactor
from interlink.spec.connector import (
    ApiKeyCredentials,
    BasicCredentials,
    BearerCredentials,
    ConnectorSpec,
    NoCredentials,
    OAuth2ClientCredentials,
    SessionLogin,
)
from interlink.store import Store

__all__ = [
    "ApiKeyAuth",
    "AppliedAuth",
    "AuthProvider",
    "BasicAuth",
    "BearerAuth",
    "NoAuth",
    "OAuth2ClientCredentialsAuth",
    "SessionAuth",
    "TokenAuth",
    "auth_provider",
]

#: A token is refreshed this long before it expires, at most (and at most 10% of its life).
EXPIRY_MARGIN = 30.0
#: Login form/JSON fields whose values are secrets (matched as substrings, lower case).
_SECRET_FIELD_HINTS = ("pass", "secret", "token", "key", "pwd", "credential")


@dataclass(frozen=True, slots=True)
class AppliedAuth:
    """What auth adds to one request, and the credential version it used."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    version: int | None = None


class AuthProvider(abc.ABC):
    """Adds a connector's credentials to requests; refreshes them when they are refused."""

    #: whether `reauthenticate` can get a different credential (a login); static ones cannot
    refreshable = False

    @abc.abstractmethod
    async def apply(self) -> AppliedAuth:
        """Headers and query parameters for the next request (may log in first)."""

    async def reauthenticate(self, seen_version: int | None,
                             before_login: BeforeLogin | None = None) -> bool:
        """Make sure a credential newer than `seen_version` exists; True when that used up a
        re-authentication (`before_login` is awaited just before a login, if one happens).
        Static credentials have nothing to refresh: sending them again is all a retry can
        do, so it counts (a retry loop on them stays bounded)."""
        return True

    async def replaced(self, seen_version: int | None) -> bool:
        """Whether the credential `seen_version` was replaced already (static: never)."""
        return False


class NoAuth(AuthProvider):
    """`type: none`."""

    async def apply(self) -> AppliedAuth:
        """Nothing to add."""
        return AppliedAuth()


class BasicAuth(AuthProvider):
    """`type: basic`."""

    def __init__(self, spec: BasicCredentials) -> None:
        pair = f"{spec.username}:{spec.password}".encode()
        self._value = "Basic " + base64.b64encode(pair).decode("ascii")

    async def apply(self) -> AppliedAuth:
        """`Authorization: Basic base64(user:password)`."""
        return AppliedAuth(headers={"Authorization": self._value})


class BearerAuth(AuthProvider):
    """`type: bearer`: a fixed token."""

    def __init__(self, spec: BearerCredentials) -> None:
        self._value = f"Bearer {spec.token}"

    async def apply(self) -> AppliedAuth:
        """`Authorization: Bearer <token>`."""
        return AppliedAuth(headers={"Authorization": self._value})


class ApiKeyAuth(AuthProvider):
    """`type: api_key`: in a query parameter when `query` is set, else in `header`."""

    def __init__(self, spec: ApiKeyCredentials) -> None:
        self._spec = spec

    async def apply(self) -> AppliedAuth:
        """The key in its header or query parameter."""
        if self._spec.query:
            return AppliedAuth(query={self._spec.query: self._spec.key})
        return AppliedAuth(headers={self._spec.header or "X-API-Key": self._spec.key})


class TokenAuth(AuthProvider):
    """A token obtained by a request, shared through the store, refreshed on demand."""

    refreshable = True
    #: the key of the stored token data that holds the token itself
    token_key = "token"

    def __init__(
        self,
        connector: ConnectorSpec,
        store: Store,
        http: aiohttp.ClientSession,
        *,
        owner: str,
        redactor: Redactor,
    ) -> None:
        self.connector = connector
        self.http = http
        self.redactor = redactor
        self.credential = SharedCredential(
            connector.name, store, self._login_and_redact, owner=owner,
            lock_ttl=connector.timeout + 5.0,
        )

    async def apply(self) -> AppliedAuth:
        """The current token's header (logging in first when there is none)."""
        credential = await self.credential.get()
        if self.token_key not in credential.token:
            # Stored by another auth type (the connector's auth changed): replace it.
            credential = (await self.credential.refresh(credential.version)).credential
        self._redact_token(credential.token)
        return AppliedAuth(headers=self.headers_for(credential.token), version=credential.version)

    async def reauthenticate(self, seen_version: int | None,
                             before_login: BeforeLogin | None = None) -> bool:
        """Refresh the token unless someone already replaced the version seen; True when this
        call logged in."""
        refreshed = await self.credential.refresh(seen_version, before_login)
        self._redact_token(refreshed.credential.token)
        return refreshed.logged_in

    async def replaced(self, seen_version: int | None) -> bool:
        """Whether a newer token than `seen_version` exists (in this process or the store)."""
        return await self.credential.replaced(seen_version)

    @abc.abstractmethod
    def headers_for(self, token: dict[str, Any]) -> dict[str, str]:
        """The headers that carry `token`."""

    @abc.abstractmethod
    async def login(self) -> tuple[dict[str, Any], float | None]:
        """Obtain a new token: its data and its expiry (epoch seconds) or None."""

    async def _login_and_redact(self) -> tuple[dict[str, Any], float | None]:
        token, expires_at = await self.login()
        self._redact_token(token)
        return token, expires_at

    def _redact_token(self, token: dict[str, Any]) -> None:
        # This connector's current token replaces its previous one in the redactor (which
        # keeps both), so tokens do not pile up over months of refreshes.
        values = (value for value in token.values() if isinstance(value, str))
        self.redactor.replace(self.connector.name, values)

    async def _request(
        self, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[int, dict[str, str], str]:
        """Send a login/token request; network failures become `AuthError`."""
        timeout = aiohttp.ClientTimeout(total=self.connector.timeout)
        try:
            async with self.http.request(method, url, timeout=timeout, **kwargs) as response:
                text = await response.text(errors="replace")
                headers = {k: v for k, v in response.headers.items()}
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AuthError(
                f"{what} for {self.connector.name}: {describe_error(exc, self.connector.timeout)}"
            ) from exc
        if status >= 400:
            body = excerpt(self.redactor.text(text), 300)
            raise AuthError(f"{what} for {self.connector.name}: HTTP {status}: {body}")
        return status, headers, text


class OAuth2ClientCredentialsAuth(TokenAuth):
    """`type: oauth2_client_credentials`."""

    token_key = "access_token"

    def __init__(
        self,
        connector: ConnectorSpec,
        spec: OAuth2ClientCredentials,
        store: Store,
        http: aiohttp.ClientSession,
        *,
        owner: str,
        redactor: Redactor,
    ) -> None:
        super().__init__(connector, store, http, owner=owner, redactor=redactor)
        self.spec = spec

    def headers_for(self, token: dict[str, Any]) -> dict[str, str]:
        """`Authorization: Bearer <access_token>` (or the token type the server named)."""
        token_type = str(token.get("token_type") or "Bearer")
        if token_type.lower() == "bearer":
            token_type = "Bearer"
        return {"Authorization": f"{token_type} {token['access_token']}"}

    async def login(self) -> tuple[dict[str, Any], float | None]:
        """POST the client-credentials grant to `token_url`."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.spec.client_id,
            "client_secret": self.spec.client_secret,
        }
        if self.spec.scope:
            form["scope"] = self.spec.scope
        if self.spec.audience:
            form["audience"] = self.spec.audience
        url = join_url(self.connector.base_url, self.spec.token_url)
        what = "requesting an OAuth token"
        _, _, text = await self._request(
            what, "POST", str(url), data=form, headers={"Accept": "application/json"}
        )
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise AuthError(f"{what} for {self.connector.name}: no access_token in the answer")
        token: dict[str, Any] = {"access_token": data["access_token"]}
        if isinstance(data.get("token_type"), str):
            token["token_type"] = data["token_type"]
        expires_in = data.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            lifetime = float(expires_in)
            expires_at = time.time() + lifetime - min(EXPIRY_MARGIN, lifetime * 0.1)
        return token, expires_at


class SessionAuth(TokenAuth):
    """`type: session`: a login request, a token expression, a header built from the token."""

    def __init__(
        self,
        connector: ConnectorSpec,
        spec: SessionLogin,
        store: Store,
        http: aiohttp.ClientSession,
        *,
        owner: str,
        redactor: Redactor,
    ) -> None:
        super().__init__(connector, store, http, owner=owner, redactor=redactor)
        self.spec = spec
        self._token_expr = compile_expression(spec.token)
        self._value = compile_interpolation(spec.value)

    def headers_for(self, token: dict[str, Any]) -> dict[str, str]:
        """`<header>: <value>` with `token` in scope."""
        return {self.spec.header: self._value.render({"token": token["token"]})}

    async def login(self) -> tuple[dict[str, Any], float | None]:
        """Send the login request and evaluate `token` over its response."""
        login = self.spec.login
        url = join_url(self.connector.base_url, compile_interpolation(login.path).render({}))
        headers = {name: compile_interpolation(v).render({}) for name, v in login.headers.items()}
        kwargs: dict[str, Any] = {"headers": headers}
        if login.form is not None:
            kwargs["data"] = dict(render_data(login.form, {}))
        elif login.json_body is not None:
            kwargs["data"] = orjson.dumps(render_data(login.json_body, {}))
            headers.setdefault("Content-Type", "application/json")
        what = "logging in"
        status, response_headers, text = await self._request(
            what, login.method, str(url), **kwargs
        )
        try:
            parsed: Any = json_numbers.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        response = {"status": status, "headers": response_headers, "body": text, "json": parsed}
        value = self._token_expr.evaluate({"response": response})
        if value is None or value == "" or isinstance(value, dict | list):
            raise AuthError(
                f"{what} to {self.connector.name}: token expression {self.spec.token!r} "
                "gave no token"
            )
        expires_at = time.time() + self.spec.ttl if self.spec.ttl else None
        return {"token": str(value)}, expires_at


def auth_provider(
    connector: ConnectorSpec,
    store: Store,
    http: aiohttp.ClientSession,
    *,
    owner: str,
    redactor: Redactor,
) -> AuthProvider:
    """The provider for `connector.auth`; registers its static secrets with `redactor`."""
    auth = connector.auth
    for secret in static_secrets(connector):
        redactor.add(secret)
    if isinstance(auth, NoCredentials):
        return NoAuth()
    if isinstance(auth, BasicCredentials):
        return BasicAuth(auth)
    if isinstance(auth, BearerCredentials):
        return BearerAuth(auth)
    if isinstance(auth, ApiKeyCredentials):
        return ApiKeyAuth(auth)
    if isinstance(auth, OAuth2ClientCredentials):
        return OAuth2ClientCredentialsAuth(
            connector, auth, store, http, owner=owner, redactor=redactor
        )
    return SessionAuth(connector, auth, store, http, owner=owner, redactor=redactor)


def static_secrets(connector: ConnectorSpec) -> list[str]:
    """The secret values written in a connector's auth settings."""
    auth = connector.auth
    if isinstance(auth, BasicCredentials):
        return [auth.password]
    if isinstance(auth, BearerCredentials):
        return [auth.token]
    if isinstance(auth, ApiKeyCredentials):
        return [auth.key]
    if isinstance(auth, OAuth2ClientCredentials):
        return [auth.client_secret]
    if isinstance(auth, SessionLogin):
        return _secret_fields(auth.login.form) + _secret_fields(auth.login.json_body)
    return []


def _secret_fields(data: Any) -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and any(h in str(key).lower() for h in _SECRET_FIELD_HINTS):
                found.append(value)
            else:
                found.extend(_secret_fields(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(_secret_fields(value))
    return found
