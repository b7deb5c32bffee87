"""What the CLI says to a newcomer: outside a project, an unknown flow, nothing to list, init
(in-process with click's runner; tests/e2e/test_cli.py runs the command as a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.projects import write_project

from interlink.cli import main

STEPS = "steps:\n  - {id: s, type: script, script: scripts/s.py}\n"
FILES = {"flows/greet.yaml": f"name: greet\n{STEPS}", "flows/push.yaml": f"name: push\n{STEPS}",
         "scripts/s.py": "def handle(data):\n    return data\n"}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process (its real commands and exit codes), in the folder `cwd`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)


def test_outside_a_project_says_so_without_a_line_number(tmp_path: Path) -> None:
    """No interlink.yaml: the folder is named, `interlink init` suggested, no FILE:LINE."""
    for args in (["runs"], ["queue"], ["check"], ["run", "greet"], ["serve"]):
        done = cli(tmp_path, *args)
        assert done.returncode == 1, args
        assert done.stderr.strip() == (
            f"error: no interlink.yaml in {tmp_path.resolve()} (run `interlink init`)")
        assert ":1:" not in done.stderr
    missing = cli(tmp_path, "check", "nowhere")
    assert missing.returncode == 1
    assert f"no folder {tmp_path.resolve() / 'nowhere'}" in missing.stderr


def test_an_unknown_flow_lists_the_flows_there_are(tmp_path: Path) -> None:
    """`interlink run nope` names the flows that exist."""
    write_project(tmp_path, FILES)
    done = cli(tmp_path, "run", "nope")
    assert done.returncode == 1
    assert "no flow named 'nope'" in done.stderr
    assert "(flows: greet, push)" in done.stderr


def test_empty_lists_say_so_on_stderr_and_exit_0(tmp_path: Path) -> None:
    """`queue` and `runs` with nothing print nothing on stdout (pipes stay clean) and say so
    on stderr; `--json` prints an empty list."""
    write_project(tmp_path, FILES)
    for command, said in (("queue", "no queue items"), ("runs", "no runs")):
        done = cli(tmp_path, command)
        assert (done.returncode, done.stdout, done.stderr.strip()) == (0, "", said)
        as_json = cli(tmp_path, command, "--json")
        assert (as_json.returncode, as_json.stdout.strip(), as_json.stderr) == (0, "[]", "")
    filtered = cli(tmp_path, "runs", "--flow", "push", "--status", "failed")
    assert filtered.stderr.strip() == "no runs (flow push, status failed)"


def test_init_tells_how_to_call_interlink_when_it_is_not_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `interlink` on PATH (after `make demo`), init's hint gives the venv's path and
    how to activate it; with it on PATH, plain `interlink`."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "interlink").exists():  # pragma: no cover - always in the project's venv
        return
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    hidden = cli(tmp_path, "init", "acme")
    assert hidden.returncode == 0, hidden.stderr
    assert f"  {bin_dir / 'interlink'} check acme" in hidden.stdout
    assert f"run `. {bin_dir}/activate`" in hidden.stdout
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    shown = cli(tmp_path, "init", "other")
    assert "  interlink check other" in shown.stdout
    assert "not on your PATH" not in shown.stdout
    assert cli(tmp_path / "acme", "check").returncode == 0


def test_a_file_that_cannot_be_read_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    """`--payload` and `--body` naming a missing file or a folder: `error: OPTION FILE: why`,
    exit 1; a payload the engine cannot hold (an integer past 64 bits) the same."""
    service = ("name: echo\nmethod: POST\npath: /echo\n"
               "responses:\n  - {on: default, status: 200}\n")
    write_project(tmp_path, {**FILES, "services/echo.yaml": service})
    (tmp_path / "wide.json").write_text('{"id": 18446744073709551616}')
    for args, said in (
        (["run", "greet", "--payload", "/nonexistent"],
         "error: --payload /nonexistent: No such file or directory"),
        (["run", "greet", "--payload", str(tmp_path)],
         f"error: --payload {tmp_path}: Is a directory"),
        (["call", "echo", "--body", "/nonexistent"],
         "error: --body /nonexistent: No such file or directory"),
        (["run", "greet", "--payload", "wide.json"],
         "error: --payload wide.json: request body: the integer 18446744073709551616 is past "
         "64 bits"),
    ):
        done = cli(tmp_path, *args)
        assert (done.returncode, done.stderr.strip()) == (1, said), args
        assert "Traceback" not in done.stderr


def test_runs_of_a_flow_the_project_does_not_have_say_so(tmp_path: Path) -> None:
    """`runs --flow nope` finds nothing and says the flow is not in the project (a typo);
    a real flow with no runs is just "no runs"."""
    write_project(tmp_path, FILES)
    done = cli(tmp_path, "runs", "--flow", "nope")
    assert (done.returncode, done.stderr.strip()) == (
        0, "no runs (flow nope); the project has no flow named 'nope'")
    assert cli(tmp_path, "runs", "--flow", "greet").stderr.strip() == "no runs (flow greet)"
