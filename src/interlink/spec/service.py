"""`services/*.yaml`: an inbound HTTP endpoint, its mapping, activity and response rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from interlink.spec._base import ByteSize, Duration, Expr, Interp, Name, Spec, duration_field

__all__ = [
    "Activity",
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
]


class ContextSource(Spec):
    """The value of an expression over the request context (`page.order.id`)."""

    source: Literal["context"] = Field(alias="from")
    key: Expr
    content_type: str | None = None


class ConstantSource(Spec):
    """A fixed value."""

    source: Literal["constant"] = Field(alias="from")
    value: str | int | float | bool
    content_type: str | None = None


class TemplateSource(Spec):
    """A template file under `templates/`; kind from its extension or `type`."""

    source: Literal["template"] = Field(alias="from")
    template: str
    type: Literal["xml", "html", "json", "text"] | None = None
    content_type: str | None = None


class JsonSource(Spec):
    """JSON built as data; leaf strings may interpolate `{{ … }}`."""

    source: Literal["json"] = Field(alias="from")
    value: Any
    content_type: str | None = None


class FunctionSource(Spec):
    """A Python function `scripts/x.py:name`, called with the context."""

    source: Literal["function"] = Field(alias="from")
    function: str = Field(pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")
    content_type: str | None = None


BodySource = Annotated[
    ContextSource | ConstantSource | TemplateSource | JsonSource | FunctionSource,
    Field(discriminator="source"),
]


class HeaderMapping(Spec):
    """One response header: a name and where its value comes from."""

    name: str
    source: Literal["context", "constant", "template", "function"] = Field(alias="from")
    key: Expr | None = None
    value: str | None = None
    template: str | None = None
    function: str | None = Field(None, pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _has_its_source(self) -> HeaderMapping:
        needed = {"context": "key", "constant": "value", "template": "template",
                  "function": "function"}[self.source]
        if getattr(self, needed) is None:
            raise ValueError(f"header {self.name!r} from {self.source} needs '{needed}'")
        return self


RuleCondition = Literal["default", "mapping_error", "security_error", "service_error"]


class ResponseRule(Spec):
    """One response rule; exactly one of `when`, `queue_when` or `on`."""

    when: Expr | None = None
    queue_when: Expr | None = None
    on: RuleCondition | None = None
    status: int = Field(200, ge=100, le=599)
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
