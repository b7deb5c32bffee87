"""Hostile requests against the shop example, served by `interlink serve` as a user runs it.

    .venv/bin/python bench/fuzz.py [--seed 1] [--requests 10000] [--clients 8] [--keep DIR]

A copy of `examples/shop` (its `.env` included) is served by `interlink serve` in a
subprocess, next to the stand-in warehouse (`examples/shop/warehouse.py`). Four fuzz-only
services are added to the copy (`/fuzz/xml`, `/fuzz/form`, `/fuzz/text`, `/fuzz/items/{id}`)
so that XML, form and text bodies, templates and path parameters are exercised too; the
example's own paths are `/orders`, `/hooks/orders`, `/_interlink/…` and `/metrics`.

`--requests` requests are generated from `--seed` (the same seed, the same requests): malformed
and deep JSON, XML bombs and 60,000 attributes, bad forms, wrong content types and charsets,
odd methods, long and many headers, non-UTF-8 paths and headers, truncated and chunked bodies,
bad Content-Length, broken request lines. Each goes on its own connection over a raw socket,
`--clients` at a time, while a probe asks `/_interlink/health` every 100 ms (a stalled event
loop shows there). A handful of slow clients trickle headers and bodies meanwhile.

Printed, and the exit status is 1 unless every must-be-0 figure is 0 and the slowest request
stays under 1 s:
- 5xx answers no rule configured (uvicorn's "Internal Server Error", the engine's 500s);
  the example configures only `502` (`on: service_error` of order-intake);
- answers holding a traceback or a file path;
- the project's secrets (the `.env` values but the warehouse's address) in an answer, in the
  serve log or in the store;
- errors logged with a traceback by the server;
- the slowest answer on the example's own paths, but the ones that ran the flow (they wait on
  the warehouse, whose injected failures and `Retry-After` make them slow on purpose) and the
  slow clients (their own slowness).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"
BIN = Path(sys.executable).parent

FUZZ_FILES = {
    "services/fuzz-xml.yaml": """
        name: fuzz-xml
        path: /fuzz/xml
        request: {body: xml, map: {page.doc: request.body}}
        responses:
          - {on: mapping_error, status: 400, body: {from: context, key: error.message}}
          - {on: default, status: 200, body: {from: context, key: page.doc}}
          - {on: service_error, status: 502}
    """,
    "services/fuzz-form.yaml": """
        name: fuzz-form
        path: /fuzz/form
        request: {body: form, map: {page.form: request.body, page.q: request.query.q}}
        responses:
          - {on: mapping_error, status: 400}
          - {on: default, status: 200, body: {from: template, template: templates/fuzz.html}}
          - {on: service_error, status: 502}
    """,
    "services/fuzz-text.yaml": """
        name: fuzz-text
        path: /fuzz/text
        request: {body: text, max_body: 64KB, map: {page.text: request.body}}
        responses:
          - {on: mapping_error, status: 400}
          - {on: default, status: 200, headers: [{name: X-Len, from: context,
                                                    key: page.text | length}],
             body: {from: json, value: {text: "{{ page.text }}"}}}
          - {on: service_error, status: 502}
    """,
    "services/fuzz-items.yaml": """
        name: fuzz-items
        method: GET
        path: /fuzz/items/{id}
        request: {body: none, map: {page.id: request.path_params.id}}
        responses:
          - {on: default, status: 200, headers: [{name: X-Item, from: context, key: page.id}],
             body: {from: json, value: {id: "{{ page.id }}", q: "{{ request.query.q }}"}}}
          - {on: service_error, status: 502}
    """,
    "templates/fuzz.html": "<p>{{ page.form }} {{ page.q }}</p>\n",
}

#: the 5xx statuses a rule configures, by path group (the fuzz-only services answer a failure
#: to build their answer, such as a header echoing a control character, with 502)
CONFIGURED_5XX = {"/orders": {502}, **{f"/fuzz/{k}": {502} for k in ("xml", "form", "text",
                                                                      "items")}}
TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|"
                       rb"(?:/[\w.+-]+){2,}\.py\b|site-packages")


# --- requests ----------------------------------------------------------------------------


@dataclass
class Case:
    """One generated request: its bytes (sent in `pieces`) and what to make of its answer."""

    kind: str
    path: str
    pieces: list[bytes]
    pause: float = 0.0
    answered: bool = True  # False: the request is cut short and the connection closed
    slow_client: bool = False


def request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
            body: bytes = b"", *, framing: str = "length", version: bytes = b"HTTP/1.1",
            close: bool = True) -> bytes:
    """A raw HTTP request; `framing` is length, chunked or none (no framing header)."""
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if close:
        lines.append(b"Connection: close")
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _chunks(body)) + b"0\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _chunks(body: bytes, size: int = 4096) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


class Generator:
    """Generates the cases from one seed."""

    def __init__(self, seed: int, key: str, admin_token: str) -> None:
        self.rng = random.Random(seed)
        self.key = key.encode()
        # Engine cases carry the admin token, so they reach the endpoints (anonymous callers
        # are refused before any parsing: tests/integration/test_engine_api_security.py).
        self.admin = [(b"Authorization", b"Bearer " + admin_token.encode())]

    # bodies
    def order(self) -> dict[str, object]:
        rng = self.rng
        order: dict[str, object] = {"id": f"F-{rng.randrange(10**6)}",
                                    "sku": rng.choice(["MUG-01", "TEE-M", "CAP-02"]),
                                    "qty": rng.randrange(1, 5)}
        if rng.random() < 0.3:
            order["status"] = "HELD"
        return order

    def weird_value(self) -> object:
        rng = self.rng
        return rng.choice([
            None, True, -0, 2**63 - 1, -(2**63), 2**64 - 1, 1e30, 1e308, -1e-308, "", "\u0000",
            "\ud7ff",
            "é" * rng.randrange(1, 50), "x" * rng.randrange(1000, 100_000), [], {}, [1, [2, [3]]],
            {"a": {"b": {"c": None}}}, "<script>alert(1)</script>", "{{ 7*7 }}", "${jndi:x}",
            "'; DROP TABLE runs; --", "../../etc/passwd", "\r\nX-Injected: 1",
        ])

    def deep_json(self) -> bytes:
        rng = self.rng
        depth = rng.choice([10, 63, 64, 65, 100, 200, 253, 254, 255, 256, 300, 1000, 1023, 1025,
                            5000, 50_000])
        kind = rng.choice(["array", "object", "mixed"])
        if kind == "array":
            return b"[" * depth + b"]" * depth
        if kind == "object":
            return b'{"a":' * depth + b"1" + b"}" * depth
        return b'[{"a":' * (depth // 2) + b"1" + b"}]" * (depth // 2)

    def bad_json(self) -> bytes:
        rng = self.rng
        good = orjson.dumps({"order": self.order()})
        choice = rng.randrange(9)
        if choice == 0:
            return good[:rng.randrange(len(good))]
        if choice == 1:
            at = rng.randrange(len(good))
            return good[:at] + bytes([rng.randrange(256)]) + good[at + 1:]
        if choice == 2:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if choice == 3:
            return rng.choice([b"NaN", b"Infinity", b"1e999", b'"\\ud800"', b"{'a': 1}",
                               b'{"a":1,}', b"[1,,2]", b"\xef\xbb\xbf{}", b'{"a":"\x00"}',
                               b'{"a": 01}', b"[" * 3, b"}", b"null null",
                               b'{"order": {"qty": 123456789012345678901234567890}}',
                               b'{"order": {"qty": -99999999999999999999}}'])
        if choice == 4:
            return good.decode().encode("utf-16")
        if choice == 5:
            return good + b"garbage"
        if choice == 6:
            return b" " * rng.randrange(1, 1000)
        if choice == 7:
            return orjson.dumps({"order": self.weird_value()})
        return orjson.dumps([self.weird_value() for _ in range(rng.randrange(1, 10))])

    def wide_json(self) -> bytes:
        rng = self.rng
        n = rng.choice([1000, 20_000, 100_000])
        return orjson.dumps({"order": self.order(), "pad": [{"k": i} for i in range(n)]})

    def xml(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(10)
        if choice == 0:
            n = rng.choice([255, 256, 257, 1000, 60_000])
            return b"<a " + b" ".join(b'x%d="1"' % i for i in range(n)) + b"/>"
        if choice == 1:
            depth = rng.choice([64, 65, 255, 256, 257, 1000, 10_000])
            return b"<a>" * depth + b"</a>" * depth
        if choice == 2:
            return (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>')
        if choice == 3:
            return ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE f [<!ENTITY x SYSTEM '
                    '"file:///etc/passwd">]><f>&x;</f>').encode("utf-16")
        if choice == 4:
            n = rng.choice([1000, 99_999, 100_000, 150_000])
            return b"<a>" + b"<b/>" * n + b"</a>"
        if choice == 5:
            return b"<a><b>" + bytes(rng.randrange(256) for _ in range(50)) + b"</b></a>"
        if choice == 6:
            return b'<o id="1"><line sku="s">2</line><line sku="t">3</line>tail</o>'
        if choice == 7:
            return b"<a>&undefined;</a>"
        if choice == 8:
            return b"<a xmlns:p='urn:p'><p:b p:c='1'>" + b"x" * rng.randrange(1, 200_000) \
                + b"</p:b></a>"
        return b"<" + bytes(rng.randrange(33, 127) for _ in range(rng.randrange(1, 40)))

    def form(self) -> bytes:
        rng = self.rng
        return rng.choice([
            b"a=1&b=2", b"a=%ff%fe", b"a=%zz&&&=&==", b"\xff\xfe=\x00",
            b"&".join(b"k%d=v" % i for i in range(rng.choice([10, 10_000, 100_000]))),
            b"a=" + b"%41" * 50_000, b"=" * 1000, b"a=<b>{{ 7*7 }}</b>",
        ])

    def body(self) -> bytes:
        rng = self.rng
        maker = rng.choice([self.bad_json, self.bad_json, self.deep_json, self.xml, self.form,
                            lambda: orjson.dumps({"order": self.order()})])
        return maker()

    # headers
    def content_type(self) -> bytes:
        return self.rng.choice([
            b"application/json", b"application/json; charset=utf-16", b"application/json; "
            b"charset=latin-1", b"text/xml; charset=EBCDIC", b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x", b"", b";;;", b"\xff\xfe/\x80", b"a" * 4000,
        ])

    def auth(self) -> list[tuple[bytes, bytes]]:
        rng = self.rng
        choice = rng.randrange(8)
        if choice < 4:
            return [(b"X-API-Key", self.key)]
        return [[], [(b"X-API-Key", b"wrong")], [(b"X-API-Key", self.key), (b"X-API-Key", b"x")],
                [(b"X-API-Key", b"\xff" * rng.randrange(1, 3000))]][choice - 4]

    def odd_headers(self) -> list[tuple[bytes, bytes]]:
        rng = self.rng
        choice = rng.randrange(8)
        if choice == 0:
            return [(b"X-Long", b"v" * rng.choice([1000, 60_000, 64 * 1024, 100_000]))]
        if choice == 1:
            return [(b"X-H%d" % i, b"v") for i in range(rng.choice([50, 99, 100, 101, 200,
                                                                      10_000]))]
        if choice == 2:
            return [(b"X-Bytes", bytes(rng.randrange(128, 256) for _ in range(40)))]
        if choice == 3:
            return [(b"Bad Name", b"x")] if rng.random() < 0.5 else [(b"X\x00Y", b"1")]
        if choice == 4:
            return [(b"Expect", b"100-continue")]
        if choice == 5:
            return [(b"Cookie", b"INTERLINK_SESSION=" + b"z" * rng.randrange(1, 5000))]
        if choice == 6:
            return [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
        return [(b"X-Request-ID", "ü€".encode() * 10)]

    # cases
    def case(self) -> Case:
        rng = self.rng
        makers: list[tuple[float, Callable[[], Case]]] = [
            (22, self.service_body), (6, self.service_valid), (10, self.webhook),
            (10, self.engine), (12, self.fuzz_services), (8, self.paths), (6, self.methods),
            (10, self.headers), (8, self.framing), (6, self.request_lines), (2, self.large),
            (4, self.pipelined),
        ]
        total = sum(w for w, _ in makers)
        pick = rng.uniform(0, total)
        for weight, maker in makers:
            pick -= weight
            if pick <= 0:
                return maker()
        return makers[-1][1]()

    def service_body(self) -> Case:
        headers = [*self.auth(), (b"Content-Type", self.content_type())]
        body = self.rng.choice([self.bad_json, self.deep_json, self.xml, self.form])()
        return Case("service-body", "/orders", [request(b"POST", b"/orders", headers, body)])

    def service_valid(self) -> Case:
        body = orjson.dumps({"order": self.order()})
        if self.rng.random() < 0.3:
            body = self.wide_json()
        headers = [(b"X-API-Key", self.key), (b"Content-Type", b"application/json")]
        return Case("service-valid", "/orders", [request(b"POST", b"/orders", headers, body)])

    def webhook(self) -> Case:
        rng = self.rng
        body = self.body() if rng.random() < 0.8 else orjson.dumps(self.order())
        framing = rng.choice(["length", "length", "chunked"])
        raw = request(b"POST", b"/hooks/orders", [(b"Content-Type", self.content_type())],
                      body, framing=framing)
        return Case("webhook", "/hooks/orders", [raw])

    def engine(self) -> Case:
        rng = self.rng
        target, method = rng.choice([
            (b"/_interlink/flows/push-orders/runs", b"POST"), (b"/_interlink/flows/nope/runs",
                                                               b"POST"),
            (b"/_interlink/flows/%2e%2e/runs", b"POST"), (b"/_interlink/flows/push-orders/runs",
                                                          b"GET"),
            (b"/_interlink/runs/" + self.garbage_id(), b"GET"),
            (b"/_interlink/queue/" + self.garbage_id(), b"GET"),
            (b"/_interlink/health", b"GET"), (b"/_interlink/health", b"POST"),
            (b"/_interlink/openapi.json", b"GET"), (b"/metrics", b"GET"),
            (b"/_interlink/health?" + b"q" * 3000, b"GET"), (b"/_interlink/", b"GET"),
        ])
        body = self.body() if method == b"POST" else b""
        path = target.split(b"?")[0].decode()
        group = "/_interlink" if path.startswith("/_interlink") else path
        return Case("engine", group, [request(method, target, self.admin, body)])

    def garbage_id(self) -> bytes:
        return self.rng.choice([b"r_1", b"x" * 3000, b"%00", b"%ff%fe", b"'%20OR%201=1",
                                b"..%2f..%2fetc", b"\xc3\xa9", b"q_" + b"0" * 40, b"%"])

    def fuzz_services(self) -> Case:
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:
            raw = request(b"POST", b"/fuzz/xml", [(b"Content-Type", b"application/xml")],
                          self.xml())
            return Case("fuzz-xml", "/fuzz/xml", [raw])
        if choice == 1:
            query = rng.choice([b"", b"?q=%ff", b"?q=" + b"a" * 2000, b"?q=<x>&q=2"])
            raw = request(b"POST", b"/fuzz/form" + query, [], self.form())
            return Case("fuzz-form", "/fuzz/form", [raw])
        if choice == 2:
            body = rng.choice([b"plain", b"\xff\xfe\xfd", "é{{x}}".encode(), b"x" * 70_000,
                               b"\x00" * 10, "\u2028".encode()])
            return Case("fuzz-text", "/fuzz/text",
                        [request(b"POST", b"/fuzz/text", [], body)])
        item = rng.choice([b"1", b"%2F", b"%ff", b"a" * 5000, b"%00", b"\xe2\x82\xac", b"..",
                           b"x?q=%zz", b"x?q=" + b"%41" * 1000])
        return Case("fuzz-items", "/fuzz/items", [request(b"GET", b"/fuzz/items/" + item, [],
                                                          framing="none")])

    def paths(self) -> Case:
        rng = self.rng
        target = rng.choice([
            b"/", b"//orders", b"/orders/", b"/ORDERS", b"/orders%00", b"/%ff%fe%fd",
            b"/\xff\xfe", b"/" + b"a" * rng.choice([100, 8000, 70_000]), b"/../../etc/passwd",
            b"/orders?" + b"&".join(b"a%d=%d" % (i, i) for i in range(2000)), b"*",
            b"http://evil.example/orders", b"/orders#frag", b"/%", b"/%%32%65", b"/\t/",
        ])
        headers = [(b"X-API-Key", self.key)]
        # What uvicorn routes: the path of an absolute URL, without query or fragment.
        routed = urlsplit(target.decode("latin-1")).path
        group = "/orders" if routed == "/orders" else "/other"
        return Case("path", group, [request(b"POST", target, headers, b"{}")])

    def methods(self) -> Case:
        rng = self.rng
        method = rng.choice([b"GET", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"HEAD", b"TRACE",
                             b"CONNECT", b"FOO", b"post", b"P\xffST", b"X" * 300, b"PRI"])
        target = rng.choice([b"/orders", b"/hooks/orders", b"/_interlink/health", b"/fuzz/xml"])
        path = target.decode()
        group = "/_interlink" if path.startswith("/_interlink") else path
        return Case("method", group, [request(method, target, [(b"X-API-Key", self.key)],
                                              b"{}")])

    def headers(self) -> Case:
        rng = self.rng
        target = rng.choice([b"/orders", b"/hooks/orders", b"/_interlink/health"])
        headers = [*self.auth(), *self.odd_headers()]
        body = orjson.dumps({"order": self.order()}) if rng.random() < 0.2 else b"{"
        path = target.decode()
        group = "/_interlink" if path.startswith("/_interlink") else path
        return Case("headers", group, [request(b"POST", target, headers, body)])

    def framing(self) -> Case:
        rng = self.rng
        target = rng.choice([b"/orders", b"/hooks/orders", b"/_interlink/flows/push-orders/runs",
                             b"/fuzz/text"])
        path = target.decode()
        group = "/_interlink" if path.startswith("/_interlink") else path
        key = [(b"X-API-Key", self.key)]
        body = orjson.dumps({"order": self.order()})
        head = request(b"POST", target, key, b"", framing="none")[:-2]  # without the blank line
        choice = rng.randrange(10)
        if choice == 0:  # Content-Length larger than the body, then close
            return Case("truncated", group, [head + b"Content-Length: %d\r\n\r\n" %
                                             (len(body) * 2) + body], answered=False)
        if choice == 1:  # chunks without the final 0-chunk, then close
            return Case("truncated", group, [head + b"Transfer-Encoding: chunked\r\n\r\n"
                                             b"%x\r\n%s\r\n" % (len(body), body)], answered=False)
        variants = [
            b"Content-Length: -1\r\n\r\n", b"Content-Length: 1e3\r\n\r\n",
            b"Content-Length: 99999999999999999999\r\n\r\n",
            b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"Transfer-Encoding: gzip\r\n\r\nhello",
            b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
            b"Content-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n\r\n",
            b"Content-Length: " + b"1" * 5000 + b"\r\n\r\n",
            b"Content-Length: 0\r\n\r\n",
            b"Content-Length:  3 \r\n\r\n{}\n",
        ]
        return Case("framing", group, [head + rng.choice(variants)])

    def request_lines(self) -> Case:
        rng = self.rng
        raw = rng.choice([
            b"GET / HTTP/1.0\r\n\r\n", b"GET /_interlink/health HTTP/2.0\r\n\r\n",
            b"GET /_interlink/health\r\n\r\n", b"GET  /  HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 500))),
            b"GET /_interlink/health HTTP/1.1\nHost: x\n\n",
            b"GET /_interlink/health HTTP/1.1\r\nHost: x\r\n folded: value\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /_interlink/health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            b"GET /_interlink/health HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
            b"GET /_interlink/health HTTP/1.1\r\nConnection: close\r\n\r\n",
        ])
        return Case("request-line", "/_interlink", [raw])

    def pipelined(self) -> Case:
        """A hostile request and a plain one on one keep-alive connection, in one write."""
        first = self.rng.choice([self.service_body, self.webhook, self.framing, self.headers,
                                 self.fuzz_services])()
        head = first.pieces[0].replace(b"Connection: close\r\n", b"", 1)
        plain = request(b"GET", b"/_interlink/health", [], framing="none")
        return Case("pipelined", first.path, [head + plain], answered=first.answered)

    def large(self) -> Case:
        rng = self.rng
        if rng.random() < 0.8:
            body = b'{"order": "' + b"x" * (1024 * 1024 + rng.randrange(10)) + b'"}'
            raw = request(b"POST", b"/orders", [(b"X-API-Key", self.key)], body,
                          framing=rng.choice(["length", "chunked"]))
            return Case("large", "/orders", [raw])
        body = b'"' + b"y" * (10 * 1024 * 1024 + 10) + b'"'
        return Case("large", "/hooks/orders", [request(b"POST", b"/hooks/orders", [], body)])

    def slow(self) -> list[Case]:
        """Clients slower than the server's clocks (headers, then a body)."""
        head = request(b"POST", b"/hooks/orders", [], b"", framing="none")[:-2]
        trickle = [bytes([b]) for b in head]
        body = b'{"id": "slow"}'
        with_body = [head + b"Content-Length: %d\r\n\r\n" % len(body), *[bytes([b]) for b in body]]
        return [Case("slow-headers", "/hooks/orders", trickle, pause=0.5, slow_client=True),
                Case("slow-body", "/hooks/orders", with_body, pause=2.5, slow_client=True),
                Case("silent", "/hooks/orders", [], slow_client=True),
                # Blank lines before a request are allowed (RFC 9112 §2.2): then nothing comes.
                Case("blank-lines", "/hooks/orders", [b"\r\n\r\n\r\n"], slow_client=True)]


# --- sending ------------------------------------------------------------------------------


@dataclass
class Result:
    """What came back for one case."""

    case: Case
    answer: bytes
    seconds: float  # from the last byte sent to the first byte of the answer
    started: float = 0.0  # perf_counter when the connection was opened

    @property
    def statuses(self) -> list[int]:
        """The final statuses in the answer (1xx skipped), one per answered request."""
        found = [int(m) for m in re.findall(rb"(?:^|\r\n\r\n|\n)HTTP/1\.[01] (\d{3}) ",
                                            self.answer)]
        return [s for s in found if s >= 200]


async def exchange(port: int, case: Case, limit: float = 30.0) -> Result:
    """Send `case` on a new connection; read until the server closes it."""
    opened = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received: list[bytes] = []
    first: list[float] = []

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if not first:
                    first.append(time.perf_counter())
                received.append(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for piece in case.pieces:
            writer.write(piece)
            await writer.drain()
            if case.pause:
                await asyncio.sleep(case.pause)
    except ConnectionError:
        pass
    sent = time.perf_counter()
    try:
        if not case.answered:
            reading.cancel()
            return Result(case, b"", 0.0, opened)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reading, limit)
        answered = first[0] if first else time.perf_counter()
        return Result(case, b"".join(received), max(0.0, answered - sent), opened)
    finally:
        writer.close()


async def fuzz(port: int, cases: list[Case], slow: list[Case], clients: int
               ) -> tuple[list[Result], list[Result]]:
    """Send every case, `clients` at a time, with the slow ones and the health probe beside."""
    results: list[Result] = []
    probe: list[Result] = []
    done = asyncio.Event()
    pending = iter(cases)

    async def client() -> None:
        for case in pending:
            results.append(await exchange(port, case))

    async def health() -> None:
        get = Case("probe", "/_interlink/health",
                   [request(b"GET", b"/_interlink/health", [], framing="none")])
        while not done.is_set():
            probe.append(await exchange(port, get))
            await asyncio.sleep(0.1)

    prober = asyncio.create_task(health())
    slow_results = asyncio.gather(*(exchange(port, case) for case in slow))
    await asyncio.gather(*(client() for _ in range(clients)))
    results.extend(await slow_results)
    done.set()
    await prober
    return results, probe


# --- the served example -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url_port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait until `what` accepts connections on the port (or fail if it died)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fuzz: {what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", url_port), 1):
            return
        time.sleep(0.1)
    raise SystemExit(f"fuzz: {what} did not come up")


def copy_example(root: Path) -> dict[str, str]:
    """The example under `root` with the fuzz-only services; returns its `.env`."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    for rel, text in FUZZ_FILES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(line[8:] for line in text.strip("\n").splitlines()) + "\n")
    env: dict[str, str] = {}
    for line in (root / ".env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[name.strip()] = value.strip()
    return env


def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the worker is up too (health answers 200)."""
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("fuzz: interlink serve exited")
        probe = Case("probe", "", [request(b"GET", b"/_interlink/health", [], framing="none")])
        with contextlib.suppress(OSError):
            if asyncio.run(exchange(port, probe, 5)).statuses == [200]:
                return
        time.sleep(0.2)
    raise SystemExit("fuzz: interlink serve did not become healthy")


# --- the report ---------------------------------------------------------------------------


@dataclass
class Report:
    """The figures of one fuzz run."""

    results: list[Result]
    probe: list[Result]
    secrets: list[bytes]
    log: bytes
    store: bytes
    statuses: Counter[str] = field(default_factory=Counter)

    def unconfigured_5xx(self) -> list[Result]:
        """Answers 5xx that no rule configured."""
        return [r for r in self.results for s in r.statuses
                if s >= 500 and s not in CONFIGURED_5XX.get(r.case.path, set())]

    def leaks(self) -> list[Result]:
        """Answers holding a traceback or a file path."""
        return [r for r in self.results if TRACEBACK.search(r.answer)]

    def secret_answers(self) -> list[Result]:
        """Answers holding a secret."""
        return [r for r in self.results if any(s in r.answer for s in self.secrets)]

    def flow_ran(self, result: Result) -> bool:
        """Whether the answer waited on a run of push-orders (and so on the warehouse)."""
        return result.case.path == "/orders" and any(s in (200, 202, 502)
                                                      for s in result.statuses)

    def slowest(self, *, own: bool) -> Result | None:
        """The slowest answered request on the example's paths (`own`) or the fuzz-only ones,
        leaving out slow clients, answers that waited on the warehouse, and 408s (the request
        was incomplete: the server waited for the client, up to `header_timeout`)."""
        timed = [r for r in self.results if r.case.answered and not r.case.slow_client
                 and r.statuses and r.statuses != [408] and not self.flow_ran(r)
                 and r.case.path.startswith("/fuzz") != own]
        return max(timed, key=lambda r: r.seconds, default=None)

    def print(self, args: argparse.Namespace, elapsed: float) -> bool:
        """Print the figures; True when every must-be-0 figure is 0 and nothing is slow."""
        by_status: Counter[str] = Counter()
        for r in self.results:
            by_status.update(str(s) for s in r.statuses) if r.statuses else by_status.update(
                ["cut short" if not r.case.answered else "no answer"])
        ran = [r for r in self.results if self.flow_ran(r)]
        own, fuzz_only = self.slowest(own=True), self.slowest(own=False)
        logged = len(re.findall(rb"Traceback \(most recent call last\)", self.log))
        in_log = sum(self.log.count(s) for s in self.secrets)
        in_store = sum(self.store.count(s) for s in self.secrets)
        must_be_zero = {
            "5xx answers no rule configured": len(self.unconfigured_5xx()),
            "answers with a traceback or a file path": len(self.leaks()),
            "answers with a secret": len(self.secret_answers()),
            "secrets in the serve log": in_log,
            "secrets in the store": in_store,
            "errors logged with a traceback": logged,
        }
        print(f"fuzz: seed {args.seed}, {len(self.results)} requests ({args.requests} generated"
              f" + {len(self.results) - args.requests} slow clients), {args.clients} at a time,"
              f" {elapsed:.0f} s")
        print("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
        for name, count in must_be_zero.items():
            print(f"  {name + ':':45} {count}{'' if count == 0 else '   <-- must be 0'}")
        failing = Counter(f"{r.case.kind} {r.case.path}" for r in self.unconfigured_5xx())
        if failing:
            print("    unconfigured 5xx by case: " + ", ".join(f"{k} {v}" for k, v in
                                                          failing.most_common()))
        for bad in (self.unconfigured_5xx() + self.leaks() + self.secret_answers())[:5]:
            print(f"    e.g. {bad.case.kind} {bad.case.pieces[0][:120]!r}\n"
                  f"      → {bad.answer[:300]!r}")
        slow_ok = True
        for label, result in (("slowest on the example's paths", own),
                              ("slowest on the fuzz-only paths", fuzz_only)):
            if result is None:
                continue
            mark = ""
            if result.seconds >= 1.0:
                slow_ok, mark = False, "   <-- must stay under 1 s"
            print(f"  {label + ':':45} {result.seconds * 1000:.0f} ms "
                  f"({result.case.kind} {result.case.path}){mark}")
        worst_probe = max(self.probe, key=lambda r: r.seconds, default=None)
        if worst_probe is not None:
            print(f"  {'health probe, slowest of ' + str(len(self.probe)) + ':':45} "
                  f"{worst_probe.seconds * 1000:.0f} ms")
        if ran:
            print(f"  {'slowest that ran the flow (' + str(len(ran)) + ', not a limit):':45} "
                  f"{max(r.seconds for r in ran) * 1000:.0f} ms")
        if args.show_slowest:
            print(f"the {args.show_slowest} slowest answers:")
            for r in sorted(self.results, key=lambda r: -r.seconds)[:args.show_slowest]:
                sent = b"".join(r.case.pieces)
                print(f"  {r.seconds * 1000:6.0f} ms {r.statuses} {r.case.kind} "
                      f"{len(sent)} bytes {sent[:100]!r}")
            if worst_probe is not None:
                at = worst_probe.started
                print("in flight when the slowest health probe was sent:")
                for r in self.results:
                    if r.started <= at <= r.started + r.seconds + 0.05:
                        sent = b"".join(r.case.pieces)
                        print(f"  {r.case.kind} {len(sent)} bytes {sent[:100]!r}")
        return slow_ok and not any(must_be_zero.values())


def main() -> None:
    """Serve the example, fuzz it, print the figures; exit 1 when a must-be-0 figure is not."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--keep", type=Path, help="serve the project from here, and keep it")
    parser.add_argument("--show-slowest", type=int, default=0, metavar="N",
                        help="also list the N slowest answers")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="interlink-fuzz-"))
    root = args.keep or scratch / "shop"
    if root.exists():
        shutil.rmtree(root)
    env = copy_example(root)
    secrets = [v.encode() for k, v in env.items() if k != "WAREHOUSE_URL"]
    generator = Generator(args.seed, env["PARTNER_KEY"], env["INTERLINK_ADMIN_TOKEN"])
    cases = [generator.case() for _ in range(args.requests)]
    port, wh_port = free_port(), free_port()
    environ = {**os.environ, **env, "WAREHOUSE_URL": f"http://127.0.0.1:{wh_port}",
               "PYTHONUNBUFFERED": "1"}
    log_path = scratch / "serve.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (scratch / "warehouse.log").open("wb") as wh_log, log_path.open("wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(EXAMPLE / "warehouse.py"), "--port", str(wh_port),
                 "--seed", str(args.seed)], stdout=wh_log, stderr=wh_log, env=environ))
            procs.append(subprocess.Popen(
                [str(BIN / "interlink"), "serve", str(root), "--port", str(port)],
                stdout=log, stderr=log, env=environ))
            wait_ready(wh_port, procs[0], "the warehouse")
            wait_healthy(port, procs[1])
            started = time.perf_counter()
            results, probe = asyncio.run(fuzz(port, cases, generator.slow(), args.clients))
            elapsed = time.perf_counter() - started
            if procs[1].poll() is not None:
                raise SystemExit(f"fuzz: interlink serve died: {log_path.read_text()[-2000:]}")
            procs[1].send_signal(signal.SIGTERM)
            procs[1].wait(30)
        store = b"".join(p.read_bytes() for p in (root / ".interlink").glob("*.db*"))
        report = Report(results, probe, secrets, log_path.read_bytes(), store)
        ok = report.print(args, elapsed)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if args.keep:
            shutil.copy(log_path, root / "serve.log")
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
