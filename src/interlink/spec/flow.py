"""`flows/*.yaml`: a trigger and ordered steps passing a bucket of payloads along.

Steps are a discriminated union on `type`, made of the step kinds' own models
(`interlink.flows.steps`: one module per kind).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from interlink.cron import Cron
from interlink.flows.steps import Step
from interlink.spec._base import Duration, Expr, Name, Spec, duration_field
from interlink.spec.notify import FlowNotify

__all__ = [
    "MAX_DELIVERY_KEY",
    "FlowRetry",
    "FlowSpec",
    "ManualTrigger",
    "ScheduleTrigger",
    "Step",
    "Trigger",
    "WebhookRespond",
    "WebhookTrigger",
]


class WebhookRespond(Spec):
    """Answer a webhook call with what its run produced, when the run ends within `wait`.

    Otherwise (and without `respond`) the call is answered 202 with the run id; either way
    the run is committed before the answer is sent.
    """

    wait: Duration = duration_field("10s", "how long the caller is kept waiting for the run")
    status: int = Field(200, ge=200, le=599, description="the answer's status once the run "
                        "succeeded")
    body: Expr = Field(
        "output", description="the answer's body, an expression over `output` (the run's "
        "output: its one payload, else the list), `input` (what the webhook received) and "
        "`run` (`id`, `flow`, `status`); text is sent as text/plain, other values as JSON")


#: the longest delivery key (`Idempotency-Key`) a webhook accepts; a longer one is a 400
MAX_DELIVERY_KEY = 255


class WebhookTrigger(Spec):
    """A POST to `path` queues a run durably and answers 202 with its id (or, with `respond`,
    the run's output when it ends in time).

    With `package`, the caller authenticates with that package's `auth` (else 401, no run).
    """

    type: Literal["webhook"]
    path: str = Field(pattern=r"^/", description="path the webhook is served at")
    method: Literal["POST", "PUT"] = "POST"
    package: Name | None = Field(
        None, description="package in interlink.yaml whose auth callers must pass")
    respond: WebhookRespond | None = Field(
        None, description="answer with the run's output when it ends within `respond.wait`")
    delivery_header: str | None = Field(
        "Idempotency-Key", pattern=r"^[A-Za-z0-9-]+$",
        description="request header naming a delivery: a request whose value this flow has "
                    "seen starts no run and is answered with the first one's (null: off)")


class ScheduleTrigger(Spec):
    """Start a run on a cron schedule (UTC); one run per fire time across all processes."""

    type: Literal["schedule"]
    cron: str = Field(description="five-field cron expression, UTC: minute hour day month weekday")

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str) -> str:
        Cron.parse(value).next_after(datetime.now(UTC))  # CronError is a ValueError
        return value


class ManualTrigger(Spec):
    """Runs start only from the CLI, the API or a service."""

    type: Literal["manual"]


Trigger = Annotated[
    WebhookTrigger | ScheduleTrigger | ManualTrigger, Field(discriminator="type")
]


class FlowRetry(Spec):
    """What response code 2 (fail the flow, queue it to retry) does."""

    max_flow_retries: int = Field(3, ge=0, description="retry runs at most")
    delay: Duration = duration_field("30s", "wait before a retry run starts")


class FlowSpec(Spec):
    """A process flow."""

    name: Name
    description: str = ""
    trigger: Trigger | None = Field(None, description="omit for API/service/manual only")
    variables: dict[str, Any] = Field(default_factory=dict)
    retry: FlowRetry = Field(default_factory=FlowRetry)
    notify: FlowNotify | None = Field(
        None, description="channels told when a run of this flow fails (over interlink.yaml's)")
    steps: list[Step] = Field(min_length=1)
