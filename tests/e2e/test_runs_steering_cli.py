"""`interlink runs` filters and pages; `runs retry` (several, bulk, from the failed step) and
`runs stop`, as a user drives them (in-process with click's runner: a subprocess per command
would cost seconds each; tests/e2e/test_worker_presence.py uses real processes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.projects import write_project

from interlink.cli import main

FILES = {
    "flows/greet.yaml": "name: greet\nsteps:\n  - {id: s, type: script, script: scripts/ok.py}\n",
    "flows/broken.yaml": "name: broken\nsteps:\n  - {id: s, type: script, script: scripts/no.py}\n",
    "scripts/ok.py": "def handle(data):\n    return data\n",
    "scripts/no.py": "def handle(data):\n    raise RuntimeError('no')\n",
}


@pytest.fixture(autouse=True)
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command runs in the test's project folder (as a user in a shell)."""
    monkeypatch.chdir(tmp_path)


def cli(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process (the real commands, their real exit codes), in `root`."""
    assert Path.cwd() == root
    done = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)


def listed(root: Path, *args: str) -> list[dict[str, Any]]:
    """`interlink runs ARGS --json`: stdout is the JSON list alone."""
    done = cli(root, "runs", *args, "--json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def started(root: Path, flow: str, payload: str) -> str:
    """Run `flow` with `payload` from the CLI; its run id."""
    done = cli(root, "run", flow, "--payload", "-", "--json", "--quiet", stdin=payload)
    run_id: str = json.loads(done.stdout)["id"]
    return run_id


def test_runs_filter_by_trigger_time_and_search_and_page_with_a_cursor(tmp_path: Path) -> None:
    """Filters narrow the list; a page with more after it tells the next cursor on stderr."""
    write_project(tmp_path, FILES)
    ada = started(tmp_path, "greet", '{"name": "Ada Lovelace"}')
    bob = started(tmp_path, "greet", '{"name": "Bob"}')
    failed = started(tmp_path, "broken", '{"name": "Cy"}')
    retried = cli(tmp_path, "runs", "retry", failed).stdout.strip()

    assert [r["id"] for r in listed(tmp_path)] == [retried, failed, bob, ada]
    assert [r["id"] for r in listed(tmp_path, "--trigger", "retry")] == [retried]
    assert [r["id"] for r in listed(tmp_path, "--trigger", "manual", "--flow", "greet")] == [
        bob, ada]
    assert len(listed(tmp_path, "--since", "1h")) == 4
    assert listed(tmp_path, "--until", "1h") == []
    assert listed(tmp_path, "--since", "2999-01-01") == []
    assert len(listed(tmp_path, "--until", "2999-01-01T00:00:00Z")) == 4
    assert [r["id"] for r in listed(tmp_path, "-q", "Lovelace")] == [ada]
    assert [r["id"] for r in listed(tmp_path, "--search", bob)] == [bob]

    first = cli(tmp_path, "runs", "--limit", "3", "--json")
    assert [r["id"] for r in json.loads(first.stdout)] == [retried, failed, bob]
    hint = first.stderr.strip()
    assert hint.startswith("more runs: add --cursor ")
    cursor = hint.split("--cursor ")[1].split()[0]
    rest = cli(tmp_path, "runs", "--limit", "3", "--cursor", cursor)
    assert rest.returncode == 0
    assert ada in rest.stdout and bob not in rest.stdout
    assert rest.stderr == ""  # the last page: no hint
    every = listed(tmp_path, "--all", "--limit", "1")
    assert [r["id"] for r in every] == [retried, failed, bob, ada]

    bad = cli(tmp_path, "runs", "--since", "yesterday")
    assert bad.returncode == 2
    assert "expected an ISO-8601 time" in bad.stderr
    table = cli(tmp_path, "runs").stdout.splitlines()
    assert table[0].split() == ["ID", "FLOW", "STATUS", "TRIGGER", "CREATED", "ERROR"]
    column = table[0].index("FLOW")
    assert all(row[column - 2:column] == "  " and row[column] != " " for row in table[1:])


def test_retry_several_bulk_and_from_the_failed_step(tmp_path: Path) -> None:
    """Several ids: a new run each (a run retried again names its retry); `--flow F --status
    failed`: every failed run of F not retried yet, with a count; `--from-step`: the same run
    again; each warns that no worker is running."""
    write_project(tmp_path, FILES)
    one = started(tmp_path, "broken", '{"n": 1}')
    two = started(tmp_path, "broken", '{"n": 2}')
    three = started(tmp_path, "broken", '{"n": 3}')
    ok = started(tmp_path, "greet", '{"n": 4}')

    several = cli(tmp_path, "runs", "retry", one, three)
    assert several.returncode == 0, several.stderr
    new_ids = several.stdout.split()
    assert len(new_ids) == 2
    assert "no worker is running: start `interlink worker` (or `interlink serve`)" in \
        several.stderr
    shown = [json.loads(cli(tmp_path, "runs", "show", i, "--json").stdout) for i in new_ids]
    assert [(r["retry_of"], r["status"]) for r in shown] == [(one, "queued"), (three, "queued")]
    succeeded = cli(tmp_path, "runs", "retry", ok)  # delivered: a retry would deliver again
    assert succeeded.returncode == 1
    assert "it succeeded; only a failed, stopped or partial run can be retried" in \
        succeeded.stderr

    again_one = cli(tmp_path, "runs", "retry", one)
    assert again_one.stdout.split() == new_ids[:1]  # a run has one retry
    assert f"note: run {one} was retried before, as {new_ids[0]}" in again_one.stderr

    bulk = cli(tmp_path, "runs", "retry", "--flow", "broken", "--status", "failed")
    assert bulk.returncode == 0, bulk.stderr
    assert "retried 1 failed run (runs retried before are left" in bulk.stderr
    bulk_ids = bulk.stdout.split()
    retry_of = {json.loads(cli(tmp_path, "runs", "show", i, "--json").stdout)["retry_of"]
                for i in bulk_ids}
    assert retry_of == {two}  # `one` and `three` have their retries already

    redriven = cli(tmp_path, "runs", "retry", "--from-step", two)
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.strip() == two  # the same run goes on
    again = json.loads(cli(tmp_path, "runs", "show", two, "--json").stdout)
    assert again["status"] != "failed"
    assert again["redrive"] == 1
    not_failed = cli(tmp_path, "runs", "retry", "--from-step", ok)
    assert not_failed.returncode == 1
    assert "error:" in not_failed.stderr

    assert cli(tmp_path, "runs", "retry").returncode == 2  # nothing named
    assert cli(tmp_path, "runs", "retry", one, "--status", "failed").returncode == 2
    missing = cli(tmp_path, "runs", "retry", "r_nope", one)
    assert missing.returncode == 1
    assert "no such run" in missing.stderr
    assert len(missing.stdout.split()) == 1  # the other one was retried


def test_stop_a_queued_run(tmp_path: Path) -> None:
    """`runs stop` ends a queued run `stopped`; a run that ended cannot be stopped."""
    write_project(tmp_path, FILES)
    done = started(tmp_path, "broken", "{}")
    queued = cli(tmp_path, "runs", "retry", done).stdout.strip()
    stopped = cli(tmp_path, "runs", "stop", queued)
    assert (stopped.returncode, stopped.stdout.strip()) == (0, f"stopped {queued}")
    assert json.loads(cli(tmp_path, "runs", "show", queued, "--json").stdout)["status"] == \
        "stopped"
    refused = cli(tmp_path, "runs", "stop", done)
    assert refused.returncode == 1
    assert "error:" in refused.stderr
