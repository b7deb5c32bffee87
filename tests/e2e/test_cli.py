"""The `interlink` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.projects import write_project

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
SHOP_ENV = {"PARTNER_KEY": "k", "WH_USER": "u", "WH_PASSWORD": "p",
            "WAREHOUSE_URL": "http://127.0.0.1:9000"}


def interlink(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "interlink.cli", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60, check=False,
    )


def test_init_scaffolds_a_project_that_checks(tmp_path: Path) -> None:
    """`interlink init` creates a project that `interlink check` accepts."""
    target = tmp_path / "acme"
    made = interlink("init", str(target))
    assert made.returncode == 0, made.stderr
    assert "name: acme" in (target / "interlink.yaml").read_text()
    assert ".interlink/" in (target / ".gitignore").read_text()  # the store stays out of git
    checked = interlink("check", str(target))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: acme:")


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    """`interlink init` never writes over an existing project."""
    (tmp_path / "interlink.yaml").write_text("name: x\n")
    made = interlink("init", str(tmp_path))
    assert made.returncode == 1
    assert "not empty" in made.stderr


def test_check_accepts_the_shop_example() -> None:
    """`interlink check examples/shop` exits 0."""
    checked = interlink("check", str(SHOP), env=SHOP_ENV)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: shop:")


def test_check_reports_file_and_line_and_exits_1(tmp_path: Path) -> None:
    """A bad project prints FILE:LINE: message on stderr and exits 1."""
    (tmp_path / "interlink.yaml").write_text("name: bad\nstore: sqlite:///x.db\nserverr: {}\n")
    checked = interlink("check", ".", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.startswith("interlink.yaml:3: ")
    assert "serverr" in checked.stderr


def test_check_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    """An inline script step is a FILE:LINE warning on stderr; the project still checks."""
    (tmp_path / "interlink.yaml").write_text("name: x\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "fast.py").write_text("def handle(data):\n    return data\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "f.yaml").write_text(
        "name: f\nsteps:\n  - id: a\n    type: script\n    script: scripts/fast.py\n"
        "  - id: b\n    type: script\n    script: scripts/fast.py\n    isolation: inline\n")
    checked = interlink("check", ".", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: x:")
    assert checked.stderr.startswith(
        "flows/f.yaml:6: warning: steps[1]: script scripts/fast.py runs inline: if it times "
        "out, it cannot be stopped")
    assert checked.stderr.count("\n") == 1


def test_check_names_a_missing_environment_variable(tmp_path: Path) -> None:
    """A connector reading an unset variable fails naming it (FILE:LINE)."""
    (tmp_path / "interlink.yaml").write_text("name: x\n")
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "c.yaml").write_text(
        "name: c\nbase_url: http://127.0.0.1:1\nauth: {type: bearer, token: "
        "\"{{ env.INTERLINK_TEST_UNSET_TOKEN }}\"}\nendpoints: {e: {path: /}}\n")
    env = {k: v for k, v in os.environ.items() if k != "INTERLINK_TEST_UNSET_TOKEN"}
    checked = subprocess.run(
        [sys.executable, "-m", "interlink.cli", "check", "."], cwd=tmp_path,
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert checked.returncode == 1
    assert checked.stderr == (
        "connectors/c.yaml:3: environment variable INTERLINK_TEST_UNSET_TOKEN is not set\n")


def test_check_shop_without_any_environment() -> None:
    """examples/shop checks with only its own .env (what a newcomer has)."""
    env = {k: v for k, v in os.environ.items() if k not in SHOP_ENV}
    checked = subprocess.run(
        [sys.executable, "-m", "interlink.cli", "check", str(SHOP)], capture_output=True,
        text=True, env=env, timeout=60, check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["schema"]])
def test_informational_commands_succeed(args: list[str]) -> None:
    """Help, version and schema print and exit 0."""
    done = interlink(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_serve_on_a_port_in_use_says_why_and_exits_1(tmp_path: Path) -> None:
    """Nothing is served, so nothing says it serves: one `error:` line, exit 1 (uvicorn's own
    bind logged an error after "serving …" and the process exited 3)."""
    write_project(tmp_path, {})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = interlink("serve", str(tmp_path), "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: serving test: binding 127.0.0.1:{port}: Address already in use")
    assert "serving test on" not in done.stderr
