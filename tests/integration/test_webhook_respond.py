"""`respond:` on a webhook trigger: the served project answers with the run's output when the
run ends within `wait`, else 202 with its id; a worker runs it, a loopback upstream plays the
system it calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from tests.projects import running_engine, write_project
from tests.served import body_of, exchange, post, serving, status_of
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.server import build_app

CONFIG = "name: respond\nstore: sqlite:///.interlink/respond.db\nworker: {poll: 50ms}\n"


def hook(name: str, respond: str, endpoint: str) -> str:
    """A flow `name` at /hooks/NAME answering with `respond`, calling `endpoint` once."""
    return f"""
        name: {name}
        trigger: {{type: webhook, path: /hooks/{name}, respond: {respond}}}
        steps:
          - {{id: call, type: connector, connector: erp, endpoint: {endpoint}}}
        """


@dataclass
class Served:
    """A served project with a worker, and the upstream its connector calls."""

    port: int
    engine: Engine
    upstream: Upstream

    async def post(self, path: str, body: object) -> bytes:
        """POST `body` as JSON to `path`; the raw answer."""
        return await exchange(self.port, post(path, orjson.dumps(body)))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """Flows answering in time, too late, after a failed run and with a broken body."""
    async with Upstream() as up:
        up.route("/orders", body={"order_id": "WH-1"})
        up.route("/slow", delay=1.5, body={"late": True})
        up.route("/refused", statuses=[400], body={"error": "secret-detail-7"})
        project = write_project(tmp_path, {
            "interlink.yaml": CONFIG,
            "connectors/erp.yaml": f"""
                name: erp
                base_url: {up.url}
                retry: {{max_attempts: 1}}
                endpoints:
                  orders: {{method: POST, path: /orders}}
                  slow: {{method: POST, path: /slow}}
                  refused: {{method: POST, path: /refused}}
                """,
            "flows/quick.yaml": hook(
                "quick", "{wait: 5s, status: 201, body: \"{'ref': output.order_id, "
                "'run': run.id, 'flow': run.flow, 'for': input.id}\"}", "orders"),
            "flows/plain.yaml": hook("plain", "{wait: 5s}", "orders"),
            "flows/text.yaml": hook("text", "{wait: 5s, body: \"'created ' ~ output.order_id\"}",
                                    "orders"),
            "flows/slow.yaml": hook("slow", "{wait: 300ms}", "slow"),
            "flows/refused.yaml": hook("refused", "{wait: 5s}", "refused"),
            "flows/broken.yaml": hook("broken", "{wait: 5s, body: \"output.order_id + 1\"}",
                                      "orders"),
        })
        async with running_engine(project) as engine, \
                serving(build_app(engine, None), project.config.server.limits) as port:
            yield Served(port, engine, up)


def content_type(answer: bytes) -> str:
    """The Content-Type of a raw HTTP answer."""
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                if line.startswith("content-type:"))


def answer_text(answer: bytes) -> str:
    """The body of a raw HTTP answer as text."""
    return answer.partition(b"\r\n\r\n")[2].decode()


async def test_a_run_that_ends_in_time_answers_with_its_output(served: Served) -> None:
    """`status` and `body` over `output`, `run` and `input`; the run is stored, succeeded."""
    answer = await served.post("/hooks/quick", {"id": 7})
    assert status_of(answer) == 201
    body = body_of(answer)
    assert isinstance(body, dict)
    assert body["ref"] == "WH-1" and body["flow"] == "quick" and body["for"] == 7
    run = await served.engine.store.get_run(body["run"])
    assert run is not None and run.status == "succeeded" and run.trigger == "webhook"
    assert served.upstream.requests_to("/orders")[0].json == {"id": 7}


async def test_the_default_answer_is_the_output_as_json_and_text_is_text(
        served: Served) -> None:
    """Without `body` the output is sent as JSON with 200; a text value as text/plain."""
    plain = await served.post("/hooks/plain", {"id": 1})
    text = await served.post("/hooks/text", {"id": 2})
    assert (status_of(plain), body_of(plain)) == (200, {"order_id": "WH-1"})
    assert content_type(plain) == "application/json"
    assert status_of(text) == 200
    assert answer_text(text) == "created WH-1"
    assert content_type(text).startswith("text/plain")


async def test_a_run_still_going_after_wait_gets_202_and_goes_on(served: Served) -> None:
    """The 202 carries the committed run's id; the run later succeeds all the same."""
    answer = await served.post("/hooks/slow", {"id": 3})
    assert status_of(answer) == 202
    body = body_of(answer)
    assert isinstance(body, dict) and body["status"] == "queued"
    assert await served.engine.store.get_run(body["run_id"]) is not None
    run = await served.engine.runner.wait_for(body["run_id"], 10)
    assert run.status == "succeeded" and run.bucket == [{"late": True}]


async def test_a_failed_run_is_a_500_naming_it_without_its_reason(served: Served) -> None:
    """A run that failed in time: 500 with its id and status; the upstream's body stays out."""
    answer = await served.post("/hooks/refused", {"id": 4})
    assert status_of(answer) == 500
    body = body_of(answer)
    assert isinstance(body, dict) and body["status"] == "failed"
    assert body["error"]["message"] == f"run {body['run_id']} ended failed"
    assert b"secret-detail-7" not in answer
    run = await served.engine.store.get_run(body["run_id"])
    assert run is not None and run.error is not None and "HTTP 400" in run.error


async def test_a_body_that_cannot_be_evaluated_is_a_500_for_a_succeeded_run(
        served: Served) -> None:
    """`output.order_id + 1` over a string fails: 500 says the run succeeded anyway."""
    answer = await served.post("/hooks/broken", {"id": 5})
    assert status_of(answer) == 500
    body = body_of(answer)
    assert isinstance(body, dict) and body["status"] == "succeeded"
    assert "could not be built" in body["error"]["message"]
