"""`Project`: what `load_project` returns — a project whose files all loaded and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from interlink.expressions import Template
from interlink.spec.connector import ConnectorSpec
from interlink.spec.flow import FlowSpec
from interlink.spec.project import ProjectConfig
from interlink.spec.service import ServiceSpec

__all__ = ["Project"]


@dataclass(frozen=True)
class Project:
    """A loaded, validated integration project."""

    root: Path
    config: ProjectConfig
    connectors: dict[str, ConnectorSpec] = field(default_factory=dict)
    flows: dict[str, FlowSpec] = field(default_factory=dict)
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    #: compiled templates by their project-relative path (`templates/held.xml`)
    templates: dict[str, Template] = field(default_factory=dict)
    #: values substituted from the environment; redacted wherever run data is shown
    secrets: frozenset[str] = frozenset()
    #: `FILE:LINE: warning: message` lines about what loads but deserves a second look
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The project's name from `interlink.yaml`."""
        return self.config.name

    def masked(self) -> set[str]:
        """Every value to mask wherever the engine writes or logs: the environment's
        substitutions and the credentials callers present."""
        return set(self.secrets) | self.config.credentials()

    def path(self, relative: str) -> Path:
        """A project-relative path (`scripts/x.py`) made absolute."""
        return self.root / relative
