"""The `notify` step: send a message about each payload to a webhook URL or a notification
channel of interlink.yaml; payloads pass on.

```yaml
- id: tell_ops
  type: notify
  url: "{{ variables.ops_webhook }}"        # or channel: ops (a channel of `notify:`)
  template: templates/order-failed.json     # or body: EXPR; a .json template is data
  on_error: log                             # log (default) | fail
```

Sent to a channel, text goes to a Slack or Teams webhook as `{"text": …}` and data as it is;
an email channel mails it (data as indented JSON).

A notification is a side note, not the integration's work: it is sent once per payload (no
retries), recorded as an attempt in the run log, and by default a failure to deliver it is
only logged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, model_validator

from interlink.connectors.exchange import excerpt
from interlink.connectors.transport import describe_error
from interlink.errors import ExpressionError, NotificationError, RunError
from interlink.expressions import compile_expression, compile_interpolation, render_data
from interlink.flows.decision import CODE_NAMES, ResponseCode
from interlink.flows.steps.base import Done, Failed, StepContext, StepOutcome
from interlink.ids import derived_id
from interlink.spec._base import Duration, Expr, Interp, Name, duration_field
from interlink.spec.step import Ref, StepSpec
from interlink.store import AttemptRecord, SaveAttempt

__all__ = ["KIND", "NotifyStep", "run"]

#: the `type:` of this step kind
KIND = "notify"


class NotifyStep(StepSpec):
    """POST a message per payload to `url`, or send it to `channel`."""

    type: Literal["notify"]
    url: Interp | None = None
    channel: Name | None = Field(None, description="a channel of interlink.yaml's `notify:` "
                                 "instead of `url` (method, headers and timeout are its own)")
    method: Literal["POST", "PUT"] = "POST"
    template: str | None = None
    body: Expr | None = None
    headers: dict[str, Interp] = Field(default_factory=dict)
    timeout: Duration = duration_field("10s", "how long one notification may take")
    on_error: Literal["log", "fail"] = Field(
        "log", description="log: an undelivered notification is only logged; fail: it fails "
        "the step")

    @model_validator(mode="after")
    def _one_body(self) -> NotifyStep:
        if (self.template is None) == (self.body is None):
            raise ValueError("a notify step needs exactly one of 'template' or 'body'")
        if (self.url is None) == (self.channel is None):
            raise ValueError("a notify step needs exactly one of 'url' or 'channel'")
        return self

    def refs(self) -> Iterator[Ref]:
        """Its template and its channel, if it has them."""
        if self.template is not None:
            yield Ref("template", ("template",), self.template)
        if self.channel is not None:
            yield Ref("channel", ("channel",), self.channel)


async def run(ctx: StepContext, step: NotifyStep, bucket: list[Any]) -> StepOutcome:
    """Send one message per payload; the bucket goes on unchanged."""
    # A step run again (inside a composite resumed after a durable wait, after a crash)
    # does not send what an earlier execution recorded as sent.
    sent = {a.item for a in await ctx.attempts() if a.code == ResponseCode.CONTINUE}
    for index, payload in enumerate(bucket):
        if index in sent:
            continue
        data = ctx.data(payload)
        try:
            url = "" if step.url is None else compile_interpolation(step.url).render_required(data)
            headers = {k: compile_interpolation(v).render(data) for k, v in step.headers.items()}
            body, content_type = _body(ctx, step, data)
        except (ExpressionError, orjson.JSONDecodeError) as exc:
            return Failed(f"step {step.id}: building the message: {exc}")
        headers.setdefault("Content-Type", content_type)
        if step.channel is not None:
            url = f"channel {step.channel}"
            error = await _send_to_channel(ctx, step, step.channel, index, body, content_type)
        else:
            error = await _send(ctx, step, index, url, headers, body)
        if error is not None:
            if step.on_error == "fail":
                return Failed(f"step {step.id}: notifying {url}: {error}")
            ctx.log(f"step {step.id}: notifying failed: {error}", "warning")
    return Done(bucket)


def _body(ctx: StepContext, step: NotifyStep, data: dict[str, Any]) -> tuple[bytes, str]:
    if step.body is not None:
        value = compile_expression(step.body).evaluate(data)
    else:
        assert step.template is not None
        template = ctx.services.template(step.template)
        if template.kind != "json":
            subtype = "plain" if template.kind == "text" else template.kind
            return template.render(data).encode(), f"text/{subtype}; charset=utf-8"
        value = render_data(orjson.loads(template.text), data)
    if isinstance(value, str):
        return value.encode(), "text/plain; charset=utf-8"
    return orjson.dumps(value, default=str), "application/json"


async def _send(ctx: StepContext, step: NotifyStep, index: int, url: str,
                headers: dict[str, str], body: bytes) -> str | None:
    """Send it and record it as an attempt; the reason it failed, or None."""
    started = time.time()
    redactor = ctx.services.redactor
    request = {"method": step.method, "url": redactor.text(url),
               "headers": redactor.headers(headers),
               "body": excerpt(redactor.text(body.decode("utf-8", "replace")))}
    response: dict[str, Any] | None = None
    error = None
    try:
        async with ctx.services.http.request(
                step.method, url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=step.timeout)) as answer:
            text = await answer.text(errors="replace")
            response = {"status": answer.status, "headers": redactor.headers(dict(answer.headers)),
                        "body": excerpt(redactor.text(text))}
            if answer.status >= 300:
                error = f"HTTP {answer.status}"
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        error = describe_error(exc, step.timeout)
    _record(ctx, step, index, started, request, response, error)
    return error


async def _send_to_channel(ctx: StepContext, step: NotifyStep, channel: str, index: int,
                           body: bytes, content_type: str) -> str | None:
    """Send it to a channel of interlink.yaml and record it as an attempt."""
    started = time.time()
    redactor = ctx.services.redactor
    # The same key for the same payload of the same step: a receiver can drop a re-send.
    key = derived_id("n_", ctx.run.created_at, f"{ctx.run.id}:{step.id}:{index}")
    request = {"method": "SEND", "url": f"channel:{channel}",
               "headers": {"Content-Type": content_type, "Idempotency-Key": key},
               "body": excerpt(redactor.text(body.decode("utf-8", "replace")))}
    error = None
    try:
        sender = ctx.services.channel(channel)
        await sender.send_body(body, content_type, key=key,
                               title=f"flow {ctx.run.flow}, step {step.id}")
    except NotificationError as exc:
        error = exc.reason
    except RunError as exc:  # a run of an older flow version names a channel since removed
        error = str(exc)
    _record(ctx, step, index, started, request, None, error)
    return error


def _record(ctx: StepContext, step: NotifyStep, index: int, started: float,
            request: dict[str, Any], response: dict[str, Any] | None, error: str | None) -> None:
    code = ResponseCode.CONTINUE if error is None else ResponseCode.FAIL
    ctx.defer(SaveAttempt(AttemptRecord(
        ctx.run.id, step.id, 1, request, response, code, CODE_NAMES[code], started,
        message=error, error=error if response is None else None, item=index,
        redrive=ctx.run.redrive)))
