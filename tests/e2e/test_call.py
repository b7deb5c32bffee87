"""`interlink call`: one request through the real services app, in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.projects import write_project

FILES = {
    "interlink.yaml": """
        name: calls
        store: sqlite:///.interlink/calls.db
        packages:
          partners:
            auth: {type: api_key, keys: [k1]}
    """,
    "templates/held.xml": "<held id=\"{{ page.order.id }}\"/>\n",
    "services/orders.yaml": """
        name: orders
        package: partners
        path: /orders
        request:
          map: {page.order: request.body.order}
        responses:
          - when: "page.order.status == 'HELD'"
            status: 202
            body: {from: template, template: templates/held.xml}
          - on: default
            status: 200
            headers:
              - {name: X-Order-Id, from: context, key: page.order.id}
            body: {from: json, value: {id: "{{ page.order.id }}", q: "{{ request.query.q }}"}}
    """,
    "services/order.yaml": """
        name: order
        method: GET
        path: /orders/{id}
        request: {body: none}
        responses:
          - on: default
            status: 200
            body: {from: context, key: "'order ' ~ request.path_params.id"}
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with an authenticated POST service and a GET service with a path param."""
    write_project(tmp_path, FILES)
    return tmp_path


def interlink(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "interlink.cli", *args], capture_output=True, text=True,
        input=stdin, env=dict(os.environ), timeout=60, check=False,
    )


def test_call_prints_status_headers_and_body(project: Path) -> None:
    """Headers, query and a body file go in; status, headers and body come out."""
    body = project / "order.json"
    body.write_text('{"order": {"id": 7, "status": "NEW"}}')
    done = interlink("call", "orders", str(project), "--header", "X-API-Key: k1",
                     "--query", "q=a b", "--body", str(body))
    assert done.returncode == 0, done.stderr
    head, _, text = done.stdout.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "HTTP 200"
    assert "x-order-id: 7" in lines
    assert "content-type: application/json" in lines
    assert json.loads(text) == {"id": "7", "q": "a b"}


def test_call_json_output_and_body_from_stdin(project: Path) -> None:
    """`--json` prints {status, headers, body}; `--body -` reads standard input."""
    done = interlink("call", "orders", str(project), "-H", "X-API-Key:k1", "--body", "-",
                     "--json", stdin='{"order": {"id": 9, "status": "HELD"}}')
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == 202
    assert out["headers"]["content-type"] == "application/xml; charset=utf-8"
    assert out["body"].strip() == '<held id="9"/>'


def test_call_exits_0_for_an_error_answer(project: Path) -> None:
    """A 401 is an HTTP answer like any other: printed, exit 0."""
    done = interlink("call", "orders", str(project), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == 401
    assert json.loads(out["body"])["error"]["phase"] == "security"


def test_call_with_path_params_and_unknown_service(project: Path) -> None:
    """`--path` fills the {params}; an unknown service exits 1."""
    done = interlink("call", "order", str(project), "--path", "/orders/42")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HTTP 200\n")
    assert done.stdout.rstrip().endswith("order 42")
    missing = interlink("call", "nope", str(project))
    assert missing.returncode == 1
    assert "no service named 'nope'" in missing.stderr
