"""`services/*.yaml`: an inbound HTTP endpoint, its mapping, activity and response rules."""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from interlink.spec._base import ByteSize, Duration, Expr, Interp, Name, Spec, duration_field

__all__ = [
    "CONTEXT_NAMES",
    "FORBIDDEN_HEADERS",
    "HEADER_NAME",
    "Activity",
    "ActivityBodySource",
    "BodySource",
    "ConstantSource",
    "ContextSource",
    "FunctionSource",
    "HeaderMapping",
    "JsonSource",
    "RequestProcessor",
    "RequestSpec",
    "ResponseRule",
    "ServiceSpec",
    "TemplateSource",
    "content_type_charset",
    "unquote_constant",
]


#: the names a service's expressions read (the request context); a named condition may not
#: take one
CONTEXT_NAMES = frozenset({"request", "page", "result", "error", "queue_item_id", "session",
                           "service", "variables", "timings"})

#: RFC 9110 §5.1 field-name (a token)
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: headers that frame the message: the engine computes them, a rule may not set them
FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding"})

_FUNCTION = r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$"
_DESCRIPTION = "a short description (kept in the OpenAPI document)"
_CONTENT_TYPE = (
    "the Content-Type sent; a charset (`text/plain; charset=iso-8859-1`) encodes the body in it"
)


def _check_content_type(value: str | None) -> str | None:
    if value is not None:
        charset = content_type_charset(value)
        if charset is not None:
            try:
                codecs.lookup(charset)
            except LookupError:
                raise ValueError(f"unknown charset {charset!r} in {value!r}") from None
    return value


class _Body(Spec):
    """What every body source has: a Content-Type override and a description."""

    content_type: str | None = Field(None, description=_CONTENT_TYPE)
    description: str = Field("", description=_DESCRIPTION)

    _content_type = field_validator("content_type")(_check_content_type)


class ContextSource(_Body):
    """The value of an expression over the request context (`page.order.id`)."""

    source: Literal["context"] = Field(alias="from")
    key: Expr


class ConstantSource(_Body):
    """A fixed value; one pair of surrounding double quotes is removed (`'"  a b "'` sends
    `  a b `), so that blanks at either end are kept visibly."""

    source: Literal["constant"] = Field(alias="from")
    value: str | int | float | bool


class TemplateSource(_Body):
    """A template file under `templates/`; kind from `type`, else from its extension."""

    source: Literal["template"] = Field(alias="from")
    template: str
    type: Literal["xml", "html", "json", "text"] | None = Field(
        None, description="xml and html autoescape; wins over the file's extension")


class JsonSource(_Body):
    """JSON built as data; leaf strings may interpolate `{{ … }}`."""

    source: Literal["json"] = Field(alias="from")
    value: Any


class FunctionSource(_Body):
    """A Python function `scripts/x.py:name`, called with the context; with `key`, the key's
    value is in the context as `value`."""

    source: Literal["function"] = Field(alias="from")
    function: str = Field(pattern=_FUNCTION)
    key: Expr | None = Field(
        None, description="expression whose value the function gets as context['value']")


class ActivityBodySource(_Body):
    """What the activity produced (`result.payload`), sent as it is: text, bytes or HTML (the
    source document's HTML Frame). A payload `{content_type, body}` names its own type."""

    source: Literal["activity"] = Field(alias="from")


BodySource = Annotated[
    ContextSource | ConstantSource | TemplateSource | JsonSource | FunctionSource
    | ActivityBodySource,
    Field(discriminator="source"),
]


class HeaderMapping(Spec):
    """One response header: a name and where its value comes from."""

    name: str = Field(description="a valid header name; not Content-Length or "
                      "Transfer-Encoding (the engine frames the body)")
    source: Literal["context", "constant", "template", "function"] = Field(alias="from")
    key: Expr | None = Field(None, description="context: the expression; function: the "
                             "expression whose value the function gets as context['value']")
    value: str | None = Field(None, description="constant: the value (surrounding double "
                              "quotes are removed, keeping the blanks inside)")
    template: str | None = None
    function: str | None = Field(None, pattern=_FUNCTION)
    description: str = Field("", description=_DESCRIPTION)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name (letters, digits and "
                             "!#$%&'*+-.^_`|~, no blanks)")
        if name.lower() in FORBIDDEN_HEADERS:
            raise ValueError(f"{name} is computed by the engine from the body; a rule may "
                             "not set it")
        return name

    @model_validator(mode="after")
    def _has_its_source(self) -> HeaderMapping:
        needed = {"context": "key", "constant": "value", "template": "template",
                  "function": "function"}[self.source]
        if getattr(self, needed) is None:
            raise ValueError(f"header {self.name!r} from {self.source} needs '{needed}'")
        return self


def unquote_constant(value: str) -> str:
    """A constant as sent: one pair of surrounding double quotes removed (`'"  a "'` →
    `  a `); any other value as it is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def content_type_charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type value, lower-cased, or None."""
    if "charset" not in content_type.lower():
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


RuleCondition = Literal["default", "mapping_error", "security_error", "service_error"]


class ResponseRule(Spec):
    """One response rule; exactly one of `when`, `queue_when` or `on`."""

    when: Expr | None = None
    queue_when: Expr | None = None
    on: RuleCondition | None = None
    status: int | None = Field(
        None, ge=100, le=599, description="default: the condition's own status — 200 on "
        "success, 202 once queued, 401 for security errors, 500 for mapping and service errors")
    headers: list[HeaderMapping] = Field(default_factory=list)
    body: BodySource | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_condition(self) -> ResponseRule:
        given = [k for k in ("when", "queue_when", "on") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a response rule needs exactly one of 'when', 'queue_when' or 'on'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class RequestSpec(Spec):
    """How the request is parsed and mapped into `page`."""

    body: Literal["json", "xml", "form", "text", "none"] = "json"
    map: dict[str, Expr] = Field(
        default_factory=dict, description="target (page.x.y) → expression over the context"
    )
    max_body: ByteSize = Field(
        1024 * 1024, description="larger bodies are refused with 413",
        json_schema_extra={"default": "1MB"},
    )


class Activity(Spec):
    """What the service does: run a flow, or a script; omit for nothing."""

    flow: Name | None = None
    script: str | None = None
    input: Expr | None = Field(
        None, description="the payload handed to the flow or script (default: page, or the "
        "request body when nothing was mapped)",
    )
    timeout: Duration = duration_field("30s", "longer activities are a service error")

    @model_validator(mode="after")
    def _one_kind(self) -> Activity:
        if (self.flow is None) == (self.script is None):
            raise ValueError("an activity needs exactly one of 'flow' or 'script'")
        return self


class RequestProcessor(Spec):
    """Re-runs queued requests (queue_when, or execution: async)."""

    max_attempts: int = Field(3, ge=1)
    delay: Duration = duration_field("10s", "wait before the first retry")
    backoff: float = Field(2.0, ge=1.0, description="each later wait is this many times longer")
    keep_failed: bool = Field(True, description="keep exhausted items as 'broken' for requeue")
    keep_results: bool = Field(True, description="store the outcome for GET /_interlink/queue/ID")


class ServiceSpec(Spec):
    """An inbound HTTP service."""

    name: Name
    description: str = ""
    package: Name | None = Field(None, description="package giving auth and processing mode")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/", description="may hold {params}")
    request: RequestSpec = Field(default_factory=RequestSpec)
    activity: Activity | None = None
    execution: Literal["sync", "async"] = "sync"
    request_processor: RequestProcessor | None = None
    responses: list[ResponseRule] = Field(default_factory=list)
    variables: dict[str, Interp] = Field(default_factory=dict)
    server_timing: bool = Field(
        False, description="send each phase's duration in a Server-Timing header"
    )
