"""Reading the request body (bounded) and parsing it by the service's `request.body` kind.

The body is never read past `request.max_body`: a `Content-Length` above the limit is refused
before reading, and a chunked body is counted while it streams.

XML goes through a hardened lxml parser (no entity resolution, no DTD loading, no network,
no huge trees) and any document that *declares* a DOCTYPE or an ENTITY is refused outright,
so neither entity expansion ("billion laughs") nor external entities (`file:///etc/passwd`)
can happen. The document becomes plain data: `{root: …}` where an element is a dict of its
children (repeated children become a list), attributes are under `@name`, text under `#text`,
and an element with neither children nor attributes is just its text. Namespaces are dropped
from names (`{urn:x}order` → `order`). The data is built while lxml parses (a parser target),
in one linear pass: reading attributes back from a parsed tree costs lxml a search per value,
which made one element with 60,000 attributes take seconds. Depth, element count and
attributes per element are capped (`server.limits`); JSON nesting too, because the store
cannot write back what orjson parsed beyond 254 levels.

Bodies above `THREAD_PARSE_BYTES` are parsed in a worker thread: the event loop goes on
serving other requests meanwhile.

Charsets: a `charset` in the request's Content-Type (`text/plain; charset=iso-8859-1`) decodes
text and form bodies (form percent-escapes too), is transcoded to UTF-8 for JSON, and overrides
an XML document's own encoding declaration (RFC 7303 §3.2), which is honoured otherwise.
Without one, text, form and JSON are UTF-8. A charset Python does not know as a text
encoding is a mapping error (`unknown_charset`).
"""

from __future__ import annotations

import asyncio
import codecs
from typing import Any, cast
from urllib.parse import parse_qsl

import orjson
from lxml import etree
from starlette.types import Receive

from interlink import json_numbers
from interlink.services.failures import BodyTooLarge, MappingFailure
from interlink.spec.project import ServerLimits
from interlink.spec.service import content_type_charset

__all__ = [
    "THREAD_PARSE_BYTES",
    "ClientDisconnected",
    "declared_charset",
    "json_value",
    "parse_body",
    "parse_body_off_loop",
    "read_body",
    "xml_to_data",
]

_DEFAULT_LIMITS = ServerLimits()


class ClientDisconnected(Exception):
    """The client went away before sending the whole body; nothing is answered."""


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The whole body, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise MappingFailure("bad_request", "Content-Length is not a number") from None
        if declared > limit:
            raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def declared_charset(content_type: str | None) -> str | None:
    """The charset a request's Content-Type declares (Python's name for it), or None;
    `MappingFailure` (`unknown_charset`) for one that is not a known text encoding."""
    charset = content_type_charset(content_type) if content_type else None
    if charset is None:
        return None
    try:
        info = codecs.lookup(charset)
    except LookupError:
        info = None
    # `base64`, `zlib`, `rot13` are codecs, but not text encodings.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise MappingFailure("unknown_charset",
                             f"request charset {charset[:40]!r} is not a known text encoding")
    return info.name


def _parse_xml(raw: bytes, builder: _XmlBuilder, charset: str | None = None) -> None:
    # A parser per document: a parser is bound to its target, and not shareable across the
    # threads large bodies are parsed in. Construction costs about a microsecond.
    # (`cast`: lxml's stubs describe targets as a Protocol with methods we do not want called.)
    parser = etree.XMLParser(
        target=cast(Any, builder),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding=charset,
    )
    etree.fromstring(raw, parser)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag.startswith("{") else tag


class _Element:
    """An element being built: its name, its attributes and children so far, its text."""

    __slots__ = ("data", "name", "text", "texting")

    def __init__(self, name: str, data: dict[str, Any] | None) -> None:
        self.name = name
        #: attributes and children; None while the element has neither
        self.data = data
        #: the text before the first child (later text is a child's tail and is not kept)
        self.text: list[str] = []
        self.texting = True

    def add(self, name: str, value: Any) -> None:
        """Add a finished child element."""
        self.texting = False
        if self.data is None:
            self.data = {}
        existing = self.data.get(name, _MISSING)
        if existing is _MISSING:
            self.data[name] = value
        # A value is never a list, so a list here is our own accumulator of repeats.
        elif isinstance(existing, list):
            existing.append(value)
        else:
            self.data[name] = [existing, value]

    def value(self) -> Any:
        """The element as data: its text alone, or a dict (`@attributes`, children, `#text`)."""
        text = "".join(self.text)
        if self.data is None:
            return text
        text = text.strip()
        if text:
            self.data["#text"] = text
        return self.data


_MISSING = object()


class _XmlBuilder:
    """lxml parser target: builds the plain data while the document is parsed, in one pass
    and within the limits (over one, parsing stops at once)."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.open: list[_Element] = []
        self.elements = 0
        self.root: dict[str, Any] | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        limits = self.limits
        self.elements += 1
        if self.elements > limits.max_xml_elements:
            raise MappingFailure("xml_too_large",
                                 f"XML has more than {limits.max_xml_elements} elements")
        if len(self.open) >= limits.max_xml_depth:
            raise MappingFailure("xml_too_deep",
                                 f"XML nests deeper than {limits.max_xml_depth} elements")
        if len(attrib) > limits.max_xml_attributes:
            raise MappingFailure(
                "xml_too_large",
                f"an XML element has more than {limits.max_xml_attributes} attributes")
        data = {f"@{_local(k)}": v for k, v in attrib.items()} if attrib else None
        self.open.append(_Element(_local(tag), data))

    def data(self, text: str) -> None:
        element = self.open[-1]
        if element.texting:
            element.text.append(text)

    def end(self, tag: str) -> None:
        element = self.open.pop()
        if self.open:
            self.open[-1].add(element.name, element.value())
        else:
            self.root = {element.name: element.value()}

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        # The byte scan misses declarations in other encodings (UTF-16); the parser does not.
        raise MappingFailure("forbidden_xml", _FORBIDDEN)

    def close(self) -> None:
        """The document ended (the data is in `root`)."""


_FORBIDDEN = "XML with DOCTYPE or ENTITY declarations is refused"


def xml_to_data(raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS,
                charset: str | None = None) -> dict[str, Any]:
    """Parse an XML document with the hardened parser into plain data (`{root: …}`);
    `charset` (from the Content-Type) overrides the document's encoding declaration."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise MappingFailure("forbidden_xml", _FORBIDDEN)
    builder = _XmlBuilder(limits)
    try:
        _parse_xml(raw, builder, charset)
    except etree.XMLSyntaxError as exc:
        if "Unsupported encoding" in str(exc):
            raise MappingFailure("unknown_charset", "the XML declares an encoding that is not "
                                 "known") from None
        raise MappingFailure("invalid_xml", "request body is not well-formed XML") from None
    except LookupError:  # lxml does not know a charset Python does
        raise MappingFailure("unknown_charset",
                             f"request charset {charset!r} is not supported for XML") from None
    if builder.root is None:  # lxml reports every document without a root; kept for mypy
        raise MappingFailure("invalid_xml", "request body is not well-formed XML")
    return builder.root


def json_value(raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS) -> Any:
    """Parse JSON; nesting deeper than `max_json_depth` is a mapping error (the store could
    not write it back, and a deep walk is a cost the caller chose), and so is an integer past
    64 bits (orjson would read it as a float: the value passed on would not be the one sent)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MappingFailure("invalid_json", "request body is not valid JSON") from None
    limit = limits.max_json_depth
    # Only a body with more brackets than the limit can nest deeper: most are never walked.
    if (
        raw.count(b"[") + raw.count(b"{") > limit and isinstance(value, dict | list)
        and _nests_deeper(value, limit)
    ):
        raise MappingFailure("json_too_deep", f"JSON nests deeper than {limit} levels")
    try:
        json_numbers.refuse_wide(raw)  # after the depth check: Python's json recurses
    except json_numbers.WideInteger as exc:
        raise MappingFailure("number_too_wide", f"request body: {exc}") from None
    return value


def _nests_deeper(value: Any, limit: int) -> bool:
    # Level by level, not recursive: orjson parses 1024 levels, past Python's recursion limit.
    # Three times faster than a stack of (node, depth) pairs on wide documents.
    level: list[Any] = [value]
    for _ in range(limit):
        deeper: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            deeper.extend([c for c in children if type(c) is dict or type(c) is list])
        if not deeper:
            return False
        level = deeper
    return True


def _text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8")
    except UnicodeDecodeError:
        name = "UTF-8" if charset is None else charset
        raise MappingFailure("invalid_text", f"request body is not valid {name} text") from None


def parse_body(kind: str, raw: bytes, limits: ServerLimits = _DEFAULT_LIMITS,
               charset: str | None = None) -> Any:
    """The body parsed as `kind` (json, xml, form, text, none); empty bodies are None.
    `charset` is the one the request declared (`declared_charset`), if any."""
    if kind == "none" or not raw:
        return None
    if kind == "json":
        if charset is not None and charset != "utf-8":
            raw = _text(raw, charset).encode()
        try:
            return json_value(raw, limits)
        except MappingFailure as exc:
            if exc.kind == "invalid_json":
                _text(raw, None)  # bytes that are not UTF-8 are `invalid_text`, as for text
            raise
    if kind == "xml":
        return xml_to_data(raw, limits, charset)
    if kind == "form":
        try:
            return dict(parse_qsl(_text(raw, charset), keep_blank_values=True,
                                  encoding=charset or "utf-8", errors="strict"))
        except UnicodeDecodeError:
            raise MappingFailure("invalid_text", "a form value is not valid "
                                 f"{charset or 'UTF-8'} text") from None
    return _text(raw, charset)


#: larger bodies are parsed in a worker thread, so the event loop goes on serving meanwhile;
#: smaller ones parse in well under a millisecond, less than the hand-off to a thread costs
THREAD_PARSE_BYTES = 64 * 1024


async def parse_body_off_loop(kind: str, raw: bytes, limits: ServerLimits,
                              charset: str | None = None) -> Any:
    """`parse_body`, in a worker thread when the body is large."""
    if len(raw) > THREAD_PARSE_BYTES and kind in ("json", "xml", "form"):
        return await asyncio.to_thread(parse_body, kind, raw, limits, charset)
    return parse_body(kind, raw, limits, charset)
