"""Checks that span files: unique names and routes, and every reference resolving.

Each problem is reported at the line of the key that refers (or, for a duplicate, at the second
occurrence, naming the file of the first). Scripts are parsed and templates compiled here, never
imported or rendered.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import jinja2
from jinja2 import nodes
from pydantic import BaseModel

from interlink.errors import ExpressionError
from interlink.expressions import Template, compile_interpolation, compile_template, environment
from interlink.spec._report import Report
from interlink.spec._yaml import DataPath, YamlDocument
from interlink.spec.connector import ConnectorSpec
from interlink.spec.flow import FlowSpec, WebhookTrigger
from interlink.spec.project import ProjectConfig
from interlink.spec.service import (
    CONTEXT_NAMES,
    ActivityBodySource,
    FunctionSource,
    JsonSource,
    ServiceSpec,
    TemplateSource,
)
from interlink.spec.step import FieldPath, Ref, StepSpec

__all__ = ["Loaded", "Names", "check_references", "label", "walk_steps"]

M = TypeVar("M", bound=BaseModel)

#: Paths the engine serves itself; a service or webhook there would be shadowed or shadow it.
_RESERVED = ("/_interlink/", "/metrics")


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated file: its project-relative path, its document (for lines), its spec."""

    relative: str
    doc: YamlDocument
    spec: M

    def line(self, *path: str | int) -> int:
        """The line of `path` in this file."""
        return self.doc.line_of(path)


@dataclass
class Names:
    """Names declared by files that did not validate: references to them are not reported."""

    connectors: set[str] = field(default_factory=set)
    flows: set[str] = field(default_factory=set)


def check_references(
    report: Report,
    config: Loaded[ProjectConfig] | None,
    connectors: Sequence[Loaded[ConnectorSpec]],
    flows: Sequence[Loaded[FlowSpec]],
    services: Sequence[Loaded[ServiceSpec]],
    broken: Names,
) -> dict[str, Template]:
    """Report every cross-file problem; return the templates the services use, compiled."""
    by_connector = _unique(report, "connector", connectors)
    by_flow = _unique(report, "flow", flows)
    _unique(report, "service", services)
    files = _Files(report)
    routes: dict[tuple[str, str], str] = {}
    if config is not None:
        _check_admin(report, config)
    for flow in flows:
        _check_flow(report, flow, config, by_connector, by_flow, broken, files, routes)
    for service in services:
        _check_service(report, service, config, by_flow, broken, files, routes)
    files.check_all_scripts()
    return files.templates


def _unique(report: Report, kind: str, items: Sequence[Loaded[Any]]) -> dict[str, Loaded[Any]]:
    seen: dict[str, Loaded[Any]] = {}
    for item in items:
        first = seen.setdefault(item.spec.name, item)
        if first is not item:
            report.add(item.relative, item.line("name"),
                       f"{kind} name {item.spec.name!r} is already used in {first.relative}")
    return seen


def _check_admin(report: Report, config: Loaded[ProjectConfig]) -> None:
    server, listen = config.spec.server, config.spec.admin.listen
    if listen is not None and listen.port != 0 and (listen.host, listen.port) == (
            server.host, server.port):
        report.add(config.relative, config.line("admin", "listen"),
                   f"admin.listen: {listen.host}:{listen.port} is the server's own address; "
                   "give the engine endpoints another port (or leave listen out)")


def _check_flow(
    report: Report,
    flow: Loaded[FlowSpec],
    config: Loaded[ProjectConfig] | None,
    connectors: dict[str, Loaded[ConnectorSpec]],
    flows: dict[str, Loaded[FlowSpec]],
    broken: Names,
    files: _Files,
    routes: dict[tuple[str, str], str],
) -> None:
    trigger = flow.spec.trigger
    if isinstance(trigger, WebhookTrigger):
        _route(report, flow, ("trigger", "path"), trigger.method, trigger.path, routes,
               f"{flow.relative} (webhook of flow {flow.spec.name!r})")
        packages = config.spec.packages if config is not None else {}
        if trigger.package is not None and config is not None \
                and trigger.package not in packages:
            known = ", ".join(sorted(packages)) or "none"
            report.add(flow.relative, flow.line("trigger", "package"),
                       f"trigger: no package {trigger.package!r} in interlink.yaml "
                       f"(packages: {known})")
    channels = set(config.spec.notify.channels) if config is not None else None
    for index, name in enumerate(flow.spec.notify.run_failed if flow.spec.notify else ()):
        _check_channel(report, flow, ("notify", "run_failed", index), "notify", name, channels)
    first_seen: dict[str, FieldPath] = {}
    for at, step in walk_steps(flow.spec.steps):
        where = label(at)
        first = first_seen.setdefault(step.id, at)
        if first != at:
            report.add(flow.relative, flow.line(*at, "id"),
                       f"{where}: step id {step.id!r} is already used by {label(first)} "
                       f"(line {flow.line(*first, 'id')})")
        for ref in step.refs():
            if ref.kind == "channel":
                _check_channel(report, flow, (*at, *ref.at), where, ref.name, channels)
                continue
            _check_ref(report, flow, (*at, *ref.at), where, ref, connectors, flows, broken,
                       files)


def _check_channel(report: Report, flow: Loaded[FlowSpec], at: FieldPath, where: str,
                   name: str, channels: set[str] | None) -> None:
    """A notification channel a flow names is one interlink.yaml's `notify:` defines."""
    if channels is not None and name not in channels:
        known = ", ".join(sorted(channels)) or "none"
        report.add(flow.relative, flow.line(*at),
                   f"{where}: no notification channel {name!r} in interlink.yaml "
                   f"(channels: {known})")


def _check_ref(report: Report, flow: Loaded[FlowSpec], at: FieldPath, where: str, ref: Ref,
               connectors: dict[str, Loaded[ConnectorSpec]],
               flows: dict[str, Loaded[FlowSpec]], broken: Names, files: _Files) -> None:
    """One name a step uses: the file it names exists and defines what is used."""
    if ref.kind == "script":
        files.script(flow, at, ref.name, ref.member or "handle")
    elif ref.kind == "template":
        files.template(flow, at, ref.name)
    elif ref.kind == "flow":
        if ref.name not in flows and ref.name not in broken.flows:
            known = ", ".join(sorted(flows)) or "none"
            report.add(flow.relative, flow.line(*at),
                       f"{where}: no flow named {ref.name!r} (flows: {known})")
    else:
        connector = connectors.get(ref.name)
        if connector is None:
            if ref.name not in broken.connectors:
                known = ", ".join(sorted(connectors)) or "none"
                report.add(flow.relative, flow.line(*at),
                           f"{where}: no connector named {ref.name!r} (connectors: {known})")
        elif ref.member is not None and ref.member not in connector.spec.endpoints:
            known = ", ".join(sorted(connector.spec.endpoints))
            report.add(flow.relative, flow.line(*at[:-1], "endpoint"),
                       f"{where}: connector {ref.name!r} has no endpoint {ref.member!r} "
                       f"(endpoints: {known})")


def walk_steps(steps: Sequence[StepSpec],
               at: FieldPath = ("steps",)) -> Iterator[tuple[FieldPath, StepSpec]]:
    """Every step of a flow, nested ones included, with where each is (`("steps", 0)`)."""
    for index, step in enumerate(steps):
        here = (*at, index)
        yield here, step
        for where, nested in step.children():
            yield from walk_steps(nested, (*here, *where))


def label(at: FieldPath) -> str:
    """`("steps", 1, "routes", 0, "steps", 2)` → `steps[1].routes[0].steps[2]`."""
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def _check_service(
    report: Report,
    service: Loaded[ServiceSpec],
    config: Loaded[ProjectConfig] | None,
    flows: dict[str, Loaded[FlowSpec]],
    broken: Names,
    files: _Files,
    routes: dict[tuple[str, str], str],
) -> None:
    spec = service.spec
    _route(report, service, ("path",), spec.method, spec.path, routes,
           f"{service.relative} (service {spec.name!r})")
    if spec.package is not None and config is not None and spec.package not in \
            config.spec.packages:
        known = ", ".join(sorted(config.spec.packages)) or "none"
        report.add(service.relative, service.line("package"),
                   f"no package {spec.package!r} in interlink.yaml (packages: {known})")
    activity = spec.activity
    if activity is not None:
        if activity.flow is not None and activity.flow not in flows \
                and activity.flow not in broken.flows:
            known = ", ".join(sorted(flows)) or "none"
            report.add(service.relative, service.line("activity", "flow"),
                       f"activity.flow: no flow named {activity.flow!r} (flows: {known})")
        if activity.script is not None:
            files.script(service, ("activity", "script"), activity.script, "handle")
    conditions = config.spec.conditions if config is not None else {}
    if (spec.execution == "async" or any(r.queue_when is not None for r in spec.responses)) \
            and activity is None:
        what = "execution: async" if spec.execution == "async" else "a queue_when rule"
        line = service.line("execution") if spec.execution == "async" else service.line(
            "responses", next(i for i, r in enumerate(spec.responses)
                              if r.queue_when is not None), "queue_when")
        report.add(service.relative, line,
                   f"{what} queues requests for the request processor, but the service has "
                   "no activity for it to run: add an activity (flow or script)")
    for index, rule in enumerate(spec.responses):
        for key in ("when", "queue_when"):
            written = getattr(rule, key)
            if written is not None:
                _check_condition_name(report, service, ("responses", index, key), written,
                                      conditions)
        if isinstance(rule.body, ActivityBodySource) and activity is None:
            report.add(service.relative, service.line("responses", index, "body", "from"),
                       f"responses[{index}].body: from: activity sends what the activity "
                       "produced, but the service has no activity")
        for h, header in enumerate(rule.headers):
            where: DataPath = ("responses", index, "headers", h)
            if header.source == "function" and header.function is not None:
                files.function(service, (*where, "function"), header.function)
            elif header.source == "template" and header.template is not None:
                files.template(service, (*where, "template"), header.template)
        body = rule.body
        at: DataPath = ("responses", index, "body")
        if isinstance(body, FunctionSource):
            files.function(service, (*at, "function"), body.function)
        elif isinstance(body, TemplateSource):
            files.template(service, (*at, "template"), body.template)
        elif isinstance(body, JsonSource):
            _check_json(report, service, (*at, "value"))


#: bare words that are expressions of their own, not names of conditions
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})


def _check_condition_name(
    report: Report, service: Loaded[ServiceSpec], at: DataPath, written: str,
    conditions: dict[str, str],
) -> None:
    """`when: high_value` names a condition of interlink.yaml; a bare name that is neither a
    condition nor a context entry is a typo, not an expression that is always false."""
    name = written.strip()
    if not name.isidentifier() or name in conditions or name in CONTEXT_NAMES \
            or name in _LITERALS:
        return
    known = ", ".join(sorted(conditions)) or "none"
    report.add(service.relative, service.doc.line_of(at),
               f"responses[{at[1]}].{at[2]}: no condition named {name!r} in interlink.yaml "
               f"(conditions: {known})")


def _route(
    report: Report,
    item: Loaded[Any],
    at: DataPath,
    method: str,
    path: str,
    routes: dict[tuple[str, str], str],
    owner: str,
) -> None:
    line = item.doc.line_of(at)
    if path.startswith(_RESERVED) or path in ("/_interlink", "/metrics"):
        report.add(item.relative, line, f"path {path!r} is reserved for the engine")
        return
    # `/orders/{id}` and `/orders/{order_id}` are the same route.
    key = (method, re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/"))
    first = routes.setdefault(key, owner)
    if first is not owner:
        report.add(item.relative, line, f"{method} {path} is already served by {first}")


def _check_json(report: Report, service: Loaded[ServiceSpec], at: DataPath) -> None:
    """Leaf strings of a `from: json` body interpolate: compile them now."""
    for path, text in service.doc.strings():
        if path[: len(at)] != at or ("{{" not in text and "{%" not in text):
            continue
        try:
            compiled = compile_interpolation(text)
        except ExpressionError as exc:
            report.add(service.relative, service.doc.line_of(path), str(exc))
            continue
        if not compiled.is_constant and _reads_env(text):
            report.add(service.relative, service.doc.line_of(path), _ENV_MESSAGE)


_ENV_MESSAGE = (
    "env is resolved only in interlink.yaml and connectors/, so that no flow or service can "
    "echo a secret"
)


def _reads_env(text: str) -> bool:
    return any(n.name == "env" for n in environment().parse(text).find_all(nodes.Name))


class _Files:
    """Scripts and templates referenced by the project, each read and checked once."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.root = report.root
        self.templates: dict[str, Template] = {}
        self._modules: dict[str, ast.Module | None] = {}

    def _existing(self, item: Loaded[Any], at: DataPath, relative: str, what: str) -> Path | None:
        path = self.root / relative
        line = item.doc.line_of(at)
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            self.report.add(item.relative, line, f"{what} {relative!r} is outside the project")
            return None
        if not path.is_file():
            self.report.add(item.relative, line, f"{what} {relative!r} does not exist")
            return None
        return path

    def _module(self, relative: str) -> ast.Module | None:
        if relative not in self._modules:
            self._modules[relative] = self._parse(relative)
        return self._modules[relative]

    def _parse(self, relative: str) -> ast.Module | None:
        try:
            source = (self.root / relative).read_bytes()
            compile(source, relative, "exec", dont_inherit=True)
            return ast.parse(source, relative)
        except SyntaxError as exc:
            self.report.add(relative, exc.lineno or 1, f"{type(exc).__name__}: {exc.msg}")
        except (OSError, ValueError) as exc:
            self.report.add(relative, 1, f"cannot read script: {exc}")
        return None

    def script(self, item: Loaded[Any], at: DataPath, relative: str, name: str) -> None:
        """A script file referenced at `at`: it exists, compiles and defines `name`."""
        if self._existing(item, at, relative, "script") is None:
            return
        module = self._module(relative)
        if module is not None and name not in _top_level_names(module):
            self.report.add(item.relative, item.doc.line_of(at),
                            f"script {relative!r} defines no {name!r}")

    def function(self, item: Loaded[Any], at: DataPath, reference: str) -> None:
        """A `scripts/x.py:name` reference."""
        relative, _, name = reference.rpartition(":")
        self.script(item, at, relative, name)

    def check_all_scripts(self) -> None:
        """Compile every script under `scripts/`, referenced or not (helpers are imported)."""
        folder = self.root / "scripts"
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                self._module(path.relative_to(self.root).as_posix())

    def template(self, item: Loaded[Any], at: DataPath, relative: str) -> None:
        """A template file referenced at `at`: it exists and compiles; kept by its path, as
        the kind its extension says (a rule's `type` recompiles it as another kind)."""
        if relative in self.templates:
            return
        path = self._existing(item, at, relative, "template")
        if path is None:
            return
        try:
            template = compile_template(path)
        except ExpressionError as exc:
            cause = exc.__cause__
            if isinstance(cause, jinja2.TemplateSyntaxError):
                self.report.add(relative, cause.lineno, cause.message or "syntax error")
            else:
                self.report.add(relative, 1, str(exc))
            return
        except (OSError, UnicodeDecodeError) as exc:
            self.report.add(relative, 1, f"cannot read template: {exc}")
            return
        for line in _env_lines(path.read_text(encoding="utf-8")):
            self.report.add(relative, line, _ENV_MESSAGE)
        self.templates[relative] = template


def _env_lines(text: str) -> Iterable[int]:
    names = environment().parse(text).find_all(nodes.Name)
    return sorted({n.lineno for n in names if n.name == "env" and n.ctx == "load"})


def _top_level_names(module: ast.Module) -> set[str]:
    names: set[str] = set()
    stack: list[ast.stmt] = list(module.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try):
            # `try: import fast … except ImportError: def fallback(…)` defines at top level too
            stack.extend([*node.body, *node.orelse])
            if isinstance(node, ast.Try):
                stack.extend(node.finalbody)
                for handler in node.handlers:
                    stack.extend(handler.body)
    return names
