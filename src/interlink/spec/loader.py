"""`load_project(path)`: read, validate and cross-check a project folder in one pass.

The steps, each collecting every problem it finds before the next one runs:

1. read each YAML file (`interlink.yaml`, `connectors/`, `flows/`, `services/`, `*.yaml` or
   `*.yml`) with line numbers;
2. in `interlink.yaml` and `connectors/`, substitute `{{ env.NAME }}` (the values read become
   `Project.secrets`); in `flows/` and `services/`, `env` is an error;
3. validate each file against its spec model (this compiles every expression);
4. check what spans files: unique names, steps ids and routes, connectors, endpoints, flows,
   packages, scripts (compiled, never imported) and templates (compiled and kept);
5. note what is valid but deserves a second look (`_warn`): `Project.warnings`, each
   `FILE:LINE: warning: message`.

Any problem raises `ProjectErrors`: one `FILE:LINE: message` per line, sorted by file and line.
FILE is relative to the current directory when the project is under it (so that an editor or
terminal opens it from where the command ran) and the given project path joined with the file
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from interlink.loopback import is_loopback
from interlink.spec._env import DOTENV_FILE, project_environ, resolve_env
from interlink.spec._references import Loaded, Names, check_references, label, walk_steps
from interlink.spec._report import Report
from interlink.spec._validation import validate
from interlink.spec._yaml import YamlError, read_yaml
from interlink.spec.connector import ConnectorSpec
from interlink.spec.flow import FlowSpec, WebhookTrigger
from interlink.spec.loaded import Project
from interlink.spec.project import HmacAuth, ProjectConfig
from interlink.spec.service import ServiceSpec

__all__ = ["PROJECT_FILE", "load_project"]

#: The file that makes a folder a project.
PROJECT_FILE = "interlink.yaml"

M = TypeVar("M", bound=BaseModel)


def load_project(path: Path | str, environ: Mapping[str, str] | None = None) -> Project:
    """Load and validate a project folder; raise `ProjectErrors` listing everything wrong.

    `environ` replaces the environment `{{ env.NAME }}` reads; by default that is
    `os.environ` over the project's `.env` file, if it has one.
    """
    root = Path(path)
    loader = _Loader(root, environ)
    config = loader.config()
    connectors = loader.folder("connectors", ConnectorSpec, resolve_secrets=True)
    flows = loader.folder("flows", FlowSpec)
    services = loader.folder("services", ServiceSpec)
    templates = check_references(loader.report, config, connectors, flows, services,
                                 loader.broken)
    loader.report.raise_if_any()
    assert config is not None  # a missing or invalid interlink.yaml is an error above
    _warn(loader.report, config, flows, services)
    return Project(
        root=root,
        config=config.spec,
        connectors={c.spec.name: c.spec for c in connectors},
        flows={f.spec.name: f.spec for f in flows},
        services={s.spec.name: s.spec for s in services},
        templates=templates,
        secrets=frozenset(loader.secrets),
        warnings=loader.report.warnings(),
    )


#: why a webhook without a package is worth a warning on a public address
OPEN_WEBHOOK_WARNING = (
    "trigger: the webhook {path} takes no credentials and the server listens on {host}, not "
    "loopback: anyone who reaches it can start this flow; set trigger.package to a package "
    "whose auth callers must pass"
)
#: why HMAC without a timestamp is worth a warning
REPLAYABLE_HMAC_WARNING = (
    "packages.{package}.auth: the HMAC signature covers the body alone, so a recorded request "
    "can be sent again, forever and to any path; set timestamp_header (see docs/security.md)"
)


def _warn(
    report: Report,
    config: Loaded[ProjectConfig],
    flows: Sequence[Loaded[FlowSpec]],
    services: Sequence[Loaded[ServiceSpec]],
) -> None:
    """Warn about what is valid but risky; each warning is one `report.warn(file, line, …)`."""
    host = config.spec.server.host
    for flow in flows:
        trigger = flow.spec.trigger
        if isinstance(trigger, WebhookTrigger) and trigger.package is None \
                and not is_loopback(host):
            report.warn(flow.relative, flow.line("trigger"),
                        OPEN_WEBHOOK_WARNING.format(path=trigger.path, host=host))
        for at, step in walk_steps(flow.spec.steps):
            for field, message in step.warnings():
                report.warn(flow.relative, flow.line(*at, *field), f"{label(at)}: {message}")
    for service in services:
        _warn_service(report, service)
    for name, package in config.spec.packages.items():
        if isinstance(package.auth, HmacAuth) and package.auth.timestamp_header is None:
            report.warn(config.relative, config.line("packages", name, "auth"),
                        REPLAYABLE_HMAC_WARNING.format(package=name))


def _warn_service(report: Report, service: Loaded[ServiceSpec]) -> None:
    spec = service.spec
    default = next((i for i, r in enumerate(spec.responses) if r.on == "default"), None)
    if default is None:
        return
    for index in range(default + 1, len(spec.responses)):
        rule = spec.responses[index]
        if rule.on in (None, "default"):
            report.warn(service.relative, service.line("responses", index),
                        f"responses[{index}] comes after the `on: default` rule (line "
                        f"{service.line('responses', default)}), which answers every success "
                        "first; default should be the last rule")


class _Loader:
    """Reads and validates the files of one project, collecting problems and secrets."""

    def __init__(self, root: Path, environ: Mapping[str, str] | None) -> None:
        self.root = root
        self.report = Report(root)
        if environ is None:
            environ, problems = project_environ(root)
            self.report.extend(DOTENV_FILE, problems)
        self.environ = environ
        self.secrets: set[str] = set()
        self.broken = Names()

    def config(self) -> Loaded[ProjectConfig] | None:
        """`interlink.yaml`, or `None` (with the problem reported)."""
        if not (self.root / PROJECT_FILE).is_file():
            why = "in this folder" if self.root.is_dir() else "(the folder does not exist)"
            self.report.add(PROJECT_FILE, 1, f"no {PROJECT_FILE} {why}")
            return None
        return self.file(PROJECT_FILE, ProjectConfig, resolve_secrets=True)

    def folder(
        self, name: str, model: type[M], *, resolve_secrets: bool = False
    ) -> list[Loaded[M]]:
        """The valid files of `connectors/`, `flows/` or `services/` (none if it is missing)."""
        folder = self.root / name
        if not folder.is_dir():
            return []
        files = sorted(p for p in folder.iterdir()
                       if p.suffix in (".yaml", ".yml") and p.is_file())
        loaded = (self.file(f"{name}/{p.name}", model, resolve_secrets=resolve_secrets)
                  for p in files)
        return [item for item in loaded if item is not None]

    def file(self, relative: str, model: type[M], *, resolve_secrets: bool) -> Loaded[M] | None:
        """One file read, env-substituted (or env forbidden) and validated."""
        try:
            doc = read_yaml(self.root / relative)
        except YamlError as exc:
            self.report.add(relative, exc.line, exc.message)
            return None
        if resolve_secrets:
            problems, secrets = resolve_env(doc, self.environ)
            self.report.extend(relative, problems)
            self.secrets |= secrets
            spec, problems = validate(model, doc)
        else:
            spec, problems = validate(model, doc, {"forbid_env": True})
        self.report.extend(relative, problems)
        if spec is None:
            self._remember_broken(model, doc.data)
            return None
        return Loaded(relative, doc, spec)

    def _remember_broken(self, model: type[BaseModel], data: dict[Any, Any]) -> None:
        # A flow naming a connector whose file has an error gets no second, misleading error.
        name = data.get("name")
        if not isinstance(name, str):
            return
        if model is ConnectorSpec:
            self.broken.connectors.add(name)
        elif model is FlowSpec:
            self.broken.flows.add(name)
