"""Does `interlink serve` stay flat under minutes of steady load? RSS, open fds, p99 latency.

    .venv/bin/python bench/soak.py [--minutes 10] [--fraction 0.7] [--ramp 5] [--seed 1]
                                   [--session-orders 6] [--session-ttl 2]

Real processes on loopback:

- **upstream** (`bench/_counting_upstream.py`): session logins whose tokens expire after 6
  orders or 2 s (so the connector logs in again all the time: that is what leaked memory
  before; `--session-orders 1000000 --session-ttl 100000` turns that off, to compare),
  5 % of order requests answered 503 once;
- **engine**: `interlink serve` (SQLite) of a generated project: a session-auth connector,
  a flow with a webhook trigger, and a sync service running the same flow;
- **load**: this process, alternating webhooks and service requests with unique order ids.

First a short ramp measures the maximum sustainable rate: open-loop steps of `--ramp` seconds
from 50 req/s up, 1.3 times faster each, until a step falls behind (a request unanswered or
failed, p99 over 1 s, or more than a second's worth of runs left queued at its end); the last
step that kept up is the maximum. Then the load runs open loop at `--fraction` of it for
`--minutes`, sampling the serve process's RSS and open fds from
`/proc/<pid>` every 5 s and the latency of every request. Printed: each figure in the first and
the last window (a minute, or a fifth of the soak if shorter) and their ratio, the work left
queued at the end (the engine kept up if it is small), and RSS minute by minute. Exits 1 unless
RSS in the last window is within ±10 % of the window two thirds in: SQLite's
page cache (up to 32 MB a connection) fills over the first minutes at a low rate, and growth
that stops is that cache, not a leak (with `PRAGMA cache_size = -2000` RSS stays within 1 %
from the first minute).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _processes import EngineProcess, free_port, proc_sample, running, start_upstream, write_files
from _store_probe import StoreProbe

SAMPLE_EVERY_S = 5.0
#: the ramp: open-loop steps from this rate, each this many times the last
RAMP_START = 50.0
RAMP_FACTOR = 1.3
KEEPS_UP_P99_S = 1.0
FLAT = 0.10
PATHS = ("/hooks/orders", "/orders")


def project_files(upstream: str, store: str, port: int) -> dict[str, str]:
    """A session-auth connector, a webhook flow and a sync service running it."""
    return {
        "interlink.yaml": f"""
            name: soak
            store: '{store}'
            server: {{host: 127.0.0.1, port: {port}}}
            """,
        "connectors/up.yaml": f"""
            name: up
            base_url: {upstream}
            timeout: 5s
            auth:
              type: session
              login: {{method: POST, path: /login, json: {{user: soak, password: soak}}}}
              token: "response.json.token"
              value: "Session {{{{ token }}}}"
            retry: {{max_attempts: 4, initial: 20ms, max: 200ms, max_reauth: 1}}
            endpoints:
              create_order: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": f"""
            name: push
            trigger: {{type: webhook, path: {PATHS[0]}}}
            steps:
              - {{id: push, type: connector, connector: up, endpoint: create_order, body: payload}}
            """,
        "services/orders.yaml": f"""
            name: orders
            path: {PATHS[1]}
            request: {{body: json}}
            activity: {{flow: push, timeout: 10s}}
            responses:
              - on: default
                status: 200
                body: {{from: context, key: result.payload}}
            """,
    }


@dataclass
class Load:
    """Sends orders (unique ids, alternating webhook and service) and times each answer."""

    base: str
    http: aiohttp.ClientSession
    n: int = 0
    errors: int = 0
    #: (time sent, seconds to answer) of every answered request
    latencies: list[tuple[float, float]] = field(default_factory=list)

    async def one(self) -> None:
        """POST one order; record its latency (or an error)."""
        self.n += 1
        path = PATHS[self.n % 2]
        sent = time.monotonic()
        try:
            async with self.http.post(self.base + path, json={"id": f"o-{self.n}"}) as answer:
                await answer.read()
                ok = answer.status in (200, 202)
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            self.latencies.append((sent, time.monotonic() - sent))
        else:
            self.errors += 1

    async def closed_loop(self, lanes: int, seconds: float) -> int:
        """`lanes` requests in flight for `seconds`; returns how many were answered."""
        before = len(self.latencies)
        until = time.monotonic() + seconds

        async def lane() -> None:
            while time.monotonic() < until:
                await self.one()

        await asyncio.gather(*(lane() for _ in range(lanes)))
        return len(self.latencies) - before

    async def open_loop(self, rate: float, seconds: float) -> None:
        """Start `rate` requests per second for `seconds`, whatever the answers take."""
        tasks: set[asyncio.Task[None]] = set()
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            task = asyncio.create_task(self.one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
        await asyncio.gather(*tasks)


async def wait_drained(probe: StoreProbe, limit_s: float = 120.0) -> None:
    """Wait until the store has no queued or running work left."""
    deadline = time.monotonic() + limit_s
    while (await asyncio.to_thread(probe.outstanding)  # noqa: ASYNC110 - another process
           and time.monotonic() < deadline):
        await asyncio.sleep(0.2)


async def max_rate(load: Load, probe: StoreProbe, step_s: float) -> tuple[float, list[str]]:
    """The highest open-loop rate the engine keeps up with, and a line per ramp step.

    Keeping up: every request answered without error, p99 under `KEEPS_UP_P99_S`, and at the
    end of the step no more than a second's worth of work still queued in the store.
    """
    rate, best, lines = RAMP_START, 0.0, []
    while True:
        answered, errors = len(load.latencies), load.errors
        started = time.monotonic()
        await load.open_loop(rate, step_s)
        backlog = await asyncio.to_thread(probe.outstanding)
        step = [s for t, s in load.latencies[answered:] if t >= started]
        tail = p99(step)
        kept_up = (len(step) >= 0.98 * rate * step_s and load.errors == errors
                   and tail <= KEEPS_UP_P99_S and backlog <= rate)
        lines.append(f"ramp: {rate:5.0f} req/s → {len(step) / step_s:5.0f} answered/s, p99 "
                     f"{tail * 1000:5.0f} ms, {backlog} left queued"
                     + ("" if kept_up else "  (falls behind)"))
        await wait_drained(probe)
        if not kept_up:
            return best, lines
        best = rate
        rate *= RAMP_FACTOR


async def sample(pid: int, probe: StoreProbe, stop: asyncio.Event,
                 out: list[tuple[float, float, int, int]]) -> None:
    """Append (time, RSS MB, open fds of `pid`, work queued) every few seconds until `stop`."""
    while not stop.is_set():
        rss, fds = proc_sample(pid)
        out.append((time.monotonic(), rss, fds, await asyncio.to_thread(probe.outstanding)))
        await asyncio.sleep(SAMPLE_EVERY_S)


def window(values: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """The values whose time falls in [start, end)."""
    return [v for t, v in values if start <= t < end]


def p99(values: list[float]) -> float:
    """The 99th percentile (0 without values)."""
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else 0.0


@dataclass
class Soak:
    """What one soak measured."""

    best: float
    rate: float
    ramp: list[str]
    load: Load
    samples: list[tuple[float, float, int, int]]
    started: float
    ended: float
    backlog: int


async def run_soak(args: argparse.Namespace, root: Path) -> Soak:
    """Start the upstream and serve, ramp, then hold the load for `--minutes`."""
    options = ["--seed", str(args.seed), "--session-orders", str(args.session_orders),
               "--session-ttl", str(args.session_ttl),
               "--p503", "0.05", "--p429", "0", "--max-failures", "1"]
    with start_upstream(*options) as (_, upstream):
        url = f"sqlite:///{root / 'store.db'}"
        port = free_port()
        write_files(root / "project", project_files(upstream, url, port))
        serve = EngineProcess("serve", root / "project", root / "serve.log", port)
        probe = StoreProbe(url)
        with running([serve]):
            await serve.ready()
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout,
                                             connector=aiohttp.TCPConnector(limit=0)) as http:
                load = Load(f"http://127.0.0.1:{port}", http)
                best, ramp = await max_rate(load, probe, args.ramp)
                load.errors = 0
                samples: list[tuple[float, float, int, int]] = []
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample(serve.pid, probe, stop, samples))
                started = time.monotonic()
                await load.open_loop(best * args.fraction, args.minutes * 60)
                ended = time.monotonic()
                stop.set()
                await sampler
                backlog = await asyncio.to_thread(probe.outstanding)
        probe.close()
    return Soak(best, best * args.fraction, ramp, load, samples, started, ended, backlog)


def report(result: Soak, args: argparse.Namespace) -> bool:
    """Print the figures of the first and last window; True if memory stayed flat."""
    span = min(60.0, (result.ended - result.started) / 5)
    first = (result.started, result.started + span)
    last = (result.ended - span, result.ended)
    lat = [(t, s) for t, s in result.load.latencies if t >= result.started]
    rss = [(t, r) for t, r, _, _ in result.samples]
    fds = [(t, float(f)) for t, _, f, _ in result.samples]
    queued = [(t, float(q)) for t, _, _, q in result.samples]
    figures = {
        "RSS MB (median)": [statistics.median(window(rss, *w) or [0]) for w in (first, last)],
        "open fds (max)": [max(window(fds, *w) or [0]) for w in (first, last)],
        "p99 latency ms": [p99(window(lat, *w)) * 1000 for w in (first, last)],
        "req/s answered": [len(window(lat, *w)) / span for w in (first, last)],
        "work queued (max)": [max(window(queued, *w) or [0]) for w in (first, last)],
    }
    for line in result.ramp:
        print(line)
    print(f"soak: {args.minutes:g} min at {result.rate:.0f} req/s ({args.fraction:.0%} of "
          f"{result.best:.0f}), windows of {span:.0f}s, {result.load.errors} errors, "
          f"{result.backlog} items/runs outstanding at the end")
    print(f"{'':<19}{'start':>10}{'end':>10}{'ratio':>8}")
    for name, (a, b) in figures.items():
        print(f"{name:<19}{a:>10.1f}{b:>10.1f}{(b / a if a else 0):>8.2f}")
    minutes = [f"{r:.0f}" for _, r in rss[::max(1, int(60 / SAMPLE_EVERY_S))]]
    print(f"RSS MB each minute: {' '.join(minutes)}")
    growth = figures["RSS MB (median)"][1] / figures["RSS MB (median)"][0] - 1
    # SQLite's page cache (32 MB a connection) fills while the store grows, over the first
    # minutes at a low rate: growth that stops is a cache, growth that goes on is a leak. So
    # the verdict compares the window two thirds in with the last one.
    middle_at = result.started + (result.ended - result.started) * 2 / 3
    middle = statistics.median(window(rss, middle_at, middle_at + span) or [0])
    late = figures["RSS MB (median)"][1] / middle - 1 if middle else 0.0
    flat = abs(late) <= FLAT
    print(f"memory over the whole soak {growth:+.1%}; over its last third {late:+.1%}: "
          f"{'flat' if flat else 'NOT flat'} (limit ±{FLAT:.0%})")
    return flat


def main() -> None:
    """Parse the options, soak, exit 1 unless memory stayed flat."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.7, help="of the measured maximum")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds per ramp step")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--session-orders", type=int, default=6,
                        help="orders per upstream session token")
    parser.add_argument("--session-ttl", type=float, default=2.0,
                        help="seconds an upstream session token lasts")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="interlink-soak-"))
    try:
        flat = report(asyncio.run(run_soak(args, root)), args)
    finally:
        if args.keep:
            print(f"logs and project kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
