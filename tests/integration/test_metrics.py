"""GET /metrics counts service requests by outcome, their phases, runs and attempts."""

from __future__ import annotations

from pathlib import Path

from tests.projects import running_engine, write_project
from tests.upstream import Upstream

from interlink.metrics import Metrics
from interlink.server import build_app
from interlink.services import call_app


async def test_metrics_count_requests_phases_runs_and_attempts(tmp_path: Path) -> None:
    """A served request, a failed mapping and a run with a retried attempt all show up."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 200])
        project = write_project(tmp_path, {
            "connectors/wh.yaml": f"name: wh\nbase_url: {up.url}\n"
                                  "retry: {initial: 1ms}\n"
                                  "endpoints: {create: {method: POST, path: /orders}}\n",
            "flows/push.yaml": "name: push\nsteps:\n"
                               "  - {id: push, type: connector, connector: wh, endpoint: create}\n",
            "services/intake.yaml": "name: intake\npath: /intake\nactivity: {flow: push}\n",
        })
        async with running_engine(project) as engine:
            app = build_app(engine, None)
            ok = await call_app(app, "POST", "/intake", body=b'{"id": 1}')
            bad = await call_app(app, "POST", "/intake", body=b"{not json")
            metrics = await call_app(app, "GET", "/metrics")
    assert (ok.status, bad.status, metrics.status) == (200, 500, 200)
    text = metrics.text
    assert 'interlink_service_requests_total{outcome="success",service="intake"} 1.0' in text
    assert ('interlink_service_requests_total{outcome="mapping_error",service="intake"} 1.0'
            in text)
    assert 'interlink_service_phase_seconds_count{phase="activity",service="intake"} 1.0' in text
    assert 'interlink_runs_ended_total{flow="push",status="succeeded"} 1.0' in text
    assert ('interlink_connector_attempts_total{connector="wh",decision="retry_step"} 1.0'
            in text)
    assert ('interlink_connector_attempts_total{connector="wh",decision="continue"} 1.0'
            in text)


async def test_metrics_count_webhook_calls_by_status(tmp_path: Path) -> None:
    """Webhook calls are counted per flow and answer status: accepted, refused, unreadable."""
    project = write_project(tmp_path, {
        "interlink.yaml": "name: test\nstore: sqlite:///.interlink/test.db\npackages:\n"
                          "  shop: {auth: {type: api_key, header: X-Key, "
                          "keys: [shop-key-0123456789abcdef]}}\n",
        "flows/hook.yaml": "name: hook\ntrigger: {type: webhook, path: /hooks/in, "
                           "package: shop}\nsteps:\n  - {id: m, type: map, value: payload}\n",
    })
    async with running_engine(project) as engine:
        app = build_app(engine, None)
        key = {"X-Key": "shop-key-0123456789abcdef"}
        answers = [
            await call_app(app, "POST", "/hooks/in", body=b'{"id": 1}', headers=key),
            await call_app(app, "POST", "/hooks/in", body=b'{"id": 2}', headers=key),
            await call_app(app, "POST", "/hooks/in", body=b'{"id": 3}'),
            await call_app(app, "POST", "/hooks/in", body=b"{not json",
                           headers={**key, "Content-Type": "application/json"}),
        ]
        metrics = await call_app(app, "GET", "/metrics")
    assert [a.status for a in answers] == [202, 202, 401, 400]
    text = metrics.text
    assert 'interlink_webhook_requests_total{code="202",flow="hook"} 2.0' in text
    assert 'interlink_webhook_requests_total{code="401",flow="hook"} 1.0' in text
    assert 'interlink_webhook_requests_total{code="400",flow="hook"} 1.0' in text


def test_phase_histograms_are_cumulative() -> None:
    """Bucket counts are cumulative and end at the observation count, as Prometheus expects."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics = Metrics()
    for seconds in (0.0001, 0.003, 0.003, 7.0, 100.0):
        metrics.request("s", "success", {"activity": seconds})
    [family] = [f for f in text_string_to_metric_families(metrics.exposition().decode())
                if f.name == "interlink_service_phase_seconds"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert (buckets["0.0005"], buckets["0.005"], buckets["10.0"], buckets["+Inf"]) == (
        1.0, 3.0, 4.0, 5.0)
    [total] = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert total == 0.0001 + 0.003 + 0.003 + 7.0 + 100.0


async def test_processes_sharing_a_folder_answer_the_sum_of_all(tmp_path: Path) -> None:
    """Two processes' numbers (as `serve --workers 2` publishes them) summed by either one's
    scrape, histograms bucket by bucket; a process that ended still counts; a file that is
    not one of ours is skipped."""
    one, two = Metrics(tmp_path), Metrics(tmp_path)
    one.request("intake", "success", {"activity": 0.002})
    two.request("intake", "success", {"activity": 0.2})
    two.request("intake", "mapping_error", {})
    one.run_ended("push", "succeeded")
    two.attempt("wh", "continue")
    two.publish()
    (tmp_path / "junk.json").write_text("{not json")
    for metrics in (one, two):
        text = metrics.exposition().decode()
        assert 'interlink_service_requests_total{outcome="success",service="intake"} 2.0' in text
        assert ('interlink_service_requests_total{outcome="mapping_error",service="intake"} 1.0'
                in text)
        assert ('interlink_service_phase_seconds_count{phase="activity",service="intake"} 2.0'
                in text)
        assert ('interlink_service_phase_seconds_bucket{le="0.0025",phase="activity",'
                'service="intake"} 1.0') in text
        assert 'interlink_runs_ended_total{flow="push",status="succeeded"} 1.0' in text
        assert ('interlink_connector_attempts_total{connector="wh",decision="continue"} 1.0'
                in text)
    del two  # ended: its file stays, and so do its counts
    assert ('interlink_service_requests_total{outcome="success",service="intake"} 2.0'
            in one.exposition().decode())
