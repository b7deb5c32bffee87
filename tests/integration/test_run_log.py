"""The run log tells every attempt: short in-place waits included, and the decision that ended
a failed step on its last attempt (`fail: no attempts left`, not `retry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.projects import push_to, running_engine, write_project
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import format_run, run_json

FAST_RETRY = "{max_attempts: 3, initial: 50ms, max: 100ms}"


async def finished(engine: Engine, run_id: str) -> dict[str, Any]:
    """The run as `runs show --json` gives it, once it ended."""
    return await run_json(engine.store, await engine.runner.wait_for(run_id, 20))


def messages(run: dict[str, Any]) -> list[str]:
    """The run log's messages."""
    return [line["message"] for line in run["logs"]]


async def test_in_place_retries_have_a_log_line_each(tmp_path: Path) -> None:
    """503, 503, 201: two "retrying in … (in place)" lines, then the accepting attempt's."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 503, 201])
        project = write_project(tmp_path, push_to(up.url, retry=FAST_RETRY))
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "succeeded"
    lines = messages(run)
    assert len(lines) == 3, lines
    assert "HTTP 503 (attempt 1 of 3); retrying in" in lines[0]
    assert lines[0].endswith("(in place)")
    assert "(attempt 2 of 3); retrying in" in lines[1]
    assert lines[2].endswith("(attempt 3 of 3); accepted")
    # The wait each line names is the one slept and recorded, to the millisecond (a 1 ms
    # backoff read "retrying in 0.0s").
    waits = [a["wait_s"] for a in run["steps"][0]["attempts"][:2]]
    for line, wait in zip(lines[:2], waits, strict=True):
        assert line.endswith(f"; retrying in {wait:g}s (in place)"), (line, wait)
    assert [line["level"] for line in run["logs"]] == ["warning", "warning", "info"]
    assert all(line["step"] == "push" for line in run["logs"])


async def test_a_first_try_success_logs_nothing(tmp_path: Path) -> None:
    """An attempt accepted at once adds no line (its attempt record says it all)."""
    async with Upstream() as up:
        project = write_project(tmp_path, push_to(up.url, retry=FAST_RETRY))
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "succeeded"
    assert messages(run) == []


async def test_the_last_attempt_shows_the_decision_that_ended_it(tmp_path: Path) -> None:
    """Always 503: the last attempt's decision is `fail`, saying no attempts were left."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503])
        project = write_project(tmp_path, push_to(up.url, retry=FAST_RETRY))
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "failed"
    attempts = run["steps"][0]["attempts"]
    assert [(a["code"], a["decision"]) for a in attempts] == [
        (1, "retry_step"), (1, "retry_step"), (3, "fail")]
    assert attempts[-1]["message"] == (
        "no attempts left (the answer asked retry_step: HTTP 503)")
    assert attempts[-1]["wait_s"] == 0
    lines = messages(run)
    assert len(lines) == 3, lines  # two waits in place, and the failure
    assert lines[2].endswith("(attempt 3 of 3); no attempts left")
    text = format_run(run)
    assert "→ 503  code 3 fail  no attempts left" in text
    assert "→ 503  code 1 retry_step  wait" in text


async def test_a_script_step_logs_its_retries_and_the_end(tmp_path: Path) -> None:
    """A script asking to retry: a line per wait in place, the last attempt recorded `fail`."""
    files = {
        "flows/again.yaml": """
            name: again
            steps:
              - {id: s, type: script, script: scripts/again.py,
                 retry: {max_attempts: 2, initial: 10ms}}
            """,
        "scripts/again.py": ("def handle(data):\n    data['response_code'] = 1\n"
                             "    data['message'] = 'stock not ready'\n    return data\n"),
    }
    async with running_engine(write_project(tmp_path, files)) as engine:
        run = await finished(engine, await engine.runner.start("again", None))
    assert run["status"] == "failed"
    attempts = run["steps"][0]["attempts"]
    assert [(a["n"], a["decision"]) for a in attempts] == [(1, "retry_step"), (2, "fail")]
    assert attempts[1]["message"] == (
        "no attempts left (the answer asked retry_step: stock not ready)")
    assert "step s: stock not ready (attempt 1 of 2); retrying in" in "\n".join(messages(run))


async def test_a_redirect_fails_the_step_saying_where_it_pointed(tmp_path: Path) -> None:
    """A 302 is the upstream's answer, not followed (the payload and its credentials go to no
    URL the connector does not name): the step fails at once, and says where it pointed and
    what to change."""
    async with Upstream() as up:
        up.route("/orders", answer=lambda req: (302, {}, {"Location": "https://new.example/o"}))
        project = write_project(tmp_path, push_to(up.url, retry="{max_attempts: 3}"))
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "failed"
    assert run["error"] == (
        "calling wh.create_order: HTTP 302: a redirect to https://new.example/o, not followed "
        "(name it in the connector's base_url or the endpoint's path) (attempt 1 of 3)")
    assert len(up.requests_to("/orders")) == 1
    assert up.requests_to("/o") == []


async def test_a_nested_steps_wait_and_failure_are_logged_under_its_own_id(
        tmp_path: Path) -> None:
    """A connector inside a route waits durably after a 503, then fails: both lines name the
    connector step, not the route around it (a newcomer read `attempt 3 of 4` under the
    route's id)."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 503])
        files = push_to(up.url, retry="{max_attempts: 2, initial: 1100ms, jitter: none}")
        files["flows/push.yaml"] = """
            name: push
            steps:
              - id: by_kind
                type: route
                routes:
                  - when: "true"
                    steps:
                      - {id: send, type: connector, connector: wh, endpoint: create_order}
            """
        project = write_project(tmp_path, files)
        async with running_engine(project) as engine:
            run = await finished(engine, await engine.runner.start("push", {"id": 1}))
    assert run["status"] == "failed"
    by_step = [(line["step"], line["level"], line["message"]) for line in run["logs"]]
    [waited] = [line for line in by_step if "retrying in" in line[2]]
    assert waited[:2] == ("send", "warning"), by_step
    [ended] = [line for line in by_step if "no attempts left" in line[2]]
    assert ended[:2] == ("send", "error"), by_step
