"""The services app: routing, build-time checks, ASGI plumbing, and a fuzzing property."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_service_support import Caller, Runner, make_app, make_project, service

import interlink.services
from interlink.services import ServiceError, call_app


def test_public_api_is_locked() -> None:
    """The package exports exactly its curated API."""
    assert sorted(interlink.services.__all__) == sorted([
        "QUEUE_KIND", "ActivityResult", "ActivityRunner", "CallResult", "FunctionCaller",
        "ServiceError", "ServicesApp", "build_services_app", "call_app", "replay_request",
    ])


async def test_routes_by_method_and_path_params(tmp_path: Path) -> None:
    """Static and `{param}` paths route by method; `{p:path}` takes the rest."""
    def named(name: str, method: str, path: str) -> dict[str, Any]:
        return {"name": name, "method": method, "path": path, "request": {"body": "none"},
                "responses": [{"on": "default", "status": 200, "body": {
                    "from": "json", "value": {"svc": "{{ service.name }}",
                                              "params": "{{ request.path_params }}"}}}]}

    app = make_app(tmp_path, [
        named("list", "GET", "/orders"), named("create", "POST", "/orders"),
        named("one", "GET", "/orders/{id}"), named("line", "GET", "/orders/{id}/lines/{n}"),
        named("files", "GET", "/files/{rest:path}"),
    ])
    cases = {
        ("GET", "/orders"): ("list", "{}"),
        ("POST", "/orders"): ("create", "{}"),
        ("GET", "/orders/7"): ("one", "{'id': '7'}"),
        ("GET", "/orders/7/lines/2"): ("line", "{'id': '7', 'n': '2'}"),
        ("GET", "/files/a/b.txt"): ("files", "{'rest': 'a/b.txt'}"),
    }
    for (method, path), (name, params) in cases.items():
        r = await call_app(app, method, path)
        assert r.json() == {"svc": name, "params": params}, (method, path)


async def test_unknown_path_is_404_and_wrong_method_405(tmp_path: Path) -> None:
    """No service → 404; a service on another method → 405 with Allow."""
    app = make_app(tmp_path, [service(path="/orders/{id}")])
    r = await call_app(app, "GET", "/nope")
    assert (r.status, r.json()) == (404, {"error": {"phase": "routing",
                                                    "message": "no service at this path"}})
    r = await call_app(app, "DELETE", "/orders/1")
    assert (r.status, r.headers["allow"]) == (405, "POST")


async def test_fallback_answers_unrouted_requests(tmp_path: Path) -> None:
    """With `fallback`, requests no service matches go to it (and lifespan too)."""
    seen: list[str] = []

    async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 299, "headers": []})
            await send({"type": "http.response.body", "body": b"fb"})

    project = make_project(tmp_path, [service()])
    app = interlink.services.build_services_app(project, fallback=fallback)
    assert (await call_app(app, "GET", "/_interlink/health")).status == 299
    assert (await call_app(app, "POST", "/x")).status == 200
    assert seen == ["http"]


async def test_lifespan_is_acknowledged(tmp_path: Path) -> None:
    """Served alone, the app completes lifespan startup and shutdown."""
    app = make_app(tmp_path, [service()])
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                          "lifespan.shutdown.complete"]


async def test_server_timing_reports_each_phase(tmp_path: Path) -> None:
    """Server-Timing lists the phases run, in order, in milliseconds."""
    app = make_app(tmp_path, [service(activity={"flow": "f"}, server_timing=True)],
                   runner=Runner(delay=0.01))
    r = await call_app(app, "POST", "/x")
    parts = [p.split(";dur=") for p in r.headers["server-timing"].split(", ")]
    assert [name for name, _ in parts] == ["security", "mapping", "activity", "response"]
    assert all(float(ms) >= 0 for _, ms in parts)


async def test_server_timing_stops_at_the_failed_phase(tmp_path: Path) -> None:
    """A security failure reports only the security and response phases."""
    app = make_app(tmp_path, [service(package="p", server_timing=True)],
                   packages={"p": {"auth": {"type": "bearer", "tokens": ["t"]}}})
    r = await call_app(app, "POST", "/x")
    assert [p.split(";")[0] for p in r.headers["server-timing"].split(", ")] == [
        "security", "response"]


async def test_a_rule_can_set_server_timing(tmp_path: Path) -> None:
    """A rule's own Server-Timing replaces the engine's."""
    app = make_app(tmp_path, [service(responses=[{"on": "default", "status": 200, "headers": [
        {"name": "Server-Timing", "from": "constant", "value": "app;dur=1"}]}])])
    assert (await call_app(app, "POST", "/x")).header_list("server-timing") == ["app;dur=1"]


async def test_timings_are_in_the_context(tmp_path: Path) -> None:
    """`timings` in the context holds seconds per finished phase."""
    app = make_app(tmp_path, [service(responses=[{"on": "default", "status": 200, "body": {
        "from": "context", "key": "timings.keys() | list"}}])])
    assert (await call_app(app, "POST", "/x")).json() == ["security", "mapping", "activity"]


@pytest.mark.parametrize(("services", "kwargs", "message"), [
    ([service(activity={"flow": "f"})], {}, "has an activity but no activity runner"),
    ([service(responses=[{"queue_when": "true"}])], {}, "need a store"),
    ([service(execution="async")], {}, "need a store"),
    ([service(package="p")], {"packages": {"p": {"processing": "stateful"}}}, "need a store"),
    ([service(package="nope")], {}, "no package 'nope'"),
    ([service(request={"map": {"session.x": "1"}})], {}, "its package is stateless"),
    ([service(request={"map": {"request.x": "1"}})], {}, "must be page."),
    ([service(), service(name="other")], {}, "already answers POST /x"),
    ([service(responses=[{"on": "default", "body": {"from": "template",
                                                    "template": "templates/no.xml"}}])],
     {}, "template templates/no.xml is not in the project"),
    ([service(responses=[{"on": "default", "body": {"from": "function",
                                                    "function": "scripts/f.py:x"}}])],
     {}, "needs a function caller"),
    ([service(responses=[{"on": "default", "headers": [
        {"name": "X", "from": "constant", "value": "a\nb"}]}])], {}, "line break"),
    ([service(path="/x/{bad")], {}, "bad path parameter"),
])
def test_build_errors_name_the_service(
    tmp_path: Path, services: list[dict[str, Any]], kwargs: dict[str, Any], message: str
) -> None:
    """What the loader cannot check is a `ServiceError` naming the service, at build time."""
    with pytest.raises(ServiceError, match="^service (svc|other): .*" + message.replace(
            "(", r"\(").replace(".", r"\.")):
        make_app(tmp_path, services, **kwargs)


async def test_activity_exception_text_never_reaches_the_caller(tmp_path: Path) -> None:
    """An activity raising with a traceback-like message leaks nothing in the default body."""
    error = RuntimeError('Traceback (most recent call last):\n  File "/work/main/x.py"')
    app = make_app(tmp_path, [service(activity={"flow": "f"})], runner=Runner(error=error))
    r = await call_app(app, "POST", "/x")
    assert r.status == 500
    for leak in ("Traceback", 'File "', "/work/"):
        assert leak not in r.text


# --- property: whatever arrives, only configured 5xx, and no internals in any body ----------

_PROPERTY_SERVICES = [
    {"name": f"s-{kind}", "path": f"/{kind}/{{id}}", "package": pkg,
     "request": {"body": kind, "max_body": "4KB", "map": {
         "page.id": "request.path_params.id",
         "page.v": "request.body.v if request.body is mapping",
         "page.q": "request.query.q"}},
     "activity": {"flow": "f"},
     "responses": [
         {"when": "page.v == 'HELD'", "status": 202,
          "headers": [{"name": "X-Id", "from": "context", "key": "page.id"}],
          "body": {"from": "json", "value": {"id": "{{ page.id }}", "q": "{{ page.q }}"}}},
         {"when": "page.v is number and page.v > 10", "status": 201},
         {"on": "mapping_error", "status": 400, "body": {"from": "context", "key": "error.type"}},
         {"on": "security_error", "status": 401},
         {"on": "service_error", "status": 503, "body": {"from": "context", "key": "error.type"}},
         {"on": "default", "status": 200, "body": {"from": "function",
                                                   "function": "scripts/f.py:data"}},
     ]}
    for kind, pkg in (("json", None), ("xml", None), ("form", "k"), ("text", "h"))
]
_PROPERTY_APP = make_app(
    Path("/nonexistent"), _PROPERTY_SERVICES, runner=Runner(
        lambda ctx: (_ for _ in ()).throw(ValueError("boom /work/x"))
        if ctx["page"].get("q") == "boom" else
        interlink.services.ActivityResult("succeeded", ctx["page"], None)),
    caller=Caller(),
    packages={"k": {"auth": {"type": "api_key", "keys": ["key"]}},
              "h": {"auth": {"type": "hmac", "secret": "s"}}},
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)
_bodies = st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda v: __import__("orjson").dumps(v)),
    st.sampled_from([b'{"v": "HELD"}', b'{"v": 11}', b'{"v": "x"', b"<a><v>HELD</v></a>",
                     b"<!DOCTYPE a [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><a>&e;</a>",
                     b"v=HELD&q=boom", b"\xff\xfe<\x00a\x00>\x00", b"x" * 5000]),
)
_header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(st.sampled_from(["/json/1", "/xml/a", "/form/x", "/text/t", "/json/"]),
                   st.text(max_size=30).map(lambda t: "/" + t.replace("?", "").replace("#", ""))),
    query=st.sampled_from(["", "?q=boom", "?q=%ff%fe", "?api_key=key&q=1", "?q=a&q=b&&="]),
    headers=st.dictionaries(
        st.sampled_from(["content-type", "x-api-key", "x-hmac-hash", "authorization", "cookie",
                         "content-length", "x-other", "accept"]),
        _header_values, max_size=5),
    body=_bodies,
)
# A path that starts with `//` is a path, not a host (CI once drew `//[`: call_app raised).
@example(method="GET", path="//[", query="", headers={}, body=b"")
@example(method="POST", path="//json/1", query="?q=1", headers={}, body=b"{}")
def test_no_unconfigured_5xx_and_no_internals(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> None:
    """Random methods, paths, headers and bodies: only configured 5xx, no internals leaked."""
    if headers.get("content-length", "").strip() != str(len(body)):
        headers.pop("content-length", None)
    r = asyncio.run(call_app(_PROPERTY_APP, method, path + query, headers=headers, body=body))
    assert r.status < 500 or r.status == 503, (r.status, r.body)
    if r.status == 503:
        assert r.text in ("activity_failed", "activity_timeout", "response_failed"), r.text
    for leak in (b"Traceback", b'File "', b"/work/"):
        assert leak not in r.body
