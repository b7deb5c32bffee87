"""Connector step capabilities: pagination (five kinds), per-payload concurrency, a cache with
single-flight, and a code-2 retry that does not send delivered payloads again — a real engine,
SQLite and loopback upstreams that page by query parameter, cursor, body link or Link header."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from tests.projects import running_engine, write_project
from tests.upstream import RecordedRequest, Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json
from interlink.spec import Project, load_project

CONFIG = "name: test\nstore: sqlite:///.interlink/test.db\nworker: {poll: 50ms}\n"
#: the records the test APIs page through
RECORDS = [{"n": n} for n in range(7)]


def project(root: Path, url: str, endpoint: str, step: str = "",
            files: dict[str, str] | None = None, flow_retry: str = "") -> Project:
    """A connector `api` with one endpoint `list` and a flow `pull` calling it."""
    return write_project(root, {
        "interlink.yaml": CONFIG,
        "connectors/api.yaml": f"name: api\nbase_url: {url}\nretry: {{max_attempts: 3, "
                               f"initial: 1ms}}\nendpoints:\n  list: {endpoint}\n",
        "flows/pull.yaml": textwrap.dedent(f"""\
            name: pull
            {flow_retry}
            steps:
              - {{id: get, type: connector, connector: api, endpoint: list{step}}}
            """),
        **(files or {}),
    })


async def pulled(engine: Engine, payload: Any = None) -> dict[str, Any]:
    """Run `pull`; its JSON once it ended."""
    run = await engine.runner.wait_for(await engine.runner.start("pull", payload), 20)
    return await run_json(engine.store, run)


def by_page(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
    """Pages of 3 by `page` (from 1) and `per_page`."""
    page, size = int(request.query["page"]), int(request.query.get("per_page", 3))
    return 200, {"data": RECORDS[(page - 1) * size:page * size]}, {}


def by_offset(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
    """Pages by `offset` and `limit`."""
    offset, limit = int(request.query["offset"]), int(request.query["limit"])
    return 200, RECORDS[offset:offset + limit], {}


def by_cursor(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
    """Pages of 3 with an opaque `next` cursor (`c3`, `c6`), none after the last."""
    start = int(request.query.get("cursor", "c0")[1:])
    following = f"c{start + 3}" if start + 3 < len(RECORDS) else None
    return 200, {"data": RECORDS[start:start + 3], "next": following}, {}


def link_pages(base: str) -> Any:
    """Pages of 3 with `Link: <…>; rel="next"`; the second page fails once with a 503."""
    failed: set[int] = set()

    def answer(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        start = int(request.query.get("from", 0))
        if start == 3 and start not in failed:
            failed.add(start)
            return 503, {"error": "busy"}, {}
        headers = {}
        if start + 3 < len(RECORDS):
            headers["Link"] = f'<{base}/items?from={start + 3}>; rel="next", <{base}>; rel="first"'
        return 200, {"records": RECORDS[start:start + 3]}, headers

    return answer


async def test_page_pagination_collects_every_page_until_an_empty_one(tmp_path: Path) -> None:
    """`type: page` asks page=1,2,3,4 (per_page 3); the empty 4th ends it; items in order."""
    endpoint = ("{method: GET, path: /items, paginate: {type: page, param: page, start: 1, "
                "size_param: per_page, size: 3, items: response.json.data}}")
    async with Upstream() as up:
        up.route("/items", answer=by_page)
        async with running_engine(project(tmp_path, up.url, endpoint)) as engine:
            run = await pulled(engine)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == RECORDS
    assert [r.query["page"] for r in up.requests_to("/items")] == ["1", "2", "3", "4"]
    attempts = run["steps"][0]["attempts"]
    assert len(attempts) == 4  # each page is an attempt in the run log
    keys = [r.headers["Idempotency-Key"] for r in up.requests_to("/items")]
    assert len(set(keys)) == 4


async def test_offset_pagination(tmp_path: Path) -> None:
    """`type: offset` asks offset=0,5,10 with limit=5."""
    endpoint = ("{method: GET, path: /items, paginate: {type: offset, param: offset, "
                "size_param: limit, size: 5}}")
    async with Upstream() as up:
        up.route("/items", answer=by_offset)
        async with running_engine(project(tmp_path, up.url, endpoint)) as engine:
            run = await pulled(engine)
    assert run["output"] == RECORDS
    assert [r.query["offset"] for r in up.requests_to("/items")] == ["0", "5", "10"]


async def test_cursor_pagination_overridden_on_the_step(tmp_path: Path) -> None:
    """A step's `paginate` (cursor) overrides the endpoint's; it ends without a cursor."""
    endpoint = "{method: GET, path: /items, paginate: {type: page}}"
    step = (", paginate: {type: cursor, param: cursor, cursor: response.json.next, "
            "items: response.json.data}")
    async with Upstream() as up:
        up.route("/items", answer=by_cursor)
        async with running_engine(project(tmp_path, up.url, endpoint, step)) as engine:
            run = await pulled(engine)
    assert run["output"] == RECORDS
    assert [r.query.get("cursor") for r in up.requests_to("/items")] == [None, "c3", "c6"]


async def test_link_header_pagination_retries_a_page_and_honours_max_pages(
    tmp_path: Path,
) -> None:
    """`Link: rel="next"` pages; a page's 503 is retried with its own key; max_pages stops."""
    endpoint = ("{method: GET, path: /items, paginate: {type: link_header, "
                "items: response.json.records, max_pages: 2}}")
    async with Upstream() as up:
        up.route("/items", answer=link_pages(up.url))
        async with running_engine(project(tmp_path, up.url, endpoint)) as engine:
            run = await pulled(engine)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == RECORDS[:6]
    sent = up.requests_to("/items")
    assert [r.query.get("from") for r in sent] == [None, "3", "3"]
    assert sent[1].headers["Idempotency-Key"] == sent[2].headers["Idempotency-Key"]
    assert any("stopped after max_pages (2)" in line["message"] for line in run["logs"])


async def test_next_url_pagination_from_the_body(tmp_path: Path) -> None:
    """`type: next_url` follows a link read from the body."""
    def answer(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        start = int(request.query.get("from", 0))
        following = f"/items?from={start + 4}" if start + 4 < len(RECORDS) else None
        return 200, {"items": RECORDS[start:start + 4], "links": {"next": following}}, {}

    endpoint = ("{method: GET, path: /items, paginate: {type: next_url, "
                "next: response.json.links.next, items: \"response.json['items']\"}}")
    async with Upstream() as up:
        up.route("/items", answer=answer)
        async with running_engine(project(tmp_path, up.url, endpoint)) as engine:
            run = await pulled(engine)
    assert run["output"] == RECORDS
    assert [r.query.get("from") for r in up.requests_to("/items")] == [None, "4"]


SPLIT_AND_PUSH = """
name: pull
{retry}
steps:
  - {{id: each, type: split, items: payload}}
  - {{id: get, type: connector, connector: api, endpoint: list{step}}}
"""


def fan_out(root: Path, url: str, step: str, files: dict[str, str] | None = None,
            retry: str = "") -> Project:
    """The flow `pull`: split a list, then call `/items/{{ payload.n }}` per item."""
    return write_project(root, {
        "interlink.yaml": CONFIG,
        "connectors/api.yaml": f"name: api\nbase_url: {url}\nretry: {{max_attempts: 1}}\n"
                               "endpoints:\n"
                               "  list: {method: POST, path: '/items/{{ payload.n }}'}\n",
        "flows/pull.yaml": SPLIT_AND_PUSH.format(step=step, retry=retry),
        **(files or {}),
    })


async def test_concurrency_sends_payloads_at_once_and_keeps_their_order(tmp_path: Path) -> None:
    """`concurrency: 4` has 4 calls in flight at once; outputs stay in input order."""
    async with Upstream() as up:
        for n in range(8):
            up.route(f"/items/{n}", delay=0.3 - n * 0.03, body={"n": n})
        async with running_engine(fan_out(tmp_path, up.url, ", concurrency: 4")) as engine:
            run = await pulled(engine, [{"n": n} for n in range(8)])
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == [{"n": n} for n in range(8)]
    assert up.max_in_flight == 4


async def test_cache_answers_a_key_seen_before_and_single_flights_misses(tmp_path: Path) -> None:
    """Five payloads, two keys: two calls (concurrent misses share one); a later run: none."""
    step = ", concurrency: 5, cache: {key: payload.customer, ttl: 10m}"
    async with Upstream() as up:
        for n in range(5):
            up.route(f"/items/{n}", delay=0.2, body={"looked_up": n})
        async with running_engine(fan_out(tmp_path, up.url, step)) as engine:
            payloads = [{"n": n, "customer": "c1" if n % 2 else "c2"} for n in range(5)]
            first = await pulled(engine, payloads)
            sent_first = len(up.requests)
            again = await pulled(engine, [{"n": 4, "customer": "c1"}])
    assert first["status"] == "succeeded", first["error"]
    assert sent_first == 2
    by_customer = {p["customer"]: out for p, out in zip(payloads, first["output"], strict=True)}
    assert first["output"] == [by_customer[p["customer"]] for p in payloads]
    assert again["output"] == [by_customer["c1"]]
    assert len(up.requests) == 2  # the second run was answered from the store
    assert any("answered from the cache" in line["message"] for line in again["logs"])


FAIL_THIRD = '''
def handle(data):
    if data["payload"]["n"] == 2 and data["meta"]["retry_count"] == 0:
        data["response_code"] = 2
        data["message"] = "try the flow again"
    return data
'''


async def test_a_flow_retried_after_code_2_sends_only_what_was_not_delivered(
    tmp_path: Path,
) -> None:
    """Payload 2 asks for a flow retry: the retry run sends 2 and 3, not 0 and 1 again."""
    step = ", response_script: scripts/fail_third.py"
    retry = "retry: {max_flow_retries: 1, delay: 100ms}"
    async with Upstream() as up:
        for n in range(4):
            up.route(f"/items/{n}", body={"n": n})
        async with running_engine(fan_out(tmp_path, up.url, step,
                                          {"scripts/fail_third.py": FAIL_THIRD},
                                          retry)) as engine:
            first_id = await engine.runner.start("pull", [{"n": n} for n in range(4)])
            first = await engine.runner.wait_for(first_id, 20)
            retry_run = await engine.runner.wait_for(engine.runner.retry_id(first), 20)
            shown = await run_json(engine.store, retry_run)
    assert first.status == "failed"
    assert retry_run.status == "succeeded", retry_run.error
    assert retry_run.bucket == [{"n": n} for n in range(4)]
    assert [r.path for r in up.requests] == ["/items/0", "/items/1", "/items/2", "/items/2",
                                             "/items/3"]
    assert any("2 payload(s) were delivered by run" in line["message"] for line in shown["logs"])


async def test_a_cache_answers_a_repeated_key_within_one_sequential_step(tmp_path: Path) -> None:
    """Without concurrency, the second payload with a key is answered by the first's call."""
    step = ", cache: {key: payload.customer, ttl: 10m}"
    async with Upstream() as up:
        for n in range(3):
            up.route(f"/items/{n}", body={"looked_up": n})
        async with running_engine(fan_out(tmp_path, up.url, step)) as engine:
            run = await pulled(engine, [{"n": n, "customer": "c1"} for n in range(3)])
    assert run["output"] == [{"looked_up": 0}] * 3
    assert len(up.requests) == 1


SETS_PAYLOAD = '''
def handle(data):
    data["payload"] = {"seen": True}
    return data
'''


async def test_pages_come_from_the_response_even_if_the_script_sets_a_payload(
    tmp_path: Path,
) -> None:
    """A response script that sets `payload` does not stop a paginated walk."""
    endpoint = ("{method: GET, path: /items, paginate: {type: page, param: page, start: 1, "
                "size_param: per_page, size: 3, items: response.json.data}}")
    async with Upstream() as up:
        up.route("/items", answer=by_page)
        async with running_engine(project(tmp_path, up.url, endpoint,
                                          ", response_script: scripts/sets.py",
                                          {"scripts/sets.py": SETS_PAYLOAD})) as engine:
            run = await pulled(engine)
    assert run["output"] == RECORDS


async def test_a_next_page_on_another_host_is_not_followed(tmp_path: Path) -> None:
    """A `Link` to another host fails the step instead of sending it the credentials."""
    def answer(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        return 200, {"records": [1]}, {"Link": '<http://evil.example/steal>; rel="next"'}

    endpoint = ("{method: GET, path: /items, paginate: {type: link_header, "
                "items: response.json.records}}")
    async with Upstream() as up:
        up.route("/items", answer=answer)
        async with running_engine(project(tmp_path, up.url, endpoint)) as engine:
            run = await pulled(engine)
    assert run["status"] == "failed"
    assert "not sending the connector's credentials there" in run["error"]
    assert len(up.requests) == 1


async def test_a_resumed_retry_run_still_skips_what_its_failed_run_delivered(
    tmp_path: Path,
) -> None:
    """The retry run waits out a Retry-After on payload 2; resumed, it still skips 0 and 1."""
    third: list[int] = []

    def answer_third(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        third.append(1)
        if len(third) == 2:  # the retry run's first try: come back in 2 s
            return 503, {"busy": True}, {"Retry-After": "2"}
        return 200, {"n": 2}, {}

    retry = "retry: {max_flow_retries: 1, delay: 100ms}"
    async with Upstream() as up:
        for n in (0, 1, 3):
            up.route(f"/items/{n}", body={"n": n})
        up.route("/items/2", answer=answer_third)
        fan_out(tmp_path, up.url, ", response_script: scripts/fail_third.py",
                {"scripts/fail_third.py": FAIL_THIRD}, retry)
        connector = tmp_path / "connectors/api.yaml"  # three attempts: room for the 503
        connector.write_text(connector.read_text().replace("max_attempts: 1", "max_attempts: 3"))
        async with running_engine(load_project(tmp_path)) as e:
            first_id = await e.runner.start("pull", [{"n": n} for n in range(4)])
            first = await e.runner.wait_for(first_id, 20)
            retry_run = await e.runner.wait_for(e.runner.retry_id(first), 30)
    assert retry_run.status == "succeeded", retry_run.error
    assert [r.path for r in up.requests] == ["/items/0", "/items/1", "/items/2", "/items/2",
                                             "/items/2", "/items/3"]
