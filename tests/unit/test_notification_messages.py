"""How events read: digests, windows in words, Slack's control characters."""

from __future__ import annotations

from interlink.notifications.events import Event, span
from interlink.notifications.messages import (
    DIGEST_LINKS,
    digest_message,
    event_message,
    webhook_body,
)


def failed(n: int, flow: str = "push") -> Event:
    return Event(id=f"e_{n}", kind="run_failed", at=float(n), project="shop",
                 title=f"shop: run of flow {flow} failed at step s", flow=flow,
                 link=f"http://ui/_interlink/ui/runs/r_{n}", run_id=f"r_{n}", step="s",
                 error="boom")


def test_windows_read_as_people_say_them() -> None:
    """60 s is a minute, 300 s five minutes, 90 s stays seconds."""
    assert [span(s) for s in (60, 300, 3600, 7200, 86400, 90, 0.5)] == [
        "minute", "5 minutes", "hour", "2 hours", "day", "90s", "0.5s"]


def test_a_digest_counts_per_flow_links_the_first_and_keeps_every_event() -> None:
    """37 failures of one flow and 2 of another: counted per flow, the first few linked,
    every event in the JSON."""
    events = [failed(n) for n in range(37)] + [failed(100 + n, "stock") for n in range(2)]
    message = digest_message("d_1", "shop", events, 60)
    assert message.title == ("shop: 37 runs of flow push failed; 2 runs of flow stock failed "
                             "in the last minute")
    assert message.text.count("http://ui/_interlink/ui/runs/") == DIGEST_LINKS
    assert f"… and {39 - DIGEST_LINKS} more" in message.text
    assert message.data["count"] == 39
    assert [e["run_id"] for e in message.data["events"]] == [e.run_id for e in events]


def test_slack_text_escapes_its_control_characters() -> None:
    """`<`, `>` and `&` in an error cannot make a Slack link or mention."""
    event = Event(**{**failed(1).as_data(), "error": "<!channel> & <http://evil|x>"})
    body = webhook_body(event_message(event), "slack")
    error_block = body["blocks"][2]["text"]["text"]
    assert error_block == "```&lt;!channel&gt; &amp; &lt;http://evil|x&gt;```"
