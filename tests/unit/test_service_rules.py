"""Response rules: every rule kind, every header and body source, the consideration table."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_service_support import DEFAULT_HEADERS, Caller, Runner, make_app, service

from interlink.services import ActivityResult, call_app

ORDER = b'{"order": {"id": "A1", "status": "HELD", "total": 150}}'
API_KEY = {"partners": {"auth": {"type": "api_key", "keys": ["k-1"]}}}


def _rules(*rules: dict) -> dict:
    return service(
        request={"map": {"page.order": "request.body.order"}}, responses=list(rules)
    )


async def test_when_rule_matches_with_status_headers_and_body(tmp_path: Path) -> None:
    """A true `when` answers with its status, headers and body."""
    app = make_app(tmp_path, [_rules(
        {"when": "page.order.status == 'HELD'", "status": 202,
         "headers": [{"name": "X-Order-Id", "from": "context", "key": "page.order.id"}],
         "body": {"from": "json", "value": {"held": "{{ page.order.id }}", "n": 1}}},
        {"on": "default", "status": 200, "body": {"from": "constant", "value": "ok"}},
    )])
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 202
    assert r.headers["x-order-id"] == "A1"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"held": "A1", "n": 1}


async def test_false_when_falls_through_to_default(tmp_path: Path) -> None:
    """A false `when` is skipped; `on: default` answers."""
    app = make_app(tmp_path, [_rules(
        {"when": "page.order.status == 'NEW'", "status": 202},
        {"on": "default", "status": 201, "body": {"from": "constant", "value": "ok"}},
    )])
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert (r.status, r.text, r.headers["content-type"]) == (
        201, "ok", "text/plain; charset=utf-8")


async def test_first_matching_rule_wins_in_file_order(tmp_path: Path) -> None:
    """Of two true `when` rules the first in the file answers."""
    app = make_app(tmp_path, [_rules(
        {"when": "page.order.total > 100", "status": 203},
        {"when": "page.order.total > 10", "status": 204},
    )])
    assert (await call_app(app, "POST", "/x", body=ORDER)).status == 203


async def test_mapping_error_rule(tmp_path: Path) -> None:
    """Bad JSON answers with the `on: mapping_error` rule, not `when` or default."""
    app = make_app(tmp_path, [_rules(
        {"when": "true", "status": 299},
        {"on": "mapping_error", "status": 400,
         "body": {"from": "constant", "value": "bad request", "content_type": "text/plain"}},
        {"on": "default", "status": 200},
    )])
    r = await call_app(app, "POST", "/x", body=b"{nope")
    assert (r.status, r.text, r.headers["content-type"]) == (400, "bad request", "text/plain")


async def test_security_error_rule(tmp_path: Path) -> None:
    """A failed API key answers with `on: security_error`; no WWW-Authenticate for api_key."""
    app = make_app(tmp_path, [_rules(
        {"when": "true", "status": 299},
        {"on": "security_error", "status": 403,
         "body": {"from": "json", "value": {"denied": "{{ error.phase }}"}}},
        {"on": "default", "status": 200},
    ) | {"package": "partners"}], packages=API_KEY)
    r = await call_app(app, "POST", "/x", headers={"X-API-Key": "wrong"}, body=ORDER)
    assert (r.status, r.json()) == (403, {"denied": "security"})
    assert "www-authenticate" not in r.headers


async def test_service_error_rule(tmp_path: Path) -> None:
    """A raising activity answers with `on: service_error` and never `on: default`."""
    app = make_app(tmp_path, [_rules(
        {"on": "default", "status": 200},
        {"on": "service_error", "status": 502,
         "body": {"from": "context", "key": "error.type"}},
    ) | {"activity": {"flow": "f"}}], runner=Runner(error=RuntimeError("down")))
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert (r.status, r.text) == (502, "activity_failed")


async def test_when_is_considered_after_a_failed_activity(tmp_path: Path) -> None:
    """After a failed activity a `when` rule may answer (it precedes service_error)."""
    app = make_app(tmp_path, [_rules(
        {"when": "error is not none and error.phase == 'activity'", "status": 503},
        {"on": "service_error", "status": 502},
    ) | {"activity": {"flow": "f"}}], runner=Runner(error=RuntimeError("down")))
    assert (await call_app(app, "POST", "/x", body=ORDER)).status == 503


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({}, ORDER, 401),                            # no key: only security_error rules
    ({"X-API-Key": "k-1"}, b"{bad", 500),        # mapping failed: only mapping_error rules
])
async def test_failed_caller_never_reaches_when_or_default(
    tmp_path: Path, headers: dict[str, str], body: bytes, status: int
) -> None:
    """Unauthenticated or unmappable requests never get a `when`/`default`/service answer."""
    app = make_app(tmp_path, [_rules(
        {"when": "true", "status": 299},
        {"on": "service_error", "status": 297},
        {"on": "default", "status": 296},
    ) | {"package": "partners"}], packages=API_KEY)
    r = await call_app(app, "POST", "/x", headers=headers, body=body)
    assert r.status == status
    assert set(r.json()) == {"error"}


async def test_failed_activity_without_rule_gets_500_not_default(tmp_path: Path) -> None:
    """A failed activity with only `on: default` configured answers the built-in 500."""
    app = make_app(tmp_path, [_rules({"on": "default", "status": 200})
                              | {"activity": {"flow": "f"}}],
                   runner=Runner(error=RuntimeError("db password=hunter2 at /work/x.py")))
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 500
    assert r.json() == {"error": {"phase": "activity", "message": "the service activity failed"}}


async def test_unconfigured_success_default(tmp_path: Path) -> None:
    """No rules and no activity: 200, empty body, every default header, no Server-Timing."""
    app = make_app(tmp_path, [service()])
    r = await call_app(app, "POST", "/x", body=b"")
    assert (r.status, r.body) == (200, b"")
    for name in DEFAULT_HEADERS:
        assert len(r.header_list(name)) == 1, name
    assert r.headers["server"] == "interlink"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-length"] == "0"
    assert r.headers["date"].endswith(" GMT")
    assert "server-timing" not in r.headers  # opt-in: `server_timing: true`


async def test_unconfigured_success_sends_activity_payload(tmp_path: Path) -> None:
    """No matching rule after an activity: 200 with the result payload as JSON."""
    app = make_app(tmp_path, [service(activity={"flow": "f"})],
                   runner=Runner(ActivityResult("succeeded", {"n": 1}, "run_9")))
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.json(), r.headers["content-type"]) == (200, {"n": 1}, "application/json")


@pytest.mark.parametrize(("svc", "kwargs", "status", "error"), [
    (service(), {"body": b"[1,"}, 500,
     {"phase": "mapping", "message": "request body is not valid JSON"}),
    (service(package="partners"), {}, 401,
     {"phase": "security", "message": "missing credentials"}),
    (service(package="partners"), {"headers": {"X-API-Key": "nope"}}, 401,
     {"phase": "security", "message": "invalid credentials"}),
    (service(activity={"flow": "f", "timeout": "50ms"}), {}, 500,
     {"phase": "activity", "message": "the service activity timed out after 0.05s"}),
])
async def test_unconfigured_error_defaults(
    tmp_path: Path, svc: dict, kwargs: dict, status: int, error: dict
) -> None:
    """Each unconfigured error answers its default status with a small JSON error body."""
    app = make_app(tmp_path, [svc], packages=API_KEY, runner=Runner(delay=5))
    r = await call_app(app, "POST", "/x", **kwargs)
    assert r.status == status
    assert r.json() == {"error": error}
    assert r.headers["content-type"] == "application/json"
    for name in DEFAULT_HEADERS:
        assert len(r.header_list(name)) == 1, name


async def test_failed_run_status_is_a_service_error(tmp_path: Path) -> None:
    """An activity whose run ended `failed` is a service error with `result` kept."""
    app = make_app(tmp_path, [service(activity={"flow": "f"}, responses=[
        {"on": "service_error", "status": 502,
         "body": {"from": "json", "value": {"run": "{{ result.run_id }}",
                                            "detail": "{{ error.detail }}"}}},
        {"on": "default", "status": 200}])],
        runner=Runner(ActivityResult("failed", None, "run_7")))
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.json()) == (502, {"run": "run_7", "detail": "run run_7 ended failed"})


async def test_error_detail_is_redacted_of_secrets(tmp_path: Path) -> None:
    """`error.detail` carries the exception text with the project's secrets replaced."""
    app = make_app(tmp_path, [service(activity={"flow": "f"}, responses=[
        {"on": "service_error", "status": 500, "body": {"from": "context", "key": "error"}}])],
        runner=Runner(error=RuntimeError("login with s3cr3t failed")),
        secrets=frozenset({"s3cr3t"}))
    r = await call_app(app, "POST", "/x")
    assert r.json() == {"phase": "activity", "type": "activity_failed",
                        "message": "the service activity failed",
                        "detail": "RuntimeError: login with *** failed"}


# --- header sources -------------------------------------------------------------------------


async def test_every_header_source(tmp_path: Path) -> None:
    """Headers from context, constant, template and function, with exact values."""
    app = make_app(tmp_path, [service(
        request={"map": {"page.x": "request.query.x"}},
        responses=[{"on": "default", "status": 200, "headers": [
            {"name": "X-Context", "from": "context", "key": "page.x ~ '!'"},
            {"name": "X-Constant", "from": "constant", "value": "fixed"},
            {"name": "X-Template", "from": "template", "template": "templates/h.txt"},
            {"name": "X-Function", "from": "function", "function": "scripts/f.py:echo"},
            {"name": "X-Missing", "from": "context", "key": "page.nothing"},
        ]}])], templates={"templates/h.txt": "t-{{ page.x }}\n"}, caller=Caller())
    r = await call_app(app, "POST", "/x?x=7")
    assert r.status == 200
    assert r.headers["x-context"] == "7!"
    assert r.headers["x-constant"] == "fixed"
    assert r.headers["x-template"] == "t-7"
    assert r.headers["x-function"] == "scripts/f.py:echo:7"
    assert "x-missing" not in r.headers


async def test_rule_headers_replace_default_headers_case_insensitively(tmp_path: Path) -> None:
    """A rule's Cache-Control/Server/Content-Type/Date replace the engine's; Content-Length
    is the engine's."""
    app = make_app(tmp_path, [service(responses=[{"on": "default", "status": 200, "headers": [
        {"name": "cache-control", "from": "constant", "value": "max-age=60"},
        {"name": "SERVER", "from": "constant", "value": "edge"},
        {"name": "Content-Type", "from": "constant", "value": "application/vnd.x+json"},
        {"name": "Date", "from": "constant", "value": "yesterday"},
    ], "body": {"from": "constant", "value": "abc"}}])])
    r = await call_app(app, "POST", "/x")
    assert r.header_list("cache-control") == ["max-age=60"]
    assert r.header_list("server") == ["edge"]
    assert r.header_list("content-type") == ["application/vnd.x+json"]
    assert r.header_list("date") == ["yesterday"]
    assert r.header_list("content-length") == ["3"]


async def test_header_with_line_break_is_a_service_error(tmp_path: Path) -> None:
    """A header value carrying CR/LF (request data) never splits the response: 500."""
    app = make_app(tmp_path, [service(responses=[{"on": "default", "status": 200, "headers": [
        {"name": "X-Echo", "from": "context", "key": "request.query.v"}]}])])
    r = await call_app(app, "POST", "/x?v=a%0d%0aSet-Cookie:%20x=1")
    assert r.status == 500
    assert "set-cookie" not in r.headers
    assert r.json() == {"error": {"phase": "response",
                                  "message": "the service could not build its answer"}}


# --- body sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "body", "content_type"), [
    ("page.order.id", b"A1", "text/plain; charset=utf-8"),
    ("page.order", orjson.dumps({"id": "A1", "status": "HELD", "total": 150}),
     "application/json"),
    ("page.order.total", b"150", "application/json"),
    ("page.nothing", b"", "text/plain; charset=utf-8"),
])
async def test_body_from_context(tmp_path: Path, key: str, body: bytes, content_type: str) -> None:
    """A context body: text as is, data as JSON, nothing as empty."""
    app = make_app(tmp_path, [_rules(
        {"on": "default", "status": 200, "body": {"from": "context", "key": key}})])
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert (r.body, r.headers["content-type"]) == (body, content_type)


@pytest.mark.parametrize(("name", "text", "kind", "content_type", "expected"), [
    ("held.xml", "<held id=\"{{ page.order.id }}\">{{ page.note }}</held>", None,
     "application/xml; charset=utf-8", '<held id="A1">&lt;b&gt;</held>'),
    ("held.html", "<p>{{ page.note }}</p>", None, "text/html; charset=utf-8",
     "<p>&lt;b&gt;</p>"),
    ("held.json", '{"id": {{ page.order.id | tojson }}}', None, "application/json",
     '{"id": "A1"}'),
    ("held.txt", "id={{ page.order.id }} {{ page.note }}", None, "text/plain; charset=utf-8",
     "id=A1 <b>"),
    # the declared type wins over the extension, autoescaping included
    ("held.txt", "<x>{{ page.note }}</x>", "xml", "application/xml; charset=utf-8",
     "<x>&lt;b&gt;</x>"),
    ("held.tpl", "<x>{{ page.note }}</x>", "html", "text/html; charset=utf-8",
     "<x>&lt;b&gt;</x>"),
])
async def test_body_from_template(
    tmp_path: Path, name: str, text: str, kind: str | None, content_type: str, expected: str
) -> None:
    """Template bodies render with the context; Content-Type follows the template's kind."""
    body = {"from": "template", "template": f"templates/{name}"}
    if kind:
        body["type"] = kind
    app = make_app(tmp_path, [service(
        request={"map": {"page.order": "request.body.order", "page.note": "'<b>'"}},
        responses=[{"on": "default", "status": 200, "body": body}])],
        templates={f"templates/{name}": text})
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert (r.status, r.text, r.headers["content-type"]) == (200, expected, content_type)


async def test_body_from_constant_number(tmp_path: Path) -> None:
    """A constant body is sent as text."""
    app = make_app(tmp_path, [service(responses=[
        {"on": "default", "status": 200, "body": {"from": "constant", "value": 42}}])])
    r = await call_app(app, "POST", "/x")
    assert (r.text, r.headers["content-type"]) == ("42", "text/plain; charset=utf-8")


async def test_body_from_json_with_content_type(tmp_path: Path) -> None:
    """A json body interpolates leaf strings; `content_type` overrides the type."""
    app = make_app(tmp_path, [_rules({"on": "default", "status": 200, "body": {
        "from": "json", "content_type": "application/problem+json",
        "value": {"id": "{{ page.order.id }}", "items": ["{{ page.order.total }}", 2, None]}}})])
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.json() == {"id": "A1", "items": ["150", 2, None]}
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("function", "body", "content_type"), [
    ("scripts/f.py:echo", b"scripts/f.py:echo:7", "text/plain; charset=utf-8"),
    ("scripts/f.py:data", b'{"x":"7"}', "application/json"),
])
async def test_body_from_function(
    tmp_path: Path, function: str, body: bytes, content_type: str
) -> None:
    """A function body gets the context; text is sent as is, data as JSON."""
    caller = Caller()
    app = make_app(tmp_path, [service(
        request={"map": {"page.x": "request.query.x"}},
        responses=[{"on": "default", "status": 200,
                    "body": {"from": "function", "function": function}}])], caller=caller)
    r = await call_app(app, "POST", "/x?x=7")
    assert (r.status, r.body, r.headers["content-type"]) == (200, body, content_type)
    assert caller.calls == [("scripts/f.py", function.split(":")[1])]


async def test_failing_answer_falls_back_to_service_error_rule(tmp_path: Path) -> None:
    """A function that raises while building the answer → the `on: service_error` rule."""
    app = make_app(tmp_path, [service(responses=[
        {"on": "default", "status": 200, "body": {"from": "function",
                                                  "function": "scripts/f.py:boom"}},
        {"on": "service_error", "status": 503, "body": {"from": "context", "key": "error.phase"}},
    ])], caller=Caller())
    r = await call_app(app, "POST", "/x")
    assert (r.status, r.text) == (503, "response")


async def test_failing_condition_is_a_service_error(tmp_path: Path) -> None:
    """A `when` whose expression raises is a service error (never a silent non-match)."""
    app = make_app(tmp_path, [_rules(
        {"when": "page.order.total > 'x'", "status": 299},
        {"on": "default", "status": 200},
    )])
    r = await call_app(app, "POST", "/x", body=ORDER)
    assert r.status == 500
    assert r.json()["error"]["phase"] == "response"
    assert "Traceback" not in r.text
