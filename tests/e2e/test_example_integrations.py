"""The three everyday integrations under examples/ (poll-products, route-orders,
enrich-orders), run by the CLI as a user runs them — `interlink check`, `interlink run`,
`interlink serve` — against loopback stand-ins of the systems they connect."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.processes import cli, free_port, interlink, wait_healthy
from tests.upstream import RecordedRequest, Upstream

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy(name: str, tmp_path: Path) -> Path:
    """A fresh copy of examples/NAME (its committed `.env` included, no store)."""
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target,
                    ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    return target


@pytest.mark.parametrize("name", ["poll-products", "route-orders", "enrich-orders"])
async def test_the_example_checks_as_shipped(name: str) -> None:
    """`interlink check examples/NAME` passes with the committed `.env`, without warnings;
    the example has no Python scripts."""
    code, out, err = await cli("check", str(EXAMPLES / name))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"ok: {name}:")
    assert not list((EXAMPLES / name).rglob("*.py"))


def catalogue(products: list[dict[str, Any]]) -> Any:
    """A catalogue API paging `products` by `page`/`per_page`, for the bearer token only."""

    def answer(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        if request.headers.get("Authorization") != "Bearer dummy-catalog-token":
            return 401, {"error": "no token"}, {}
        page, size = int(request.query["page"]), int(request.query["per_page"])
        return 200, {"products": products[(page - 1) * size:page * size]}, {}

    return answer


def product(n: int) -> dict[str, Any]:
    """The catalogue's product number `n`."""
    return {"sku": f"SKU-{n:03}", "name": f"Product {n}", "price_cents": 100 + n,
            "currency": "EUR" if n % 2 else None}


async def test_poll_products_pushes_every_page_then_only_what_is_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """45 products over 3 pages (and an empty 4th) are pushed, shaped; the next run pushes
    only the 2 added since."""
    root = copy("poll-products", tmp_path)
    products = [product(n) for n in range(45)]
    async with Upstream() as catalog, Upstream() as shop:
        catalog.route("/products", answer=catalogue(products))
        shop.route("/products", statuses=[201], body={"created": True})
        monkeypatch.setenv("CATALOG_URL", catalog.url)
        monkeypatch.setenv("SHOP_URL", shop.url)
        code, out, err = await cli("run", "sync-products", str(root), "--json")
        assert code == 0, out + err
        first = json.loads(out)
        products += [product(45), product(46)]
        code, out, err = await cli("run", "sync-products", str(root), "--json")
        assert code == 0, out + err
        second = json.loads(out)
    assert [r.query["page"] for r in catalog.requests_to("/products")] == [
        "1", "2", "3", "4", "1", "2", "3", "4"]
    pushed = shop.requests_to("/products")
    assert sorted(r.json["sku"] for r in pushed) == [f"SKU-{n:03}" for n in range(47)]
    assert {r.headers["X-API-Key"] for r in pushed} == {"dummy-shop-key"}
    assert next(r.json for r in pushed if r.json["sku"] == "SKU-002") == {
        "sku": "SKU-002", "title": "Product 2", "price": {"amount": 102, "currency": "EUR"}}
    assert len(first["output"]) == 45
    assert len(second["output"]) == 2
    assert any("dropped 45 payload(s) seen before" in line["message"]
               for line in second["logs"])


def erp(prefix: str, field: str, ref_field: str) -> Any:
    """An ERP answering 201 with `{ref_field: PREFIX-<the order's `field`>}`."""

    def answer(request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        return 201, {ref_field: f"{prefix}-{request.json[field]}"}, {}

    return answer


async def post(port: int, body: Any, headers: dict[str, str] | None = None,
               ) -> tuple[int, Any]:
    """POST `body` as JSON to the served example's /hooks/orders; status and JSON answer."""
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/hooks/orders", json=body, headers=headers) as answer:
        return answer.status, await answer.json()


async def test_route_orders_sends_each_country_to_its_erp_and_answers_the_ref(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DE, CH → the DACH ERP (its field names), FR, US → the world ERP; each webhook call is
    answered 201 with the ERP's reference; without the key, 401 and nothing is sent."""
    root = copy("route-orders", tmp_path)
    port, key = free_port(), {"X-API-Key": "dummy-hook-key-0001"}
    orders = [{"id": f"A-{n}", "shipping": {"country": country}, "lines": [{"sku": "MUG"}]}
              for n, country in enumerate(["DE", "FR", "CH", "US"])]
    async with Upstream() as dach, Upstream() as world:
        dach.route("/auftraege", answer=erp("AU", "bestellnummer", "auftragsnummer"))
        world.route("/orders", answer=erp("W", "id", "reference"))
        monkeypatch.setenv("ERP_DACH_URL", dach.url)
        monkeypatch.setenv("ERP_WORLD_URL", world.url)
        with interlink("serve", str(root), "--port", str(port), log=tmp_path / "serve.log") \
                as proc:
            await wait_healthy(port, proc)
            refused = await post(port, orders[0])
            answers = [await post(port, order, key) for order in orders]
    assert refused[0] == 401
    assert answers == [
        (201, {"order": "A-0", "erp": "dach", "ref": "AU-A-0"}),
        (201, {"order": "A-1", "erp": "world", "ref": "W-A-1"}),
        (201, {"order": "A-2", "erp": "dach", "ref": "AU-A-2"}),
        (201, {"order": "A-3", "erp": "world", "ref": "W-A-3"}),
    ]
    sent_dach = dach.requests_to("/auftraege")
    assert [r.json for r in sent_dach] == [
        {"bestellnummer": "A-0", "land": "DE", "positionen": [{"sku": "MUG"}]},
        {"bestellnummer": "A-2", "land": "CH", "positionen": [{"sku": "MUG"}]}]
    assert {r.headers["Authorization"] for r in sent_dach} == {"Bearer dummy-dach-token"}
    assert [r.json for r in world.requests_to("/orders")] == [orders[1], orders[3]]


async def run_ended(port: int, run_id: str) -> dict[str, Any]:
    """Poll `GET /_interlink/runs/RUN_ID` (loopback: no token needed) until the run ended."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while True:
            async with http.get(f"http://127.0.0.1:{port}/_interlink/runs/{run_id}") as r:
                run: dict[str, Any] = await r.json()
            if run["status"] in ("succeeded", "failed"):
                return run
            await asyncio.sleep(0.05)


async def test_enrich_orders_looks_each_customer_up_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five orders of two customers: two CRM calls (the rest answered from the cache), five
    ERP orders, each the order with its customer merged in."""
    root = copy("enrich-orders", tmp_path)
    port = free_port()
    customers = {"C-1": {"name": "Ada", "email": "ada@example.com", "segment": "gold"},
                 "C-2": {"name": "Bob", "email": "bob@example.com", "segment": None}}
    orders = [{"id": f"O-{n}", "customer_id": c, "total": 10 * n}
              for n, c in enumerate(["C-1", "C-2", "C-1", "C-1", "C-2"])]
    async with Upstream() as crm, Upstream() as erp_api:
        for cid, customer in customers.items():
            crm.route(f"/customers/{cid}", body={"id": cid, **customer, "internal": "x"})
        erp_api.route("/orders", statuses=[201], body={"ok": True})
        monkeypatch.setenv("CRM_URL", crm.url)
        monkeypatch.setenv("ERP_URL", erp_api.url)
        with interlink("serve", str(root), "--port", str(port), log=tmp_path / "serve.log") \
                as proc:
            await wait_healthy(port, proc)
            runs = []
            for order in orders:  # one after the other: each later lookup finds the cache
                status, accepted = await post(port, order)
                assert status == 202
                runs.append(await run_ended(port, accepted["run_id"]))
    assert [r["status"] for r in runs] == ["succeeded"] * 5
    looked_up = crm.requests
    assert [r.path for r in looked_up] == ["/customers/C-1", "/customers/C-2"]
    assert {r.query["api_key"] for r in looked_up} == {"dummy-crm-key"}
    pushed = [r.json for r in erp_api.requests_to("/orders")]
    assert pushed[0] == {**orders[0], "customer": {"name": "Ada", "email": "ada@example.com",
                                                   "segment": "gold"}}
    assert pushed[4] == {**orders[4], "customer": {"name": "Bob", "email": "bob@example.com",
                                                   "segment": "standard"}}
    assert [p["id"] for p in pushed] == [o["id"] for o in orders]
