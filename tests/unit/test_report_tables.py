"""`interlink runs` and `interlink queue` tables stay aligned; a done item's error is history."""

from __future__ import annotations

from typing import Any

from interlink.flows.report import MAX_COLUMN, format_items, format_runs, item_json
from interlink.store import QueueItem


def a_run(run_id: str, flow: str, status: str = "failed",
          error: str | None = None) -> dict[str, Any]:
    """A run summary as `run_summary` gives it."""
    return {"id": run_id, "flow": flow, "status": status, "trigger": "manual",
            "created_at": "2026-12-01T09:00:00.000Z", "error": error}


def test_columns_line_up_whatever_the_flow_names() -> None:
    """Every column starts at the same offset on every line; a very long flow name is cut."""
    long_name = "sync-every-customer-of-the-northern-region-to-the-warehouse"
    lines = format_runs([a_run("r_1", "a", error="boom\nline two"),
                         a_run("r_22", long_name, status="succeeded"),
                         a_run("r_333", "push-orders")])
    assert lines[0].split() == ["ID", "FLOW", "STATUS", "TRIGGER", "CREATED", "ERROR"]
    starts = {lines[0].index(word) for word in ("STATUS", "TRIGGER", "CREATED")}
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2:start] == "  " and line[start] != " ", line
    assert long_name not in lines[2]
    assert long_name[:MAX_COLUMN - 1] + "…" in lines[2]
    assert lines[1].endswith("boom …")  # an error keeps its first line
    assert "r_333" in lines[3]


def test_ids_are_never_cut() -> None:
    """A run id longer than a column's cap is shown whole (it is what you copy)."""
    run_id = "r_" + "x" * 40
    assert run_id in format_runs([a_run(run_id, "f")])[1]


def an_item(status: str, last_error: str | None) -> QueueItem:
    """A queue item that had an error."""
    return QueueItem("q_1", "service_request", {}, status, 0, 1.0, 2, 1.0, 1.0, None,
                     last_error=last_error)


def test_a_done_item_shows_its_error_as_earlier() -> None:
    """`done` after a failed attempt: no current error, the old one kept as history."""
    done = item_json(an_item("done", "HTTP 503"))
    assert (done["last_error"], done["earlier_error"]) == (None, "HTTP 503")
    ready = item_json(an_item("ready", "HTTP 503"))
    assert (ready["last_error"], ready["earlier_error"]) == ("HTTP 503", None)
    lines = format_items([done, ready])
    assert lines[1].endswith("(earlier: HTTP 503)")
    assert lines[2].endswith("  HTTP 503")
