"""The OpenAPI document of a project's services: paths, methods, auth, bodies, status sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.projects import write_project

from interlink.engine import Engine
from interlink.server import build_app
from interlink.services import call_app
from interlink.services.openapi import openapi_document
from interlink.spec import Project

CONFIG = """
name: acme
store: sqlite:///.interlink/test.db
packages:
  partners:
    auth: {type: api_key, header: X-Partner-Key, keys: [k1, k2]}
  byquery:
    auth: {type: api_key, query: key, keys: [k1]}
  public: {}
  signed:
    auth: {type: hmac, secret: s3cret, header: X-Hub-Signature-256}
  people:
    auth: {type: basic, users: {ann: pw}}
  apps:
    auth: {type: bearer, tokens: [t1]}
"""

SERVICES = {
    # Every outcome covered by a rule: no engine default but 413.
    "services/order-intake.yaml": """
        name: order-intake
        description: Partners post orders here.
        package: partners
        path: /orders
        activity: {script: scripts/noop.py}
        responses:
          - when: "page.order.status == 'HELD'"
            status: 202
            headers:
              - {name: X-Order-Id, from: context, key: page.order.id}
            body: {from: template, template: templates/held.xml}
          - queue_when: "error is not none"
            status: 202
            body: {from: json, value: {queued: "{{ queue_item_id }}"}}
          - on: mapping_error
            status: 400
            body: {from: constant, value: "bad request"}
          - on: security_error
            status: 401
          - on: service_error
            status: 502
          - on: default
            status: 200
            body: {from: context, key: result.payload}
    """,
    # No auth: the security_error rule can never match and is left out.
    "services/get-order.yaml": """
        name: get-order
        package: public
        method: GET
        path: /orders/{id}
        request: {body: none}
        responses:
          - on: security_error
            status: 403
          - on: default
            status: 200
    """,
    "services/delete-order.yaml": """
        name: delete-order
        package: byquery
        method: DELETE
        path: /orders/{id}
        request: {body: xml}
    """,
    "services/files.yaml": """
        name: files
        method: GET
        path: /files/{rest:path}
        request: {body: none}
    """,
    # HMAC reads the body even when the service parses none, so 413 can happen.
    "services/hook.yaml": """
        name: hook
        package: signed
        path: /hooks/github
        request: {body: none}
        activity: {script: scripts/noop.py}
        execution: async
    """,
    "services/form.yaml": """
        name: form
        package: people
        method: PUT
        path: /forms
        request: {body: form, max_body: 1KB}
        responses:
          - when: "page.x"
            status: 303
            description: see other
    """,
    "services/note.yaml": """
        name: note
        package: apps
        method: PATCH
        path: /notes/{id}/lines/{n}
        request: {body: text}
        responses:
          - on: mapping_error
            status: 422
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project with seven services over every kind of auth and body."""
    files = {"interlink.yaml": CONFIG, "templates/held.xml": "<held id='{{ page.order.id }}'/>",
             "scripts/noop.py": "def handle(data):\n    return data\n", **SERVICES}
    return write_project(tmp_path, files)


def _op(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"][path][method]
    return operation


def test_paths_and_methods(project: Project) -> None:
    """Every service is one operation; `{rest:path}` becomes `{rest}`; paths share items."""
    doc = openapi_document(project)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "acme"
    found = {(path, method): op["operationId"]
             for path, item in doc["paths"].items() for method, op in item.items()}
    assert found == {
        ("/orders", "post"): "order-intake",
        ("/orders/{id}", "get"): "get-order",
        ("/orders/{id}", "delete"): "delete-order",
        ("/files/{rest}", "get"): "files",
        ("/hooks/github", "post"): "hook",
        ("/forms", "put"): "form",
        ("/notes/{id}/lines/{n}", "patch"): "note",
    }
    params = _op(doc, "/notes/{id}/lines/{n}", "patch")["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in params] == [
        ("id", "path", True), ("n", "path", True)]
    assert "parameters" not in _op(doc, "/orders", "post")
    assert _op(doc, "/orders", "post")["description"] == "Partners post orders here."


def test_status_sets(project: Project) -> None:
    """Each operation lists its rules' statuses and the engine defaults that can still happen."""
    doc = openapi_document(project)
    statuses = {op["operationId"]: sorted(op["responses"])
                for item in doc["paths"].values() for op in item.values()}
    assert statuses == {
        "order-intake": ["200", "202", "400", "401", "413", "502"],
        "get-order": ["200", "500"],
        "delete-order": ["200", "401", "413", "500"],
        "files": ["200", "500"],
        "hook": ["202", "401", "413", "500"],
        "form": ["200", "303", "401", "413", "500"],
        "note": ["200", "401", "413", "422", "500"],
    }


def test_status_descriptions_name_the_rule_kind(project: Project) -> None:
    """Descriptions say which rule (or which default) gives each status."""
    doc = openapi_document(project)
    intake = _op(doc, "/orders", "post")["responses"]
    assert intake["202"]["description"] == (
        "when `page.order.status == 'HELD'`; "
        "queue_when `error is not none` (the request is queued)")
    assert intake["202"]["headers"]["X-Order-Id"]["schema"] == {"type": "string"}
    assert set(intake["202"]["content"]) == {"application/xml; charset=utf-8",
                                             "application/json"}
    assert intake["400"]["description"] == "on: mapping_error"
    assert intake["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    form = _op(doc, "/forms", "put")["responses"]
    assert form["303"]["description"] == "when `page.x`: see other"
    assert form["200"]["description"].startswith("no rule matched")
    assert "1024" in form["413"]["description"]
    assert "WWW-Authenticate" in form["401"]["headers"]
    note = _op(doc, "/notes/{id}/lines/{n}", "patch")["responses"]
    assert note["500"]["description"].startswith("service error")
    assert "mapping error" not in note["500"]["description"]
    hook = _op(doc, "/hooks/github", "post")["responses"]
    assert hook["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Queued"}


def test_request_bodies(project: Project) -> None:
    """The body kind gives the media type; `none` has no requestBody."""
    doc = openapi_document(project)
    kinds = {op["operationId"]: list(op["requestBody"]["content"]) if "requestBody" in op
             else None for item in doc["paths"].values() for op in item.values()}
    assert kinds == {
        "order-intake": ["application/json"], "get-order": None,
        "delete-order": ["application/xml"], "files": None, "hook": None,
        "form": ["application/x-www-form-urlencoded"], "note": ["text/plain"],
    }


def test_security_schemes(project: Project) -> None:
    """Each package's auth is a scheme; operations require theirs; no auth, no security."""
    doc = openapi_document(project)
    schemes = doc["components"]["securitySchemes"]
    hmac = schemes.pop("signed")
    assert hmac["type"] == "apiKey"
    assert (hmac["in"], hmac["name"]) == ("header", "X-Hub-Signature-256")
    assert "HMAC-SHA256" in hmac["description"]
    assert schemes == {
        "partners": {"type": "apiKey", "in": "header", "name": "X-Partner-Key"},
        "byquery": {"type": "apiKey", "in": "query", "name": "key"},
        "people": {"type": "http", "scheme": "basic"},
        "apps": {"type": "http", "scheme": "bearer"},
    }
    assert _op(doc, "/orders", "post")["security"] == [{"partners": []}]
    assert "security" not in _op(doc, "/orders/{id}", "get")
    assert "security" not in _op(doc, "/files/{rest}", "get")
    assert "s3cret" not in orjson.dumps(doc).decode()
    assert "k1" not in orjson.dumps(doc).decode()


def test_document_is_valid_openapi(project: Project) -> None:
    """The document passes openapi-spec-validator (OpenAPI 3.1)."""
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi_document(project))


def test_document_of_a_project_without_services(tmp_path: Path) -> None:
    """No services: an empty, still valid document."""
    doc = openapi_document(write_project(tmp_path, {}))
    assert doc["paths"] == {}
    assert "securitySchemes" not in doc["components"]


async def test_served_at_interlink_openapi_json(project: Project) -> None:
    """`GET /_interlink/openapi.json` on the served app answers the same document."""
    async with Engine(project) as engine:
        answer = await call_app(build_app(engine, None), "GET", "/_interlink/openapi.json")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == openapi_document(project)


def test_webhook_triggers_are_operations(tmp_path: Path) -> None:
    """A flow's webhook is documented as the partner calls it: its path and method, the
    package's auth, the delivery header, and every answer it gives — 202 with the run, the
    `respond` status, the refusals and the 503 while the store is away."""
    flows = {
        "flows/orders.yaml": """
            name: orders
            description: Orders from the shop.
            trigger: {type: webhook, path: /hooks/orders, package: partners,
                      respond: {wait: 2s, status: 201}}
            steps: [{id: keep, type: set, variables: {n: "1"}}]
            """,
        "flows/pings.yaml": """
            name: pings
            trigger: {type: webhook, path: /hooks/pings, method: PUT, delivery_header: null}
            steps: [{id: keep, type: set, variables: {n: "1"}}]
            """,
        "flows/nightly.yaml": """
            name: nightly
            trigger: {type: schedule, cron: "0 3 * * *"}
            steps: [{id: keep, type: set, variables: {n: "1"}}]
            """,
    }
    doc = openapi_document(write_project(tmp_path, {"interlink.yaml": CONFIG, **flows}))
    orders, pings = _op(doc, "/hooks/orders", "post"), _op(doc, "/hooks/pings", "put")
    assert [p for p in doc["paths"] if p.startswith("/hooks")] == ["/hooks/orders",
                                                                   "/hooks/pings"]
    assert (orders["operationId"], orders["description"]) == ("webhook:orders",
                                                              "Orders from the shop.")
    assert sorted(orders["responses"]) == ["201", "202", "400", "401", "413", "422", "500",
                                           "503"]
    assert sorted(pings["responses"]) == ["202", "400", "413", "422", "503"]
    assert orders["security"] == [{"partners": []}] and "security" not in pings
    assert doc["components"]["securitySchemes"]["partners"] == {
        "type": "apiKey", "in": "header", "name": "X-Partner-Key"}
    [delivery] = orders["parameters"]
    assert (delivery["name"], delivery["in"], delivery["schema"]["maxLength"]) == (
        "Idempotency-Key", "header", 255)
    assert "parameters" not in pings
    assert orders["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Run"}
    assert "Retry-After" in orders["responses"]["503"]["headers"]
