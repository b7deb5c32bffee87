"""What the CLI says to a newcomer: outside a project, an unknown flow, nothing to list, init."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.projects import write_project

STEPS = "steps:\n  - {id: s, type: script, script: scripts/s.py}\n"
FILES = {"flows/greet.yaml": f"name: greet\n{STEPS}", "flows/push.yaml": f"name: push\n{STEPS}",
         "scripts/s.py": "def handle(data):\n    return data\n"}


def cli(cwd: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `cwd` (with PATH set to `path` when given)."""
    env = dict(os.environ) if path is None else {**os.environ, "PATH": path}
    return subprocess.run([sys.executable, "-m", "interlink.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


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


def test_init_tells_how_to_call_interlink_when_it_is_not_on_path(tmp_path: Path) -> None:
    """Without `interlink` on PATH (after `make demo`), init's hint gives the venv's path and
    how to activate it; with it on PATH, plain `interlink`."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "interlink").exists():  # pragma: no cover - always in the project's venv
        return
    hidden = cli(tmp_path, "init", "acme", path="/usr/bin:/bin")
    assert hidden.returncode == 0, hidden.stderr
    assert f"  {bin_dir / 'interlink'} check acme" in hidden.stdout
    assert f"run `. {bin_dir}/activate`" in hidden.stdout
    shown = cli(tmp_path, "init", "other", path=f"{bin_dir}:/usr/bin:/bin")
    assert "  interlink check other" in shown.stdout
    assert "not on your PATH" not in shown.stdout
    assert cli(tmp_path / "acme", "check").returncode == 0
