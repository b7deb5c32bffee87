"""An inbound service under HTTP load, against a hand-written Starlette app doing the same.

    .venv/bin/python bench/services.py [--duration 10] [--connections 50] [--rounds 2]
                                       [--profile FILE]

Scenario: POST a ~1 KB JSON order with an `X-API-Key`. If `order.status == 'HELD'` answer
202 with a small XML document carrying the order id, otherwise 200 JSON `{"id": …}` with an
`X-Order-Id` header. Orders alternate HELD / not HELD.

- **interlink**: the scenario as a project (generated into a temp dir: a package with
  `api_key` auth, one service, one XML template), served by `interlink serve PROJECT` in a
  subprocess — exactly what a user runs (uvicorn, one process, the worker polling beside it).
- **baseline**: a hand-written Starlette app (check the key with `hmac.compare_digest`, parse
  the JSON with orjson, same answers) on the same server: uvicorn with the same settings
  (`server_header=False, date_header=False`, no access log, lifespan off, no proxy headers),
  one process;
- **raw**: the same written as a bare ASGI callable with orjson (no framework at all), served
  the same way: the floor a Python service can reach on this server.

Load: `wrk` (a separate process; one thread, `--connections` connections, `--duration`
seconds, a Lua script for the POST bodies and headers) after a 2 s warm-up per server. The
sides alternate (and swap who goes first) for `--rounds` rounds so noise hits both; each round
prints req/s, p50, p99 and the server's CPU time per request (from /proc: less sensitive to a
busy machine than req/s), and the summary the median of each side and the ratios.

`--profile FILE` adds one more interlink run under `py-spy record` (collapsed stacks in FILE,
plus a short "where the time goes" table). Install `wrk` with `apt-get install -y wrk`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson
from _summary import figure

API_KEY = "bench-key-0123456789"
PATH = "/orders"

PROJECT_FILES = {
    "interlink.yaml": """
        name: bench
        store: sqlite:///.interlink/bench.db
        packages:
          partners:
            auth: {type: api_key, header: X-API-Key, keys: ["__KEY__"]}
    """.replace("__KEY__", API_KEY),
    "templates/held.xml": """
        <?xml version="1.0" encoding="UTF-8"?>
        <held><order id="{{ page.order.id }}"/></held>
    """,
    "services/orders.yaml": """
        name: orders
        package: partners
        method: POST
        path: /orders
        request:
          body: json
          map:
            page.order: request.body.order
        responses:
          - when: "page.order.status == 'HELD'"
            status: 202
            body: {from: template, template: templates/held.xml}
          - on: default
            status: 200
            headers:
              - {name: X-Order-Id, from: context, key: page.order.id}
            body: {from: json, value: {id: "{{ page.order.id }}"}}
    """,
}

HELD_XML = '<?xml version="1.0" encoding="UTF-8"?>\n<held><order id={id}/></held>'


def order(n: int, held: bool) -> bytes:
    """A ~1 KB order; `held` sets its status to HELD."""
    lines = [{"sku": f"SKU-{(n * 7 + i) % 997:05d}", "qty": 1 + i % 3, "price": "19.90",
              "name": f"Widget model {i}"} for i in range(8)]
    body = {"order": {
        "id": f"ORD-{n:06d}", "status": "HELD" if held else "NEW",
        "customer": {"id": f"C-{n % 50:04d}", "name": "Ada Lovelace",
                     "email": "ada@example.com"},
        "ship_to": {"street": "12 Analytical Engine Way", "city": "London", "zip": "NW1 2AB",
                    "country": "GB"},
        "lines": lines, "note": "leave at the door",
    }}
    return orjson.dumps(body)


# --- the hand-written baseline (its own process) ---------------------------------------------

def baseline_app() -> Any:
    """The scenario written by hand with Starlette."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    key = API_KEY.encode()

    async def orders(request: Request) -> Response:
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), key):
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        try:
            data = orjson.loads(await request.body())
            order = data["order"]
            held = order.get("status") == "HELD"
            order_id = str(order["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return Response(b'{"error":"bad request"}', 400, media_type="application/json")
        if held:
            return Response(HELD_XML.format(id=quoteattr(order_id)), 202,
                            media_type="application/xml; charset=utf-8")
        return Response(orjson.dumps({"id": order_id}), 200, media_type="application/json",
                        headers={"X-Order-Id": order_id})

    return Starlette(routes=[Route(PATH, orders, methods=["POST"])])


def raw_app() -> Any:
    """The scenario as a bare ASGI callable with orjson: the least a Python server can do."""
    key = API_KEY.encode()
    json_type = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        given = dict(scope["headers"]).get(b"x-api-key", b"")
        status, headers, body = 401, json_type, b'{"error":"unauthorized"}'
        if hmac.compare_digest(given, key):
            try:
                order = orjson.loads(b"".join(chunks))["order"]
                order_id = str(order["id"])
                if order.get("status") == "HELD":
                    status, body = 202, HELD_XML.format(id=quoteattr(order_id)).encode()
                    headers = [(b"content-type", b"application/xml; charset=utf-8")]
                else:
                    status, body = 200, orjson.dumps({"id": order_id})
                    headers = [*json_type, (b"x-order-id", order_id.encode())]
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                status, body = 400, b'{"error":"bad request"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_baseline(port: int, kind: str = "starlette") -> None:
    """Serve a baseline the way `interlink serve` serves a project."""
    import uvicorn

    app = raw_app() if kind == "raw" else baseline_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off", server_header=False, date_header=False,
                proxy_headers=False)


# --- orchestration ---------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_project(root: Path) -> None:
    """The scenario as an Interlink project under `root`."""
    for rel, text in PROJECT_FILES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))


def post(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib (the correctness check before loading)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", data=body, method="POST",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until the server accepts connections (or fail if it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} not up after {timeout:g}s")


def check_answers(name: str, port: int) -> None:
    """Both kinds of order get the scenario's answer (fail loudly otherwise)."""
    status, headers, body = post(port, order(1, held=True))
    assert status == 202, (name, status, body)
    assert b'id="ORD-000001"' in body, (name, body)
    status, headers, body = post(port, order(2, held=False))
    assert status == 200, (name, status, body)
    assert orjson.loads(body) == {"id": "ORD-000002"}, (name, body)
    assert headers.get("x-order-id") == "ORD-000002", (name, headers)


def lua_script(folder: Path) -> Path:
    """A wrk script POSTing alternating HELD / not HELD orders with the API key."""
    bodies = ",\n".join(f"[==[{order(n, held=n % 2 == 0).decode()}]==]" for n in range(1, 21))
    script = folder / "orders.lua"
    script.write_text(textwrap.dedent("""
        wrk.method = "POST"
        wrk.headers["Content-Type"] = "application/json"
        wrk.headers["X-API-Key"] = "%s"
        local bodies = {
        %s
        }
        local i = 0
        request = function()
          i = i + 1
          return wrk.format(nil, "%s", nil, bodies[(i %% #bodies) + 1])
        end
        done = function(summary, latency, requests)
          local e = summary.errors
          io.write(string.format(
            "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, "
            .. "\\"p99_us\\": %%d, \\"bad_status\\": %%d, \\"socket_errors\\": %%d}\\n",
            summary.requests, summary.duration, latency:percentile(50),
            latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
        end
    """) % (API_KEY, bodies, PATH))
    return script


def run_wrk(port: int, script: Path, duration: float, connections: int) -> dict[str, float]:
    """Load the server with wrk; req/s, p50 and p99 (ms)."""
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    if raw["bad_status"] or raw["socket_errors"]:
        print(f"  warning: {raw['bad_status']} non-2xx answers, "
              f"{raw['socket_errors']} socket errors", file=sys.stderr)
    return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "requests": raw["requests"],
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000}


def profile(pid: int, port: int, script: Path, args: argparse.Namespace) -> None:
    """Record the interlink server under load with py-spy; print where the time goes."""
    py_spy = args.py_spy or shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.profile)
    spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw",
                            "--rate", "250", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    run_wrk(port, script, args.duration, args.connections)
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    print(f"\nprofile: {out} (collapsed stacks; flamegraph.pl or speedscope read it)")
    print_profile(out)


def print_profile(path: Path, top: int = 25) -> None:
    """Inclusive share of samples per function (file:function), the biggest first."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0] + " " + _short(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] += n
    print(f"{'inclusive':>9}  function ({total} samples)")
    for name, n in inclusive.most_common(top):
        print(f"{100 * n / max(total, 1):8.1f}%  {name}")


def _short(frame: str) -> str:
    inside = frame.partition(" (")[2].rstrip(")")
    file = inside.rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in file:
            return "(" + file.split(marker, 1)[1] + ")"
    return "(" + file + ")"


def main() -> None:
    """Run both sides, alternating, and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--profile", metavar="FILE", help="py-spy collapsed stacks of interlink")
    parser.add_argument("--py-spy", dest="py_spy", help="path of py-spy")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="starlette", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.kind)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("bench/services.py needs wrk: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp:
        folder = Path(tmp)
        write_project(folder / "project")
        script = lua_script(folder)
        ports = {"interlink": free_port(), "baseline": free_port(), "raw": free_port()}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        procs = {
            "interlink": subprocess.Popen(
                [sys.executable, "-m", "interlink.cli", "serve", str(folder / "project"),
                 "--port", str(ports["interlink"])], env=env, stderr=subprocess.DEVNULL),
            "baseline": subprocess.Popen(
                [sys.executable, __file__, "--serve-baseline", str(ports["baseline"])],
                env=env),
            "raw": subprocess.Popen(
                [sys.executable, __file__, "--serve-baseline", str(ports["raw"]), "--kind",
                 "raw"], env=env),
        }
        try:
            for name, proc in procs.items():
                wait_ready(ports[name], proc)
                check_answers(name, ports[name])
                run_wrk(ports[name], script, args.warmup, args.connections)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in procs}
            print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, "
                  f"{args.rounds} rounds, {os.cpu_count()} cores")
            for n in range(1, args.rounds + 1):
                # Alternate who goes first, so a load change on the machine hits both sides.
                names = list(procs)
                order_ = names if n % 2 else names[::-1]
                for name in order_:
                    before = cpu_seconds(procs[name].pid)
                    r = run_wrk(ports[name], script, args.duration, args.connections)
                    r["cpu_us"] = (cpu_seconds(procs[name].pid) - before) / r["requests"] * 1e6
                    results[name].append(r)
                    print(f"round {n} {name:<9} {r['rps']:8.0f} req/s  "
                          f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                          f"server CPU {r['cpu_us']:5.0f} µs/req", flush=True)
            summary = {name: {key: statistics.median(r[key] for r in rows)
                              for key in ("rps", "p50_ms", "p99_ms", "cpu_us")}
                       for name, rows in results.items()}
            print("\nmedian of rounds (min–max req/s):")
            for name, s in summary.items():
                rps = [r["rps"] for r in results[name]]
                print(f"  {name:<9} {s['rps']:8.0f} req/s ({min(rps):.0f}–{max(rps):.0f})  "
                      f"p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
                      f"server CPU {s['cpu_us']:.0f} µs/req")
            for name, label, goal in (("baseline", "Starlette", "0.80"),
                                      ("raw", "raw ASGI + orjson", "0.70")):
                ratio = summary["interlink"]["rps"] / summary[name]["rps"]
                cpu_ratio = summary[name]["cpu_us"] / summary["interlink"]["cpu_us"]
                print(f"  ratio interlink / {label}: {ratio:.2f}x req/s, {cpu_ratio:.2f}x by "
                      f"server CPU per request (goal >= {goal}x)")
                figure("services", f"interlink / {label}", ratio, "ratio", goal=f">= {goal}")
            figure("services", "interlink p99", summary["interlink"]["p99_ms"], "ms",
                   goal="<= 10")
            if args.profile:
                profile(procs["interlink"].pid, ports["interlink"], script, args)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGINT)
            for proc in procs.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
