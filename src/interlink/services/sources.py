"""Where a response header or body comes from: context, constant, template, json, function.

Everything is compiled when the app is built; at request time a source only evaluates.
A body becomes bytes plus a Content-Type:

| source | body | Content-Type (unless `content_type` is given) |
|---|---|---|
| `context`, `function` | text; bytes; None → empty; else JSON | text/plain, octet-stream, JSON |
| `constant` | the value as text | text/plain |
| `template` | the rendered template | by kind: application/xml, text/html, … |
| `json` | the data rendered (leaf strings interpolate) | application/json |

Text types carry `; charset=utf-8`; JSON does not need one (RFC 8259 §11).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from interlink.errors import ExpressionError
from interlink.expressions import Template, compile_expression, render_data
from interlink.services.activity import FunctionCaller
from interlink.services.failures import ServiceError
from interlink.spec.service import (
    BodySource,
    ConstantSource,
    ContextSource,
    FunctionSource,
    HeaderMapping,
    JsonSource,
    TemplateSource,
)

__all__ = [
    "JSON",
    "TEXT",
    "BodyBuilder",
    "HeaderBuilder",
    "ResponseBuildError",
    "build_body",
    "build_header",
    "encode_value",
]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
_KIND_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": JSON,
    "text": TEXT,
}

#: RFC 9110 §5.1 field-name (a token)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

Body = tuple[bytes, str]
BodyBuilder = Callable[[dict[str, Any]], Awaitable[Body]]
HeaderBuilder = Callable[[dict[str, Any]], Awaitable[str | None]]


class ResponseBuildError(Exception):
    """A header or body could not be built; the request becomes a service error."""


def encode_value(value: Any) -> Body:
    """A context or function value as a body: text, bytes, nothing, or JSON."""
    if value is None:
        return b"", TEXT
    if isinstance(value, str):
        return value.encode(), TEXT
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    try:
        return orjson.dumps(value, default=str), JSON
    except TypeError as exc:
        raise ResponseBuildError(f"the value cannot be sent as JSON: {exc}") from None


def _split_function(ref: str) -> tuple[str, str]:
    path, _, name = ref.rpartition(":")
    return path, name


def _template(templates: dict[str, Template], service: str, path: str) -> Template:
    template = templates.get(path) or templates.get(path.removeprefix("./"))
    if template is None:
        raise ServiceError(f"service {service}: template {path} is not in the project")
    return template


def _need_caller(caller: FunctionCaller | None, service: str, ref: str) -> FunctionCaller:
    if caller is None:
        raise ServiceError(f"service {service}: {ref} needs a function caller")
    return caller


def _guard(thunk: Callable[[], Any]) -> Any:
    try:
        return thunk()
    except ExpressionError as exc:
        raise ResponseBuildError(str(exc)) from None


def build_body(
    source: BodySource, *, service: str, templates: dict[str, Template],
    caller: FunctionCaller | None,
) -> BodyBuilder:
    """Compile a body source into `async (context) -> (bytes, content_type)`."""
    override = source.content_type

    def typed(body: Body) -> Body:
        return (body[0], override) if override else body

    if isinstance(source, ContextSource):
        value_of = compile_expression(source.key).evaluate

        async def from_context(ctx: dict[str, Any]) -> Body:
            return typed(encode_value(_guard(lambda: value_of(ctx))))

        return from_context
    if isinstance(source, ConstantSource):
        constant = typed((str(source.value).encode(), TEXT))

        async def from_constant(ctx: dict[str, Any]) -> Body:
            return constant

        return from_constant
    if isinstance(source, TemplateSource):
        template = _template(templates, service, source.template)
        content_type = override or _KIND_TYPES[source.type or template.kind]

        async def from_template(ctx: dict[str, Any]) -> Body:
            return (_guard(lambda: template.render(ctx))).encode(), content_type

        return from_template
    if isinstance(source, JsonSource):
        data = source.value

        async def from_json(ctx: dict[str, Any]) -> Body:
            rendered = _guard(lambda: render_data(data, ctx))
            return typed((orjson.dumps(rendered, default=str), JSON))

        return from_json
    assert isinstance(source, FunctionSource)
    function_caller = _need_caller(caller, service, source.function)
    path, name = _split_function(source.function)

    async def from_function(ctx: dict[str, Any]) -> Body:
        try:
            value = await function_caller(path, name, ctx)
        except Exception as exc:  # a user function's failure is a service error
            raise ResponseBuildError(f"{source.function} raised {type(exc).__name__}") from None
        return typed(encode_value(value))

    return from_function


def _header_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else (
        orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
    )
    # A CR or LF would let request data split the response (header injection).
    if "\r" in text or "\n" in text or "\0" in text:
        raise ResponseBuildError(f"header {name}: value contains a line break")
    return text


def build_header(
    mapping: HeaderMapping, *, service: str, templates: dict[str, Template],
    caller: FunctionCaller | None,
) -> HeaderBuilder:
    """Compile a header mapping into `async (context) -> value` (None: header left out)."""
    name = mapping.name
    if not _TOKEN.match(name):
        raise ServiceError(f"service {service}: {name!r} is not a valid header name")
    if mapping.source == "context":
        value_of = compile_expression(mapping.key or "").evaluate

        async def from_context(ctx: dict[str, Any]) -> str | None:
            return _header_text(name, _guard(lambda: value_of(ctx)))

        return from_context
    if mapping.source == "constant":
        try:
            constant = _header_text(name, mapping.value)
        except ResponseBuildError as exc:
            raise ServiceError(f"service {service}: {exc}") from None

        async def from_constant(ctx: dict[str, Any]) -> str | None:
            return constant

        return from_constant
    if mapping.source == "template":
        template = _template(templates, service, mapping.template or "")

        async def from_template(ctx: dict[str, Any]) -> str | None:
            return _header_text(name, (_guard(lambda: template.render(ctx))).strip())

        return from_template
    function_caller = _need_caller(caller, service, mapping.function or "")
    path, fname = _split_function(mapping.function or "")

    async def from_function(ctx: dict[str, Any]) -> str | None:
        try:
            value = await function_caller(path, fname, ctx)
        except Exception as exc:  # a user function's failure is a service error
            raise ResponseBuildError(f"{mapping.function} raised {type(exc).__name__}") from None
        return _header_text(name, value)

    return from_function
