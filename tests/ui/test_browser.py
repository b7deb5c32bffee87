"""The web UI in a real Chromium against a real `interlink serve` of examples/route-orders:
sign-in, the runs list and a run's attempts (secrets as ***), retry, bulk retry, requeue,
the CSRF check, and screenshots for docs/ui.md."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.ui.conftest import ERP_SECRET, TOKEN, Served, ok_world, order, viewport

from interlink.ids import new_id
from interlink.store import Enqueue, Fail, InsertRun, RunRecord
from interlink.store.sqlite import SqliteStore

pytestmark = pytest.mark.browser

UI = "/_interlink/ui"
#: where the screenshots go: docs/ui with `make screenshots` (INTERLINK_SCREENSHOTS=docs/ui),
#: else a temporary folder, so that a test run leaves the checkout as it was
SHOTS = Path(os.environ.get("INTERLINK_SCREENSHOTS") or tempfile.mkdtemp(prefix="interlink-ui-"))


def by_css(browser: Any, selector: str) -> Any:
    """The first element `selector` finds."""
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def all_css(browser: Any, selector: str) -> list[Any]:
    """Every element `selector` finds."""
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def until(browser: Any, what: str, check: Any, limit_s: float = 30) -> Any:
    """Wait until `check(browser)` is truthy; its value. An element that went stale (the
    page it was found on was replaced meanwhile, as after a form's POST) is looked for again
    — also when chromedriver says so as "Node with given id does not belong to the
    document", an unknown error rather than a stale element (seen once in CI)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(b: Any) -> Any:
        try:
            return check(b)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return False
            raise

    return WebDriverWait(browser, limit_s, poll_frequency=0.1, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(settled, what)


def sign_in(browser: Any, site: Served, token: str = TOKEN, path: str = "/") -> None:
    """Open `path` signed out, which lands on the sign-in form, and give `token`."""
    browser.delete_all_cookies()
    browser.get(f"{site.url}{UI}{path}")
    until(browser, "the sign-in form", lambda b: "/login" in b.current_url)
    by_css(browser, "input[name=token]").send_keys(token)
    by_css(browser, "form.login button").click()


def submit_confirmed(browser: Any, selector: str) -> None:
    """Click a button that asks for confirmation, and say yes."""
    from selenium.webdriver.support import expected_conditions

    by_css(browser, selector).click()
    until(browser, "the confirmation", expected_conditions.alert_is_present()).accept()


def shot(browser: Any, name: str, at: str | None = None) -> None:
    """Save the page (scrolled to the element `at`, else its top) as SHOTS/NAME.png (with
    `make screenshots`, docs/ui/NAME.png: the screenshots docs/ui.md shows)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if at is None:
        browser.execute_script("window.scrollTo(0, 0)")
    else:
        browser.execute_script("arguments[0].scrollIntoView()", by_css(browser, at))
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def failed_run(site: Served, n: int, marker: str = "") -> str:
    """A run of route-orders that fails: the world ERP answers 500 to every attempt."""
    site.world.route("/orders", statuses=[500], body={"error": "the ERP is down for upgrade"})
    run_id = site.start(order(n, "FR", marker))
    assert site.ended(run_id) == "failed"
    return run_id


def test_anonymous_access_goes_to_sign_in_and_a_wrong_token_is_refused(
        browser: Any, served: Served) -> None:
    """A signed-out visit to a run list lands on the sign-in form; a wrong token is refused
    there; the right one opens the page first asked for."""
    sign_in(browser, served, "wrong-token-0123456789abcdef", path="/runs?status=failed")
    # The refusal is a new page at the same /login URL: wait for it, not for the URL.
    until(browser, "the refusal", lambda b: all_css(b, ".error-box"))
    assert "/login" in browser.current_url
    assert "not accepted" in by_css(browser, ".error-box").text
    by_css(browser, "input[name=token]").send_keys(TOKEN)
    by_css(browser, "form.login button").click()
    until(browser, "the runs list", lambda b: b.current_url.endswith("/runs?status=failed"))
    assert by_css(browser, "h1").text == "Runs"
    assert by_css(browser, "select[name=status]").get_attribute("value") == "failed"


def test_the_list_shows_a_failed_run_whose_attempts_mask_the_secret(
        browser: Any, served: Served) -> None:
    """A failed run is in the list (badge `failed`); its page shows every attempt — request
    with the ERP's bearer token as `***`, the 500 answer, the decision — and the error."""
    site = served
    site.world.route("/orders", **ok_world())
    for n, country in enumerate(["DE", "FR", "CH", "US", "DE"]):  # some that succeed
        assert site.ended(site.start(order(100 + n, country))) == "succeeded"
    run_id = failed_run(site, 1)
    sign_in(browser, site)
    until(browser, "the runs list", lambda b: b.find_elements("link text", run_id))
    row = by_css(browser, f"a[href='{UI}/runs/{run_id}']").find_element("xpath", "../..")
    assert "failed" in row.text and "route-orders" in row.text
    shot(browser, "runs")
    by_css(browser, f"a[href='{UI}/runs/{run_id}']").click()
    until(browser, "the run's page", lambda b: run_id in by_css(b, "h1").text)
    attempts = all_css(browser, "details.attempt")
    assert len(attempts) == 4  # erp-world's retry policy: 4 attempts
    for details in attempts:
        if not details.get_attribute("open"):
            details.find_element("css selector", "summary").click()
    text = by_css(browser, "main").text
    source = browser.page_source
    assert source.count("<tr><th>Authorization</th><td>***</td></tr>") == 4
    assert "the ERP is down for upgrade" in text and "retry_step" in text
    assert "no attempts left" in text
    assert ERP_SECRET not in source and TOKEN not in source
    for details in attempts[:-1]:
        details.find_element("css selector", "summary").click()  # fold the page for the shot
    shot(browser, "run")
    shot(browser, "attempts", at="details.attempt")


def test_retry_from_the_run_page_makes_a_run_that_succeeds(
        browser: Any, served: Served) -> None:
    """Retry (confirmed) answers with a link to the new run, which succeeds now that the ERP
    is up, and links back to the run it retried."""
    run_id = failed_run(served, 2)
    served.world.route("/orders", **ok_world())
    sign_in(browser, served, path=f"/runs/{run_id}")
    until(browser, "the run's page", lambda b: run_id in by_css(b, "h1").text)
    submit_confirmed(browser, f"form[action='{UI}/runs/{run_id}/retry'] button")
    until(browser, "the result", lambda b: by_css(b, "h1").text == "Retry queued")
    by_css(browser, ".links a").click()
    until(browser, "the new run succeeded", lambda b: _reload_until(b, ".heading .s-succeeded"))
    assert f"{UI}/runs/{run_id}" in browser.page_source  # retry of …


def _reload_until(browser: Any, selector: str) -> bool:
    if all_css(browser, selector):
        return True
    time.sleep(0.3)
    browser.refresh()
    return False


def test_bulk_retry_of_the_filtered_failed_runs(browser: Any, served: Served) -> None:
    """Filtered by a text in their input, two failed runs: the list offers to retry both,
    the confirmation page counts 2, and confirming retries both."""
    marker = f"bulk-{uuid.uuid4().hex[:8]}"
    originals = {failed_run(served, 10 + n, marker) for n in range(2)}
    served.world.route("/orders", **ok_world())
    sign_in(browser, served, path=f"/runs?q={marker}")
    until(browser, "the filtered list", lambda b: len(all_css(b, "table.list tbody tr")) == 2)
    by_css(browser, ".bulk a").click()
    until(browser, "the confirmation page", lambda b: "Retry failed runs" in by_css(b, "h1").text)
    assert "2 failed runs match" in by_css(browser, "main").text
    by_css(browser, "form.confirm button").click()  # this page is the confirmation
    until(browser, "the result", lambda b: by_css(b, "h1").text == "Retries queued")
    assert "2 failed runs retried" in by_css(browser, "main").text
    new = [a.text for a in all_css(browser, ".new-runs a")]
    assert len(new) == 2
    for run_id in new:
        assert served.ended(run_id) == "succeeded"
        assert served.api("GET", f"/_interlink/runs/{run_id}")["retry_of"] in originals


def test_the_list_refreshes_itself_while_a_run_is_in_flight(
        browser: Any, served: Served) -> None:
    """While a listed run is in flight the list polls: the run's badge turns `succeeded`
    without the page being reloaded, and the polling stops."""
    marker = f"live-{uuid.uuid4().hex[:8]}"
    served.world.route("/orders", **ok_world(), delay=2.5)
    run_id = served.start(order(300, "FR", marker))
    sign_in(browser, served, path=f"/runs?q={marker}")
    until(browser, "the run in flight", lambda b: b.find_elements("link text", run_id))
    assert browser.execute_script("return document.body.dataset.refresh") == "3"
    browser.execute_script("window.notReloaded = true")
    until(browser, "the run's end", lambda b: all_css(b, "#runs .s-succeeded"), limit_s=20)
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.execute_script("return document.body.dataset.refresh") is None
    served.world.route("/orders", **ok_world())


def test_a_broken_queue_item_is_requeued(browser: Any, served: Served) -> None:
    """A broken item is listed with its last error and a Requeue button; requeued, its page
    shows it ready again."""
    item_id = f"q_broken_{uuid.uuid4().hex[:8]}"
    asyncio.run(_break_item(served.root / ".interlink" / "route-orders.db", item_id))
    sign_in(browser, served, path="/queue?status=broken")
    until(browser, "the queue", lambda b: b.find_elements("link text", item_id))
    row = by_css(browser, f"a[href='{UI}/queue/{item_id}']").find_element("xpath", "../..")
    assert "the partner system refused the order" in row.text
    submit_confirmed(browser, f"form[action='{UI}/queue/{item_id}/requeue'] button")
    until(browser, "the result", lambda b: by_css(b, "h1").text == "Requeued")
    by_css(browser, ".links a").click()
    until(browser, "the item page", lambda b: item_id in by_css(b, "h1").text)
    assert by_css(browser, ".heading .badge").text == "ready"


async def _break_item(path: Path, item_id: str) -> None:
    """A queue item (of a kind no worker takes) that ended broken, written to the served
    project's store by this process."""
    async with SqliteStore(path) as store:
        await store.write(Enqueue(item_id, "partner_push", {"order": "A-77"}, owner="test"))
        await store.write(Fail(item_id, "test", "the partner system refused the order",
                               status="broken"))


def test_a_post_without_the_form_token_is_refused(browser: Any, served: Served) -> None:
    """A form posted to an action without its CSRF token gets the 403 page and does
    nothing."""
    run_id = failed_run(served, 3)
    sign_in(browser, served, path=f"/runs/{run_id}")
    until(browser, "the run's page", lambda b: run_id in by_css(b, "h1").text)
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = arguments[0]; document.body.appendChild(f); f.submit();",
        f"{UI}/runs/{run_id}/retry")
    until(browser, "the refusal", lambda b: "could not be checked" in by_css(b, "h1").text)
    assert served.api("GET", f"/_interlink/runs/{run_id}")["status"] == "failed"


def test_the_overview_shows_charts_per_flow_and_connector(browser: Any, served: Served) -> None:
    """The overview draws runs per minute of route-orders for the hour and the day, and counts
    erp-world's attempts by decision."""
    served.world.route("/orders", **ok_world())
    assert served.ended(served.start(order(200, "FR"))) == "succeeded"
    assert served.ended(served.start(order(201, "DE"))) == "succeeded"
    asyncio.run(_seed_history(served.root / ".interlink" / "route-orders.db"))
    sign_in(browser, served, path="/overview")
    until(browser, "the overview", lambda b: by_css(b, "h1").text == "Overview")
    # read in one `until`: an element that went stale meanwhile is looked for again
    charts, bars, text = until(browser, "the charts", lambda b: (
        len(all_css(b, "svg.chart")), all_css(b, "svg.chart rect.bar"), by_css(b, "main").text))
    assert charts == 2
    assert bars
    assert "erp-world" in text and "erp-dach" in text
    shot(browser, "overview")


async def _seed_history(path: Path) -> None:
    """A day of earlier runs of route-orders (a busy morning, a bad hour), so the charts have
    something to show: written to the served project's store by this process."""
    rng = random.Random(11)
    now = time.time()
    runs = []
    for _ in range(900):
        ago = rng.triangular(0, 86400, 20000)
        took = rng.lognormvariate(-2.5, 0.8)
        bad = rng.random() < (0.4 if 30000 < ago < 33600 else 0.04)
        at = now - ago
        runs.append(InsertRun(RunRecord(
            id=new_id("r_"), flow="route-orders", status="failed" if bad else "succeeded",
            trigger="webhook", input={"id": "A-0"}, flow_spec={"name": "route-orders"},
            created_at=at, started_at=at, finished_at=at + took, updated_at=at + took,
            error="calling erp-world.create_order: HTTP 503 (attempt 4 of 4)" if bad else None)))
    async with SqliteStore(path) as store:
        await store.write(*runs)


def test_the_list_fits_a_phone(browser: Any, served: Served) -> None:
    """At 390 px wide the runs list needs no sideways scrolling of the page."""
    sign_in(browser, served)
    until(browser, "the runs list", lambda b: by_css(b, "h1").text == "Runs")
    viewport(browser, 390, 844)
    try:
        browser.refresh()
        until(browser, "the runs list", lambda b: by_css(b, "h1").text == "Runs")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390
        shot(browser, "phone")
    finally:
        viewport(browser, 1280, 800)
