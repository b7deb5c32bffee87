"""Walking the pages of a paginated endpoint for one payload (`paginate:`, `spec.paginate`).

Each page is delivered like a payload of its own (`_delivery.Delivery`): its attempts, its
retries, its response script, its idempotency key (`…:item:page`). An accepted page keeps,
with its attempt, its items and where the next page is (`{"items", "next"}`), so a resumed
step (after a crash or a durable wait) starts at the page after the last one accepted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from yarl import URL

from interlink.connectors.transport import join_url
from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.flows.steps._delivery import Accepted, Delivery, Tally
from interlink.flows.steps.base import Failed, StepContext, Wait
from interlink.spec.paginate import (
    CursorPages,
    LinkHeaderPages,
    NextUrlPages,
    OffsetPages,
    PagePages,
    Paginate,
)

if TYPE_CHECKING:
    from interlink.connectors.client import ConnectorClient
    from interlink.connectors.exchange import Exchange
    from interlink.flows.steps.connector import ConnectorStep

__all__ = ["next_link", "walk_pages"]

_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')


async def walk_pages(ctx: StepContext, step: ConnectorStep, client: ConnectorClient,
                     paginate: Paginate, index: int, payload: Any,
                     tallies: dict[tuple[int, int], Tally]) -> list[Any] | Failed | Wait:
    """Every item of every page for one payload, or why the step stops."""
    items: list[Any] = []
    page, after = 0, _first(paginate)
    while True:
        tally = tallies.get((index, page)) or Tally()
        if tally.accepted:
            got = tally.output or {}
        else:
            query, url = _request(paginate, after)

            def shape(exchange: Exchange, n: int = page) -> dict[str, Any]:
                return _page(ctx, paginate, payload, exchange, n)

            outcome = await Delivery(
                ctx, step, client, index, payload, tally, keep_output=True, page=page,
                query=query, url=url, shape=shape,
            ).deliver()
            if not isinstance(outcome, Accepted):
                return outcome
            got = outcome.output
        items.extend(got.get("items") or [])
        after = got.get("next")
        page += 1
        if after is None:
            return items
        if isinstance(paginate, NextUrlPages | LinkHeaderPages) and \
                not _same_origin(client.spec.base_url, str(after)):
            return Failed(f"step {step.id}: payload {index}: the next page {str(after)!r} is "
                          f"not on {client.spec.base_url}; not sending the connector's "
                          "credentials there")
        if page >= paginate.max_pages:
            ctx.log(f"step {step.id}: payload {index}: stopped after max_pages "
                    f"({paginate.max_pages}) pages; there were more", "warning")
            return items


def _same_origin(base_url: str, link: str) -> bool:
    """Whether `link` (absolute, or relative to `base_url`) has `base_url`'s scheme, host and
    port."""
    base, target = URL(base_url), join_url(base_url, link)
    return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)


def _first(paginate: Paginate) -> Any:
    """What the first page is asked with (None: the endpoint as it is)."""
    if isinstance(paginate, PagePages | OffsetPages):
        return paginate.start
    return None


def _request(paginate: Paginate, after: Any) -> tuple[dict[str, str], str | None]:
    """The query parameters, or URL, that ask for the page after `after`."""
    if isinstance(paginate, PagePages):
        query = {paginate.param: str(after)}
        if paginate.size_param and paginate.size:
            query[paginate.size_param] = str(paginate.size)
        return query, None
    if isinstance(paginate, OffsetPages):
        return {paginate.param: str(after), paginate.size_param: str(paginate.size)}, None
    if isinstance(paginate, CursorPages):
        return ({paginate.param: str(after)} if after is not None else {}), None
    return {}, after  # next_url, link_header: the link itself (None: the endpoint)


def _page(ctx: StepContext, paginate: Paginate, payload: Any, exchange: Exchange,
          page: int) -> dict[str, Any]:
    """An accepted page's items, and what asks for the next one (None: it was the last)."""
    response = exchange.response
    view = {**ctx.data(payload), "response": response.script_view() if response else None}
    items = compile_expression(paginate.items).evaluate(view)
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ExpressionError(f"items {paginate.items!r} is a {type(items).__name__}, "
                              "not a list")
    following: Any = None
    if isinstance(paginate, PagePages):
        following = paginate.start + page + 1 if items else None
    elif isinstance(paginate, OffsetPages):
        following = paginate.start + (page + 1) * paginate.size if items else None
    elif isinstance(paginate, CursorPages | NextUrlPages):
        source = paginate.cursor if isinstance(paginate, CursorPages) else paginate.next
        following = compile_expression(source).evaluate(view) or None
    elif isinstance(paginate, LinkHeaderPages) and response is not None:
        following = next_link(response.headers)
    return {"items": items, "next": following}


def next_link(headers: dict[str, str]) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288), if there is one."""
    value = next((v for k, v in headers.items() if k.lower() == "link"), None)
    if not value:
        return None
    for target, params in _LINK.findall(value):
        for param in params.split(";"):
            name, _, rel = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip().strip('"').split():
                return str(target)
    return None
