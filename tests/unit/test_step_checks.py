"""`check` on the flow building blocks: every problem, nested steps included, at FILE:LINE."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlink.errors import ProjectErrors
from interlink.spec import load_project

CONNECTOR = """\
name: wh
base_url: http://127.0.0.1:9
endpoints:
  a: {method: POST, path: /a}
"""


def problems(root: Path, flow: str) -> list[str]:
    """The `FILE:LINE: message` lines loading a project with this one flow gives."""
    for path, text in {"interlink.yaml": "name: chk\n", "connectors/wh.yaml": CONNECTOR,
                       "flows/f.yaml": textwrap.dedent(flow)}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    with pytest.raises(ProjectErrors) as info:
        load_project(root, environ={})
    # Outside the working directory files are named with the project's path.
    return [line.removeprefix(f"{root}/") for line in str(info.value).splitlines()]


def test_references_inside_nested_steps_are_checked_at_their_lines(tmp_path: Path) -> None:
    """Connectors, endpoints, templates, flows and ids inside routes are checked like others."""
    assert problems(tmp_path, """\
        name: f
        steps:
          - id: r
            type: route
            routes:
              - when: "payload.x"
                steps:
                  - {id: a, type: connector, connector: nope, endpoint: a}
                  - {id: b, type: connector, connector: wh, endpoint: zz}
              - otherwise:
                  - {id: a, type: map, template: templates/missing.json}
          - {id: child, type: run_flow, flow: ghost}
        """) == [
        "flows/f.yaml:8: steps[0].routes[0].steps[0]: no connector named 'nope' "
        "(connectors: wh)",
        "flows/f.yaml:9: steps[0].routes[0].steps[1]: connector 'wh' has no endpoint 'zz' "
        "(endpoints: a)",
        "flows/f.yaml:11: steps[0].routes[1].otherwise[0]: step id 'a' is already used by "
        "steps[0].routes[0].steps[0] (line 8)",
        "flows/f.yaml:11: template 'templates/missing.json' does not exist",
        "flows/f.yaml:12: steps[1]: no flow named 'ghost' (flows: f)",
    ]


@pytest.mark.parametrize(("step", "message"), [
    ("{id: r, type: route, routes: [{otherwise: [{id: m, type: map, value: payload}]},"
     " {otherwise: [{id: n, type: map, value: payload}]}]}",
     "a route step has at most one 'otherwise' (found 2)"),
    ("{id: r, type: route, routes: [{otherwise: [{id: m, type: map, value: payload}]},"
     " {when: x, steps: [{id: n, type: map, value: payload}]}]}",
     "'otherwise' must be the last of a route step's routes"),
    ("{id: d, type: delay}", "a delay step needs exactly one of 'for' or 'until'"),
    ("{id: m, type: map}", "a map step needs exactly one of 'value' or 'template'"),
    ("{id: f, type: filter, when: x, else: maybe}", "expected 'drop' or 'fail'"),
    ("{id: b, type: batch, size: 0}", "greater than or equal to 1"),
    ("{id: s, type: set, variables: {}}", "needs at least 1 entry"),
    ("{id: t, type: try, steps: [{id: x, type: split, items: 'payload.('}]}",
     "invalid expression"),
    ("{id: n, type: notify, url: 'http://x', body: payload, template: t.json}",
     "exactly one of 'template' or 'body'"),
])
def test_each_kind_refuses_what_cannot_run(tmp_path: Path, step: str, message: str) -> None:
    """Each kind's model refuses a step that cannot run, at the flow file's line."""
    found = problems(tmp_path, f"name: f\nsteps:\n  - {step}\n")
    assert len(found) == 1, found
    assert found[0].startswith("flows/f.yaml:3: ")
    assert message in found[0]
