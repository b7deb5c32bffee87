"""Reading the request body (bounded) and parsing it by the service's `request.body` kind.

The body is never read past `request.max_body`: a `Content-Length` above the limit is refused
before reading, and a chunked body is counted while it streams.

XML goes through a hardened lxml parser (no entity resolution, no DTD loading, no network,
no huge trees) and any document that *declares* a DOCTYPE or an ENTITY is refused outright,
so neither entity expansion ("billion laughs") nor external entities (`file:///etc/passwd`)
can happen. The document becomes plain data: `{root: …}` where an element is a dict of its
children (repeated children become a list), attributes are under `@name`, text under `#text`,
and an element with neither children nor attributes is just its text. Namespaces are dropped
from names (`{urn:x}order` → `order`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from lxml import etree
from starlette.types import Receive

from interlink.services.failures import BodyTooLarge, MappingFailure

__all__ = ["ClientDisconnected", "parse_body", "read_body", "xml_to_data"]



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


_XML_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def _local(tag: object) -> str:
    tag = tag if isinstance(tag, str) else str(tag)
    return tag.rpartition("}")[2] if tag.startswith("{") else tag


def _element(element: etree._Element) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    if not children and not element.attrib:
        return element.text or ""
    data: dict[str, Any] = {f"@{_local(str(k))}": v for k, v in element.attrib.items()}
    for child in children:
        name = _local(child.tag)
        value = _element(child)
        if name in data:
            existing = data[name]
            # `_element` never returns a list, so a list here is our own accumulator.
            if isinstance(existing, list):
                existing.append(value)
            else:
                data[name] = [existing, value]
        else:
            data[name] = value
    text = (element.text or "").strip()
    if text:
        data["#text"] = text
    return data


def xml_to_data(raw: bytes) -> dict[str, Any]:
    """Parse an XML document with the hardened parser into plain data (`{root: …}`)."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise MappingFailure("forbidden_xml", "XML with DOCTYPE or ENTITY declarations is refused")
    try:
        root = etree.fromstring(raw, _XML_PARSER)
    except etree.XMLSyntaxError:
        raise MappingFailure("invalid_xml", "request body is not well-formed XML") from None
    # The byte scan misses declarations in other encodings (UTF-16); the parsed tree does not.
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MappingFailure("forbidden_xml", "XML with DOCTYPE or ENTITY declarations is refused")
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise MappingFailure(
                "forbidden_xml", "XML with DOCTYPE or ENTITY declarations is refused"
            )
    return {_local(root.tag): _element(root)}


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MappingFailure("invalid_text", "request body is not valid UTF-8 text") from None


def parse_body(kind: str, raw: bytes) -> Any:
    """The body parsed as `kind` (json, xml, form, text, none); empty bodies are None."""
    if kind == "none" or not raw:
        return None
    if kind == "json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MappingFailure("invalid_json", "request body is not valid JSON") from None
    if kind == "xml":
        return xml_to_data(raw)
    if kind == "form":
        return dict(parse_qsl(_text(raw), keep_blank_values=True))
    return _text(raw)
