"""`paginate:` on a connector endpoint (or a connector step): how to walk the pages of a list.

| type | the next page is asked with | it ends |
|---|---|---|
| `page` | `param` = `start`, `start + 1`, …, and `size_param` = `size` if set | at an empty page |
| `offset` | `param` = `start`, `start + size`, …, and `size_param` = `size` | at an empty page |
| `cursor` | `param` = what `cursor` read from the last response | when it reads none |
| `next_url` | the URL `next` read from the last response | when it reads none |
| `link_header` | the last response's `Link: <…>; rel="next"` (RFC 8288) | without one |

Every kind has `items` (an expression over `response`, default `response.json`: the list of
the page, collected into the step's bucket) and `max_pages` (1000: a runaway API stops there).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from interlink.spec._base import Expr, Spec

__all__ = ["CursorPages", "LinkHeaderPages", "NextUrlPages", "OffsetPages", "PagePages",
           "Paginate"]


class _Pages(Spec):
    items: Expr = Field("response.json", description="the page's items, over `response`")
    max_pages: int = Field(1000, ge=1, description="stop after this many pages")


class PagePages(_Pages):
    """Numbered pages."""

    type: Literal["page"]
    param: str = Field("page", description="query parameter carrying the page number")
    start: int = Field(1, description="the first page's number")
    size_param: str | None = Field(None, description="query parameter carrying the page size")
    size: int | None = Field(None, ge=1, description="the page size asked for")


class OffsetPages(_Pages):
    """Pages by item offset."""

    type: Literal["offset"]
    param: str = Field("offset", description="query parameter carrying the offset")
    start: int = Field(0, ge=0, description="the first page's offset")
    size_param: str = Field("limit", description="query parameter carrying the page size")
    size: int = Field(100, ge=1, description="items per page")


class CursorPages(_Pages):
    """Pages by an opaque cursor the API returns."""

    type: Literal["cursor"]
    param: str = Field("cursor", description="query parameter carrying the cursor")
    cursor: Expr = Field(description="where the next cursor is read, over `response`")


class NextUrlPages(_Pages):
    """Pages by a next-page URL in the response body."""

    type: Literal["next_url"]
    next: Expr = Field(description="where the next page's URL is read, over `response`")


class LinkHeaderPages(_Pages):
    """Pages by RFC 8288 `Link: <url>; rel="next"` headers."""

    type: Literal["link_header"]


Paginate = Annotated[
    PagePages | OffsetPages | CursorPages | NextUrlPages | LinkHeaderPages,
    Field(discriminator="type"),
]
