"""The mapping phase: bounded body reading, parsing by kind (hardened XML), `request.map`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_service_support import Runner, make_app, service

from interlink.services import ActivityResult, call_app
from interlink.services.body import xml_to_data
from interlink.services.context import decode_headers
from interlink.services.failures import MappingFailure

ECHO = [{"on": "default", "status": 200, "body": {"from": "context", "key": "page"}},
        {"on": "mapping_error", "status": 400, "body": {"from": "context", "key": "error"}}]


def _echo(kind: str, mapping: dict[str, str], **extra: Any) -> dict[str, Any]:
    return service(request={"body": kind, "map": mapping, **extra}, responses=ECHO)


async def test_json_body_maps_into_nested_page(tmp_path: Path) -> None:
    """`page.a.b` targets create nested dicts; later entries see earlier ones."""
    app = make_app(tmp_path, [_echo("json", {
        "page.order.id": "request.body.id",
        "page.order.total": "request.body.lines | sum(attribute='price')",
        "page.big": "page.order.total > 10",
    })])
    r = await call_app(app, "POST", "/x", body=b'{"id": 7, "lines": [{"price": 5}, {"price": 6}]}')
    assert (r.status, r.json()) == (200, {"order": {"id": 7, "total": 11}, "big": True})


async def test_request_parts_are_in_the_context(tmp_path: Path) -> None:
    """Method, path, path params, query, lower-case headers and raw text are mappable."""
    app = make_app(tmp_path, [service(path="/orders/{id}", request={"body": "text", "map": {
        "page.m": "request.method", "page.p": "request.path", "page.id": "request.path_params.id",
        "page.q": "request.query.q", "page.h": "request.headers['x-request-id']",
        "page.raw": "request.raw", "page.body": "request.body",
    }}, responses=ECHO)])
    r = await call_app(app, "POST", "/orders/A%201?q=a+b&q=c",
                       headers={"X-Request-ID": "r1"}, body="héllo".encode())
    assert r.json() == {"m": "POST", "p": "/orders/A%201", "id": "A%201", "q": "c", "h": "r1",
                        "raw": "héllo", "body": "héllo"}


def test_repeated_headers_are_joined() -> None:
    """A header sent twice reads as one comma-joined value under its lower-case name."""
    raw = [(b"Accept", b"a/b"), (b"accept", b"c/d"), (b"X-One", b"1")]
    assert decode_headers(raw) == {"accept": "a/b, c/d", "x-one": "1"}


@pytest.mark.parametrize(("kind", "body", "expected"), [
    ("form", b"a=1&b=x+y&c=", {"a": "1", "b": "x y", "c": ""}),
    ("text", b"plain", "plain"),
    ("json", b"", None),
    ("json", b"[1, 2]", [1, 2]),
    ("none", b"ignored", None),
    ("xml", b"<a>1</a>", {"a": "1"}),
])
async def test_body_kinds(tmp_path: Path, kind: str, body: bytes, expected: Any) -> None:
    """Each `request.body` kind parses to the documented shape (empty body → None)."""
    app = make_app(tmp_path, [_echo(kind, {"page.b": "request.body"})])
    r = await call_app(app, "POST", "/x", body=body)
    assert (r.status, r.json()) == (200, {"b": expected})


@pytest.mark.parametrize(("kind", "body", "error_type", "message"), [
    ("json", b'{"a":', "invalid_json", "request body is not valid JSON"),
    ("text", b"\xff\xfe\xfa", "invalid_text", "request body is not valid UTF-8 text"),
    ("form", b"a=\xff", "invalid_text", "request body is not valid UTF-8 text"),
    ("xml", b"<a><b></a>", "invalid_xml", "request body is not well-formed XML"),
    ("xml", b"not xml", "invalid_xml", "request body is not well-formed XML"),
])
async def test_unparseable_bodies_are_mapping_errors(
    tmp_path: Path, kind: str, body: bytes, error_type: str, message: str
) -> None:
    """A body that does not parse as its kind is a mapping error with a plain message."""
    app = make_app(tmp_path, [_echo(kind, {})])
    r = await call_app(app, "POST", "/x", body=body)
    assert r.status == 400
    assert r.json() == {"phase": "mapping", "type": error_type, "message": message,
                        "detail": message}


def test_xml_to_data_shape() -> None:
    """Elements → dicts, attributes under @, text under #text, repeats → lists, ns dropped."""
    raw = b"""<?xml version="1.0" encoding="UTF-8"?>
<o:order xmlns:o="urn:orders" id="A1">
  <!-- a comment -->
  <o:status>HELD</o:status>
  <line sku="s1">2</line>
  <line sku="s2">3</line>
  <line sku="s3"/>
  <note/>
  <total currency="EUR">150.5</total>
</o:order>"""
    assert xml_to_data(raw) == {"order": {
        "@id": "A1",
        "status": "HELD",
        "line": [{"@sku": "s1", "#text": "2"}, {"@sku": "s2", "#text": "3"}, {"@sku": "s3"}],
        "note": "",
        "total": {"@currency": "EUR", "#text": "150.5"},
    }}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<lolz>&lol9;</lolz>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""
XXE_UTF16 = XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode(
    "utf-16")
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://127.0.0.1:1/evil.dtd"><foo>x</foo>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, XXE_UTF16, EXTERNAL_DTD],
                         ids=["billion-laughs", "xxe-file", "xxe-utf16", "external-dtd"])
async def test_xml_declarations_are_refused(tmp_path: Path, body: bytes) -> None:
    """Entity expansion, external entities and DTDs never resolve: a mapping error."""
    app = make_app(tmp_path, [_echo("xml", {"page.b": "request.body"})])
    r = await call_app(app, "POST", "/x", body=body)
    assert r.status == 400
    assert r.json()["type"] in ("forbidden_xml", "invalid_xml")
    assert b"root:" not in r.body
    assert b"lollol" not in r.body


def test_xml_utf16_doctype_is_caught_after_parsing() -> None:
    """A DOCTYPE the byte scan cannot see (UTF-16) is still refused."""
    with pytest.raises(MappingFailure) as caught:
        xml_to_data(XXE_UTF16)
    assert caught.value.kind in ("forbidden_xml", "invalid_xml")


@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "chunked"])
async def test_oversized_body_is_413_without_reading_it_all(
    tmp_path: Path, content_length: bool
) -> None:
    """A body over `max_body` answers 413; the activity never runs."""
    runner = Runner()
    app = make_app(tmp_path, [service(request={"body": "text", "max_body": "1MB"},
                                      activity={"flow": "f"})], runner=runner)
    body = b"x" * (10 * 1024 * 1024)
    r = await call_app(app, "POST", "/x", body=body, content_length=content_length)
    assert r.status == 413
    assert r.json() == {"error": {"phase": "mapping",
                                  "message": "request body larger than 1048576 bytes"}}
    assert runner.calls == []


async def test_declared_oversize_is_refused_before_any_read(tmp_path: Path) -> None:
    """A Content-Length over the limit is refused without calling `receive` at all."""
    app = make_app(tmp_path, [service(request={"body": "text", "max_body": "10B"})])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "query_string": b"",
             "headers": [(b"content-length", b"11")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_body_at_the_limit_is_accepted(tmp_path: Path) -> None:
    """A body exactly `max_body` long is accepted."""
    app = make_app(tmp_path, [service(request={"body": "text", "max_body": "10B"})])
    assert (await call_app(app, "POST", "/x", body=b"x" * 10)).status == 200


async def test_map_into_a_non_mapping_is_a_mapping_error(tmp_path: Path) -> None:
    """Writing `page.a.b` when `page.a` is a string is a mapping error, not a crash."""
    app = make_app(tmp_path, [_echo("json", {"page.a": "'text'", "page.a.b": "1"})])
    r = await call_app(app, "POST", "/x", body=b"{}")
    assert r.status == 400
    assert r.json()["message"] == "mapping page.a.b failed: a is not a mapping"


async def test_failing_map_expression_is_a_mapping_error(tmp_path: Path) -> None:
    """An expression that raises is a mapping error naming the target."""
    app = make_app(tmp_path, [_echo("json", {"page.t": "request.body.n + 'x'"})])
    r = await call_app(app, "POST", "/x", body=b'{"n": 1}')
    assert r.status == 400
    assert r.json()["message"] == "mapping page.t failed"
    assert "request.body.n" in r.json()["detail"]


async def test_activity_sees_the_mapped_context(tmp_path: Path) -> None:
    """The activity runner gets the context with `page` filled by the mapping."""
    runner = Runner(lambda ctx: ActivityResult("succeeded", ctx["page"]["id"] * 2, "run_2"))
    app = make_app(tmp_path, [service(request={"map": {"page.id": "request.body.id"}},
                                      activity={"flow": "f"}, responses=[
        {"on": "default", "status": 200, "body": {"from": "context", "key": "result"}}])],
        runner=runner)
    r = await call_app(app, "POST", "/x", body=b'{"id": 21}')
    assert r.json() == {"status": "succeeded", "payload": 42, "run_id": "run_2"}
    assert runner.calls[0][0] == "svc"


async def test_service_variables_render_per_request(tmp_path: Path) -> None:
    """`variables` render with the request context before `request.map` runs."""
    app = make_app(tmp_path, [service(variables={"who": "caller-{{ request.query.u }}"},
                                      request={"map": {"page.v": "variables.who"}},
                                      responses=ECHO)])
    assert (await call_app(app, "POST", "/x?u=9")).json() == {"v": "caller-9"}
