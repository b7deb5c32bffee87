"""Runs as JSON: the stable shape `--json` prints and the API returns (docs/runs-json.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from interlink.store import (
    ENDED,
    UNKNOWN_DECISION,
    AttemptRecord,
    LogLine,
    QueueItem,
    RunRecord,
    StepRecord,
    Store,
)

__all__ = [
    "enclosing_steps",
    "format_items",
    "format_run",
    "format_runs",
    "format_table",
    "iso",
    "item_json",
    "run_json",
    "run_summary",
]

#: the widest a table column grows; longer values are cut with "…" (the last column is not)
MAX_COLUMN = 32


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC timestamp with milliseconds (`…Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def run_summary(run: RunRecord) -> dict[str, Any]:
    """A run without its steps and logs (what `interlink runs --json` lists)."""
    return {
        "id": run.id,
        "flow": run.flow,
        "status": run.status,
        "trigger": run.trigger,
        "retry_of": run.retry_of,
        "retry_count": run.retry_count,
        "redrive": run.redrive,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
    }


def _attempt_json(a: AttemptRecord) -> dict[str, Any]:
    response = a.response or None
    return {
        "step": a.step_id,
        "n": a.n,
        "item": a.item,
        "redrive": a.redrive,
        "request": a.request,
        "response": response,
        "error": a.error,
        # An attempt whose outcome was never recorded has no code.
        "code": None if a.decision == UNKNOWN_DECISION else a.code,
        "decision": a.decision,
        "message": a.message,
        "wait_s": a.wait_s,
        "reauth": a.reauth,
        "at": iso(a.created_at),
    }


def _log_json(line: LogLine) -> dict[str, Any]:
    return {"at": iso(line.created_at), "level": line.level, "step": line.step_id,
            "message": line.message}


def enclosing_steps(spec: dict[str, Any]) -> dict[str, str]:
    """Every step id in a flow definition → the id of the top-level step it is part of."""
    found: dict[str, str] = {}

    def walk(value: Any, outer: str) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("id"), str) and "type" in value:
                found.setdefault(value["id"], outer)
            for inner in value.values():
                walk(inner, outer)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, outer)

    for step in spec.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            walk(step, step["id"])
    return found


async def run_json(store: Store, run: RunRecord) -> dict[str, Any]:
    """A run with its steps, every attempt of each step, its output and its log.

    A step nested in another (in a `route`, a `try`, …) has no step record of its own: its
    attempts are listed under the top-level step it is part of, each naming its own `step`.
    A step under way has no record yet either; one with attempts is listed all the same
    (`steps_under_way`), so a call in flight, or one whose answer was never recorded, is
    seen while it matters.
    """
    steps = await store.get_steps(run.id)
    attempts = await store.get_attempts(run.id)
    logs = await store.get_logs(run.id)
    outer = enclosing_steps(run.flow_spec)
    by_step: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        home = outer.get(attempt.step_id, attempt.step_id)
        by_step.setdefault(home, []).append(_attempt_json(attempt))
    return {
        **run_summary(run),
        "input": run.input,
        "output": run.bucket if run.status == "succeeded" else None,
        "steps": [
            {"id": s.step_id, "index": s.index, "status": s.status,
             "started_at": iso(s.started_at), "finished_at": iso(s.finished_at),
             "error": s.error, "attempts": by_step.get(s.step_id, [])}
            for s in [*steps, *steps_under_way(run, steps, attempts)]
        ],
        "logs": [_log_json(line) for line in logs],
    }


def steps_under_way(run: RunRecord, steps: list[StepRecord],
                    attempts: list[AttemptRecord]) -> list[StepRecord]:
    """The top-level steps with attempts but no record yet (a step's record is written with
    its outcome): `running`, or `unfinished` when the run ended first (stopped mid-step)."""
    outer = enclosing_steps(run.flow_spec)
    recorded = {s.step_id for s in steps}
    order = [s.get("id") for s in run.flow_spec.get("steps") or [] if isinstance(s, dict)]
    status = "unfinished" if run.status in ENDED else "running"
    found: dict[str, StepRecord] = {}
    for attempt in attempts:
        home = outer.get(attempt.step_id, attempt.step_id)
        if home not in recorded and home not in found:
            index = order.index(home) if home in order else run.step_index
            found[home] = StepRecord(run.id, index, home, status, attempt.created_at)
    return list(found.values())


def item_json(item: QueueItem) -> dict[str, Any]:
    """A queue item as `interlink queue --json` lists it.

    An item that ended `done` has no current error: the error an earlier attempt left is
    kept as `earlier_error` (history), and `last_error` is null.
    """
    done = item.status == "done"
    return {
        "id": item.id,
        "kind": item.kind,
        "status": item.status,
        "attempts": item.attempts,
        "run_at": iso(item.run_at),
        "last_error": None if done else item.last_error,
        "earlier_error": item.last_error if done else None,
        "created_at": iso(item.created_at),
    }


def format_run(run: dict[str, Any]) -> str:
    """A run (as `run_json` gives it) as text for a terminal."""
    lines = [f"run {run['id']}  flow {run['flow']}  {run['status'].upper()}",
             f"  trigger {run['trigger']}  created {run['created_at']}  "
             f"finished {run['finished_at'] or '-'}"]
    if run.get("retry_of"):
        lines.append(f"  retry {run['retry_count']} of run {run['retry_of']}")
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    for step in run.get("steps", []):
        lines.append(f"  step {step['id']}: {step['status']}")
        for a in step["attempts"]:
            status = a["response"]["status"] if a.get("response") else a.get("error") or "-"
            wait = f"  wait {a['wait_s']:g}s" if a["wait_s"] else ""
            message = f"  {a['message']}" if a.get("message") else ""
            code = "code -" if a["code"] is None else f"code {a['code']}"  # a response code
            nested = f"{a['step']} " if a.get("step", step["id"]) != step["id"] else ""
            lines.append(f"    {nested}#{a['n']} {a['request']['method']} {a['request']['url']} → "
                         f"{status}  {code} {a['decision']}{wait}{message}")
    if run.get("logs"):
        lines.append("  log:")
        lines.extend(f"    {line['at']} {line['level']:<7} {line['step'] or '-':<10} "
                     f"{line['message']}" for line in run["logs"])
    return "\n".join(lines)


def format_table(header: list[str], rows: list[list[str]], *,
                 cut: frozenset[int] = frozenset()) -> list[str]:
    """Rows under a header, each column as wide as its widest value, so columns stay aligned
    whatever a name's length. Values of the columns in `cut` longer than `MAX_COLUMN` are
    cut with "…" (ids never are); the last column is free text, never padded nor cut."""
    if not rows:
        return []
    shown = [[_cut(v) if i in cut else v for i, v in enumerate(row[:-1])] + row[-1:]
             for row in rows]
    widths = [max(len(r[i]) for r in [header, *shown]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in [header, *shown]
    ]


def _cut(value: str) -> str:
    return value if len(value) <= MAX_COLUMN else value[:MAX_COLUMN - 1] + "…"


def format_runs(runs: list[dict[str, Any]]) -> list[str]:
    """`interlink runs`: run summaries (`run_summary`) as an aligned table."""
    return format_table(
        ["ID", "FLOW", "STATUS", "TRIGGER", "CREATED", "ERROR"],
        [[r["id"], r["flow"], r["status"], r["trigger"], r["created_at"] or "-",
          _one_line(r["error"])] for r in runs], cut=frozenset({1, 3}))


def format_items(items: list[dict[str, Any]]) -> list[str]:
    """`interlink queue`: queue items (`item_json`) as an aligned table; a done item's
    earlier error is shown as such."""
    def error(item: dict[str, Any]) -> str:
        if item.get("earlier_error"):
            return f"(earlier: {_one_line(item['earlier_error'])})"
        return _one_line(item["last_error"])

    return format_table(
        ["ID", "KIND", "STATUS", "ATTEMPTS", "RUN AT", "LAST ERROR"],
        [[i["id"], i["kind"], i["status"], str(i["attempts"]), i["run_at"] or "-", error(i)]
         for i in items], cut=frozenset({1}))


def _one_line(text: str | None) -> str:
    """An error as one line of a table (a multi-line one keeps its first line)."""
    if not text:
        return ""
    first, _, rest = text.strip().partition("\n")
    return f"{first} …" if rest else first
