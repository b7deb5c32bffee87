"""The source document's Response tab, item by item: default statuses, conditions over missing
values, named conditions, function keys, quoted constants, HTML Frame, charsets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_service_support import Caller, Runner, make_app, service

from interlink.services import ActivityResult, build_services_app, call_app
from interlink.services.openapi import openapi_document
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.store import Store, open_store

ORDER = b'{"order": {"id": "A1", "status": "HELD"}}'
BASIC = {"people": {"auth": {"type": "basic", "users": {"ann": "pw"}}}}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in the test's folder (queueing needs one)."""
    async with open_store("sqlite:///store.db", tmp_path) as opened:
        yield opened


def _mapped(*rules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return service(request={"map": {"page.order": "request.body.order"}},
                   responses=list(rules), **fields)


# --- 1. a rule without `status` keeps its condition's -----------------------------------


@pytest.mark.parametrize(("rule", "kwargs", "status"), [
    ({"on": "mapping_error"}, {"body": b"{bad"}, 500),
    ({"on": "service_error"}, {"body": ORDER}, 500),
    ({"when": "error is not none"}, {"body": ORDER}, 500),
    ({"when": "page.order.id == 'A1'"}, {"body": ORDER}, 200),
    ({"on": "default"}, {"body": ORDER}, 200),
])
async def test_a_rule_without_status_keeps_the_outcomes_status(
    tmp_path: Path, rule: dict[str, Any], kwargs: dict[str, Any], status: int
) -> None:
    """An error rule that only sets a body answers 500, a success rule 200."""
    failing = "service_error" in str(rule) or "error is" in str(rule)
    app = make_app(tmp_path, [_mapped({**rule, "body": {"from": "constant", "value": "mine"}},
                                      activity={"flow": "f"})],
                   runner=Runner(error=RuntimeError("down")) if failing else Runner())
    r = await call_app(app, "POST", "/x", **kwargs)
    assert (r.status, r.text) == (status, "mine")


async def test_a_security_error_rule_without_status_is_401_with_its_challenge(
    tmp_path: Path,
) -> None:
    """`on: security_error` with only a body answers 401 and keeps WWW-Authenticate."""
    app = make_app(tmp_path, [service(package="people", responses=[
        {"on": "security_error", "body": {"from": "constant", "value": "who are you?"}}])],
        packages=BASIC)
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.text) == (401, "who are you?")
    assert r.headers["www-authenticate"] == 'Basic realm="interlink", charset="UTF-8"'


async def test_a_queue_when_without_status_is_202(tmp_path: Path, store: Store) -> None:
    """A matching `queue_when` without `status` answers 202 with its body."""
    app = make_app(tmp_path, [_mapped(
        {"queue_when": "page.order.status == 'HELD'",
         "body": {"from": "context", "key": "queue_item_id"}},
        activity={"flow": "f"})], runner=Runner(), store=store)
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 202
    assert r.text.startswith("q_")


def test_openapi_lists_the_default_status_of_a_rule_without_one(tmp_path: Path) -> None:
    """The OpenAPI document shows 401 for a security rule and 200 + 500 for a `when`."""
    project = Project(root=tmp_path, config=ProjectConfig.model_validate(
        {"name": "t", "packages": BASIC}), services={"svc": ServiceSpec.model_validate(service(
            package="people", activity={"flow": "f"}, responses=[
                {"on": "security_error", "description": "no entry"},
                {"when": "page.x == 1", "headers": [
                    {"name": "X-Why", "from": "constant", "value": "x",
                     "description": "why it matched"}],
                 "body": {"from": "constant", "value": "x", "description": "a letter"}}]))})
    responses = openapi_document(project)["paths"]["/x"]["post"]["responses"]
    assert responses["401"]["description"] == "on: security_error: no entry"
    assert "www-authenticate" in {h.lower() for h in responses["401"]["headers"]}
    assert responses["200"]["headers"]["X-Why"]["description"] == "why it matched"
    assert responses["200"]["content"]["text/plain; charset=utf-8"]["schema"] == {
        "type": "string", "description": "a letter"}
    assert "when `page.x == 1`" in responses["500"]["description"]


# --- 2. conditions over missing values ---------------------------------------------------


@pytest.mark.parametrize("condition", [
    "page.order.total > 100",                  # no total
    "result.payload.item.price > 100",         # result.payload is none (activity failed)
    "page.order.total * 2 >= 100",             # arithmetic on a missing value
    "'x' in page.order.tags",                  # `in` a missing list
    "page.order.missing.startswith('A')",      # a method of a missing value
])
async def test_a_condition_over_a_missing_value_is_false(tmp_path: Path, condition: str) -> None:
    """A comparison involving a missing value is false: the next rule answers."""
    app = make_app(tmp_path, [_mapped(
        {"when": condition, "status": 299},
        {"when": "error is not none", "status": 503},
        {"on": "default", "status": 201}, activity={"flow": "f"})],
        runner=Runner(ActivityResult("failed", None, "run_1")))
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 503


async def test_missing_values_equal_none_in_a_condition(tmp_path: Path) -> None:
    """`page.order.total is none` and `== none` hold for a missing (or null) value."""
    app = make_app(tmp_path, [_mapped(
        {"when": "page.order.total is none and page.order.note == none", "status": 204},
        {"on": "default", "status": 200})])
    r = await call_app(app, "POST", "/x", body=b'{"order": {"note": null}}')
    assert r.status == 204


async def test_a_condition_broken_otherwise_is_a_logged_service_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A condition failing for another reason (`'HELD' > 1`) is a service error, logged."""
    app = make_app(tmp_path, [_mapped({"when": "page.order.status > 1", "status": 299},
                                      {"on": "default", "status": 200})])
    with caplog.at_level(logging.WARNING, "interlink.services"):
        r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 500
    assert "'>' not supported between instances of 'str' and 'int'" in caplog.text


# --- 3. named conditions ------------------------------------------------------------------


async def test_named_conditions_are_shared_by_rules(tmp_path: Path, store: Store) -> None:
    """`when: high_value` and `queue_when: high_value` use `conditions.high_value`."""
    services = [
        service(name="a", path="/a", request={"map": {"page.order": "request.body.order"}},
                responses=[{"when": "high_value", "status": 299}]),
        service(name="b", path="/b", request={"map": {"page.order": "request.body.order"}},
                activity={"flow": "f"}, responses=[{"queue_when": "high_value"}]),
    ]
    project = Project(root=tmp_path, config=ProjectConfig.model_validate(
        {"name": "t", "conditions": {"high_value": "page.order.total > 1000"}}),
        services={s["name"]: ServiceSpec.model_validate(s) for s in services})
    runner = Runner()
    app = build_services_app(project, activity_runner=runner, store=store)
    big, small = b'{"order": {"total": 5000}}', b'{"order": {"total": 5}}'
    assert (await call_app(app, "POST", "/a", body=big)).status == 299
    assert (await call_app(app, "POST", "/a", body=small)).status == 200
    queued = await call_app(app, "POST", "/b", body=big)
    assert queued.status == 202 and "queue_item_id" in queued.json()
    assert runner.calls == []  # decided before the activity: it runs in the processor
    assert (await call_app(app, "POST", "/b", body=small)).status == 200


# --- 6. a function with a key -------------------------------------------------------------


async def test_a_function_with_a_key_gets_its_value(tmp_path: Path) -> None:
    """`from: function` + `key` passes the key's value (context['value']) and the context."""
    app = make_app(tmp_path, [service(
        request={"map": {"page.x": "request.query.x"}},
        responses=[{"on": "default", "headers": [
            {"name": "X-Value", "from": "function", "function": "scripts/f.py:value",
             "key": "page.x ~ '!'"}],
            "body": {"from": "function", "function": "scripts/f.py:value",
                     "key": "request.query.x | int"}}])], caller=Caller())
    r = await call_app(app, "POST", "/x?x=7")
    assert r.headers["x-value"] == "value='7!' page.x=7"
    assert r.text == "value=7 page.x=7"


async def test_a_raising_function_logs_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A function that raises is a service error whose reason is logged, not sent."""
    app = make_app(tmp_path, [service(responses=[
        {"on": "default", "body": {"from": "function", "function": "scripts/f.py:boom"}}])],
        caller=Caller())
    with caplog.at_level(logging.WARNING, "interlink.services"):
        r = await call_app(app, "POST", "/x")
    assert r.status == 500
    assert "function failed" not in r.text
    assert "calling scripts/f.py:boom: function failed at /work/secret/path" in caplog.text


# --- 7. constants in double quotes --------------------------------------------------------


async def test_a_constant_in_double_quotes_keeps_its_blanks(tmp_path: Path) -> None:
    """`'"  two words "'` sends `  two words ` without the quotes; a plain value as is."""
    app = make_app(tmp_path, [service(responses=[{"on": "default", "headers": [
        {"name": "X-Plain", "from": "constant", "value": 'say "hi"'},
        {"name": "X-Quoted", "from": "constant", "value": '"a  b"'}],
        "body": {"from": "constant", "value": '"  two words "'}}])])
    r = await call_app(app, "POST", "/x")
    assert r.text == "  two words "
    assert (r.headers["x-plain"], r.headers["x-quoted"]) == ('say "hi"', "a  b")


# --- 8. HTML Frame: the activity's own output ---------------------------------------------


@pytest.mark.parametrize(("payload", "rule_type", "body", "content_type"), [
    ("<html><p>hi</p></html>", None, b"<html><p>hi</p></html>", "text/html; charset=utf-8"),
    ("<?xml version='1.0'?><a/>", None, b"<?xml version='1.0'?><a/>",
     "application/xml; charset=utf-8"),
    ("plain", None, b"plain", "text/plain; charset=utf-8"),
    ({"content_type": "text/csv", "body": "a,b\n"}, None, b"a,b\n", "text/csv"),
    ("<p>caf\u00e9</p>", "text/html; charset=iso-8859-1", b"<p>caf\xe9</p>",
     "text/html; charset=iso-8859-1"),
    (b"\x89PNG", None, b"\x89PNG", "application/octet-stream"),
])
async def test_body_from_the_activity(
    tmp_path: Path, payload: Any, rule_type: str | None, body: bytes, content_type: str
) -> None:
    """`from: activity` sends `result.payload` as it is, typed by the result or the rule."""
    source: dict[str, Any] = {"from": "activity"}
    if rule_type:
        source["content_type"] = rule_type
    app = make_app(tmp_path, [service(activity={"flow": "f"}, responses=[
        {"on": "default", "body": source}])],
        runner=Runner(ActivityResult("succeeded", payload, "run_1")))
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.body, r.headers["content-type"]) == (200, body, content_type)


# --- 10. charsets -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "content_type", "raw", "expected"), [
    ("text", "text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café"),
    ("form", "application/x-www-form-urlencoded; charset=windows-1252",
     "name=Ren%E9e&x=\u20ac".encode("cp1252"), {"name": "Renée", "x": "\u20ac"}),
    ("xml", "application/xml", '<?xml version="1.0" encoding="iso-8859-1"?><a>\u00e9</a>'
     .encode("latin-1"), {"a": "é"}),
    ("xml", "application/xml; charset=iso-8859-1", "<a>\u00e9</a>".encode("latin-1"),
     {"a": "é"}),
    ("json", "application/json; charset=utf-16", '{"a": "é"}'.encode("utf-16"), {"a": "é"}),
])
async def test_request_bodies_decode_by_their_charset(
    tmp_path: Path, kind: str, content_type: str, raw: bytes, expected: Any
) -> None:
    """A declared charset (Content-Type or XML declaration) decodes the body."""
    app = make_app(tmp_path, [service(request={"body": kind}, responses=[
        {"on": "default", "body": {"from": "context", "key": "request.body"}}])])
    r = await call_app(app, "POST", "/x", headers={"Content-Type": content_type}, body=raw)
    assert r.status == 200
    assert (r.json() if not isinstance(expected, str) else r.text) == expected


@pytest.mark.parametrize(("content_type", "raw"), [
    ("text/plain; charset=klingon", b"x"),
    ("text/plain; charset=base64", b"eA=="),
    ("application/xml", b'<?xml version="1.0" encoding="x-nope"?><a/>'),
])
async def test_an_unknown_charset_is_a_mapping_error(
    tmp_path: Path, content_type: str, raw: bytes
) -> None:
    """A charset that is not a known text encoding is a mapping error saying so."""
    kind = "xml" if "xml" in content_type else "text"
    app = make_app(tmp_path, [service(request={"body": kind}, responses=[
        {"on": "mapping_error", "status": 400, "body": {"from": "context", "key": "error"}}])])
    r = await call_app(app, "POST", "/x", headers={"Content-Type": content_type}, body=raw)
    assert r.status == 400
    assert r.json()["type"] == "unknown_charset"
    assert "not" in r.json()["message"] and "known" in r.json()["message"]


async def test_a_response_charset_encodes_the_body(tmp_path: Path) -> None:
    """`content_type: text/plain; charset=iso-8859-1` sends the text in ISO-8859-1."""
    app = make_app(tmp_path, [service(
        request={"body": "text"}, responses=[
            {"when": "request.query.t == 'xml'", "body": {
                "from": "template", "template": "templates/a.xml",
                "content_type": "application/xml; charset=iso-8859-1"}},
            {"on": "default", "body": {"from": "context", "key": "request.body",
                                       "content_type": "text/plain; charset=iso-8859-1"}}])],
        templates={"templates/a.xml": "<a>{{ request.body }} \u20ac</a>"})
    r = await call_app(app, "POST", "/x", body="café".encode())
    assert (r.body, r.headers["content-type"]) == (b"caf\xe9", "text/plain; charset=iso-8859-1")
    xml = await call_app(app, "POST", "/x?t=xml", body="café".encode())
    assert xml.body == b"<a>caf\xe9 &#8364;</a>"  # no euro sign in ISO-8859-1: a reference
    euro = await call_app(app, "POST", "/x", body="\u20ac".encode())
    assert euro.status == 500  # plain text cannot hold it: a service error, not mojibake
