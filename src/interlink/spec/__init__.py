"""The project format as data: pydantic models of the project files, and the loaded `Project`.

`load_project(path)` reads and validates every file and raises `ProjectErrors` (each
`FILE:LINE: message`) when anything is wrong; a `Project` that loaded is fully checked:
references resolve, expressions and templates compiled, `{{ env.NAME }}` substituted. What
loads but deserves a second look is in `Project.warnings` (`FILE:LINE: warning: message`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use: step kinds (under `interlink.flows.steps`) build on `spec._base`, and
# `spec.flow` builds on the step kinds, so importing this package must not import `spec.flow`.
_WHERE = {
    "ConnectorSpec": "interlink.spec.connector",
    "FlowSpec": "interlink.spec.flow",
    "Package": "interlink.spec.project",
    "Project": "interlink.spec.loaded",
    "ProjectConfig": "interlink.spec.project",
    "ServiceSpec": "interlink.spec.service",
    "load_project": "interlink.spec.loader",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'interlink.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
