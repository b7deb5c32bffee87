"""Pages as HTML: the UI's Jinja environment, its filters, and payloads made readable.

Templates are autoescaped, so nothing from a run (a payload, an upstream's body) can become
markup. Payloads are shown pretty-printed — JSON indented, XML indented — and cut at
`SHOWN_CHARS`, with a link to download the whole value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from lxml import etree
from starlette.responses import HTMLResponse

from interlink.web.auth import FORM_COOKIE, UI_PATH, Viewer

__all__ = ["SHOWN_CHARS", "Shown", "duration", "page", "shown", "spec_hash", "when"]

#: characters of a payload shown on a page; the rest is behind a download link
SHOWN_CHARS = 4000

# What a page may load: its own styles, script and images, nothing from elsewhere, never
# framed (clickjacking), and a Referer on same-origin requests (the CSRF check's fallback).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Shown:
    """A value as a page shows it: readable text, maybe cut."""

    text: str
    #: `json`, `xml` or `text`
    kind: str
    #: whether `text` is cut (the page links to the whole value)
    truncated: bool
    #: characters of the whole text
    size: int


def readable(value: Any) -> tuple[str, str]:
    """`value` as readable text and its kind: JSON (or text that parses as JSON) indented, XML
    indented, other text as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") or stripped in ("true", "false", "null"):
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value, "text"
        elif stripped.startswith("<"):
            return _indented_xml(value)
        else:
            return value, "text"
    if value is None:
        return "", "text"
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode(), \
        "json"


def _indented_xml(text: str) -> tuple[str, str]:
    # The hardened settings the services' XML parser uses: no entities, no network, no DTD.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_blank_text=True)
    try:
        root = etree.fromstring(text.encode(), parser)
    except etree.XMLSyntaxError:
        return text, "text"
    return etree.tostring(root, pretty_print=True, encoding="unicode").rstrip(), "xml"


def shown(value: Any, limit: int = SHOWN_CHARS) -> Shown:
    """`value` as a page shows it (see `readable`), cut at `limit` characters."""
    text, kind = readable(value)
    return Shown(text[:limit], kind, len(text) > limit, len(text))


def when(ts: float | None) -> str:
    """Epoch seconds as `2026-12-01 10:04:05` (UTC), or `-`."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """Seconds as `340 ms`, `2.4 s`, `3 min 5 s`, `2 h 10 min`, or `-`."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def spec_hash(spec: Any) -> str:
    """A short fingerprint of a flow definition: runs of the same version share it."""
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def _thousands(n: int) -> str:
    return f"{n:,}"


def _retry_after(response: dict[str, Any] | None) -> str | None:
    """The `Retry-After` an upstream answered with, if any."""
    for name, value in ((response or {}).get("headers") or {}).items():
        if name.lower() == "retry-after":
            return str(value)
    return None


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


_ENV = Environment(
    loader=PackageLoader("interlink.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(when=when, duration=duration, shown=shown, thousands=_thousands,
                    percent=_percent)
_ENV.globals.update(ui=UI_PATH, retry_after=_retry_after)


def page(template: str, viewer: Viewer | None, *, status: int = 200,
         **context: Any) -> HTMLResponse:
    """A page rendered from `templates/<template>`, with the viewer's form token and the
    UI's security headers (and the form cookie when the viewer gets one now)."""
    html = _ENV.get_template(template).render(viewer=viewer, **context)
    answer = HTMLResponse(html, status, headers=SECURITY_HEADERS)
    if viewer is not None and viewer.new_form_cookie is not None:
        answer.set_cookie(FORM_COOKIE, viewer.new_form_cookie, path=UI_PATH, httponly=True,
                          samesite="strict", secure=viewer.https)
    return answer
