"""Schemathesis against examples/shop: the generated OpenAPI document and the served behaviour
cannot drift apart.

The shop is served as `interlink serve` serves it (uvicorn with the engine's settings, the
engine's endpoints, a worker) on a loopback port, in a thread of its own with the warehouse
stand-in (`tests/upstream.py`) beside it. Schemathesis reads `GET /_interlink/openapi.json`
and sends cases generated from it; every answer must have a documented status, content type
and headers, and a method a path does not serve must be answered 405 with `Allow`. Offline,
derandomized and bounded, so it is the same few seconds on every run.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.projects import running_engine
from tests.served import serving
from tests.upstream import Upstream

from interlink.server import build_app
from interlink.spec import load_project

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
KEY = "fuzz-partner-key"
#: generated cases per operation: enough to reach every rule, few enough to stay fast
EXAMPLES = 40
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
#: the admin token the served copy runs with (the OpenAPI document is an engine endpoint)
ADMIN_TOKEN = "an-admin-token-for-the-fuzz-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class _ServedShop:
    """The shop served in a background thread (its own event loop) until `stop()`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="served-shop", daemon=True)

    def start(self) -> _ServedShop:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise AssertionError(f"the shop did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Upstream() as warehouse:
            environ = {"PARTNER_KEY": KEY, "WH_USER": "demo", "WH_PASSWORD": "pw",
                       "WAREHOUSE_URL": warehouse.url,
                       "INTERLINK_ADMIN_TOKEN": ADMIN_TOKEN}
            project = load_project(self.root, environ=environ)
            async with running_engine(project) as engine:
                app = build_app(engine, None)
                async with serving(app, project.config.server.limits) as port:
                    self.port = port
                    self._ready.set()
                    await self._stop.wait()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the served shop (a copy of examples/shop)."""
    root = tmp_path_factory.mktemp("fuzz") / "shop"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".interlink", "__pycache__"))
    served = _ServedShop(root).start()
    try:
        yield f"http://127.0.0.1:{served.port}"
    finally:
        served.stop()


@pytest.fixture(scope="module")
def api(shop: str) -> schemathesis.BaseSchema:
    """The shop's OpenAPI document, as served."""
    return schemathesis.openapi.from_url(f"{shop}/_interlink/openapi.json", headers=ADMIN)


@pytest.mark.parametrize(("mode", "headers"), [
    (GenerationMode.POSITIVE, {"X-API-Key": KEY}),
    (GenerationMode.NEGATIVE, {"X-API-Key": KEY}),
    (GenerationMode.POSITIVE, {}),                      # no key: the security answers
])
def test_every_answer_is_documented(
    api: schemathesis.BaseSchema, shop: str, mode: GenerationMode, headers: dict[str, str]
) -> None:
    """Generated requests to every operation get only documented answers: status, content
    type, headers and body schema."""
    operations = [result.ok() for result in api.get_all_operations()]
    assert operations
    for operation in operations:
        held = operation.as_strategy(mode, body={"order": {"id": "A1", "status": "HELD"}})

        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(operation.as_strategy(mode), held))
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=shop, headers=headers, checks=CHECKS, timeout=30)

        answers_as_documented()


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b"{not json", {"X-API-Key": KEY}, 400),                       # on: mapping_error
    (b'{"order": {"id": "A1", "status": "HELD"}}', {"X-API-Key": KEY}, 202),
    (b"{}", {"X-API-Key": "wrong"}, 401),                         # on: security_error
    (b"{}", {"X-API-Key": KEY}, 200),
])
def test_each_rule_answers_as_documented(
    api: schemathesis.BaseSchema, shop: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    """Each of the shop's rules, reached on purpose, answers as the document says."""
    operation = api["/orders"]["POST"]
    case = operation.Case(media_type="application/json", body=body)
    answer = case.call_and_validate(base_url=shop, headers=headers, checks=CHECKS, timeout=30)
    assert answer.status_code == status


def test_the_document_lists_the_shop_service(shop: str) -> None:
    """The served document holds the order-intake operation with its rule statuses."""
    doc = requests.get(f"{shop}/_interlink/openapi.json", headers=ADMIN, timeout=10).json()
    responses = doc["paths"]["/orders"]["post"]["responses"]
    assert set(responses) == {"200", "202", "400", "401", "413", "502"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE"])
def test_a_method_the_path_does_not_serve_is_405_with_allow(shop: str, method: str) -> None:
    """`/orders` is POST only: any other method is 405 and `Allow: POST`."""
    answer = requests.request(method, f"{shop}/orders", timeout=10)
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
