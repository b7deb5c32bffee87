"""What `check` says about the engine's exposure: admin tokens, open webhooks, replayable HMAC."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.projects import write_project

from interlink.errors import ProjectErrors

FLOW = """
    name: hook
    trigger: {type: webhook, path: /hooks/x%s}
    steps:
      - {id: s, type: script, script: scripts/s.py}
    """
SCRIPT = "def handle(data):\n    return data\n"


def project(tmp_path: Path, config: str, package: str = "") -> list[str]:
    """Load a project with `config` added to interlink.yaml and a webhook flow; its warnings
    (file names relative to the project)."""
    files = {"flows/hook.yaml": FLOW % (f", package: {package}" if package else ""),
             "scripts/s.py": SCRIPT,
             "interlink.yaml": "name: t\nstore: sqlite:///.interlink/t.db\n" + config}
    return [line.replace(f"{tmp_path}/", "") for line in write_project(tmp_path, files).warnings]


def errors(tmp_path: Path, config: str, package: str = "") -> str:
    """The errors of such a project, one per line (file names relative to it)."""
    with pytest.raises(ProjectErrors) as caught:
        project(tmp_path, config, package)
    return str(caught.value).replace(f"{tmp_path}/", "")


def test_a_webhook_without_a_package_on_a_public_address_is_a_warning(tmp_path: Path) -> None:
    """On 0.0.0.0 an open webhook is worth a warning at its trigger's line."""
    warnings = project(tmp_path, "server: {host: 0.0.0.0}\n")
    assert len(warnings) == 1
    assert warnings[0].startswith("flows/hook.yaml:2: warning: trigger: the webhook /hooks/x "
                                  "takes no credentials and the server listens on 0.0.0.0")


def test_an_open_webhook_on_loopback_or_with_a_package_is_not(tmp_path: Path) -> None:
    """Loopback, or a package on the trigger: no warning."""
    assert project(tmp_path / "a", "") == []
    packages = "server: {host: 0.0.0.0}\npackages: {p: {auth: {type: bearer, tokens: [t]}}}\n"
    assert project(tmp_path / "b", packages, package="p") == []


def test_a_webhook_naming_an_unknown_package_is_an_error(tmp_path: Path) -> None:
    """`package:` must name a package of interlink.yaml."""
    assert errors(tmp_path, "packages: {p: {}}\n", package="nope").endswith(
        "flows/hook.yaml:2: trigger: no package 'nope' in interlink.yaml (packages: p)")


def test_hmac_without_a_timestamp_is_a_warning(tmp_path: Path) -> None:
    """A body-only HMAC package loads, with a warning that it can be replayed."""
    config = "packages:\n  p:\n    auth: {type: hmac, secret: s3cret}\n"
    assert project(tmp_path / "a", config) == [
        "interlink.yaml:5: warning: packages.p.auth: the HMAC signature covers the body alone, "
        "so a recorded request can be sent again, forever and to any path; set "
        "timestamp_header (see docs/security.md)"]
    stamped = "packages:\n  p:\n    auth: {type: hmac, secret: s3cret, timestamp_header: X-T}\n"
    assert project(tmp_path / "b", stamped) == []


@pytest.mark.parametrize(("token", "message"), [
    ('"short"', "an admin token needs at least 16 characters"),
    ('["0123456789abcdef", "short"]', "an admin token needs at least 16 characters"),
    ('""', "an admin token needs at least 16 characters"),
    ("[]", "list at least one token"),
])
def test_weak_admin_tokens_are_errors(tmp_path: Path, token: str, message: str) -> None:
    """A short (or empty, e.g. an unset variable's) token is an error at its line."""
    found = errors(tmp_path, f"admin:\n  token: {token}\n")
    assert found.startswith("interlink.yaml:4: ")
    assert message in found


def test_admin_tokens_one_or_several(tmp_path: Path) -> None:
    """`token` takes one token or a list (rotation)."""
    from interlink.spec import load_project

    project(tmp_path, 'admin: {token: "0123456789abcdef"}\n')
    assert load_project(tmp_path).config.admin.tokens == ("0123456789abcdef",)
    project(tmp_path, 'admin: {token: ["0123456789abcdef", "fedcba9876543210"]}\n')
    assert load_project(tmp_path).config.admin.tokens == ("0123456789abcdef",
                                                          "fedcba9876543210")
    project(tmp_path, "")
    assert load_project(tmp_path).config.admin.tokens == ()
    assert load_project(tmp_path).config.admin.max_body == 1024 * 1024


def test_an_admin_listener_on_the_servers_address_is_an_error(tmp_path: Path) -> None:
    """admin.listen must be another address than server.host:port."""
    found = errors(tmp_path, "server: {port: 8080}\nadmin: {listen: {port: 8080}}\n")
    assert "interlink.yaml:4: admin.listen: 127.0.0.1:8080 is the server's own address" in found
