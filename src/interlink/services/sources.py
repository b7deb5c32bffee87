"""Where a response header or body comes from: context, constant, template, json, function,
activity.

Everything is compiled when the app is built; at request time a source only evaluates.
A body becomes bytes plus a Content-Type:

| source | body | Content-Type (unless `content_type` is given) |
|---|---|---|
| `context`, `function` | text; bytes; None → empty; else JSON | text/plain, octet-stream, JSON |
| `constant` | the value as text, one pair of surrounding `"` removed | text/plain |
| `template` | the rendered template | by kind (`type`, else extension): application/xml, … |
| `json` | the data rendered (leaf strings interpolate) | application/json |
| `activity` | `result.payload` as it is (HTML Frame) | its own, or sniffed (see below) |

Text types carry `; charset=utf-8`; JSON does not need one (RFC 8259 §11). A `content_type`
with another charset (`text/plain; charset=iso-8859-1`) encodes text in it; a character it
cannot hold is a service error, except in XML and HTML, where it becomes a character reference.
A `from: function` with `key` finds the key's value in its context as `value`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from interlink.errors import ExpressionError
from interlink.expressions import Template, compile_expression, render_data
from interlink.services.activity import FunctionCaller
from interlink.services.failures import ServiceError
from interlink.spec.service import (
    HEADER_NAME,
    ActivityBodySource,
    BodySource,
    ConstantSource,
    ContextSource,
    FunctionSource,
    HeaderMapping,
    JsonSource,
    TemplateSource,
    content_type_charset,
    unquote_constant,
)

__all__ = [
    "JSON",
    "TEXT",
    "BodyBuilder",
    "HeaderBuilder",
    "ResponseBuildError",
    "activity_body",
    "build_body",
    "build_header",
    "encode_value",
    "text_encoder",
]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
_KIND_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": JSON,
    "text": TEXT,
}

Body = tuple[bytes, str]
BodyBuilder = Callable[[dict[str, Any]], Awaitable[Body]]
HeaderBuilder = Callable[[dict[str, Any]], Awaitable[str | None]]


class ResponseBuildError(Exception):
    """A header or body could not be built; the request becomes a service error."""


Encode = Callable[[str], bytes]


def _utf8(text: str) -> bytes:
    return text.encode()


def text_encoder(content_type: str | None) -> Encode:
    """How text is encoded for `content_type`: by its charset (UTF-8 when it names none)."""
    charset = content_type_charset(content_type) if content_type else None
    if charset is None or charset in ("utf-8", "utf8"):
        return _utf8
    lowered = str(content_type).lower()
    errors = "xmlcharrefreplace" if "xml" in lowered or "html" in lowered else "strict"

    def encode(text: str) -> bytes:
        try:
            return text.encode(charset, errors)
        except UnicodeEncodeError as exc:
            raise ResponseBuildError(
                f"the body cannot be encoded as {charset}: {exc.reason} "
                f"({text[exc.start:exc.end]!r})") from None

    return encode


def encode_value(value: Any, encode: Encode = _utf8) -> Body:
    """A context or function value as a body: text, bytes, nothing, or JSON."""
    if value is None:
        return b"", TEXT
    if isinstance(value, str):
        return encode(value), TEXT
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    try:
        data = orjson.dumps(value, default=str)
    except TypeError as exc:
        raise ResponseBuildError(f"the value cannot be sent as JSON: {exc}") from None
    return (data if encode is _utf8 else encode(data.decode())), JSON


def _sniffed(text: str) -> str:
    start = text.lstrip()[:5].lower()
    if start.startswith("<?xml"):
        return _KIND_TYPES["xml"]
    return _KIND_TYPES["html"] if start.startswith("<") else TEXT


def activity_body(payload: Any, override: str | None) -> Body:
    """What the activity produced, sent as it is (the source document's HTML Frame).

    A payload `{"content_type": …, "body": …}` carries its own type; text is sent with the
    rule's `content_type`, else as XML (`<?xml`), HTML (`<…`) or plain text; bytes as
    octet-stream; None as nothing; anything else as JSON.
    """
    content_type = override
    if (type(payload) is dict and len(payload) == 2 and "body" in payload
            and isinstance(payload.get("content_type"), str)):
        content_type = override or payload["content_type"]
        payload = payload["body"]
    if isinstance(payload, str) and content_type is None:
        content_type = _sniffed(payload)
    body, default = encode_value(payload, text_encoder(content_type))
    return body, content_type or default


def _split_function(ref: str) -> tuple[str, str]:
    path, _, name = ref.rpartition(":")
    return path, name


def _template(templates: dict[str, Template], service: str, path: str,
              kind: str | None = None) -> Template:
    template = templates.get(path) or templates.get(path.removeprefix("./"))
    if template is None:
        raise ServiceError(f"service {service}: template {path} is not in the project")
    # The declared type wins over the extension: `type: xml` on a .txt autoescapes as XML.
    return template if kind is None else template.as_kind(kind)


def _need_caller(caller: FunctionCaller | None, service: str, ref: str) -> FunctionCaller:
    if caller is None:
        raise ServiceError(f"service {service}: {ref} needs a function caller")
    return caller


def _guard(thunk: Callable[[], Any]) -> Any:
    try:
        return thunk()
    except ExpressionError as exc:
        raise ResponseBuildError(str(exc)) from None


FunctionValue = Callable[[dict[str, Any]], Awaitable[Any]]


def _function(caller: FunctionCaller | None, service: str, ref: str,
              key: str | None) -> FunctionValue:
    """`async (context) -> value` of a `from: function`; with `key`, the context it is called
    with has the key's value as `value`. What the function raised is in the error's detail
    (logged, redacted), never in the answer."""
    function_caller = _need_caller(caller, service, ref)
    path, name = _split_function(ref)
    value_of = compile_expression(key).evaluate if key is not None else None

    async def call(ctx: dict[str, Any]) -> Any:
        if value_of is not None:
            ctx = {**ctx, "value": _guard(lambda: value_of(ctx))}
        try:
            return await function_caller(path, name, ctx)
        except Exception as exc:  # a user function's failure is a service error
            reason = str(exc) or type(exc).__name__
            raise ResponseBuildError(f"calling {ref}: {reason}") from None

    return call


def build_body(
    source: BodySource, *, service: str, templates: dict[str, Template],
    caller: FunctionCaller | None,
) -> BodyBuilder:
    """Compile a body source into `async (context) -> (bytes, content_type)`."""
    override = source.content_type
    encode = text_encoder(override)

    def typed(body: Body) -> Body:
        return (body[0], override) if override else body

    if isinstance(source, ContextSource):
        value_of = compile_expression(source.key).evaluate

        async def from_context(ctx: dict[str, Any]) -> Body:
            return typed(encode_value(_guard(lambda: value_of(ctx)), encode))

        return from_context
    if isinstance(source, ConstantSource):
        text = source.value if isinstance(source.value, str) else str(source.value)
        try:
            constant = typed((encode(unquote_constant(text)), TEXT))
        except ResponseBuildError as exc:
            raise ServiceError(f"service {service}: {exc}") from None

        async def from_constant(ctx: dict[str, Any]) -> Body:
            return constant

        return from_constant
    if isinstance(source, TemplateSource):
        template = _template(templates, service, source.template, source.type)
        content_type = override or _KIND_TYPES[template.kind]

        async def from_template(ctx: dict[str, Any]) -> Body:
            return encode(_guard(lambda: template.render(ctx))), content_type

        return from_template
    if isinstance(source, JsonSource):
        data = source.value

        async def from_json(ctx: dict[str, Any]) -> Body:
            rendered = _guard(lambda: render_data(data, ctx))
            out = orjson.dumps(rendered, default=str)
            return typed((out if encode is _utf8 else encode(out.decode()), JSON))

        return from_json
    if isinstance(source, ActivityBodySource):

        async def from_activity(ctx: dict[str, Any]) -> Body:
            result = ctx["result"]
            return activity_body(None if result is None else result["payload"], override)

        return from_activity
    assert isinstance(source, FunctionSource)
    call = _function(caller, service, source.function, source.key)

    async def from_function(ctx: dict[str, Any]) -> Body:
        return typed(encode_value(await call(ctx), encode))

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
    if not HEADER_NAME.match(name):  # the spec refuses it; kept for specs built in code
        raise ServiceError(f"service {service}: {name!r} is not a valid header name")
    if mapping.source == "context":
        value_of = compile_expression(mapping.key or "").evaluate

        async def from_context(ctx: dict[str, Any]) -> str | None:
            return _header_text(name, _guard(lambda: value_of(ctx)))

        return from_context
    if mapping.source == "constant":
        try:
            constant = _header_text(name, unquote_constant(mapping.value or ""))
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
    call = _function(caller, service, mapping.function or "", mapping.key)

    async def from_function(ctx: dict[str, Any]) -> str | None:
        return _header_text(name, await call(ctx))

    return from_function
