"""Hostile bodies: nesting, XML size and attribute caps, and large bodies parsed off the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from test_service_support import Runner, make_app, service

from interlink.services import call_app
from interlink.services.body import (
    THREAD_PARSE_BYTES,
    json_value,
    parse_body,
    parse_body_off_loop,
    xml_to_data,
)
from interlink.services.failures import MappingFailure
from interlink.spec.project import ServerLimits

ERROR = [{"on": "mapping_error", "status": 422, "body": {"from": "context", "key": "error"}}]


def _deep_json(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def _deep_xml(levels: int) -> bytes:
    return b"<a>" * levels + b"x" + b"</a>" * levels


def _attributes(count: int) -> bytes:
    return b"<a " + b" ".join(b'x%d="1"' % n for n in range(count)) + b"/>"


@pytest.mark.parametrize(("kind", "body", "error_type"), [
    ("json", _deep_json(300), "json_too_deep"),
    ("json", b"[" * 300 + b"]" * 300, "json_too_deep"),
    ("xml", _deep_xml(300), "xml_too_deep"),
    ("xml", _attributes(60_000), "xml_too_large"),
    ("json", b'{"order": {"id": 18446744073709551616}}', "number_too_wide"),
    ("json", b'{"note": "\xff\xfe"}', "invalid_text"),
], ids=["json-object-300", "json-array-300", "xml-300", "xml-60000-attributes", "json-2**64",
        "json-not-utf-8"])
async def test_hostile_bodies_are_mapping_errors(
    tmp_path: Path, kind: str, body: bytes, error_type: str
) -> None:
    """Too deep or too many attributes: the service's `on: mapping_error` rule answers."""
    runner = Runner()
    app = make_app(tmp_path, [service(request={"body": kind}, activity={"flow": "f"},
                                      responses=ERROR)], runner=runner)
    r = await call_app(app, "POST", "/x", body=body)
    assert (r.status, r.json()["type"], r.json()["phase"]) == (422, error_type, "mapping")
    assert runner.calls == []


async def test_limits_come_from_server_config(tmp_path: Path) -> None:
    """`server.limits.max_json_depth` is the limit: 3 levels pass, 4 do not."""
    app = make_app(tmp_path, [service(request={"body": "json"}, responses=ERROR)],
                   server={"limits": {"max_json_depth": 3}})
    assert (await call_app(app, "POST", "/x", body=_deep_json(3))).status == 200
    assert (await call_app(app, "POST", "/x", body=_deep_json(4))).status == 422


def test_json_depth_is_exact_at_the_default() -> None:
    """64 levels parse; 65 are refused, whatever mix of arrays and objects."""
    assert json_value(b"[" * 64 + b"]" * 64) is not None
    assert json_value(_deep_json(64)) is not None
    for body in (b"[" * 65 + b"]" * 65, b'[{"a":' * 33 + b"1" + b"}]" * 33):
        with pytest.raises(MappingFailure, match="deeper than 64"):
            json_value(body)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**40, -(10**30)])
def test_an_integer_past_64_bits_is_refused_not_read_as_a_float(number: int) -> None:
    """orjson reads it as the nearest float: the value passed on would not be the one sent."""
    with pytest.raises(MappingFailure, match="past 64 bits") as raised:
        json_value(b'{"items": [1, {"id": %d}]}' % number)
    assert raised.value.kind == "number_too_wide"


def test_integers_within_64_bits_and_long_digits_elsewhere_are_kept() -> None:
    """The edges of the range, 19+ digits in a string, and a float with a long fraction."""
    body = (b'{"max": 18446744073709551615, "min": -9223372036854775808, '
            b'"phone": "12345678901234567890123", "pi": 3.14159265358979323846}')
    assert json_value(body) == {"max": 2**64 - 1, "min": -(2**63),
                                "phone": "12345678901234567890123", "pi": 3.141592653589793}


def test_upstream_json_keeps_every_integer_exact() -> None:
    from interlink import json_numbers

    assert json_numbers.loads('{"id": 1267650600228229401496703205376, "n": 1}') == \
        {"id": 2**100, "n": 1}
    assert json_numbers.loads(b"[18446744073709551616]") == [2**64]


def test_wide_json_with_many_brackets_is_not_too_deep() -> None:
    """Many brackets side by side (counted, then walked) are not nesting."""
    body = b"[" + b",".join([b'{"a": [1, {"b": []}]}'] * 5_000) + b"]"
    assert len(json_value(body)) == 5_000


@pytest.mark.parametrize(("limits", "body", "message"), [
    (ServerLimits(max_xml_depth=3), _deep_xml(4), "nests deeper than 3 elements"),
    (ServerLimits(max_xml_elements=10), b"<a>" + b"<b/>" * 10 + b"</a>",
     "more than 10 elements"),
    (ServerLimits(max_xml_attributes=2), b'<a><b x="1" y="2" z="3"/></a>',
     "more than 2 attributes"),
])
def test_xml_caps(limits: ServerLimits, body: bytes, message: str) -> None:
    """Depth, element count and attributes per element are each capped by `server.limits`."""
    with pytest.raises(MappingFailure, match=message):
        xml_to_data(body, limits)


def test_xml_at_the_caps_parses() -> None:
    """A document exactly at every cap is accepted."""
    limits = ServerLimits(max_xml_depth=3, max_xml_elements=4, max_xml_attributes=2)
    data = xml_to_data(b'<a><b x="1" y="2"><c>t</c></b><d/></a>', limits)
    assert data == {"a": {"b": {"@x": "1", "@y": "2", "c": "t"}, "d": ""}}


def test_xml_text_is_the_text_before_the_first_child() -> None:
    """Text after a child (its tail) is not the parent's text; comments and PIs vanish."""
    assert xml_to_data(b"<a> x<!-- c -->y <b>1</b> tail <?pi z?></a>") == {
        "a": {"b": "1", "#text": "xy"}}
    assert xml_to_data(b"<a><![CDATA[<q>]]> &amp; r</a>") == {"a": "<q> & r"}


async def _parse_counting_loop_turns(kind: str, raw: bytes) -> tuple[Any, int]:
    """Parse `raw` while a task counts event-loop turns: how many ran during the parse."""
    turns = 0
    stop = threading.Event()

    async def count() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)
    before = turns
    value = await parse_body_off_loop(kind, raw, ServerLimits())
    during = turns - before
    stop.set()
    await counter
    return value, during


@pytest.mark.parametrize("kind", ["json", "xml", "form"])
async def test_large_bodies_parse_while_the_loop_serves(kind: str) -> None:
    """A body above THREAD_PARSE_BYTES is parsed in a thread: the loop turns meanwhile."""
    count = THREAD_PARSE_BYTES // 4
    raw = {"json": b"[" + b",".join([b'"xxxx"'] * count) + b"]",
           "xml": b"<a>" + b"<b>x</b>" * count + b"</a>",
           "form": b"&".join([b"k=vvv"] * count)}[kind]
    assert len(raw) > THREAD_PARSE_BYTES
    value, during = await _parse_counting_loop_turns(kind, raw)
    assert value == parse_body(kind, raw)
    assert during > 0


async def test_small_bodies_parse_inline() -> None:
    """A small body is parsed at once, without a hand-off to a thread."""
    value, during = await _parse_counting_loop_turns("json", b'{"a": [1, 2]}')
    assert (value, during) == ({"a": [1, 2]}, 0)
