"""Email notifications to a real SMTP server on loopback (aiosmtpd), with and without STARTTLS."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from tests.notifying import SECRET, delivered, notify_config, notifying_project
from tests.processes import free_port
from tests.projects import running_engine
from tests.upstream import Upstream

from interlink.notifications import NOTIFICATION_KIND
from interlink.store import QueueItem, Store

USER, PASSWORD = "notifier", "smtp-pass-9876"

# aiosmtpd warns that a login without TLS is risky: on loopback that is the point of the test.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Mailbox:
    """Keeps what the server received, and checks logins (refusing the first `refuse`)."""

    def __init__(self, refuse: int = 0) -> None:
        self.mails: list[tuple[Envelope, EmailMessage]] = []
        self.logins: list[tuple[str, bool]] = []
        self.refuse = refuse

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append((envelope, parsed))
        return "250 OK"

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        if ok and self.refuse > 0:
            self.refuse -= 1
            ok = False
        self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_TEST_TOKEN", SECRET)
    monkeypatch.setenv("SMTP_USER", USER)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@contextmanager
def smtp_server(mailbox: Mailbox, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """An SMTP server on 127.0.0.1 (requiring a login, and STARTTLS with `tls`); its port."""
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox,
                            auth_required=True, auth_require_tls=tls is not None,
                            tls_context=tls, require_starttls=tls is not None)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def channel(port: int, *, starttls: bool, extra: str = "") -> str:
    """An email channel to the loopback server, its login from the environment."""
    tls = "true" if starttls else "false"
    return (f"{{email: {{host: 127.0.0.1, port: {port}, starttls: {tls}, "
            "user: '{{ env.SMTP_USER }}', password: '{{ env.SMTP_PASSWORD }}', "
            f"from: interlink@shop.test, to: [ops@shop.test, oncall@shop.test]{extra}}}}}")


def refuse(up: Upstream) -> None:
    up.route("/orders", answer=lambda r: (500, {"error": f"refused {r.headers['X-Token']}"}, {}))


async def test_a_failed_run_is_emailed_over_plain_smtp_on_loopback(tmp_path: Path) -> None:
    """STARTTLS off on loopback, login from env: one mail naming the run, error redacted."""
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        async with Upstream() as up:
            refuse(up)
            project = notifying_project(tmp_path, up.url, notify_config(
                {"mail": channel(port, starttls=False)}))
            async with running_engine(project) as engine:
                run_id = await engine.runner.start("push", {"id": 1})
                [item] = await delivered(engine.store, 1)
    [(envelope, mail)] = mailbox.mails
    text = mail.get_content()
    assert mailbox.logins == [(USER, True)]
    assert envelope.rcpt_tos == ["ops@shop.test", "oncall@shop.test"]
    assert mail["From"] == "interlink@shop.test"
    assert mail["Subject"] == "shop: run of flow push failed at step push"
    assert f"Run: {run_id}" in text and "Step: push" in text and "Flow: push" in text
    assert f"http://ui.example/_interlink/ui/runs/{run_id}" in text
    assert "refused ***" in text and SECRET not in text
    assert mail["Message-ID"] == f"<{item.payload['event']['id']}@interlink>"
    assert PASSWORD not in str(item.payload)


async def test_starttls_with_a_verified_certificate_and_a_refused_login_retried(
        tmp_path: Path, ca: trustme.CA) -> None:
    """STARTTLS to a server whose certificate the project's CA file signs; the first login is
    refused, so the mail is retried and delivered once."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    mailbox = Mailbox(refuse=2)  # smtplib tries two mechanisms before it gives up
    with smtp_server(mailbox, server_ctx) as port:
        async with Upstream() as up:
            refuse(up)
            project = notifying_project(tmp_path, up.url, notify_config(
                {"mail": channel(port, starttls=True, extra=", ca_file: ca.pem")}))
            async with running_engine(project) as engine:
                await engine.runner.start("push", {"id": 1})
                [item] = await delivered(engine.store, 1)
    assert mailbox.logins == [(USER, False), (USER, False), (USER, True)]
    assert len(mailbox.mails) == 1
    assert item.attempts == 2
    assert PASSWORD not in (item.last_error or "")


async def test_a_certificate_nobody_vouches_for_is_refused(tmp_path: Path,
                                                           ca: trustme.CA) -> None:
    """Without the CA file the server's self-signed chain fails verification: not sent."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    mailbox = Mailbox()
    with smtp_server(mailbox, server_ctx) as port:
        async with Upstream() as up:
            refuse(up)
            project = notifying_project(tmp_path, up.url, notify_config(
                {"mail": channel(port, starttls=True)}))
            async with running_engine(project) as engine:
                await engine.runner.start("push", {"id": 1})
                item = await _retried(engine.store)
    assert mailbox.mails == [] and mailbox.logins == []
    assert item.status == "ready"
    assert "CERTIFICATE_VERIFY_FAILED" in (item.last_error or "")


async def _retried(store: Store) -> QueueItem:
    """The notification item, once a delivery of it has failed."""
    async with asyncio.timeout(20):
        while True:
            items = await store.list_items(kind=NOTIFICATION_KIND)
            if items and items[0].last_error:
                return items[0]
            await asyncio.sleep(0.02)
