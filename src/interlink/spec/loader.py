"""Placeholder: the project loader is being written."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlink.spec import Project


def load_project(path: Path | str) -> Project:
    """Load and validate a project folder."""
    raise NotImplementedError
