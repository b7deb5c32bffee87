"""How an event (or a digest of events) reads: one `Message`, then a body per channel format.

- `slack` — `{"text", "blocks"}`: `text` is the notification fallback, `blocks` Block Kit
  sections (title, facts, the error, a link). Also accepted by Teams' legacy webhooks.
- `teams` — an Office 365 connector `MessageCard` (title, facts, an "Open in Interlink"
  button) with a top-level `text`, which Teams incoming webhooks accept.
- `json` — the event as data (`event_id`, `event`, `project`, `flow`, `run_id`, `step`,
  `error`, `url`, …), or a digest (`event: "digest"`, `count`, every event in `events`).

Every message carries its dedupe id: `event_id` in the JSON, the `Idempotency-Key` header of a
webhook, the `Message-ID` of an email, and the last line of the text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from interlink.notifications.events import Event, span

__all__ = ["DIGEST_LINKS", "Message", "digest_message", "email_message", "event_message",
           "webhook_body"]

#: events listed one by one (with their links) in a digest's text; the rest are counted
DIGEST_LINKS = 5
#: Slack refuses a text block longer than 3000 characters
_SLACK_TEXT = 2900


@dataclass(frozen=True, slots=True)
class Message:
    """A notification ready to be formatted for a channel."""

    #: the dedupe id: the event's id, or a digest's
    key: str
    title: str
    #: the plain text (an email's body; the webhook formats build their own from the parts)
    text: str
    link: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    #: the `json` format's body
    data: dict[str, Any] = field(default_factory=dict)


_FACTS = (("Project", "project"), ("Flow", "flow"), ("Run", "run_id"), ("Step", "step"),
          ("Queue item", "item_id"), ("Connector", "connector"))


def event_message(event: Event) -> Message:
    """The message telling one event."""
    facts = [(label, str(getattr(event, name))) for label, name in _FACTS
             if getattr(event, name) is not None]
    lines = [event.title, "", *(f"{label}: {value}" for label, value in facts)]
    if event.error:
        lines += ["", f"Error: {event.error}"]
    lines += ["", f"Open: {event.link}", f"Event: {event.id}"]
    data = {"event_id": event.id, "event": event.kind, "project": event.project,
            "title": event.title, "flow": event.flow, "run_id": event.run_id,
            "step": event.step, "item_id": event.item_id, "connector": event.connector,
            "error": event.error, "url": event.link, "at": event.at, **event.facts}
    return Message(event.id, event.title, "\n".join(lines), event.link, facts, event.error,
                   data)


def _what(event: Event) -> str:
    if event.kind == "run_failed":
        return f"runs of flow {event.flow} failed"
    if event.kind == "item_broken":
        return f"queue items ({event.facts.get('kind', 'item')}) broke"
    return f"alerts on connector {event.connector}"


def digest_message(key: str, project: str, events: list[Event], per: float) -> Message:
    """The message telling many events at once (a channel over its rate limit)."""
    counts = Counter(_what(e) for e in events)
    summary = [f"{n} {what}" for what, n in counts.most_common()]
    title = f"{project}: {'; '.join(summary)} in the last {span(per)}"
    lines = [title, ""]
    for event in events[:DIGEST_LINKS]:
        what = event.run_id or event.item_id or event.connector
        lines.append(f"- {what}: {event.link}")
    if len(events) > DIGEST_LINKS:
        lines.append(f"… and {len(events) - DIGEST_LINKS} more")
    lines += ["", f"Digest: {key}"]
    first = events[0]
    data = {"event_id": key, "event": "digest", "project": project, "title": title,
            "count": len(events), "summary": summary,
            "events": [event_message(e).data for e in events]}
    return Message(key, title, "\n".join(lines), first.link,
                   [("Project", project), ("Events", str(len(events)))], None, data)


def webhook_body(message: Message, fmt: str) -> dict[str, Any]:
    """The JSON body of a webhook in format `fmt` (slack, teams or json)."""
    if fmt == "json":
        return message.data
    if fmt == "teams":
        card: dict[str, Any] = {
            "@type": "MessageCard", "@context": "https://schema.org/extensions",
            "summary": message.title, "themeColor": "D70000", "title": message.title,
            "text": message.text.replace("\n", "\n\n"),
            "sections": [{"facts": [{"name": k, "value": v} for k, v in message.facts]}],
        }
        if message.link:
            card["potentialAction"] = [{"@type": "OpenUri", "name": "Open in Interlink",
                                        "targets": [{"os": "default", "uri": message.link}]}]
        return card
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack(message.title)}*"}}]
    if message.facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{k}*\n{_slack(v)}"} for k, v in message.facts[:10]]})
    body = message.error if message.error else message.text.split("\n\n", 1)[-1]
    blocks.append({"type": "section", "text": {
        "type": "mrkdwn", "text": f"```{_slack(body)[:_SLACK_TEXT]}```"}})
    if message.link:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"<{message.link}|Open in Interlink>"}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"event {message.key}"}]})
    link = f" <{message.link}|open>" if message.link else ""
    return {"text": f"{_slack(message.title)}{link}", "blocks": blocks}


def _slack(text: str) -> str:
    # Slack's mrkdwn reads these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(message: Message, *, sender: str, to: list[str]) -> EmailMessage:
    """The email telling `message`; its Message-ID is derived from the dedupe id."""
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Message-ID"] = f"<{message.key}@interlink>"
    mail["X-Interlink-Event"] = message.key
    mail.set_content(message.text)
    return mail
