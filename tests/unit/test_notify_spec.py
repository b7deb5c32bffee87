"""`notify:` in interlink.yaml and in flows: what loads, what is refused and where."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML
from tests.projects import write_project

from interlink.errors import ProjectErrors
from interlink.notifications.events import ui_base
from interlink.spec.notify import FlowNotify, NotifyConfig
from interlink.spec.project import ProjectConfig

FORMAT = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def test_the_format_doc_examples_validate() -> None:
    """docs/format.md's `notify:` example is a valid config, its flow lines FlowNotify."""
    text = FORMAT.read_text()
    section = text[text.index("### Notifications (`notify:`)"):text.index("## connectors/")]
    config, flow = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    # What the loader does with `{{ env.NAME }}`: put the value in (any URL will do here).
    config = re.sub(r"\{\{ env\.\w+ \}\}", "https://env.example/value", config)
    notify = NotifyConfig.model_validate(_yaml(config)["notify"])
    assert set(notify.channels) == {"ops", "oncall"}
    assert notify.connector_failure_rate is not None
    for line in flow.splitlines():
        if line.lstrip("# ").startswith("notify:"):
            FlowNotify.model_validate(_yaml(line.lstrip("# "))["notify"])


@pytest.mark.parametrize(("notify", "message"), [
    ({"channels": {"a": {}}}, "exactly one of 'webhook' or 'email'"),
    ({"channels": {"a": {"webhook": {"url": "ftp://x"}}}}, "should match pattern"),
    ({"channels": {}, "run_failed": ["ops"]}, "run_failed: no channel 'ops'"),
    ({"channels": {"a": {"email": {"host": "smtp.example.com", "starttls": False,
                                   "user": "u", "password": "p", "from": "a@b", "to": ["c@d"]}}}},
     "would send the password in clear"),
    ({"channels": {"a": {"email": {"host": "h", "user": "u", "from": "a@b", "to": ["c@d"]}}}},
     "both 'user' and 'password'"),
])
def test_bad_notify_configs_are_refused(notify: dict[str, Any], message: str) -> None:
    """Each mistake is refused with a message that names it."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        NotifyConfig.model_validate(notify)


def test_a_login_without_tls_is_allowed_to_loopback_only() -> None:
    """A loopback SMTP server may take a login without STARTTLS (tests, a local relay)."""
    NotifyConfig.model_validate({"channels": {"a": {"email": {
        "host": "127.0.0.1", "starttls": False, "user": "u", "password": "p",
        "from": "a@b", "to": ["c@d"]}}}})


def test_a_flow_naming_an_unknown_channel_fails_to_load_at_its_line(tmp_path: Path) -> None:
    """A flow's `notify.run_failed` and a notify step's `channel` must be channels of
    interlink.yaml: `check` names the file and line."""
    config = ("name: t\nnotify:\n  channels:\n    ops: {webhook: {url: 'http://127.0.0.1:9/h'}}\n")
    flow = ("name: f\nnotify: {run_failed: [nope]}\nsteps:\n"
            "  - {id: a, type: notify, channel: gone, body: payload}\n")
    with pytest.raises(ProjectErrors) as caught:
        write_project(tmp_path, {"interlink.yaml": config, "flows/f.yaml": flow})
    text = str(caught.value)
    assert "flows/f.yaml:2: notify: no notification channel 'nope'" in text
    assert "flows/f.yaml:4: steps[0]: no notification channel 'gone'" in text
    assert "(channels: ops)" in text


def test_links_default_to_where_the_engine_listens() -> None:
    """Without ui_url, links use admin.listen, else the server's address (a wildcard →
    loopback)."""
    base = {"name": "t"}
    assert ui_base(ProjectConfig.model_validate(base)) == "http://127.0.0.1:8080"
    assert ui_base(ProjectConfig.model_validate(
        {**base, "server": {"host": "0.0.0.0", "port": 9000}})) == "http://127.0.0.1:9000"
    assert ui_base(ProjectConfig.model_validate(
        {**base, "admin": {"listen": {"host": "::1", "port": 8081}}})) == "http://[::1]:8081"
    assert ui_base(ProjectConfig.model_validate(
        {**base, "notify": {"ui_url": "https://ops.example/"}})) == "https://ops.example"
