"""The project format as data: pydantic models of the project files, and the loaded `Project`.

`load_project(path)` reads and validates every file and raises `ProjectErrors` (each
`FILE:LINE: message`) when anything is wrong; a `Project` that loaded is fully checked:
references resolve, expressions and templates compiled, `{{ env.NAME }}` substituted. What
loads but deserves a second look is in `Project.warnings` (`FILE:LINE: warning: message`).
"""

from __future__ import annotations

from interlink.spec.connector import ConnectorSpec
from interlink.spec.flow import FlowSpec
from interlink.spec.loaded import Project
from interlink.spec.loader import load_project
from interlink.spec.project import Package, ProjectConfig
from interlink.spec.service import ServiceSpec

__all__ = [
    "ConnectorSpec",
    "FlowSpec",
    "Package",
    "Project",
    "ProjectConfig",
    "ServiceSpec",
    "load_project",
]
