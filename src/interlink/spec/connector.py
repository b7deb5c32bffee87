"""`connectors/*.yaml`: an external HTTP system, its auth, retry policy and endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from interlink.spec._base import ByteSize, Duration, Expr, Interp, Name, Spec, duration_field
from interlink.spec.paginate import Paginate

__all__ = [
    "ApiKeyCredentials",
    "BasicCredentials",
    "BearerCredentials",
    "ConnectorAuth",
    "ConnectorSpec",
    "Endpoint",
    "LoginRequest",
    "NoCredentials",
    "OAuth2ClientCredentials",
    "RateLimit",
    "RetryPolicySpec",
    "SessionLogin",
]

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class NoCredentials(Spec):
    """Calls carry no credentials."""

    type: Literal["none"] = "none"


class BasicCredentials(Spec):
    """HTTP Basic credentials."""

    type: Literal["basic"]
    username: str
    password: str


class BearerCredentials(Spec):
    """A fixed bearer token."""

    type: Literal["bearer"]
    token: str


class ApiKeyCredentials(Spec):
    """An API key sent in a header (default `X-API-Key`) or a query parameter."""

    type: Literal["api_key"]
    key: str
    header: str | None = Field("X-API-Key", description="header to send the key in")
    query: str | None = Field(None, description="query parameter to send the key in instead")


class OAuth2ClientCredentials(Spec):
    """OAuth 2 client-credentials grant; the token is cached until it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(description="absolute URL, or a path under base_url")
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None


class LoginRequest(Spec):
    """The request that logs in to a session-based API."""

    method: HttpMethod = "POST"
    path: Interp
    headers: dict[str, Interp] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="JSON data to send")
    form: dict[str, str] | None = Field(None, description="form fields to send")


class SessionLogin(Spec):
    """Log in with a request, take a token from its response, send it as a header."""

    type: Literal["session"]
    login: LoginRequest
    token: Expr = Field(description="expression over `response` giving the token")
    header: str = Field("Authorization", description="header the token goes in")
    value: Interp = Field("{{ token }}", description="header value; `token` is in scope")
    ttl: Duration | None = Field(None, description="re-login after this long even without 401")


ConnectorAuth = Annotated[
    NoCredentials
    | BasicCredentials
    | BearerCredentials
    | ApiKeyCredentials
    | OAuth2ClientCredentials
    | SessionLogin,
    Field(discriminator="type"),
]


class RetryPolicySpec(Spec):
    """How a connector step retries: exponential backoff with jitter, `Retry-After` honoured."""

    max_attempts: int = Field(4, ge=1, description="attempts of one step, the first included")
    initial: Duration = duration_field("200ms", "backoff before the second attempt")
    max: Duration = duration_field("30s", "longest backoff")
    multiplier: float = Field(2.0, ge=1.0, description="backoff growth per attempt")
    jitter: Literal["full", "equal", "none"] = Field("full", description="randomisation")
    retry_after_cap: Duration = duration_field("60s", "Retry-After is honoured up to this")
    max_reauth: int = Field(1, ge=0, description="re-authentications per step (code 4)")


class RateLimit(Spec):
    """At most `requests` per `per`; requests over it wait."""

    requests: int = Field(ge=1)
    per: Duration = duration_field("1s", "the window")


class Endpoint(Spec):
    """One operation of the connector."""

    method: HttpMethod = "GET"
    path: Interp = Field(description="path under base_url; may interpolate {{ payload.… }}")
    query: dict[str, Interp] = Field(default_factory=dict)
    headers: dict[str, Interp] = Field(default_factory=dict)
    timeout: Duration | None = Field(None, description="overrides the connector's timeout")
    paginate: Paginate | None = Field(None, description="how to walk the pages of a list")


class ConnectorSpec(Spec):
    """An external HTTP system."""

    name: Name
    description: str = ""
    base_url: str
    timeout: Duration = duration_field("30s", "total time one attempt may take")
    headers: dict[str, Interp] = Field(default_factory=dict, description="sent on every call")
    auth: ConnectorAuth = Field(default_factory=NoCredentials)
    retry: RetryPolicySpec = Field(default_factory=RetryPolicySpec)
    rate_limit: RateLimit | None = None
    concurrency: int = Field(50, ge=1, description="requests in flight at once; more wait")
    max_response: ByteSize = Field(
        16 * 1024 * 1024, description="largest answer body (once decoded); a larger one fails "
        "the attempt (error type protocol)", json_schema_extra={"default": "16MB"})
    endpoints: dict[str, Endpoint] = Field(min_length=1)
