"""`interlink.yaml`: the project's name, store, server, admin access, worker, service
packages and notifications."""

from __future__ import annotations

import keyword
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from interlink.spec._base import ByteSize, Duration, Expr, Name, Spec, duration_field
from interlink.spec.notify import NotifyConfig
from interlink.spec.service import CONTEXT_NAMES

__all__ = [
    "MAX_SERVER_WORKERS",
    "MIN_ADMIN_TOKEN_LENGTH",
    "AdminConfig",
    "AdminListen",
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "HmacAuth",
    "NoAuth",
    "Package",
    "PackageAuth",
    "ProjectConfig",
    "ScriptsConfig",
    "ServerConfig",
    "ServerLimits",
    "SessionConfig",
    "WorkerConfig",
]


class NoAuth(Spec):
    """No authentication: every caller is let in."""

    type: Literal["none"] = "none"


class BasicAuth(Spec):
    """HTTP Basic: `users` maps user names to passwords (usually `{{ env.… }}`)."""

    type: Literal["basic"]
    users: dict[str, str] = Field(description="user name → password")
    realm: str = Field("interlink", description="realm named in WWW-Authenticate")


class ApiKeyAuth(Spec):
    """An API key in a header (default `X-API-Key`) or a query parameter."""

    type: Literal["api_key"]
    keys: list[str] = Field(min_length=1, description="accepted keys")
    header: str | None = Field("X-API-Key", description="header carrying the key")
    query: str | None = Field(None, description="query parameter carrying the key instead")


class BearerAuth(Spec):
    """`Authorization: Bearer <token>` with one of `tokens`."""

    type: Literal["bearer"]
    tokens: list[str] = Field(min_length=1, description="accepted tokens")


class HmacAuth(Spec):
    """A signature of the request in a header, compared in constant time.

    With `timestamp_header` the signature covers `{timestamp}.{METHOD}.{path?query}.{body}`,
    the timestamp must be within `tolerance` of the server's clock and a signature is accepted
    once; without it, the signature covers the raw body alone and can be replayed.
    """

    type: Literal["hmac"]
    secret: str = Field(description="shared secret")
    header: str = Field("X-HMAC-HASH", description="header carrying the signature")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field("sha256", description="digest")
    encoding: Literal["hex", "base64"] = Field("hex", description="how the signature is written")
    timestamp_header: str | None = Field(
        None, description="header carrying the request's Unix time in seconds; set, the "
        "signature covers timestamp, method, path and query and body, and is accepted once")
    tolerance: Duration = duration_field(
        "5m", "how far the timestamp may be from the server's clock, either way")


PackageAuth = Annotated[
    NoAuth | BasicAuth | ApiKeyAuth | BearerAuth | HmacAuth, Field(discriminator="type")
]


class SessionConfig(Spec):
    """How a stateful package keeps its sessions."""

    cookie: str = Field("INTERLINK_SESSION", description="name of the session cookie")
    ttl: Duration = duration_field("30m", "idle time after which a session expires")


class Package(Spec):
    """A group of services sharing authentication and processing mode."""

    auth: PackageAuth = Field(default_factory=NoAuth, description="how callers authenticate")
    processing: Literal["stateless", "stateful"] = Field(
        "stateless", description="stateful keeps a session per caller, carried by a cookie"
    )
    session: SessionConfig = Field(default_factory=SessionConfig, description="stateful only")


def _size_field(default: int, written: str, description: str) -> Any:
    return Field(default, description=description, json_schema_extra={"default": written})


class ServerLimits(Spec):
    """What a caller may send. Over a limit the request is refused with a 4xx (or the
    service's `on: mapping_error` rule), never a 500 or a stalled event loop."""

    header_timeout: Duration = duration_field(
        "10s", "request line and headers must arrive within this, else 408 and the connection "
        "is closed")
    body_timeout: Duration = duration_field(
        "30s", "the whole body must arrive within this after the headers, else 408 and the "
        "connection is closed")
    idle_timeout: Duration = duration_field(
        "5s", "a keep-alive connection with no request for this long is closed")
    max_header_bytes: ByteSize = _size_field(
        64 * 1024, "64KB", "request line and headers together; larger → 431 (a URL → 414), "
        "closed")
    max_headers: int = Field(100, ge=1, description="header lines; more → 431, closed")
    max_connections: int = Field(
        1000, ge=1, description="open connections; one more is answered 503 and closed")
    max_body: ByteSize = _size_field(
        10 * 1024 * 1024, "10MB", "largest webhook body (services set request.max_body, the "
        "runs endpoint admin.max_body); larger → 413")
    max_json_depth: int = Field(
        64, ge=1, le=200, description="nesting of JSON arrays and objects; deeper → 400 or a "
        "service's mapping error")
    max_xml_depth: int = Field(
        64, ge=1, le=200, description="nesting of XML elements; deeper → a mapping error")
    max_xml_elements: int = Field(
        100_000, ge=1, description="elements in one XML document; more → a mapping error")
    max_xml_attributes: int = Field(
        256, ge=1, description="attributes on one XML element; more → a mapping error")


#: most server processes `server.workers` (or `serve --workers`) may ask for
MAX_SERVER_WORKERS = 64


class ServerConfig(Spec):
    """Where `interlink serve` listens, and what it accepts from callers."""

    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8080, ge=0, le=65535, description="port to bind (0 picks a free one)")
    limits: ServerLimits = Field(default_factory=ServerLimits,
                                 description="sizes, depths, counts and timeouts of requests")
    access_log: bool = Field(True, description="log one line per request (method, path with "
                             "query values masked, status, milliseconds)")
    workers: int = Field(
        1, ge=1, le=MAX_SERVER_WORKERS, description="server processes sharing the port, each "
        "with its own worker and scheduler (more than 1 needs a PostgreSQL store); "
        "`serve --workers` overrides it")


#: shortest admin token accepted (`openssl rand -hex 32` makes 64 characters)
MIN_ADMIN_TOKEN_LENGTH = 16


class AdminListen(Spec):
    """A listener of its own for the engine's endpoints."""

    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(ge=0, le=65535, description="port to bind")


class AdminConfig(Spec):
    """Who may use the engine's endpoints (`/_interlink/*` but health, and `/metrics`)."""

    token: str | list[str] | None = Field(
        None, description="accepted `Authorization: Bearer` tokens (several while rotating); "
        "without one, only loopback callers are answered")
    max_body: ByteSize = _size_field(
        1024 * 1024, "1MB", "largest POST /_interlink/flows/{name}/runs body; larger → 413")
    listen: AdminListen | None = Field(
        None, description="serve the engine endpoints here only (the main listener keeps "
        "services, webhooks and /_interlink/health)")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: str | list[str] | None) -> str | list[str] | None:
        tokens = [value] if isinstance(value, str) else value or []
        if value is not None and not tokens:
            raise ValueError("list at least one token, or leave token out")
        if any(len(token) < MIN_ADMIN_TOKEN_LENGTH for token in tokens):
            raise ValueError(f"an admin token needs at least {MIN_ADMIN_TOKEN_LENGTH} "
                             "characters (`openssl rand -hex 32` makes a good one)")
        return value

    @property
    def tokens(self) -> tuple[str, ...]:
        """The accepted tokens (none: loopback callers only)."""
        if self.token is None:
            return ()
        return (self.token,) if isinstance(self.token, str) else tuple(self.token)


class WorkerConfig(Spec):
    """How a worker claims and runs queue items."""

    concurrency: int = Field(16, ge=1, description="queue items run at once per process")
    lease: Duration = duration_field("30s", "how long a claim lasts before it is renewed")
    poll: Duration = duration_field("500ms", "idle wait between claims when the queue is empty")
    keep_finished: Duration = duration_field(
        "7d", "how long a finished queue item (a service request's answer, a notification "
        "sent) is kept before housekeeping deletes it")
    keep_runs: Duration | None = duration_field(
        "30d", "how long a run that succeeded or was stopped is kept (its steps, attempts and "
        "log lines with it) before housekeeping deletes it; null: for ever. A webhook "
        "delivery repeated after that starts a new run")
    keep_failed_runs: Duration | None = Field(
        None, description="the same for runs that failed or partly failed (they wait for an "
        "operator's retry); null (the default): kept for ever")


class ScriptsConfig(Spec):
    """The pool of isolated processes user scripts run in."""

    processes: int = Field(2, ge=1, description="worker processes in the pool")
    timeout: Duration = duration_field("10s", "default time limit of one script call")
    memory: int = Field(512, ge=16, description="memory limit of a script process, in MB")


class ProjectConfig(Spec):
    """The contents of `interlink.yaml`."""

    name: Name = Field(description="the project's name")
    store: str = Field(
        "sqlite:///.interlink/interlink.db",
        description="sqlite:///relative/or/absolute/path.db or postgresql://user:pw@host/db",
    )
    server: ServerConfig = Field(default_factory=ServerConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig,
                               description="access to the engine's endpoints")
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    scripts: ScriptsConfig = Field(default_factory=ScriptsConfig)
    packages: dict[str, Package] = Field(
        default_factory=dict, description="service packages by name"
    )
    notify: NotifyConfig = Field(default_factory=NotifyConfig,
                                 description="where failures are reported (docs/notifications.md)")
    conditions: dict[str, Expr] = Field(
        default_factory=dict, description="named when conditions (`high_value: \"page.order."
        "total > 1000\"`), used by any service's rules as `when: high_value`",
    )

    @field_validator("conditions")
    @classmethod
    def _condition_names(cls, conditions: dict[str, str]) -> dict[str, str]:
        for name in conditions:
            if not name.isidentifier() or keyword.iskeyword(name) or name in _NOT_NAMES:
                raise ValueError(f"condition name {name!r} must be a plain name that is not "
                                 "a context entry (request, page, result, …) or a keyword")
        return conditions

    def credentials(self) -> set[str]:
        """The secrets callers present: admin tokens and the packages' passwords, keys,
        tokens and HMAC secrets; and the notification channels' webhook URLs and SMTP
        passwords (masked wherever the engine writes, however they were set)."""
        found = set(self.admin.tokens)
        for channel in self.notify.channels.values():
            if channel.webhook is not None:
                found.add(channel.webhook.url)
            if channel.email is not None and channel.email.password is not None:
                found.add(channel.email.password)
        for package in self.packages.values():
            auth = package.auth
            if isinstance(auth, BasicAuth):
                found |= set(auth.users.values())
            elif isinstance(auth, ApiKeyAuth):
                found |= set(auth.keys)
            elif isinstance(auth, BearerAuth):
                found |= set(auth.tokens)
            elif isinstance(auth, HmacAuth):
                found.add(auth.secret)
        return found


_NOT_NAMES = CONTEXT_NAMES | {"true", "false", "none", "and", "or", "not", "in", "is", "env"}
