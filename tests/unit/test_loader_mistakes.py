"""The project loader's mistakes: each is reported at its FILE:LINE, all in one pass, none
cascading; hostile YAML is refused. (The good project and its models: test_loader.py.)"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from tests.unit.test_loader import ENV, GOOD, errors_of, write

from interlink.errors import ProjectErrors
from interlink.spec import load_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The good project, written in the current directory (so errors read `flows/x.yaml:N`)."""
    monkeypatch.chdir(tmp_path)
    return write(tmp_path, GOOD)

FLOW = textwrap.dedent("""\
    name: extra
    steps:
      - id: one
        type: connector
        connector: warehouse
        endpoint: create_order
    """)

SERVICE = textwrap.dedent("""\
    name: extra
    path: /extra
    responses:
      - on: default
        status: 200
    """)

# (files written over the good project, expected `FILE:LINE: `, a part of the message)
CASES: dict[str, tuple[dict[str, str], str, str]] = {
    "unknown key": (
        {"flows/extra.yaml": FLOW + "    foo: 1\n"},
        "flows/extra.yaml:7: ", "steps[0]: unknown key 'foo'",
    ),
    "unknown top-level key": (
        {"services/extra.yaml": "name: extra\npath: /extra\npathh: /x\n"},
        "services/extra.yaml:3: ", "unknown key 'pathh'",
    ),
    "wrong type": (
        {"connectors/extra.yaml": "name: extra\nbase_url: x\nretry:\n  max_attempts: x\n"
                                  "endpoints: {a: {path: /a}}\n"},
        "connectors/extra.yaml:4: ", "retry.max_attempts: expected an integer, got 'x'",
    ),
    "wrong type in a list": (
        {"services/extra.yaml": SERVICE.replace("status: 200", "status: '200'")},
        "services/extra.yaml:5: ", "responses[0].status: expected an integer, got '200'",
    ),
    "value of no member of a union": (
        {"services/extra.yaml": SERVICE + "    body: {from: constant, value: [1]}\n"},
        "services/extra.yaml:6: ",
        "responses[0].body.value: expected a string, an integer, a number or true or false",
    ),
    "missing field": (
        {"flows/extra.yaml": FLOW.replace("    endpoint: create_order\n", "")},
        "flows/extra.yaml:3: ", "steps[0]: missing required key 'endpoint'",
    ),
    "missing top-level field": (
        {"connectors/extra.yaml": "name: extra\nendpoints: {a: {path: /a}}\n"},
        "connectors/extra.yaml:1: ", "missing required key 'base_url'",
    ),
    "missing union tag": (
        {"services/extra.yaml": SERVICE + "    body: {value: x}\n"},
        "services/extra.yaml:6: ", "responses[0].body: missing required key 'from'",
    ),
    "unknown union tag": (
        {"flows/extra.yaml": FLOW.replace("type: connector", "type: connecter")},
        "flows/extra.yaml:4: ", "steps[0].type: unknown type 'connecter', expected one of",
    ),
    "bad duration": (
        {"flows/extra.yaml": FLOW + "retry: {delay: soon}\n"},
        "flows/extra.yaml:7: ", "retry.delay: bad duration 'soon': expected a number and a unit",
    ),
    "model validator": (
        {"services/extra.yaml": SERVICE.replace("- on: default", "- on: default\n    when: x")},
        "services/extra.yaml:4: ", "responses[0]: a response rule needs exactly one of",
    ),
    "literal": (
        {"services/extra.yaml": SERVICE + "method: FETCH\n"},
        "services/extra.yaml:6: ", "method: expected 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'",
    ),
    "empty endpoints": (
        {"connectors/extra.yaml": "name: extra\nbase_url: x\nendpoints: {}\n"},
        "connectors/extra.yaml:3: ", "endpoints: needs at least 1 entry",
    ),
    "missing connector": (
        {"flows/extra.yaml": FLOW.replace("connector: warehouse", "connector: storehouse")},
        "flows/extra.yaml:5: ", "steps[0]: no connector named 'storehouse'",
    ),
    "missing endpoint": (
        {"flows/extra.yaml": FLOW.replace("create_order", "cancel_order")},
        "flows/extra.yaml:6: ", "connector 'warehouse' has no endpoint 'cancel_order'",
    ),
    "missing flow": (
        {"services/extra.yaml": SERVICE + "activity: {flow: nowhere}\n"},
        "services/extra.yaml:6: ", "activity.flow: no flow named 'nowhere'",
    ),
    "missing package": (
        {"services/extra.yaml": SERVICE + "package: partnerz\n"},
        "services/extra.yaml:6: ", "no package 'partnerz' in interlink.yaml",
    ),
    "missing script": (
        {"flows/extra.yaml": FLOW + "    response_script: scripts/nope.py\n"},
        "flows/extra.yaml:7: ", "script 'scripts/nope.py' does not exist",
    ),
    "missing activity script": (
        {"services/extra.yaml": SERVICE + "activity: {script: scripts/nope.py}\n"},
        "services/extra.yaml:6: ", "script 'scripts/nope.py' does not exist",
    ),
    "script outside the project": (
        {"services/extra.yaml": SERVICE + "activity: {script: ../x.py}\n"},
        "services/extra.yaml:6: ", "script '../x.py' is outside the project",
    ),
    "script without handle": (
        {"flows/extra.yaml": FLOW + "    response_script: scripts/functions.py\n"},
        "flows/extra.yaml:7: ", "script 'scripts/functions.py' defines no 'handle'",
    ),
    "missing function": (
        {"services/extra.yaml": SERVICE + "    body: {from: function, function: "
                                          "'scripts/functions.py:nope'}\n"},
        "services/extra.yaml:6: ", "script 'scripts/functions.py' defines no 'nope'",
    ),
    "missing header function file": (
        {"services/extra.yaml": SERVICE + "    headers:\n      - {name: X, from: "
                                          "function, function: 'scripts/x.py:f'}\n"},
        "services/extra.yaml:7: ", "script 'scripts/x.py' does not exist",
    ),
    "script syntax error": (
        {"scripts/broken.py": "def handle(data):\n    return data +\n"},
        "scripts/broken.py:2: ", "SyntaxError: invalid syntax",
    ),
    "missing template": (
        {"services/extra.yaml": SERVICE + "    body: {from: template, "
                                          "template: templates/nope.xml}\n"},
        "services/extra.yaml:6: ", "template 'templates/nope.xml' does not exist",
    ),
    "template syntax error": (
        {"templates/held.xml": "<held>\n  {{ page.x }}\n  {{ page.x + }}\n</held>\n"},
        "templates/held.xml:3: ", "unexpected 'end of print statement'",
    ),
    "template block left open": (
        {"templates/note.txt": "note\n{% if page.x %}\nx\n"},
        "templates/note.txt:2: ", "Unexpected end of template",
    ),
    "env in a template": (
        {"templates/note.txt": "note\n{{ env.SECRET }}\n"},
        "templates/note.txt:2: ", "env is resolved only in interlink.yaml and connectors/",
    ),
    "expression syntax error": (
        {"services/extra.yaml": SERVICE.replace("- on: default", "- when: 'page.x =='")},
        "services/extra.yaml:4: ", "responses[0].when: invalid expression 'page.x =='",
    ),
    "interpolation syntax error": (
        {"connectors/extra.yaml": "name: extra\nbase_url: x\nendpoints:\n"
                                  "  a: {path: '/a/{{ payload.id'}\n"},
        "connectors/extra.yaml:4: ", "endpoints.a.path: invalid template string",
    ),
    "json body syntax error": (
        {"services/extra.yaml": SERVICE + "    body:\n      from: json\n"
                                          "      value:\n        a: '{{ x'\n"},
        "services/extra.yaml:9: ", "invalid template string '{{ x'",
    ),
    "duplicate connector name": (
        {"connectors/zz.yaml": "base_url: x\nname: warehouse\nendpoints: {a: {path: /a}}\n"},
        "connectors/zz.yaml:2: ", "connector name 'warehouse' is already used in "
                                  "connectors/warehouse.yaml",
    ),
    "duplicate flow name": (
        {"flows/zz.yaml": FLOW.replace("name: extra", "name: nightly")},
        "flows/zz.yaml:1: ", "flow name 'nightly' is already used in flows/nightly.yaml",
    ),
    "duplicate service name": (
        {"services/zz.yaml": SERVICE.replace("name: extra", "name: ping")},
        "services/zz.yaml:1: ", "service name 'ping' is already used in services/ping.yaml",
    ),
    "duplicate step id": (
        {"flows/extra.yaml": FLOW + "  - {id: one, type: script, script: scripts/to_erp.py}\n"},
        "flows/extra.yaml:7: ", "steps[1]: step id 'one' is already used by steps[0] (line 3)",
    ),
    "duplicate route": (
        {"services/zz.yaml": SERVICE.replace("/extra", "/orders/{order}/validate/")
         + "method: PUT\n"},
        "services/zz.yaml:2: ", "PUT /orders/{order}/validate/ is already served by "
                                "services/validate.yaml (service 'validate')",
    ),
    "duplicate webhook path": (
        {"flows/zz.yaml": FLOW + "trigger:\n  type: webhook\n  path: /hooks/orders\n"},
        "flows/zz.yaml:9: ", "POST /hooks/orders is already served by flows/push-orders.yaml",
    ),
    "webhook respond body syntax error": (
        {"flows/zz.yaml": FLOW + "trigger:\n  type: webhook\n  path: /hooks/zz\n"
                              "  respond: {wait: 5s, body: 'output.'}\n"},
        "flows/zz.yaml:10: ", "respond.body",
    ),
    "reserved path": (
        {"services/extra.yaml": SERVICE.replace("/extra", "/_interlink/health")},
        "services/extra.yaml:2: ", "path '/_interlink/health' is reserved for the engine",
    ),
    "yaml syntax error": (
        {"flows/extra.yaml": "name: extra\nsteps: [\n  {id: x\n"},
        "flows/extra.yaml:4: ", "YAML syntax error",
    ),
    "yaml bad indentation": (
        {"flows/extra.yaml": "name: extra\n  steps: []\n"},
        "flows/extra.yaml:2: ", "YAML syntax error: mapping values are not allowed here",
    ),
    "yaml duplicate key": (
        {"flows/extra.yaml": FLOW.replace("endpoint: create_order",
                                          "endpoint: create_order\n    id: two")},
        "flows/extra.yaml:7: ", "duplicate key 'id' (the mapping starts at line 3)",
    ),
    "top level not a mapping": (
        {"flows/extra.yaml": "- name: extra\n"},
        "flows/extra.yaml:1: ", "expected a mapping of keys to values, got a list",
    ),
    "empty file": (
        {"services/extra.yaml": "# nothing yet\n"},
        "services/extra.yaml:1: ", "the file is empty",
    ),
    "two documents": (
        {"services/extra.yaml": SERVICE + "---\nname: again\n"},
        "services/extra.yaml:6: ", "YAML syntax error: but found another document",
    ),
    "missing env variable": (
        {"connectors/extra.yaml": "name: extra\nbase_url: x\nauth:\n  type: bearer\n"
                                  "  token: '{{ env.NOPE_TOKEN }}'\nendpoints: {a: {path: /a}}\n"},
        "connectors/extra.yaml:5: ", "environment variable NOPE_TOKEN is not set",
    ),
    "env mixed with run-time names": (
        {"connectors/extra.yaml": "name: extra\nbase_url: x\nendpoints:\n"
                                  "  a: {path: '/{{ env.WH_SECRET }}/{{ payload.id }}'}\n"},
        "connectors/extra.yaml:4: ", "mixes env (resolved when the project loads) with payload",
    ),
    "env in a service": (
        {"services/extra.yaml": SERVICE + "    headers:\n      - {name: X, from: "
                                          "context, key: env.WH_SECRET}\n"},
        "services/extra.yaml:7: ", "responses[0].headers[0].key: env is resolved only in",
    ),
    "env in a service json body": (
        {"services/extra.yaml": SERVICE + "    body: {from: json, value: "
                                          "{a: [1, '{{ env.X }}']}}\n"},
        "services/extra.yaml:6: ", "env is resolved only in interlink.yaml and connectors/",
    ),
    "env in a flow": (
        {"flows/extra.yaml": FLOW + "    headers: {X-Key: '{{ env.WH_SECRET }}'}\n"},
        "flows/extra.yaml:7: ", "steps[0].headers.X-Key: env is resolved only in",
    ),
    "header from a source without its key": (
        {"services/extra.yaml": SERVICE + "    headers:\n      - {name: X, from: "
                                          "template}\n"},
        "services/extra.yaml:7: ", "header 'X' from template needs 'template'",
    ),
    "unknown named condition": (
        {"services/extra.yaml": SERVICE.replace("- on: default", "- when: high_valu\n"
                                                "    status: 202\n  - on: default")},
        "services/extra.yaml:4: ",
        "responses[0].when: no condition named 'high_valu' in interlink.yaml (conditions: "
        "high_value)",
    ),
    "unknown named queue condition": (
        {"services/extra.yaml": SERVICE.replace("- on: default", "- queue_when: later\n"
                                                "  - on: default")
                                + "activity: {flow: push-orders}\n"},
        "services/extra.yaml:4: ", "responses[0].queue_when: no condition named 'later'",
    ),
    "queue_when without an activity": (
        {"services/extra.yaml": SERVICE.replace("- on: default", "- queue_when: 'true'\n"
                                                "  - on: default")},
        "services/extra.yaml:4: ",
        "a queue_when rule queues requests for the request processor, but the service has no "
        "activity for it to run",
    ),
    "async without an activity": (
        {"services/extra.yaml": SERVICE + "execution: async\n"},
        "services/extra.yaml:6: ", "execution: async queues requests for the request processor",
    ),
    "body from the activity without one": (
        {"services/extra.yaml": SERVICE + "    body: {from: activity}\n"},
        "services/extra.yaml:6: ", "responses[0].body: from: activity sends what the activity "
        "produced, but the service has no activity",
    ),
    "invalid header name": (
        {"services/extra.yaml": SERVICE + "    headers:\n      - {name: X Bad, from: "
                                          "constant, value: x}\n"},
        "services/extra.yaml:7: ", "responses[0].headers[0].name: 'X Bad' is not a valid header "
        "name",
    ),
    "Content-Length set by a rule": (
        {"services/extra.yaml": SERVICE + "    headers:\n      - {name: content-length, "
                                          "from: constant, value: '3'}\n"},
        "services/extra.yaml:7: ", "responses[0].headers[0].name: content-length is computed "
        "by the engine from the body; a rule may not set it",
    ),
    "unknown response charset": (
        {"services/extra.yaml": SERVICE + "    body: {from: constant, value: x, content_type: "
                                          "'text/plain; charset=klingon'}\n"},
        "services/extra.yaml:6: ", "unknown charset 'klingon'",
    ),
    "condition named like a context entry": (
        {"interlink.yaml": GOOD["interlink.yaml"].replace("high_value:", "page:")},
        "interlink.yaml:", "condition name 'page' must be a plain name",
    ),
    "bad cron expression": (
        {"flows/extra.yaml": "name: extra\ntrigger: {type: schedule, cron: '61 * * * *'}\n"
                             "steps:\n  - {id: s, type: script, script: scripts/to_erp.py}\n"},
        "flows/extra.yaml:2: ", "minute: '61' is outside 0-59",
    ),
}


def test_a_rule_after_default_is_a_warning(project: Path) -> None:
    """A `when` after `on: default` loads, with a warning that default should be last."""
    write(project, {"services/extra.yaml": SERVICE + "  - when: page.x == 1\n"
                                                     "  - on: mapping_error\n"})
    warnings = [w for w in load_project(project, environ=ENV).warnings
                if w.startswith("services/extra.yaml")]
    assert warnings == [
        "services/extra.yaml:6: warning: responses[1] comes after the `on: default` rule "
        "(line 4), which answers every success first; default should be the last rule"]


def test_a_named_condition_is_used_by_a_rule(project: Path) -> None:
    """`when: high_value` refers to `conditions.high_value` of interlink.yaml."""
    write(project, {"services/extra.yaml": SERVICE.replace(
        "- on: default", "- when: high_value\n    status: 202\n  - on: default")})
    loaded = load_project(project, environ=ENV)
    assert loaded.config.conditions == {"high_value": "page.order.total > 1000"}
    assert loaded.services["extra"].responses[0].when == "high_value"


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_reported_at_its_line(project: Path, case: str) -> None:
    """Each mistake gives exactly one error, at the exact FILE:LINE, saying what is wrong."""
    files, prefix, gist = CASES[case]
    write(project, files)
    errors = errors_of(project)
    assert [str(e) for e in errors] == [str(errors[0])], "expected exactly one error"
    text = str(errors[0])
    assert text.startswith(prefix), text
    assert gist in text


def test_missing_interlink_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder without interlink.yaml is reported at PROJECT/interlink.yaml:1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    assert [str(e) for e in errors_of(Path("proj"))] == [
        "proj/interlink.yaml:1: no interlink.yaml in this folder"
    ]


def test_missing_folders_are_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project with only interlink.yaml loads, with no connectors, flows or services."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"interlink.yaml": "name: tiny\n"})
    loaded = load_project(".")
    assert (loaded.connectors, loaded.flows, loaded.services, loaded.templates) == ({}, {}, {}, {})
    assert loaded.secrets == frozenset()


def test_all_errors_in_one_pass_sorted(project: Path) -> None:
    """Errors in several files come together, sorted by file then line, one per output line."""
    write(project, {
        "flows/b.yaml": FLOW.replace("create_order", "nope"),
        "flows/c.yaml": FLOW + "foo: 1\n",
        "flows/a.yaml": "name: a\nsteps: [\n",
        "services/extra.yaml": SERVICE + "package: nope\n",
    })
    errors = errors_of(project, environ={})
    text = str(ProjectErrors(errors))
    lines = text.splitlines()
    assert len(lines) == len(errors) > 10
    assert all(re.match(r"^[\w./-]+:\d+: \S", line) for line in lines), text
    assert [(e.file, e.line) for e in errors] == sorted((e.file, e.line) for e in errors)
    assert "flows/a.yaml:3: YAML syntax error" in text
    assert "flows/b.yaml:6: steps[0]: connector 'warehouse' has no endpoint 'nope'" in text
    assert "flows/c.yaml:7: unknown key 'foo'" in text
    assert "interlink.yaml:9: environment variable ALICE_PW is not set" in text
    assert "connectors/warehouse.yaml:8: environment variable WH_CLIENT_ID is not set" in text


def test_broken_file_does_not_cascade(project: Path) -> None:
    """A flow naming a connector whose own file is invalid gets no second error."""
    write(project, {"connectors/warehouse.yaml": "name: warehouse\nbase_url: 1\n"
                                                 "endpoints: {a: {path: /a}}\n"})
    assert [str(e) for e in errors_of(project)] == [
        "connectors/warehouse.yaml:2: base_url: expected a string, got 1"
    ]


def test_file_names_outside_the_current_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A project outside the current directory is named as given, joined with the file."""
    root = write(tmp_path / "proj", {**GOOD, "flows/extra.yaml": FLOW + "    foo: 1\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    [error] = errors_of(root)
    assert str(error) == f"{root}/flows/extra.yaml:7: steps[0]: unknown key 'foo'"


def test_yaml_alias_bomb_is_refused(project: Path) -> None:
    """Aliases that expand to a huge tree are an error, not a hang."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1},"
              f" *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    write(project, {"flows/extra.yaml": "\n".join(lines) + "\n"})
    [error] = errors_of(project)
    assert "expands to more than" in str(error)


def test_yaml_12_keeps_yes_a_string(project: Path) -> None:
    """YAML 1.2: `yes` is a string, so a boolean field given `yes` is a type error."""
    write(project, {"services/extra.yaml": SERVICE + "request_processor: {keep_failed: yes}\n"})
    [error] = errors_of(project)
    assert str(error) == (
        "services/extra.yaml:6: request_processor.keep_failed: expected true or false, got 'yes'"
    )


def test_addresses_from_env_are_not_secrets(tmp_path: Path) -> None:
    """A base_url read from env stays readable in run logs; a token read from env is a secret."""
    (tmp_path / "interlink.yaml").write_text("name: x\n")
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "c.yaml").write_text(
        'name: c\nbase_url: "{{ env.C_URL }}"\n'
        'auth: {type: bearer, token: "{{ env.C_TOKEN }}"}\nendpoints: {e: {path: /}}\n')
    loaded = load_project(tmp_path, {"C_URL": "http://127.0.0.1:9000", "C_TOKEN": "t0ken-value"})
    assert loaded.connectors["c"].base_url == "http://127.0.0.1:9000"
    assert loaded.secrets == frozenset({"t0ken-value"})
