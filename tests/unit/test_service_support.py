"""Shared helpers of the services tests: projects built directly, an activity runner, a caller.

(No tests here; the name keeps the file inside the services tests' ownership.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlink.expressions import compile_template
from interlink.services import ActivityResult, ServicesApp, build_services_app
from interlink.spec import Project, ProjectConfig, ServiceSpec
from interlink.store import Store

DEFAULT_HEADERS = ("server", "cache-control", "content-type", "content-length", "date")


class Runner:
    """An activity runner for tests: returns a result built from the context, or raises."""

    def __init__(
        self, result: Callable[[dict[str, Any]], ActivityResult] | ActivityResult | None = None,
        *, error: Exception | None = None, delay: float = 0.0,
    ) -> None:
        self.result = result
        self.error = error
        self.delay = delay
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def run(self, service: ServiceSpec, context: dict[str, Any], *,
                  run_id: str = "") -> ActivityResult:
        """Record the call, wait, then raise or answer."""
        self.calls.append((service.name, context))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if callable(self.result):
            return self.result(context)
        return self.result or ActivityResult("succeeded", {"ok": True}, "run_1")


class Caller:
    """A function caller for tests: `scripts/f.py:echo` returns `path:name:page.x`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, path: str, name: str, context: dict[str, Any]) -> Any:
        """Answer by name: `boom` raises, `data` returns a dict, `value` shows the key's
        value, others echo."""
        self.calls.append((path, name))
        if name == "boom":
            raise RuntimeError("function failed at /work/secret/path")
        if name == "data":
            return {"x": context["page"].get("x")}
        if name == "value":  # a `key:` value, beside the whole context
            return f"value={context['value']!r} page.x={context['page'].get('x')}"
        return f"{path}:{name}:{context['page'].get('x')}"


def make_project(
    root: Path, services: list[dict[str, Any]], *, packages: dict[str, Any] | None = None,
    templates: dict[str, str] | None = None, secrets: frozenset[str] = frozenset(),
    server: dict[str, Any] | None = None,
) -> Project:
    """A Project built directly from dicts (templates written under `root`)."""
    compiled = {}
    for rel, text in (templates or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        compiled[rel] = compile_template(path)
    config = ProjectConfig.model_validate({"name": "test", "packages": packages or {},
                                           "server": server or {}})
    specs = {s["name"]: ServiceSpec.model_validate(s) for s in services}
    return Project(root=root, config=config, services=specs, templates=compiled, secrets=secrets)


def make_app(
    root: Path, services: list[dict[str, Any]], *, runner: Any = None, caller: Any = None,
    store: Store | None = None, **project: Any,
) -> ServicesApp:
    """The services app of a directly built project."""
    return build_services_app(
        make_project(root, services, **project), activity_runner=runner,
        function_caller=caller, store=store,
    )


def service(**fields: Any) -> dict[str, Any]:
    """A service dict with defaults: `POST /x` named `svc`."""
    return {"name": "svc", "path": "/x", **fields}
