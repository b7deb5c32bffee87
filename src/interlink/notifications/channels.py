"""The senders: a webhook (aiohttp, the engine's session) and an email (SMTP, standard library).

`send(message)` delivers one message or raises `NotificationError` with a redacted reason
(a webhook URL is a secret: it never appears in the reason). Delivery is at least once at the
wire: a receiver that got a message whose answer was lost gets it again, with the same
`Idempotency-Key` (webhook) or `Message-ID` (email) to drop the copy by.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import aiohttp
import orjson

from interlink.connectors.transport import describe_error
from interlink.errors import NotificationError
from interlink.notifications.messages import Message, email_message, webhook_body
from interlink.redaction import Redactor
from interlink.spec.notify import Channel, EmailChannel, WebhookChannel

__all__ = ["EmailSender", "Sender", "WebhookSender", "senders"]


class Sender(Protocol):
    """Delivers messages to one channel."""

    name: str

    async def send(self, message: Message) -> None:
        """Deliver `message`, or raise `NotificationError`."""

    async def send_body(self, body: bytes, content_type: str, *, key: str,
                        title: str) -> None:
        """Deliver a message someone else wrote (a `notify` step's), or raise
        `NotificationError`."""


class WebhookSender:
    """POSTs JSON to an incoming webhook; a non-2xx answer or no answer is a failure."""

    def __init__(self, name: str, spec: WebhookChannel, http: aiohttp.ClientSession,
                 redactor: Redactor) -> None:
        self.name = name
        self.spec = spec
        self.http = http
        self.redactor = redactor

    async def send(self, message: Message) -> None:
        """POST `message` in the channel's format."""
        body = orjson.dumps(webhook_body(message, self.spec.format), default=str)
        await self.post(body, "application/json", message.key)

    async def send_body(self, body: bytes, content_type: str, *, key: str,
                        title: str) -> None:
        """POST a `notify` step's message: data as JSON; text as `{"text": …}` to Slack and
        Teams (what their webhooks read), as is to a `json` channel."""
        if content_type.startswith("text/") and self.spec.format != "json":
            body = orjson.dumps({"text": body.decode("utf-8", "replace")})
            content_type = "application/json"
        await self.post(body, content_type, key)

    async def post(self, body: bytes, content_type: str, key: str | None) -> int:
        """POST `body` as is; returns the status."""
        headers = {"Content-Type": content_type, **self.spec.headers}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            async with self.http.post(self.spec.url, data=body, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=self.spec.timeout),
                                      allow_redirects=False) as answer:
                await answer.read()
                status = answer.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise self._failed(describe_error(exc, self.spec.timeout)) from None
        if not 200 <= status < 300:
            raise self._failed(f"the webhook answered HTTP {status}")
        return status

    def _failed(self, reason: str) -> NotificationError:
        return NotificationError(self.name, self.redactor.text(reason))


class EmailSender:
    """Sends email over SMTP, with STARTTLS (the server's certificate verified) by default.

    `smtplib` runs in a thread: it is the standard library's client, and one message at a
    time per call is all a notification needs.
    """

    def __init__(self, name: str, spec: EmailChannel, redactor: Redactor,
                 root: Path | None = None) -> None:
        self.name = name
        self.spec = spec
        self.redactor = redactor
        self.ca_file = None if spec.ca_file is None else str((root or Path()) / spec.ca_file)

    async def send(self, message: Message) -> None:
        """Send `message` as an email to the channel's recipients."""
        mail = email_message(message, sender=self.spec.sender, to=self.spec.to)
        await self.deliver(mail.as_bytes())

    async def send_body(self, body: bytes, content_type: str, *, key: str,
                        title: str) -> None:
        """Email a `notify` step's message: text as the body, data as indented JSON."""
        text = body.decode("utf-8", "replace")
        if not content_type.startswith("text/"):
            with contextlib.suppress(orjson.JSONDecodeError):
                text = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
        await self.send(Message(key, title, text))

    async def deliver(self, mail: bytes) -> None:
        """Send a whole RFC 5322 message."""
        try:
            await asyncio.to_thread(self._deliver, mail)
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise NotificationError(self.name, self.redactor.text(
                f"SMTP {self.spec.host}:{self.spec.port}: {reason}")) from None

    def _deliver(self, mail: bytes) -> None:
        spec = self.spec
        with smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout) as smtp:
            smtp.ehlo()
            if spec.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                smtp.ehlo()
            if spec.user is not None and spec.password is not None:
                smtp.login(spec.user, spec.password)
            smtp.sendmail(spec.sender, spec.to, mail)


def senders(channels: Mapping[str, Channel], http: aiohttp.ClientSession, redactor: Redactor,
            root: Path | None = None) -> dict[str, WebhookSender | EmailSender]:
    """A sender per configured channel."""
    found: dict[str, WebhookSender | EmailSender] = {}
    for name, channel in channels.items():
        if channel.webhook is not None:
            found[name] = WebhookSender(name, channel.webhook, http, redactor)
        elif channel.email is not None:
            found[name] = EmailSender(name, channel.email, redactor, root)
    return found
