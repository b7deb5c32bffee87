"""How much CPU an outbound call costs: aiohttp's client, the connectors' own client
(`interlink.connectors.pool`), and a bare httptools loop.

    .venv/bin/python bench/client.py [--calls 20000] [--concurrency 50] [--rounds 3]

The measurement behind decision 0016 (issue 13, goal 1): the same POSTs (JSON body,
`Idempotency-Key`, keep-alive, 50 in flight) to the same loopback upstream (aiohttp.web, its
own process), through `aiohttp.ClientSession` (what connectors used, and what the bare loop of
`bench/flows.py` still is), through `ConnectionPool.request` (what connectors use), and through
a minimal HTTP/1.1 loop (uvloop transports, `httptools.HttpResponseParser`, one connection per
slot). Rounds alternate; the figure is CPU µs per call of this process (the upstream's CPU is
not counted), median of the rounds, and the ratios to aiohttp.

The bare loop is a lower bound, not a product: no TLS, no timeouts, no connection errors
handled, no pool.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
from typing import Any

import aiohttp
import httptools
import orjson
import uvloop
from _summary import figure
from yarl import URL

from interlink.connectors.pool import ConnectionPool

BODY = orjson.dumps({"order": {"id": "A-1", "lines": [1, 2, 3]}, "country": "FR"})


def upstream_main(sock: socket.socket) -> None:
    """An aiohttp.web upstream answering every POST /orders with 200 and a small JSON."""
    from aiohttp import web

    async def orders(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True, "id": request.headers.get("Idempotency-Key")})

    app = web.Application()
    app.router.add_post("/orders", orders)
    uvloop.install()
    web.run_app(app, sock=sock, print=None, access_log=None)


async def with_aiohttp(url: str, calls: int, concurrency: int) -> float:
    """CPU seconds of `calls` POSTs through one ClientSession."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        n = 0

        async def one() -> None:
            nonlocal n
            while n < calls:
                n += 1
                async with http.post(url, data=BODY, headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"k-{n}"}) as answer:
                    await answer.read()
                    assert answer.status == 200

        await one()  # warm: the first connection
        n = 0
        started = time.process_time()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.process_time() - started


async def with_pool(url: str, calls: int, concurrency: int) -> float:
    """CPU seconds of `calls` POSTs through the connectors' `ConnectionPool`."""
    pool = ConnectionPool()
    target = URL(url)
    n = 0

    async def one() -> None:
        nonlocal n
        while n < calls:
            n += 1
            answer = await pool.request("POST", target, {
                "Content-Type": "application/json", "Idempotency-Key": f"k-{n}"}, BODY,
                timeout=30)
            orjson.loads(answer.body)
            assert answer.status == 200

    try:
        await one()
        n = 0
        started = time.process_time()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.process_time() - started
    finally:
        await pool.close()


class _Response(asyncio.Protocol):
    """One keep-alive connection: send a request, wait for its whole response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.done: asyncio.Future[int] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.done is not None
        self.done.set_result(self.parser.get_status_code())

    async def request(self, head: bytes) -> tuple[int, bytes]:
        self.done = asyncio.get_running_loop().create_future()
        self.body = []
        self.transport.write(head)
        status = await self.done
        return status, b"".join(self.body)


async def with_httptools(host: str, port: int, calls: int, concurrency: int) -> float:
    """CPU seconds of `calls` POSTs through `concurrency` bare keep-alive connections."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Response, host, port))[1]
             for _ in range(concurrency)]
    n = 0

    async def one(conn: _Response) -> None:
        nonlocal n
        while n < calls:
            n += 1
            head = (f"POST /orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nIdempotency-Key: k-{n}\r\n"
                    f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
            status, body = await conn.request(head)
            orjson.loads(body)
            assert status == 200

    await one(conns[0])
    n = 0
    started = time.process_time()
    await asyncio.gather(*(one(conn) for conn in conns))
    elapsed = time.process_time() - started
    for conn in conns:
        conn.transport.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    host, port = sock.getsockname()
    upstream = multiprocessing.get_context("spawn").Process(target=upstream_main, args=(sock,),
                                                            daemon=True)
    upstream.start()
    time.sleep(1.0)
    url = f"http://{host}:{port}/orders"
    uvloop.install()
    sides: dict[str, list[float]] = {"aiohttp": [], "pool": [], "httptools": []}
    try:
        for _ in range(args.rounds):
            sides["aiohttp"].append(asyncio.run(
                with_aiohttp(url, args.calls, args.concurrency)) / args.calls * 1e6)
            sides["pool"].append(asyncio.run(
                with_pool(url, args.calls, args.concurrency)) / args.calls * 1e6)
            sides["httptools"].append(asyncio.run(
                with_httptools(host, port, args.calls, args.concurrency)) / args.calls * 1e6)
    finally:
        upstream.terminate()
    medians = {name: statistics.median(values) for name, values in sides.items()}
    print(f"{args.calls} POSTs per round, {args.concurrency} in flight, {args.rounds} rounds, "
          "CPU of this process only")
    for name, values in sides.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:10} {medians[name]:7.1f} µs per call (rounds: {each})")
    ratio = medians["pool"] / medians["aiohttp"]
    bare = medians["httptools"] / medians["aiohttp"]
    print(f"  pool / aiohttp: {ratio:.2f}   bare / aiohttp: {bare:.2f}")
    figure("client", "aiohttp client: CPU per call", medians["aiohttp"], "µs")
    figure("client", "connectors' pool: CPU per call", medians["pool"], "µs")
    figure("client", "bare httptools loop: CPU per call", medians["httptools"], "µs")
    figure("client", "pool / aiohttp", ratio, "ratio")


if __name__ == "__main__":
    main()
