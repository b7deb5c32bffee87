"""`GET /_interlink/runs` (keyset pages, filters, counts) and the run actions over HTTP:
a real engine, a real SQLite store, the served app."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from tests.integration.test_flows import finished, shop
from tests.projects import running_engine
from tests.upstream import Upstream

from interlink.server import build_app
from interlink.services import call_app


async def test_runs_pages_filters_counts_and_actions(tmp_path: Path) -> None:
    """Pages follow the cursor to the end; a filter narrows them; the counts are per status;
    retry, bulk retry, redrive, stop and requeue answer with what they did."""
    async with Upstream() as up:
        up.route("/orders", statuses=[400])
        async with running_engine(shop(tmp_path, up)) as engine:
            app = build_app(engine, None)
            failed = [await finished(engine, await engine.runner.start("push", {"id": n}))
                      for n in range(5)]

            async def get(**params: str) -> dict:
                answer = await call_app(app, "GET", f"/_interlink/runs?{urlencode(params)}")
                assert answer.status == 200, answer.text
                return answer.json()

            seen, cursor = [], None
            while True:
                page = await get(limit="2", **({"cursor": cursor} if cursor else {}))
                seen += [run["id"] for run in page["runs"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [run["id"] for run in reversed(failed)]
            assert page["counts"]["failed"] == 5
            assert (await get(status="succeeded"))["runs"] == []
            assert [r["id"] for r in (await get(q=failed[2]["id"]))["runs"]] == [failed[2]["id"]]
            assert len((await get(since="1h", flow="push"))["runs"]) == 5

            for bad in ({"limit": "0"}, {"limit": "x"}, {"status": "bogus"},
                        {"cursor": "garbage"}, {"since": "yesterday-ish"}):
                answer = await call_app(app, "GET", f"/_interlink/runs?{urlencode(bad)}")
                assert answer.status == 400, bad
                assert answer.json()["error"]["phase"] == "mapping"
                assert "invalid literal" not in answer.text  # says what it may be, not Python

            up.route("/orders", statuses=[200])
            one = await call_app(app, "POST", f"/_interlink/runs/{failed[0]['id']}/retry")
            assert (one.status, one.json()["new"]) == (202, True)
            retried = await finished(engine, one.json()["run_id"])
            assert retried["status"] == "succeeded"
            again = await call_app(app, "POST", f"/_interlink/runs/{failed[0]['id']}/retry")
            assert (again.status, again.json()) == (
                200, {"run_id": one.json()["run_id"], "status": "succeeded", "new": False})
            succeeded = await call_app(app, "POST", f"/_interlink/runs/{retried['id']}/retry")
            assert (succeeded.status, succeeded.json()["error"]["phase"]) == (409, "run")
            assert "it succeeded" in succeeded.json()["error"]["message"]
            other = await call_app(app, "POST", "/_interlink/runs/retry?status=succeeded")
            assert other.json() == {"retried": 0, "run_ids": []}
            bulk = await call_app(app, "POST", "/_interlink/runs/retry?flow=push")
            assert bulk.json()["retried"] == 4  # the first has its retry already
            assert one.json()["run_id"] not in bulk.json()["run_ids"]
            for action in ("retry", "redrive", "stop"):
                missing = await call_app(app, "POST", f"/_interlink/runs/r_nope/{action}")
                assert missing.status == 404
            redrive = await call_app(app, "POST", f"/_interlink/runs/{failed[1]['id']}/redrive")
            assert redrive.status == 202
            again = await call_app(app, "POST", f"/_interlink/runs/{failed[1]['id']}/redrive")
            assert again.status == 409
            assert "only a failed run" in again.json()["error"]["message"]
            stop = await call_app(app, "POST", f"/_interlink/runs/{failed[2]['id']}/stop")
            assert stop.status == 409
            nope = await call_app(app, "POST", f"/_interlink/runs/{failed[2]['id']}/explode")
            assert nope.status == 404
            requeue = await call_app(app, "POST", "/_interlink/queue/q_missing/requeue")
            assert requeue.status == 404
