"""`ConnectorClient`: sends one request to a connector's endpoint and returns an `Exchange`.

A request is built from the endpoint (path, query and headers interpolated from the call's
context), the connector's default headers, the call's own headers and query, the auth
provider's credentials and an `Idempotency-Key`, in that order of precedence (later wins).
It then waits for the concurrency cap and the rate limit (requests over them wait, never fail)
and is sent with the endpoint's or the connector's timeout.

The client decides nothing: it never raises for an HTTP status, and a network failure or
timeout becomes `Exchange.error`. The flow runner classifies the exchange (response script or
`interlink.flows.decision.classify`) and, on a code 4, calls `reauthenticate` with the
exchange's `credential_version`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from interlink import json_numbers
from interlink.connectors.auth import AuthProvider, auth_provider
from interlink.connectors.credentials import BeforeLogin
from interlink.connectors.exchange import Exchange, ExchangeRequest, ExchangeResponse, excerpt
from interlink.connectors.pool import CallFailed, ConnectionPool, check_header
from interlink.connectors.ratelimit import RateLimiter
from interlink.connectors.retry import RetryPolicy
from interlink.connectors.transport import encode_body, join_url
from interlink.errors import AuthError, ConnectorError, ExpressionError
from interlink.expressions import compile_interpolation
from interlink.redaction import Redactor
from interlink.spec.connector import ConnectorSpec
from interlink.store import Store

__all__ = ["ConnectorClient", "PreparedRequest"]

_NO_STRINGS: Mapping[str, str] = {}

#: awaited right before a request goes (`ConnectorClient.transmit`)
BeforeSend = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request ready to send: what goes on the wire, and its redacted record."""

    endpoint: str
    method: str
    url: URL
    headers: CIMultiDict[str]
    data: bytes | None
    timeout: float
    #: the request as it may be stored: credentials masked, secrets replaced
    record: ExchangeRequest
    credential_version: int | None = None
    #: why it cannot be sent (getting credentials failed); `transmit` then sends nothing
    error: str | None = None


class ConnectorClient:
    """Outbound calls to one connector, sharing its auth, rate limit and concurrency cap.

    Create one per connector per process (the rate limit and cap are per client) and reuse it.
    """

    def __init__(
        self,
        spec: ConnectorSpec,
        store: Store,
        http: aiohttp.ClientSession,
        *,
        owner: str,
        redactor: Redactor | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.spec = spec
        self.http = http
        #: the calls' connections: the engine shares one pool (and closes it); without one the
        #: client has its own, whose connections end with the upstream's or the process's
        self.pool = pool if pool is not None else ConnectionPool()
        #: secrets of this connector (and tokens it obtains) are added to it
        self.redactor = redactor if redactor is not None else Redactor()
        self.auth: AuthProvider = auth_provider(
            spec, store, http, owner=owner, redactor=self.redactor
        )
        self.retry_policy = RetryPolicy.from_spec(spec.retry)
        #: `cache:` misses being fetched in this process, by (scope, key): a second payload
        #: with the same key waits for the first call instead of making its own
        self.lookups: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._semaphore = asyncio.Semaphore(spec.concurrency)
        self._limiter = (
            RateLimiter(spec.rate_limit.requests, spec.rate_limit.per)
            if spec.rate_limit is not None
            else None
        )

    @property
    def name(self) -> str:
        """The connector's name."""
        return self.spec.name

    async def send(
        self,
        endpoint: str,
        context: Mapping[str, Any],
        body: Any,
        *,
        headers: Mapping[str, str] = _NO_STRINGS,
        query: Mapping[str, str] = _NO_STRINGS,
        idempotency_key: str | None = None,
    ) -> Exchange:
        """Prepare and transmit one request to `endpoint`; return what happened.

        `context` (`payload`, `variables`, `meta`, …) is what the endpoint's path, query and
        headers interpolate. `body`: dict/list → JSON, str → text, None → no body.
        Raises `ConnectorError` for an unknown endpoint and `ExpressionError` when the endpoint
        cannot be rendered; never for an HTTP status or a network failure.
        """
        prepared = await self.prepare(endpoint, context, body, headers=headers, query=query,
                                      idempotency_key=idempotency_key)
        return await self.transmit(prepared)

    async def prepare(
        self,
        endpoint: str,
        context: Mapping[str, Any],
        body: Any,
        *,
        headers: Mapping[str, str] = _NO_STRINGS,
        query: Mapping[str, str] = _NO_STRINGS,
        idempotency_key: str | None = None,
        url: str | None = None,
    ) -> PreparedRequest:
        """Build the request (credentials included, logging in if needed) without sending it.

        `url` (a next page's link) replaces the endpoint's path and query. A flow step
        records the prepared request as an attempt *before* `transmit`, so an attempt that
        may have reached the upstream is never uncounted, whatever crashes.
        """
        spec = self.spec.endpoints.get(endpoint)
        if spec is None:
            known = ", ".join(sorted(self.spec.endpoints))
            raise ConnectorError(
                f"calling {self.name}.{endpoint}: no such endpoint (known: {known})"
            )
        # A path or query value built from a missing field is refused, not sent half-empty.
        path = url or compile_interpolation(spec.path).render_required(context)
        all_query = {} if url else {k: compile_interpolation(v).render_required(context)
                                    for k, v in spec.query.items()}
        all_query.update(query)
        all_headers: CIMultiDict[str] = CIMultiDict()
        for source in (self.spec.headers, spec.headers):
            for name, value in source.items():
                all_headers[name] = compile_interpolation(value).render(context)
        all_headers.update(headers)
        encoded = encode_body(body)
        if encoded.content_type and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = encoded.content_type
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        full = join_url(self.spec.base_url, path)
        timeout = spec.timeout if spec.timeout is not None else self.spec.timeout
        error = None
        version = None
        try:
            applied = await self.auth.apply()
        except AuthError as exc:
            error = str(exc)
        else:
            all_headers.update(applied.headers)
            all_query.update(applied.query)
            version = applied.version
        for name, value in all_headers.items():
            try:
                check_header(name, value)
            except ValueError as exc:  # a value rendered from data, or a token, with a newline
                raise ExpressionError(self.redactor.text(str(exc))) from None
        if all_query:
            full = full.update_query(all_query)
        return PreparedRequest(
            endpoint, spec.method, full, all_headers, encoded.data, timeout,
            self._request_record(spec.method, full, all_headers, encoded.text),
            credential_version=version, error=error,
        )

    async def transmit(self, prepared: PreparedRequest,
                       before_send: BeforeSend | None = None) -> Exchange:
        """Send a prepared request (waiting for the concurrency cap and the rate limit).

        `before_send` is awaited once the request has its place under both, right before it
        goes (or is refused unsent): the attempt's save, which fences the call and holds
        the run's lease for the call's timeout — the waits must come before it, or the hold
        could run out before the call has even started. What it raises propagates."""
        endpoint, request = prepared.endpoint, prepared.record
        if prepared.error is not None:
            if before_send is not None:
                await before_send()
            return Exchange(self.name, endpoint, request, error=prepared.error, error_type="auth")
        async with self._semaphore:
            waited_start = time.monotonic()
            if self._limiter is not None:
                await self._limiter.acquire()
            waited = time.monotonic() - waited_start
            try:
                if before_send is not None:
                    await before_send()
            except BaseException:
                if self._limiter is not None:
                    self._limiter.unused()
                raise
            if self._limiter is not None:
                self._limiter.sent()  # the window counts it from now, after the save
            started = time.monotonic()
            try:
                answer = await self.pool.request(
                    prepared.method, prepared.url, prepared.headers, prepared.data,
                    timeout=prepared.timeout, max_body=self.spec.max_response)
            except CallFailed as exc:
                return Exchange(
                    self.name, endpoint, request, error=exc.message, error_type=exc.kind,
                    elapsed=time.monotonic() - started, waited=waited,
                    credential_version=prepared.credential_version,
                )
            text = answer.text()
            response_headers = _flatten(answer.headers)
            status = answer.status
        elapsed = time.monotonic() - started
        response = _response(status, response_headers, text)
        return Exchange(
            self.name, endpoint, request, response=response, elapsed=elapsed,
            waited=waited, credential_version=prepared.credential_version,
            response_record={
                "status": status,
                "headers": self.redactor.headers(response_headers),
                "body": excerpt(self.redactor.text(text)),
            },
        )

    async def reauthenticate(self, seen_version: int | None,
                             before_login: BeforeLogin | None = None) -> bool:
        """Refresh the connector's credentials unless a version newer than `seen_version`
        exists already (one refresh at a time across all processes). Raises `AuthError`.

        True when this counts as a re-authentication (this call logged in, or the
        credentials are static and cannot be refreshed); False when a newer credential had
        replaced the one the refused request was sent with — retrying with it is free.
        `before_login` is awaited just before this call logs in, if it does.
        """
        return await self.auth.reauthenticate(seen_version, before_login)

    async def replaced(self, seen_version: int | None) -> bool:
        """Whether the credential `seen_version` was replaced by a newer one already (a 401
        answered to it says nothing about the current one)."""
        return await self.auth.replaced(seen_version)

    def _request_record(
        self, method: str, url: URL, headers: Mapping[str, str], body: str | None
    ) -> ExchangeRequest:
        return ExchangeRequest(
            method=method,
            url=self._redacted_url(url),
            headers=self.redactor.headers(_flatten(headers)),
            body=excerpt(self.redactor.text(body)) if body is not None else None,
        )

    def _redacted_url(self, url: URL) -> str:
        # Query values are redacted decoded, so a secret is found however the encoder wrote it.
        if url.query:
            url = url.with_query([(k, self.redactor.text(v)) for k, v in url.query.items()])
        return self.redactor.text(url.human_repr())


def _flatten(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a plain dict; repeated names are joined with `, ` (RFC 9110 §5.3)."""
    flat: dict[str, str] = {}
    lower_to_name: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        # str(): multidict's names are `istr`, which JSON encoders refuse as keys
        key = lower_to_name.setdefault(name.lower(), str(name))
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


def _response(status: int, headers: dict[str, str], text: str) -> ExchangeResponse:
    parsed: Any = None
    has_json = False
    if text.strip():
        try:
            parsed = json_numbers.loads(text)  # an id past 64 bits stays that id
            has_json = True
        except orjson.JSONDecodeError:
            pass
    return ExchangeResponse(status, headers, text, parsed, has_json)
