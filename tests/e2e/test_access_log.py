"""`interlink serve` logs one line per request (method, path, status, ms) and one on shutdown;
plain or JSON lines; query values masked, bodies never logged; `server.access_log: false`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
from tests.processes import free_port, interlink, wait_healthy
from tests.projects import write_project

FILES = {
    "flows/greet.yaml": "name: greet\nsteps:\n  - {id: s, type: script, script: scripts/s.py}\n",
    "scripts/s.py": "def handle(data):\n    return data\n",
}
SECRET_QUERY = "q-value-not-for-logs"
SECRET_BODY = "body-value-not-for-logs"


async def serve_and_call(root: Path, *args: str) -> list[str]:
    """Serve `root`, send three requests, stop it (SIGTERM); the log's lines."""
    port = free_port()
    log = root / "serve.log"
    with interlink("serve", str(root), "--port", str(port), *args, log=log) as proc:
        await wait_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/_interlink/health?token={SECRET_QUERY}&x=1") as r:
                assert r.status == 200
            async with http.post(f"{base}/_interlink/flows/greet/runs",
                                 json={"name": SECRET_BODY}) as r:
                assert r.status == 202
            async with http.get(f"{base}/nothing/here") as r:
                assert r.status == 404
        proc.terminate()
        assert proc.wait(20) == 0
    text = log.read_text()
    assert SECRET_QUERY not in text
    assert SECRET_BODY not in text
    return text.splitlines()


async def test_plain_lines_one_per_request_and_one_on_shutdown(tmp_path: Path) -> None:
    """Each request is a line `METHOD PATH STATUS MSms`; the last line says it stopped."""
    write_project(tmp_path, FILES)
    lines = await serve_and_call(tmp_path)
    access = [line for line in lines if line.endswith("[interlink.access]")]
    requests = [line.split("] ", 1)[1].rsplit(" [", 1)[0] for line in access]
    # health is polled until the server answers: those are logged too
    assert requests[-3].startswith("GET /_interlink/health?token=***&x=*** 200 ")
    assert requests[-2].startswith("POST /_interlink/flows/greet/runs 202 ")
    assert requests[-1].startswith("GET /nothing/here 404 ")
    assert all(r.endswith("ms") for r in requests)
    assert "stopped serving test: " in lines[-1]
    assert f"{len(access)} requests answered" in lines[-1]


async def test_json_lines_with_log_format_json(tmp_path: Path) -> None:
    """`--log-format json`: every line is a JSON object; access lines carry the fields."""
    write_project(tmp_path, FILES)
    lines = await serve_and_call(tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in lines]
    access = [r for r in records if r["logger"] == "interlink.access"]
    assert {k: access[-2][k] for k in ("method", "path", "query", "status", "level")} == {
        "method": "POST", "path": "/_interlink/flows/greet/runs", "query": None,
        "status": 202, "level": "info"}
    assert access[-3]["query"] == "token=***&x=***"
    assert isinstance(access[-1]["ms"], float)
    # To the microsecond, as the other lines: sorted by time, they interleave correctly.
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(stamp, access[-1]["timestamp"]), access[-1]["timestamp"]
    assert re.fullmatch(stamp, records[-1]["timestamp"]), records[-1]["timestamp"]
    assert records[-1]["event"].startswith("stopped serving test")


async def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    """`server.access_log: false`: no request lines; the shutdown line stays."""
    config = ("name: test\nstore: sqlite:///.interlink/test.db\n"
              "server: {access_log: false}\n")
    write_project(tmp_path, {**FILES, "interlink.yaml": config})
    lines = await serve_and_call(tmp_path)
    assert not [line for line in lines if "interlink.access" in line]
    assert "stopped serving test " in lines[-1]
    assert "answered" not in lines[-1]  # nothing counted them
