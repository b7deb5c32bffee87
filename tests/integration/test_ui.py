"""The web UI in-process (`call_app` against the served app): sign-in, sessions, CSRF and
origin checks, loopback mode, pages, actions, and no secret in any page."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path

import pytest
from tests.processes import wait_until
from tests.projects import running_engine, write_project
from tests.ui_client import UiClient, csrf_of
from tests.upstream import Upstream

from interlink.engine import Engine
from interlink.flows.report import run_json
from interlink.server import build_app
from interlink.store import Enqueue, Fail, InsertRun, Requeue, RunRecord

TOKEN = "admin-token-0123456789abcdef"
SECRET = "wh-secret-token-5f3a9c"
UI = "/_interlink/ui"


def files(url: str, admin: str) -> dict[str, str]:
    """A project: connector `wh` (bearer token from .env) and flow `push` posting to it."""
    return {
        "interlink.yaml": f"""
            name: t
            store: sqlite:///.interlink/t.db
            worker: {{poll: 20ms}}
            {admin}
            """,
        ".env": f"WH_TOKEN={SECRET}\n",
        "connectors/wh.yaml": f"""
            name: wh
            base_url: {url}
            auth: {{type: bearer, token: "{{{{ env.WH_TOKEN }}}}"}}
            retry: {{max_attempts: 2, initial: 10ms, max: 10ms}}
            endpoints:
              create_order: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": """
            name: push
            steps:
              - {id: push, type: connector, connector: wh, endpoint: create_order}
            """,
        "flows/shaped.yaml": """
            name: shaped
            steps:
              - {id: shape, type: map, value: "{'order': payload.n, 'kind': 'shaped'}"}
              - {id: push, type: connector, connector: wh, endpoint: create_order}
            """,
        "flows/later.yaml": """
            name: later
            steps:
              - {id: wait, type: delay, for: 1h}
              - {id: push, type: connector, connector: wh, endpoint: create_order}
            """,
    }


@contextlib.asynccontextmanager
async def served(tmp_path: Path, admin: str = f'admin: {{token: "{TOKEN}"}}',
                 ) -> AsyncIterator[tuple[Engine, Upstream, UiClient]]:
    """An engine with a worker, its main app, and an upstream answering /orders 500."""
    async with Upstream() as up:
        up.route("/orders", statuses=[500])
        project = write_project(tmp_path, files(up.url, admin))
        async with running_engine(project) as engine:
            yield engine, up, UiClient(build_app(engine, engine.worker()))


async def ended(engine: Engine, run_id: str) -> str:
    """The status a run ends in."""
    run = await engine.runner.wait_for(run_id, 20)
    return run.status


async def test_anonymous_pages_redirect_to_the_sign_in_form(tmp_path: Path) -> None:
    """With admin.token, every page sends an anonymous caller to sign in (303, where it was
    going kept); the engine's JSON 401 is not what a browser gets."""
    async with served(tmp_path) as (_, _, ui):
        for path in (f"{UI}/", f"{UI}/runs?status=failed", f"{UI}/queue", f"{UI}/overview"):
            answer = await ui.get(path)
            assert answer.status == 303, path
            assert answer.headers["location"].startswith(f"{UI}/login?next=")
        login = await ui.get(f"{UI}/login")
        assert login.status == 200 and b'type="password" name="token"' in login.body
        assert (await ui.get("/_interlink/runs/x")).status == 401  # the API is unchanged
        posted = await ui.post(f"{UI}/runs/r_x/retry", {})
        assert (posted.status, posted.headers["location"]) == \
            (303, f"{UI}/login?next=%2F_interlink%2Fui%2F")


async def test_signing_in_with_the_token_opens_a_session(tmp_path: Path) -> None:
    """A wrong token is refused (401, no session); the right one sets an HttpOnly,
    SameSite=Strict session cookie on the UI's path and goes on to `next`; signing out ends
    the session for good."""
    async with served(tmp_path) as (engine, _, ui):
        wrong = await ui.sign_in("not-the-token-at-all-123")
        assert wrong.status == 401 and b"not accepted" in wrong.body
        assert "interlink_ui" not in ui.cookies
        login = await ui.get(f"{UI}/login?next={UI}/queue")
        answer = await ui.post(f"{UI}/login", {"csrf": csrf_of(login), "token": TOKEN,
                                               "next": f"{UI}/queue"})
        assert answer.status == 303 and answer.headers["location"] == f"{UI}/queue"
        cookie = next(c for c in answer.header_list("set-cookie") if c.startswith("interlink_ui="))
        assert all(part in cookie.lower() for part in
                   ("httponly", "samesite=strict", f"path={UI}".lower()))
        assert "secure" not in cookie.lower()  # plain http here
        session_id = ui.cookies["interlink_ui"]
        assert await engine.store.get_session(session_id, 0) is not None
        page = await ui.get(f"{UI}/")
        assert page.status == 200 and b"<h1>Runs</h1>" in page.body
        assert (await ui.get(f"{UI}/nothing/here")).status == 404
        stolen = dict(ui.cookies)
        out = await ui.post(f"{UI}/logout", {"csrf": csrf_of(page)})
        assert out.status == 303
        assert await engine.store.get_session(session_id, 0) is None
        ui.cookies = stolen  # the old cookie is worth nothing now
        assert (await ui.get(f"{UI}/")).status == 303


async def test_next_never_leaves_the_ui(tmp_path: Path) -> None:
    """A `next` naming another site (or any path outside the UI) lands on the runs list."""
    async with served(tmp_path) as (_, _, ui):
        for target in ("https://evil.example/", "//evil.example/x", f"{UI}//evil.example",
                       "/_interlink/runs"):
            fresh = UiClient(ui.app)
            login = await fresh.get(f"{UI}/login")
            answer = await fresh.post(f"{UI}/login", {"csrf": csrf_of(login), "token": TOKEN,
                                                      "next": target})
            assert answer.headers["location"] == f"{UI}/", target


async def test_a_post_without_the_form_token_or_from_elsewhere_is_refused(
        tmp_path: Path) -> None:
    """Signed in, a POST is refused (403) without the token, with another session's token,
    from another origin, or naming no origin at all; nothing is retried."""
    async with served(tmp_path) as (engine, _, ui):
        run_id = await engine.runner.start("push", {"n": 1})
        assert await ended(engine, run_id) == "failed"
        await ui.sign_in(TOKEN)
        token = csrf_of(await ui.get(f"{UI}/runs/{run_id}"))
        other = UiClient(ui.app)
        await other.sign_in(TOKEN)
        foreign = csrf_of(await other.get(f"{UI}/"))
        retry = f"{UI}/runs/{run_id}/retry"
        for form, origin in (({}, f"http://{ui_host()}"), ({"csrf": "0" * 64}, None),
                             ({"csrf": foreign}, f"http://{ui_host()}"),
                             ({"csrf": token}, "http://evil.example"),
                             ({"csrf": token}, None)):
            answer = await ui.post(retry, form, origin=origin or "null")
            assert answer.status == 403, (form, origin)
            assert b"could not be checked" in answer.body
        assert len(await engine.store.list_runs()) == 1
        # The same form with its token, from this host, is accepted.
        assert (await ui.post(retry, {"csrf": token})).status == 200
        assert len(await engine.store.list_runs()) == 2


def ui_host() -> str:
    """The host the in-process client names."""
    return "127.0.0.1:8080"


async def test_the_run_page_shows_every_attempt_with_the_secret_masked(tmp_path: Path) -> None:
    """A failed run's page: both attempts with method, URL, headers (the bearer token as
    `***`), status and decision; the list shows it failed. Neither the connector's secret nor
    the admin token is in any page."""
    async with served(tmp_path) as (engine, up, ui):
        run_id = await engine.runner.start("push", {"order": "A-1", "lines": [1, 2]})
        assert await ended(engine, run_id) == "failed"
        assert up.requests_to("/orders")[0].headers["Authorization"] == f"Bearer {SECRET}"
        await ui.sign_in(TOKEN)
        listed = await ui.get(f"{UI}/runs?status=failed")
        assert run_id.encode() in listed.body and b"s-failed" in listed.body
        page = await ui.get(f"{UI}/runs/{run_id}")
        html = page.body.decode()
        assert page.status == 200
        assert html.count("<details class=\"attempt") == 2
        assert html.count("<tr><th>Authorization</th><td>***</td></tr>") == 2
        assert f"POST {up.url}/orders" in html
        assert "<b>500</b>" in html and "retry_step" in html
        assert '"order": "A-1"' in unescape(html)  # the input, pretty-printed
        # A run's own item is gone once it ended; a kept one (a queued request's) is linked.
        await engine.store.write(Enqueue("q_kept1", "kept", {"run_id": run_id}))
        item = (await engine.store.run_items(run_id))[0]
        html = (await ui.get(f"{UI}/runs/{run_id}")).body.decode()
        assert f"{UI}/queue/{item.id}" in html
        item_page = await ui.get(f"{UI}/queue/{item.id}")
        assert f"{UI}/runs/{run_id}".encode() in item_page.body
        for path in (f"{UI}/", f"{UI}/runs/{run_id}", f"{UI}/queue", f"{UI}/overview",
                     f"{UI}/queue/{item.id}", f"{UI}/runs/{run_id}/download/attempt-0-request"):
            body = (await ui.get(path)).body
            assert SECRET.encode() not in body and TOKEN.encode() not in body, path


async def test_a_call_in_flight_shows_on_the_run_page_and_in_its_json(tmp_path: Path) -> None:
    """A step's record is written with its outcome; until then the step is shown `running`
    with its attempt `unknown` (a newcomer watching a slow call saw no step at all)."""
    async with served(tmp_path) as (engine, up, ui):
        up.route("/orders", delay=1.0)
        run_id = await engine.runner.start("push", {"order": "A-2"})
        await wait_until("the call", lambda: bool(up.requests_to("/orders")))
        run = await engine.store.get_run(run_id)
        assert run is not None
        shown = await run_json(engine.store, run)
        await ui.sign_in(TOKEN)
        html = (await ui.get(f"{UI}/runs/{run_id}")).body.decode()
        assert await ended(engine, run_id) == "succeeded"
    assert [(s["id"], s["status"], s["finished_at"]) for s in shown["steps"]] == \
        [("push", "running", None)]
    assert [a["decision"] for a in shown["steps"][0]["attempts"]] == ["unknown"]
    assert "Step push" in html and "s-running" in html
    assert html.count("<details class=\"attempt") == 1


async def test_retry_from_the_page_starts_a_run_that_succeeds(tmp_path: Path) -> None:
    """Retry answers with a link to the new run (trigger `retry`, `retry_of` the old one),
    which succeeds once the upstream does."""
    async with served(tmp_path) as (engine, up, ui):
        run_id = await engine.runner.start("push", {"n": 1})
        assert await ended(engine, run_id) == "failed"
        up.route("/orders", statuses=[201], body={"ok": True})
        await ui.sign_in(TOKEN)
        token = csrf_of(await ui.get(f"{UI}/runs/{run_id}"))
        answer = await ui.post(f"{UI}/runs/{run_id}/retry", {"csrf": token})
        assert answer.status == 200 and b"Retry queued" in answer.body
        new_id = re.search(rb'the new run (r_\w+)', answer.body)
        assert new_id is not None
        new = new_id[1].decode()
        assert await ended(engine, new) == "succeeded"
        run = await engine.store.get_run(new)
        assert run is not None and run.retry_of == run_id and run.trigger == "retry"
        page = (await ui.get(f"{UI}/runs/{new}")).body.decode()
        assert f"{UI}/runs/{run_id}" in page and "s-succeeded" in page
        old = (await ui.get(f"{UI}/runs/{run_id}")).body.decode()
        assert f'Retried as</dt><dd><a href="{UI}/runs/{new}"' in old
        twice = await ui.post(f"{UI}/runs/{run_id}/retry", {"csrf": token})
        assert b"Already retried" in twice.body and new.encode() in twice.body
        assert len(await engine.store.list_runs()) == 2  # a run has one retry


async def test_bulk_retry_confirms_the_count_then_retries_each(tmp_path: Path) -> None:
    """The confirmation page counts the failed runs of the filter; its form retries them."""
    async with served(tmp_path) as (engine, _, ui):
        ids = [await engine.runner.start("push", {"n": n}) for n in range(3)]
        for run_id in ids:
            assert await ended(engine, run_id) == "failed"
        await ui.sign_in(TOKEN)
        confirm = await ui.get(f"{UI}/retry?flow=push")
        assert confirm.status == 200 and b"<b>3</b> failed runs match" in confirm.body
        form = dict(re.findall(rb'name="(\w+)" value="([^"]*)"', confirm.body))
        answer = await ui.post(f"{UI}/retry", {k.decode(): v.decode() for k, v in form.items()})
        assert answer.status == 200 and b"3 failed runs retried" in answer.body
        retries = [r for r in await engine.store.list_runs() if r.trigger == "retry"]
        assert sorted(r.retry_of or "" for r in retries) == sorted(ids)
        # A filter naming another status offers no bulk retry of the failed runs.
        other = await ui.get(f"{UI}/runs?status=succeeded")
        assert b"failed runs matching this filter" not in other.body
        none = await ui.get(f"{UI}/retry?status=succeeded")
        assert b"No failed runs match this filter" in none.body


async def test_a_broken_item_is_requeued_from_the_queue_page(tmp_path: Path) -> None:
    """The queue page lists a broken item with a Requeue button; posting it makes the item
    ready again and links to it."""
    async with served(tmp_path) as (engine, _, ui):
        store = engine.store
        await store.write(Enqueue("q_broken1", "nothing_handles_this", {"run_id": "r_x"},
                                  owner="me"))
        await store.write(Fail("q_broken1", "me", "gave up: upstream gone", status="broken"))
        await ui.sign_in(TOKEN)
        queue = await ui.get(f"{UI}/queue?status=broken")
        assert b"q_broken1" in queue.body and b"gave up: upstream gone" in queue.body
        answer = await ui.post(f"{UI}/queue/q_broken1/requeue", {"csrf": csrf_of(queue)})
        assert answer.status == 200 and b"Requeued" in answer.body
        item = await store.get_item("q_broken1")
        assert item is not None and item.status in ("ready", "leased", "broken", "failed")
        assert item.attempts <= 1
        again = await ui.post(f"{UI}/queue/q_nope/requeue", {"csrf": csrf_of(queue)})
        assert again.status == 409 and b"Not requeued" in again.body
        assert await store.write(Requeue("q_nope")) == [False]


async def test_loopback_mode_needs_no_sign_in_and_refuses_other_callers(
        tmp_path: Path) -> None:
    """Without admin.token a loopback caller uses the UI (forms bound to a cookie of its
    own); a caller from elsewhere gets the 403 page, and its POSTs are refused too."""
    async with served(tmp_path, admin="") as (engine, _, ui):
        run_id = await engine.runner.start("push", {"n": 1})
        assert await ended(engine, run_id) == "failed"
        page = await ui.get(f"{UI}/runs/{run_id}")
        assert page.status == 200 and "interlink_ui_form" in ui.cookies
        assert b"Sign out" not in page.body
        answer = await ui.post(f"{UI}/runs/{run_id}/retry", {"csrf": csrf_of(page)})
        assert answer.status == 200 and b"Retry queued" in answer.body
        assert (await ui.post(f"{UI}/runs/{run_id}/retry", {})).status == 403
        outside = UiClient(ui.app, client=("203.0.113.9", 40000))
        refused = await outside.get(f"{UI}/")
        assert refused.status == 403 and b"Only callers on this machine" in refused.body
        assert (await outside.post(f"{UI}/runs/{run_id}/retry",
                                   {"csrf": csrf_of(page)})).status == 403


async def test_pages_render_payloads_readably_and_cut_large_ones(tmp_path: Path) -> None:
    """JSON is indented, XML indented, a large value is cut with a download link that
    answers the whole value as a file."""
    async with served(tmp_path) as (engine, up, ui):
        big = {"lines": [{"sku": f"SKU-{n:05}"} for n in range(2000)]}
        up.route("/orders", statuses=[200], body="<ack><order id='1'><ok/></order></ack>")
        run_id = await engine.runner.start("push", big)
        assert await ended(engine, run_id) == "succeeded"
        await ui.sign_in(TOKEN)
        html = (await ui.get(f"{UI}/runs/{run_id}")).body.decode()
        assert '{\n  &#34;lines&#34;: [\n    {\n      &#34;sku&#34;' in html
        assert "&lt;ack&gt;\n  &lt;order id=&#34;1&#34;&gt;" in html
        assert f'href="{UI}/runs/{run_id}/download/input" download' in html
        whole = await ui.get(f"{UI}/runs/{run_id}/download/input")
        assert whole.status == 200 and "attachment" in whole.headers["content-disposition"]
        assert whole.body.count(b"SKU-") == 2000


async def test_each_step_shows_its_input_and_output(tmp_path: Path) -> None:
    """A map step then a connector step: the first step's output is the second's input, the
    second's output the upstream's answer; each step's bucket downloads whole."""
    async with served(tmp_path) as (engine, up, ui):
        up.route("/orders", statuses=[201], body={"ack": "A-77"})
        run_id = await engine.runner.start("shaped", {"n": 77})
        assert await ended(engine, run_id) == "succeeded"
        await ui.sign_in(TOKEN)
        html = unescape((await ui.get(f"{UI}/runs/{run_id}")).body.decode())
        shaped = html.index('"kind": "shaped"')
        # The map's output, the push's input, and the body its attempt sent.
        assert html.count('"kind": "shaped"') == 3
        assert '"ack": "A-77"' in html[shaped:]
        for index, value in ((0, b'"kind": "shaped"'), (1, b'"ack": "A-77"')):
            whole = await ui.get(f"{UI}/runs/{run_id}/download/step-{index}")
            assert whole.status == 200 and value in whole.body, whole.body


async def test_a_filter_that_cannot_be_read_is_a_400_page(tmp_path: Path) -> None:
    """An unknown status or a time that is none: the page says which, as the API does,
    rather than "No runs match"."""
    async with served(tmp_path) as (_, _, ui):
        await ui.sign_in(TOKEN)
        for query, said in (("status=bogus", "no status &#39;bogus&#39;: one of queued"),
                            ("since=soonish", "soonish")):
            answer = await ui.get(f"{UI}/runs?{query}")
            assert answer.status == 400, query
            assert "Bad filter" in answer.body.decode() and said in answer.body.decode(), query


async def test_the_overview_counts_runs_and_attempts_per_connector(tmp_path: Path) -> None:
    """The overview names the flow with its runs and success rate, a bar chart, and the
    connector's attempts by decision."""
    async with served(tmp_path) as (engine, up, ui):
        run_id = await engine.runner.start("push", {"n": 1})
        assert await ended(engine, run_id) == "failed"
        up.route("/orders", statuses=[201])
        ok = await engine.runner.start("push", {"n": 2})
        assert await ended(engine, ok) == "succeeded"
        await ui.sign_in(TOKEN)
        html = (await ui.get(f"{UI}/overview")).body.decode()
        assert html.count('<svg class="chart"') == 2  # one flow, two windows
        assert "50.0 %" in html
        row = re.search(r"<tr><td>wh</td>(.*?)</tr>", html)
        assert row is not None
        cells = re.findall(r'class="num[^"]*">([\d,]+)<', row[1])
        # continue, retry, reauth, fail, all: the failed run's last attempt is counted as the
        # decision that ended it (fail: no attempts left), not as the retry its 503 asked for
        assert cells == ["1", "1", "0", "1", "3"]


async def test_the_main_listener_does_not_serve_the_ui_when_admin_listen_is_set(
        tmp_path: Path) -> None:
    """With admin.listen the UI is on the admin listener only."""
    admin = f'admin: {{token: "{TOKEN}", listen: {{host: 127.0.0.1, port: 1}}}}'
    async with served(tmp_path, admin=admin) as (_, _, ui):
        assert (await ui.get(f"{UI}/")).status == 404
        assert (await ui.get(f"{UI}/login")).status == 404


@pytest.mark.parametrize("name", ["app.css", "app.js"])
async def test_static_files_are_served_without_sign_in(tmp_path: Path, name: str) -> None:
    """The stylesheet and the script load on the sign-in page, before any session."""
    async with served(tmp_path) as (_, _, ui):
        answer = await ui.get(f"{UI}/static/{name}")
        assert answer.status == 200 and len(answer.body) > 500
        assert (await ui.get(f"{UI}/static/other.txt")).status == 404


async def test_pages_carry_a_strict_content_security_policy(tmp_path: Path) -> None:
    """No inline script can run, nothing loads from elsewhere, and no site may frame the UI."""
    async with served(tmp_path) as (_, _, ui):
        answer = await ui.get(f"{UI}/login")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"


async def test_the_list_pages_by_cursor_newest_first(tmp_path: Path) -> None:
    """60 runs: the first page shows the newest 50 and links "older"; that page the other 10
    and no further link; a mangled cursor is a 400 page."""
    async with served(tmp_path) as (engine, _, ui):
        runs = [RunRecord(id=f"r_{n:03}", flow="push", status="succeeded", trigger="api",
                          input={"n": n}, flow_spec={"name": "push"}, created_at=1000.0 + n)
                for n in range(60)]
        await engine.store.write(*(InsertRun(run) for run in runs))
        await ui.sign_in(TOKEN)
        first = (await ui.get(f"{UI}/runs?flow=push")).body.decode()
        shown = re.findall(r'href="/_interlink/ui/runs/(r_\d+)"', first)
        assert shown == [f"r_{n:03}" for n in range(59, 9, -1)]
        older = re.search(r'href="([^"]+)" rel="next"', first)
        assert older is not None and "flow=push" in older[1]
        second = (await ui.get(unescape(older[1]))).body.decode()
        assert re.findall(r'href="/_interlink/ui/runs/(r_\d+)"', second) == \
            [f"r_{n:03}" for n in range(9, -1, -1)]
        assert 'rel="next"' not in second and "newest" in second
        assert (await ui.get(f"{UI}/runs?cursor=not-a-cursor")).status == 400


async def test_a_search_for_a_run_or_item_id_opens_it(tmp_path: Path) -> None:
    """Searching a run id goes to the run; a queue item's id to its run (or the item when it
    names none); other text lists the runs whose input has it."""
    async with served(tmp_path) as (engine, _, ui):
        run_id = await engine.runner.start("push", {"order": "A-4711"})
        assert await ended(engine, run_id) == "failed"
        await engine.store.write(Enqueue("q_of_run1", "kept", {"run_id": run_id}),
                                 Enqueue("q_alone1", "kept", {"x": 1}))
        await ui.sign_in(TOKEN)
        for q, target in ((run_id, f"{UI}/runs/{run_id}"), ("q_of_run1", f"{UI}/runs/{run_id}"),
                          ("q_alone1", f"{UI}/queue/q_alone1")):
            answer = await ui.get(f"{UI}/runs?q={q}")
            assert (answer.status, answer.headers["location"]) == (303, target)
        listed = await ui.get(f"{UI}/runs?q=A-4711")
        assert listed.status == 200 and run_id.encode() in listed.body
        assert run_id.encode() not in (await ui.get(f"{UI}/runs?q=B-1")).body


async def test_a_waiting_run_is_stopped_from_its_page(tmp_path: Path) -> None:
    """A run in a durable wait has a Stop button; posting it ends the run `stopped`, and a
    second stop says why it cannot."""
    async with served(tmp_path) as (engine, up, ui):
        run_id = await engine.runner.start("later", {"n": 1})

        async def waiting() -> bool:
            run = await engine.store.get_run(run_id)
            return run is not None and run.status == "waiting"

        for _ in range(500):
            if await waiting():
                break
            await asyncio.sleep(0.01)
        await ui.sign_in(TOKEN)
        page = await ui.get(f"{UI}/runs/{run_id}")
        assert f'action="{UI}/runs/{run_id}/stop"'.encode() in page.body
        answer = await ui.post(f"{UI}/runs/{run_id}/stop", {"csrf": csrf_of(page)})
        assert answer.status == 200 and b"Stopped" in answer.body
        run = await engine.store.get_run(run_id)
        assert run is not None and run.status == "stopped"
        again = await ui.post(f"{UI}/runs/{run_id}/stop", {"csrf": csrf_of(page)})
        assert again.status == 409 and b"only a queued or waiting run" in again.body
        assert up.requests_to("/orders") == []


async def test_redrive_goes_on_from_the_failed_step_in_the_same_run(tmp_path: Path) -> None:
    """Re-driven, a failed run is queued again under its own id and succeeds once the upstream
    does; its page then offers no re-drive."""
    async with served(tmp_path) as (engine, up, ui):
        run_id = await engine.runner.start("push", {"n": 1})
        assert await ended(engine, run_id) == "failed"
        up.route("/orders", statuses=[201], body={"ok": True})
        await ui.sign_in(TOKEN)
        page = await ui.get(f"{UI}/runs/{run_id}")
        answer = await ui.post(f"{UI}/runs/{run_id}/redrive", {"csrf": csrf_of(page)})
        assert answer.status == 200 and b"Re-drive queued" in answer.body
        await wait_until("the re-drive", lambda: len(up.requests_to("/orders")) == 3)
        assert await ended(engine, run_id) == "succeeded"
        page = await ui.get(f"{UI}/runs/{run_id}")
        assert b"/redrive" not in page.body and b"Re-driven" in page.body
