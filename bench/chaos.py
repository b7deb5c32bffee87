"""Exactly once under SIGKILL and SIGTERM: accepted orders lost or duplicated while engine
processes die or are stopped.

    .venv/bin/python bench/chaos.py [--store sqlite|postgres|all] [--kills 50] [--stops N]
                                    [--pauses N] [--slow 0.03] [--rate 50] [--duration S]
                                    [--workers 2] [--seed 1] [--quick]

Real processes on loopback, no mocks:

- **upstream** (`bench/_counting_upstream.py`): an order API with session logins whose tokens
  expire after 6 orders or 5 s (401), seeded 503s and 429s (`Retry-After: 1`, at most 2 per
  `Idempotency-Key`) and a share of first calls (`--slow`) answered only after 3 s (longer
  than a lease). It honours `Idempotency-Key`, records which keys created each order id, and
  which calls of one key overlapped (two engines running one step at once). Every order gets
  through within `max_attempts: 6` and `max_reauth: 2`: 2 injected failures, a 401, and
  attempts or logins cut short by a kill, which count (their request may have arrived);
- **engine**: a generated project (a session-auth connector with a retry policy; a flow with a
  webhook trigger; a sync service running that flow with `queue_when: "error is not none"` and
  a request processor, its activity timeout short enough that some requests are queued; an
  `execution: async` service) served by `interlink serve` plus `--workers` `interlink worker`
  processes on one store (SQLite, then PostgreSQL), leases of 2 s;
- **load**: this process POSTs orders with unique ids at `--rate` per second, mixed over the
  webhook, the sync and the async service, and records which were *accepted* (202 from the
  webhook, 2xx from a service);
- **kills**: meanwhile a random engine process is SIGKILLed at random moments, `--kills` times,
  and restarted at once (serve: until healthy again);
- **stops**: and, mixed with the kills, `--stops` times (a fifth of the kills by default) a
  random process is stopped gracefully (SIGTERM) the way a deploy does it: a worker's
  replacement starts at once while it finishes the items it holds, serve's once it has gone
  (its port). A stop must end within `STOP_LIMIT_S`, with exit status 0;
- **pauses**: and `--pauses` times (a fifth of the kills by default) a random process is
  frozen (SIGSTOP) for `PAUSE_S` — longer than its lease, up to past a call's timeout and a
  lease — and then let go on (SIGCONT): its items are taken over meanwhile, and it must not
  send a call beside the worker that took them. (`--stops 0 --pauses 0 --slow 0` runs what
  the bench ran before stops existed, kill for kill.)

Then the load stops and everything drains (queue empty, no run queued, running or waiting;
`--drain` seconds at most). Printed per store: accepted; delivered (accepted and created
upstream); **lost** (accepted, never created); **duplicated** (an order id created under two
keys); **attempts over max** (attempt rows in the store beyond `max_attempts` in one budget:
one payload of one step of one run between re-drives); the upstream's most requests for one
key (a re-driven run sends its key again); runs not terminal; failed runs and why; kills
and stops survived, the longest stop; **overlapping calls** (a call arriving while another
of the same key is still answered to a connected engine: a lease not held, by a stopping
worker for example). Exits 1 if lost, duplicated, attempts over, not terminal or overlapping
calls is not 0, or a stop failed. `--quick`: 5 kills in 20 s of
load at 30 req/s, about 25 s per store. `--keep` keeps the logs and the store for a look.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _processes import (
    EngineProcess,
    free_port,
    running,
    start_upstream,
    store_url,
    write_files,
)
from _store_probe import StoreProbe

#: attempts of one step: 2 injected failures + a 401 + attempts cut short by kills (they count)
MAX_ATTEMPTS = 6
#: logins one step may cause: a 401 and a login cut short by a kill (it counts: it may have
#: reached the upstream, which then ended the earlier session)
MAX_REAUTH = 2
PROCESSOR_ATTEMPTS = 5
#: lease of the workers; some first calls take SLOW_S, longer than it
LEASE_S = 2
SLOW_S = 3.0
#: the connector's timeout: how long a call may be in flight
CALL_TIMEOUT_S = 5
#: how long a paused process stays stopped: from past its lease to past a call's timeout and
#: the lease after it (then its items are taken over, and it must not send beside them)
PAUSE_S = (LEASE_S + 0.5, LEASE_S + CALL_TIMEOUT_S + 2.0)
#: seconds a stopped process may take to finish what it holds and exit
STOP_LIMIT_S = 30.0
#: where each kind of order is POSTed, and its share of the load
ENDPOINTS = {"w": "/hooks/orders", "s": "/orders", "a": "/orders-async"}
MIX = {"w": 0.5, "s": 0.25, "a": 0.25}


def project_files(upstream: str, store: str, port: int) -> dict[str, str]:
    """The generated project: connector, flow with webhook, sync and async services."""
    return {
        "interlink.yaml": f"""
            name: chaos
            store: '{store}'
            server: {{host: 127.0.0.1, port: {port}}}
            worker: {{concurrency: 16, lease: {LEASE_S}s, poll: 100ms}}
            """,
        "connectors/up.yaml": f"""
            name: up
            base_url: {upstream}
            timeout: {CALL_TIMEOUT_S}s
            auth:
              type: session
              login: {{method: POST, path: /login, json: {{user: chaos, password: chaos}}}}
              token: "response.json.token"
              header: Authorization
              value: "Session {{{{ token }}}}"
            retry: {{max_attempts: {MAX_ATTEMPTS}, initial: 50ms, max: 400ms, multiplier: 2,
                     jitter: full, max_reauth: {MAX_REAUTH}}}
            endpoints:
              create_order: {{method: POST, path: /orders}}
            """,
        "flows/push.yaml": f"""
            name: push
            trigger: {{type: webhook, path: {ENDPOINTS["w"]}}}
            steps:
              - {{id: push, type: connector, connector: up, endpoint: create_order, body: payload}}
            """,
        # A short activity timeout: an order meeting a 429 (Retry-After: 1) overruns it, so
        # the request is queued while its run is still going.
        "services/orders.yaml": f"""
            name: orders
            path: {ENDPOINTS["s"]}
            request: {{body: json}}
            activity: {{flow: push, timeout: 1s}}
            request_processor: {{max_attempts: {PROCESSOR_ATTEMPTS}, delay: 1s, backoff: 2}}
            responses:
              - queue_when: "error is not none"
                status: 202
                body: {{from: json, value: {{queued: "{{{{ queue_item_id }}}}"}}}}
              - on: default
                status: 200
                body: {{from: context, key: result.payload}}
            """,
        "services/orders-async.yaml": f"""
            name: orders-async
            path: {ENDPOINTS["a"]}
            request: {{body: json}}
            activity: {{flow: push}}
            execution: async
            request_processor: {{max_attempts: {PROCESSOR_ATTEMPTS}, delay: 1s, backoff: 2}}
            """,
    }


# --- load -------------------------------------------------------------------------------------

@dataclass
class Ledger:
    """What the load generator sent and which orders the engine accepted."""

    sent: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    #: "w 202", "s refused", … per kind and outcome
    outcomes: Counter[str] = field(default_factory=Counter)


async def drive_load(base: str, rate: float, stop: asyncio.Event, ledger: Ledger,
                     rng: random.Random) -> None:
    """POST orders with unique ids at `rate` per second until `stop` is set."""
    kinds, weights = list(MIX), list(MIX.values())
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        tasks: set[asyncio.Task[None]] = set()
        started, n = time.monotonic(), 0
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            ledger.sent[kind] += 1
            order = {"id": f"{kind}-{n}", "lines": [{"sku": f"SKU-{n % 97}", "qty": 1 + n % 3}]}
            task = asyncio.create_task(_post(http, base + ENDPOINTS[kind], kind, order, ledger))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await asyncio.gather(*tasks)


async def _post(http: aiohttp.ClientSession, url: str, kind: str, order: dict[str, Any],
                ledger: Ledger) -> None:
    try:
        async with http.post(url, json=order) as answer:
            await answer.read()
            status = answer.status
    except aiohttp.ClientConnectorError:
        ledger.outcomes[f"{kind} refused"] += 1
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        ledger.outcomes[f"{kind} {type(exc).__name__}"] += 1
        return
    ledger.outcomes[f"{kind} {status}"] += 1
    if status == 202 or (kind != "w" and 200 <= status < 300):
        ledger.accepted.add(order["id"])


# --- kills and stops --------------------------------------------------------------------------

@dataclass
class Interruptions:
    """The kills and graceful stops done, and how the stops went."""

    kills: Counter[str] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    pauses: Counter[str] = field(default_factory=Counter)
    stop_seconds: list[float] = field(default_factory=list)
    #: what went wrong with a stop: over the limit, or a bad exit status
    failed_stops: list[str] = field(default_factory=list)
    #: processes told to stop that may still run (killed if the bench ends first)
    stopping: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def finish(self, name: str, proc: subprocess.Popen[bytes] | None) -> None:
        """Wait for a process told to stop; it must exit 0 within `STOP_LIMIT_S`."""
        if proc is None:  # nothing kills it but this bench: it crashed
            self.failed_stops.append(f"{name} had exited before it was told to stop")
            return
        started = time.monotonic()
        try:
            code = await asyncio.to_thread(proc.wait, STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
            self.failed_stops.append(f"{name} still ran {STOP_LIMIT_S:g}s after SIGTERM")
            return
        self.stop_seconds.append(time.monotonic() - started)
        if code != 0:
            self.failed_stops.append(f"{name} exited {code} on SIGTERM")

    def kill_stopping(self) -> None:
        for proc in self.stopping:
            if proc.poll() is None:
                proc.kill()


async def pause(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """SIGSTOP `proc` for `seconds` (a VM frozen, a swap storm), then SIGCONT it if it still
    runs (it may have been killed meanwhile)."""
    proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)


async def interrupt(procs: list[EngineProcess], args: argparse.Namespace,
                    rng: random.Random, done: Interruptions) -> None:
    """SIGKILL (`--kills` times) or SIGTERM (`--stops` times) a random process at random
    moments, in a random order, and start it again; or pause one (`--pauses` times)."""
    events = ["kill"] * args.kills + ["stop"] * args.stops + ["pause"] * args.pauses
    # Its own generator: with `--stops 0` the kills fall where they fell before stops existed.
    random.Random(args.seed + 2).shuffle(events)
    interval = args.duration / max(len(events), 1)
    finishing, paused = [], []
    for event in events:
        await asyncio.sleep(rng.uniform(0.4, 1.6) * interval)
        victim = rng.choice(procs)
        if event == "pause":
            if victim.proc is not None and victim.proc.poll() is None:
                done.pauses[victim.role] += 1
                paused.append(asyncio.create_task(pause(victim.proc, rng.uniform(*PAUSE_S))))
            continue
        if event == "kill":
            victim.kill()
            done.kills[victim.role] += 1
        else:
            done.stops[victim.role] += 1
            proc = victim.terminate()
            if proc is not None:
                done.stopping.append(proc)  # before anything else can fail
            stopping = asyncio.create_task(done.finish(victim.name, proc))
            if victim.role == "serve":
                await stopping  # it holds the port until it has gone
            finishing.append(stopping)
        victim.start()
        await victim.ready()
    await asyncio.gather(*finishing, *paused)


async def drain(probe: StoreProbe, limit_s: float) -> float:
    """Wait until nothing is outstanding twice in a row (or `limit_s`); returns the seconds."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < limit_s and quiet < 2:
        quiet = quiet + 1 if await asyncio.to_thread(probe.outstanding) == 0 else 0
        await asyncio.sleep(0.5)
    return time.monotonic() - started


# --- one bench run ----------------------------------------------------------------------------

@dataclass
class Figures:
    """The outcome of one run against one store."""

    store: str
    #: the headline figures (the table) and the breakdowns printed below it
    rows: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def run_once(kind: str, args: argparse.Namespace, root: Path) -> Figures:
    """Upstream, store, engine processes, load and kills; then drain and count."""
    figures = Figures(kind)
    upstream_options = ["--seed", str(args.seed), "--session-orders", "6", "--session-ttl", "5",
                        "--max-failures", "2", "--p-slow", str(args.slow), "--slow", str(SLOW_S)]
    with start_upstream(*upstream_options) as (_, upstream), store_url(kind, root) as url:
        port = free_port()
        write_files(root / "project", project_files(upstream, url, port))
        procs = [EngineProcess("serve", root / "project", root / "serve.log", port)]
        procs += [EngineProcess("worker", root / "project", root / f"worker-{n}.log")
                  for n in range(1, args.workers + 1)]
        with running(procs):
            await procs[0].ready()
            ledger, done, loaded = await load_under_interruptions(procs, port, args)
            probe = StoreProbe(url)
            try:
                drained = await drain(probe, args.drain)
                figures.notes += stop_all(procs)
                async with aiohttp.ClientSession() as http, \
                        http.get(f"{upstream}/_stats", params={"detail": "1"}) as answer:
                    seen = await answer.json()
                count(figures, ledger, probe, seen)
            finally:
                probe.close()
    figures.rows["kills survived"] = f"{sum(done.kills.values())} (serve {done.kills['serve']})"
    longest = max(done.stop_seconds, default=0.0)
    figures.rows["graceful stops"] = (f"{sum(done.stops.values())} (serve {done.stops['serve']}"
                                      f", ≤ {longest:.1f}s)")
    figures.rows["pauses"] = f"{sum(done.pauses.values())} (serve {done.pauses['serve']})"
    if done.failed_stops:
        figures.failed.append("stops")
        figures.notes += done.failed_stops
    figures.rows["duration"] = f"{loaded:.0f}s + {drained:.0f}s drain"
    figures.notes += scan_logs(root)
    return figures


async def load_under_interruptions(procs: list[EngineProcess], port: int,
                                   args: argparse.Namespace,
                                   ) -> tuple[Ledger, Interruptions, float]:
    """Drive the load while killing and stopping; returns the ledger, what was done and the
    seconds of load."""
    ledger, done = Ledger(), Interruptions()
    started = time.monotonic()
    stop = asyncio.Event()
    load = asyncio.create_task(drive_load(f"http://127.0.0.1:{port}", args.rate, stop,
                                          ledger, random.Random(args.seed + 1)))
    try:
        await interrupt(procs, args, random.Random(args.seed), done)
    finally:
        done.kill_stopping()
    await asyncio.sleep(max(0.0, args.duration - (time.monotonic() - started)))
    stop.set()
    await load
    return ledger, done, time.monotonic() - started


def stop_all(procs: list[EngineProcess]) -> list[str]:
    """SIGTERM every process; notes for those that did not exit cleanly."""
    notes = []
    for proc in procs:
        proc.stop()
        if proc.proc is not None and proc.proc.returncode not in (0, -15):
            notes.append(f"{proc.name} exited {proc.proc.returncode} on SIGTERM")
    return notes


def count(figures: Figures, ledger: Ledger, probe: StoreProbe, seen: dict[str, Any]) -> None:
    """Fill in the figures from the ledger, the store and the upstream's records."""
    created: dict[str, list[str]] = seen["keys_per_order"]
    accepted = ledger.accepted
    lost = sorted(accepted - created.keys())
    duplicated = sorted(order for order, keys in created.items() if len(keys) > 1)
    per_order, most_per_run = probe.attempt_rows()
    over = {order: n - MAX_ATTEMPTS for order, n in per_order.items() if n > MAX_ATTEMPTS}
    runs = probe.run_statuses()
    items = probe.item_statuses()
    not_terminal = (sum(runs[s] for s in ("queued", "running", "waiting"))
                    + sum(n for key, n in items.items() if key.endswith((" ready", " leased"))))
    r, d = figures.rows, figures.details
    r["accepted"] = str(len(accepted))
    r["delivered"] = str(len(accepted & created.keys()))
    r["lost"] = str(len(lost))
    r["duplicated"] = f"{len(duplicated)} ({sum(1 for o in duplicated if o in accepted)} acc.)"
    r["attempts over max"] = f"{sum(over.values())} on {len(over)} orders" if over else "0"
    r["most attempts, one budget"] = str(most_per_run)
    r["upstream max requests/key"] = str(seen["max_requests_per_key"])
    overlaps: dict[str, int] = seen["overlaps_per_key"]
    r["overlapping calls"] = str(sum(overlaps.values()))
    r["runs not terminal"] = str(not_terminal)
    r["failed runs"] = str(runs["failed"])
    d["sent"] = f"{sum(ledger.sent.values())} ({_by_kind(ledger.sent)})"
    d["accepted"] = _by_kind(Counter(o[0] for o in accepted))
    d["lost"] = _by_kind(Counter(o[0] for o in lost))
    d["duplicated"] = _by_kind(Counter(o[0] for o in duplicated))
    d["answers"] = ", ".join(f"{n} {k}" for k, n in sorted(ledger.outcomes.items()))
    d["runs"] = ", ".join(f"{n} {s}" for s, n in sorted(runs.items()))
    for error, n in probe.failures().most_common(3):
        d[f"failed x{n}"] = error
    d["queue"] = ", ".join(f"{n} {k}" for k, n in sorted(items.items()))
    d["upstream"] = ", ".join(f"{seen.get(k, 0)} {k}" for k in (
        "requests", "created", "replayed", "refused_401", "injected_503", "injected_429",
        "slow", "logins"))
    _verdict(figures, lost, duplicated, over, not_terminal, created)
    if overlaps:
        figures.failed.append("overlapping calls")
        figures.notes.append("overlapping calls (first 5 keys): " + ", ".join(
            f"{key} x{n}" for key, n in list(overlaps.items())[:5]))


def _verdict(figures: Figures, lost: list[str], duplicated: list[str], over: dict[str, int],
             not_terminal: int, created: dict[str, list[str]]) -> None:
    """What failed, with the first few orders of each as notes."""
    if lost:
        figures.failed.append("lost")
        figures.notes.append(f"lost (first 10): {', '.join(lost[:10])}")
    if duplicated:
        figures.failed.append("duplicated")
        figures.notes.append("duplicated (first 5): " + "; ".join(
            f"{o} keys {created[o]}" for o in duplicated[:5]))
    if over:
        figures.failed.append("attempts over max")
        worst = sorted(over.items(), key=lambda kv: -kv[1])[:5]
        figures.notes.append("attempts over max (first 5): " + ", ".join(
            f"{o} +{n}" for o, n in worst))
    if not_terminal:
        figures.failed.append("not terminal")


def _by_kind(counts: Counter[str]) -> str:
    names = {"w": "webhook", "s": "sync", "a": "async"}
    return ", ".join(f"{names[k]} {counts[k]}" for k in MIX if counts[k]) or "none"


#: ids in log lines: counted by message, not one line per item
_IDS = re.compile(r"\b[a-z]_[0-9a-z]{20,}\b")


def scan_logs(root: Path) -> list[str]:
    """Error and warning lines of the engine logs (JSON lines), counted by message."""
    found: Counter[str] = Counter()
    for log in sorted(root.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line or "Error" in line:
                    found[f"{log.stem}: {line.strip()[:160]}"] += 1
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                message = _IDS.sub("…", str(entry.get("event", "")))[:160]
                if entry.get("exception"):
                    message += " | " + entry["exception"].strip().splitlines()[-1][:160]
                found[f"{log.stem} {entry['level']}: {message}"] += 1
    return [f"log x{n}: {line}" for line, n in found.most_common(12)]


# --- output -----------------------------------------------------------------------------------

def print_table(results: list[Figures], args: argparse.Namespace) -> None:
    """A short table: one column per store, then the notes."""
    print(f"chaos: {args.kills} kills, {args.stops} stops, {args.pauses} pauses, "
          f"{args.rate:g} req/s, "
          f"{args.duration:.0f}s of load, serve + {args.workers} worker(s), seed {args.seed}, "
          f"max_attempts {MAX_ATTEMPTS}")
    names = list(results[0].rows)
    width = max(map(len, names)) + 2
    print(" " * width + "".join(f"{f.store:>22}" for f in results))
    for name in names:
        print(f"{name:<{width}}" + "".join(f"{f.rows.get(name, ''):>22}" for f in results))
    for f in results:
        verdict = "FAIL: " + ", ".join(f.failed) if f.failed else "ok"
        print(f"\n[{f.store}] {verdict}")
        for name, value in f.details.items():
            print(f"  {name}: {value}")
        for note in f.notes:
            print(f"  {note}")


def parse_args() -> argparse.Namespace:
    """The options; `--quick` shrinks the defaults."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--kills", type=int)
    parser.add_argument("--stops", type=int, help="graceful stops (default: kills / 5)")
    parser.add_argument("--pauses", type=int,
                        help=f"SIGSTOPs of {PAUSE_S[0]:g}-{PAUSE_S[1]:g} s (default: kills / 5)")
    parser.add_argument("--slow", type=float, default=0.03,
                        help=f"share of first calls answered after {SLOW_S:g} s")
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--duration", type=float,
                        help="seconds of load (default: 2.5 per kill)")
    parser.add_argument("--workers", type=int, default=2, help="interlink worker processes")
    parser.add_argument("--drain", type=float, default=120.0, help="most seconds to drain")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5 kills, ~25 s per store")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args()
    if args.kills is None:
        args.kills = 5 if args.quick else 50
    if args.stops is None:
        args.stops = max(1, args.kills // 5)
    if args.pauses is None:
        args.pauses = max(1, args.kills // 5)
    if args.duration is None:
        args.duration = 20.0 if args.quick else 2.5 * (args.kills + args.stops + args.pauses)
    if args.quick:
        args.rate = min(args.rate, 30.0)
    return args


def main() -> None:
    """Run against each store, print the table, exit 1 on any loss, duplicate or leftover."""
    args = parse_args()
    stores = ["sqlite", "postgres"] if args.store == "all" else [args.store]
    results = []
    for kind in stores:
        folder = tempfile.mkdtemp(prefix=f"interlink-chaos-{kind}-")
        results.append(asyncio.run(run_once(kind, args, Path(folder))))
        if args.keep:
            print(f"[{kind}] logs and project kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print_table(results, args)
    sys.exit(1 if any(f.failed for f in results) else 0)


if __name__ == "__main__":
    main()
