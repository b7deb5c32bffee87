"""`notify:` in `interlink.yaml` (and a flow's own `notify:`): where failures are reported.

```yaml
notify:
  ui_url: https://interlink.example.com          # links in messages point here
  channels:
    ops:
      webhook: {url: "{{ env.SLACK_WEBHOOK }}", format: slack}
    oncall:
      email: {host: smtp.example.com, port: 587, starttls: true, user: "{{ env.SMTP_USER }}",
              password: "{{ env.SMTP_PASSWORD }}", from: interlink@example.com,
              to: [oncall@example.com]}
      rate_limit: {messages: 5, per: 1m}
  run_failed: [ops, oncall]                      # default: every channel
  item_broken: [ops]                             # default: every channel
  connector_failure_rate: {threshold: 0.5, window: 5m, min_attempts: 10}
```

Data only: what sends the messages is `interlink.notifications`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from interlink.loopback import is_loopback
from interlink.spec._base import Duration, Name, Spec, duration_field

__all__ = [
    "Channel",
    "EmailChannel",
    "FailureRateAlert",
    "FlowNotify",
    "NotifyConfig",
    "NotifyRetry",
    "RateLimit",
    "WebhookChannel",
]


class WebhookChannel(Spec):
    """POST a JSON message to an incoming-webhook URL (Slack, Microsoft Teams, or any)."""

    url: str = Field(pattern=r"^https?://", description="the webhook's URL (usually "
                     "`{{ env.… }}`: a Slack or Teams webhook URL is a secret)")
    format: Literal["slack", "teams", "json"] = Field(
        "json", description="slack: `text` + Block Kit `blocks`; teams: a MessageCard; "
        "json: the event as data (docs/notifications.md)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeout: Duration = duration_field("10s", "how long one delivery may take")


class EmailChannel(Spec):
    """Send an email over SMTP."""

    host: str = Field(description="SMTP server")
    port: int = Field(587, ge=1, le=65535, description="SMTP port")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS (the "
                           "server's certificate is verified) before logging in")
    user: str | None = Field(None, description="SMTP login (usually `{{ env.… }}`)")
    password: str | None = Field(None, description="SMTP password (usually `{{ env.… }}`)")
    sender: str = Field(alias="from", description="the From address")
    to: list[str] = Field(min_length=1, description="recipients")
    ca_file: str | None = Field(
        None, description="PEM file of the CA that signs the server's certificate (default: "
        "the system's CAs); relative to the project")
    timeout: Duration = duration_field("30s", "how long one delivery may take")

    @model_validator(mode="after")
    def _login_pair(self) -> EmailChannel:
        if (self.user is None) != (self.password is None):
            raise ValueError("give both 'user' and 'password', or neither")
        # Closed by default: a login without TLS would send the password in clear.
        if self.user is not None and not self.starttls and not is_loopback(self.host):
            raise ValueError("logging in without starttls would send the password in clear; "
                             "set starttls: true (only a loopback host may do without)")
        return self


class RateLimit(Spec):
    """At most `messages` per `per` on a channel; events over it go out as one digest."""

    messages: int = Field(10, ge=1, description="messages per window before digesting")
    per: Duration = duration_field("1m", "the window")


class Channel(Spec):
    """One place messages go: a webhook or an email (exactly one)."""

    webhook: WebhookChannel | None = None
    email: EmailChannel | None = None
    rate_limit: RateLimit = Field(default_factory=RateLimit,
                                  description="more events than this become a digest")

    @model_validator(mode="after")
    def _one_kind(self) -> Channel:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("a channel needs exactly one of 'webhook' or 'email'")
        return self


class FailureRateAlert(Spec):
    """Tell when a connector's attempts fail at `threshold` or more over `window`."""

    threshold: float = Field(0.5, gt=0, le=1, description="failed attempts / attempts")
    window: Duration = duration_field("5m", "the trailing window the rate is taken over")
    min_attempts: int = Field(10, ge=1, description="fewer attempts in the window never alert")
    every: Duration = duration_field("10s", "how often one worker looks (under a store lock)")
    channels: list[Name] | None = Field(None, description="default: every channel")


class NotifyRetry(Spec):
    """How an undelivered message is retried: until it is delivered, backing off."""

    initial: Duration = duration_field("5s", "wait before the second try")
    max: Duration = duration_field("10m", "longest wait between tries")
    multiplier: float = Field(2.0, ge=1.0, description="growth of the wait per try")


class NotifyConfig(Spec):
    """Channels, and which events go to which of them."""

    ui_url: str | None = Field(
        None, pattern=r"^https?://", description="base of the links to runs and queue items "
        "(default: http://{server.host}:{server.port}, or admin.listen's address)")
    channels: dict[Name, Channel] = Field(default_factory=dict, description="by name")
    run_failed: list[Name] | None = Field(
        None, description="channels told when a run ends failed after its flow retries "
        "(default: every channel; [] for none)")
    item_broken: list[Name] | None = Field(
        None, description="channels told when a queue item is marked broken (default: "
        "every channel; [] for none)")
    connector_failure_rate: FailureRateAlert | None = Field(
        None, description="alert on a connector failing often (off when left out)")
    retry: NotifyRetry = Field(default_factory=NotifyRetry)

    @model_validator(mode="after")
    def _known_channels(self) -> NotifyConfig:
        rate = self.connector_failure_rate
        for key, names in (("run_failed", self.run_failed), ("item_broken", self.item_broken),
                           ("connector_failure_rate.channels", rate and rate.channels)):
            unknown = [name for name in names or () if name not in self.channels]
            if unknown:
                known = ", ".join(sorted(self.channels)) or "none"
                raise ValueError(f"{key}: no channel {unknown[0]!r} (channels: {known})")
        return self

    def targets(self, names: list[str] | None) -> list[str]:
        """The channels `names` selects (None: every channel)."""
        return list(self.channels) if names is None else list(dict.fromkeys(names))


class FlowNotify(Spec):
    """A flow's own choice of channels for its failed runs."""

    run_failed: list[Name] = Field(
        default_factory=list, description="channels (of interlink.yaml) told when a run of "
        "this flow fails, besides the project's `run_failed`")
    replace: bool = Field(False, description="tell only this flow's channels ([] silences "
                          "the flow)")
