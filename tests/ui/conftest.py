"""The browser tests' world: a real Chromium (Debian's, through chromedriver), a real
`interlink serve` of a copy of examples/route-orders with an admin token, and loopback ERPs.

Without chromium or chromedriver the tests are skipped, except under CI (`CI=true`), where that
is a failure. The server, the ERPs and the browser are shared by a module's tests; each test
signs in afresh.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.processes import free_port, interlink
from tests.upstream import Upstream

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "route-orders"
TOKEN = "ui-admin-token-0123456789abcdef"
#: the world ERP's bearer token (examples/route-orders/.env): it must show as ***
ERP_SECRET = "dummy-world-token"


class ThreadedUpstream:
    """A `tests.upstream.Upstream` on a loop of its own thread, so that blocking browser calls
    in the test never stop it from answering."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.up = Upstream()

    def __enter__(self) -> ThreadedUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.up.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.up.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def route(self, path: str, **how: Any) -> None:
        """Program `path` (as `Upstream.route`), on the upstream's own thread."""
        asyncio.run_coroutine_threadsafe(_call(self.up.route, path, **how), self.loop).result(10)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


@dataclass
class Served:
    """The served example: its URL, folder, and the world ERP it calls."""

    url: str
    root: Path
    world: ThreadedUpstream

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call an engine endpoint with the admin token; the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def start(self, order: dict[str, Any]) -> str:
        """Queue a run of route-orders with `order`; its id."""
        return str(self.api("POST", "/_interlink/flows/route-orders/runs", order)["run_id"])

    def ended(self, run_id: str, limit_s: float = 30) -> str:
        """The status run `run_id` ends in."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            status = str(self.api("GET", f"/_interlink/runs/{run_id}")["status"])
            if status in ("succeeded", "failed", "stopped", "partial"):
                return status
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not end in {limit_s}s")


def order(n: int, country: str, marker: str = "") -> dict[str, Any]:
    """An order of the shop; FR goes to the world ERP, DE to the DACH one."""
    return {"id": f"A-{n}", "note": marker, "shipping": {"country": country},
            "lines": [{"sku": "MUG", "qty": 2}, {"sku": "TEA", "qty": 1}]}


def ok_world() -> dict[str, Any]:
    """How the world ERP answers when it is up."""
    return {"statuses": [201], "body": {"reference": "W-7731", "status": "accepted"}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`interlink serve` of a copy of examples/route-orders with an admin token, quick
    retries, and a world ERP that is down (500) until a test brings it up."""
    tmp = tmp_path_factory.mktemp("ui")
    root = tmp / "route-orders"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    with (root / "interlink.yaml").open("a") as config:
        config.write('admin: {token: "{{ env.INTERLINK_ADMIN_TOKEN }}"}\nworker: {poll: 50ms}\n')
    for name in ("erp-world.yaml", "erp-dach.yaml"):
        path = root / "connectors" / name
        path.write_text(path.read_text().replace("initial: 500ms", "initial: 20ms"))
    port = free_port()
    with ThreadedUpstream() as world, ThreadedUpstream() as dach, \
            pytest.MonkeyPatch.context() as env:
        world.route("/orders", statuses=[500], body={"error": "the ERP is down for upgrade"})
        dach.route("/auftraege", statuses=[201], body={"auftragsnummer": "AU-1", "ok": True})
        env.setenv("INTERLINK_ADMIN_TOKEN", TOKEN)
        env.setenv("ERP_WORLD_URL", world.up.url)
        env.setenv("ERP_DACH_URL", dach.up.url)
        with interlink("serve", str(root), "--port", str(port), log=tmp / "serve.log") as proc:
            site = Served(f"http://127.0.0.1:{port}", root, world)
            _wait_healthy(site, proc)
            yield site
        log = (tmp / "serve.log").read_text()
        assert TOKEN not in log and ERP_SECRET not in log, "a secret reached the server log"


def _wait_healthy(site: Served, proc: Any) -> None:
    for _ in range(300):
        assert proc.poll() is None, "interlink serve exited"
        try:
            with urllib.request.urlopen(f"{site.url}/_interlink/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("interlink serve did not become healthy")


def viewport(driver: Any, width: int, height: int) -> None:
    """Make the page area exactly `width` x `height` CSS pixels (screenshots are that size)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium at 1280x800, with a fresh profile."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = (f"no browser for the UI tests: {', '.join(missing)} missing "
                   "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,800",
                 "--hide-scrollbars", "--force-device-scale-factor=1",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    viewport(driver, 1280, 800)
    try:
        yield driver
    finally:
        driver.quit()
