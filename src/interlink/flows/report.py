"""Runs as JSON: the stable shape `--json` prints and the API returns (docs/runs-json.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from interlink.store import UNKNOWN_DECISION, AttemptRecord, LogLine, QueueItem, RunRecord, Store

__all__ = ["format_run", "format_summary", "iso", "item_json", "run_json", "run_summary"]


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


async def run_json(store: Store, run: RunRecord) -> dict[str, Any]:
    """A run with its steps, every attempt of each step, its output and its log."""
    steps = await store.get_steps(run.id)
    attempts = await store.get_attempts(run.id)
    logs = await store.get_logs(run.id)
    by_step: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_step.setdefault(attempt.step_id, []).append(_attempt_json(attempt))
    return {
        **run_summary(run),
        "input": run.input,
        "output": run.bucket if run.status == "succeeded" else None,
        "steps": [
            {"id": s.step_id, "index": s.index, "status": s.status,
             "started_at": iso(s.started_at), "finished_at": iso(s.finished_at),
             "error": s.error, "attempts": by_step.get(s.step_id, [])}
            for s in steps
        ],
        "logs": [_log_json(line) for line in logs],
    }


def item_json(item: QueueItem) -> dict[str, Any]:
    """A queue item as `interlink queue --json` lists it."""
    return {
        "id": item.id,
        "kind": item.kind,
        "status": item.status,
        "attempts": item.attempts,
        "run_at": iso(item.run_at),
        "last_error": item.last_error,
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
            code = "-" if a["code"] is None else a["code"]
            lines.append(f"    #{a['n']} {a['request']['method']} {a['request']['url']} → "
                         f"{status}  {code} {a['decision']}{wait}{message}")
    if run.get("logs"):
        lines.append("  log:")
        lines.extend(f"    {line['at']} {line['level']:<7} {line['step'] or '-':<10} "
                     f"{line['message']}" for line in run["logs"])
    return "\n".join(lines)


def format_summary(run: dict[str, Any]) -> str:
    """One line of `interlink runs`."""
    return (f"{run['id']}  {run['flow']:<20} {run['status']:<9} {run['trigger']:<8} "
            f"{run['created_at']}  {run['error'] or ''}").rstrip()
