"""Collecting every problem of a project load, each as `FILE:LINE: message`, and warnings.

An error stops the load (`ProjectErrors`); a warning (`FILE:LINE: warning: message`) is about a
project that loads and works but does something users should know about. Warnings end up in
`Project.warnings`, which `interlink check` and `serve` print.

FILE is shown relative to the current directory when the file is under it, and as the project
path joined with the file's project-relative path otherwise; either way an editor or terminal
can open it from where `interlink check` ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from interlink.errors import ProjectError, ProjectErrors
from interlink.spec._validation import Problem

__all__ = ["Report"]


class Report:
    """The errors and warnings found so far in one project load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.errors: list[ProjectError] = []
        self._warnings: set[tuple[str, int, str]] = set()
        self._cwd = Path.cwd().resolve()

    def shown(self, relative: str) -> str:
        """How the project file `relative` (`flows/x.yaml`) is named in messages."""
        path = self.root / relative
        try:
            return path.resolve().relative_to(self._cwd).as_posix()
        except (ValueError, OSError):
            return str(path)

    def add(self, relative: str, line: int, message: str) -> None:
        """Record one problem in the project file `relative`."""
        # One error per output line, whatever a library's message looks like.
        message = " ".join(message.splitlines()).strip()
        self.errors.append(ProjectError(self.shown(relative), line, message))

    def extend(self, relative: str, problems: Iterable[Problem]) -> None:
        """Record problems found in the project file `relative`."""
        for problem in problems:
            self.add(relative, problem.line, problem.message)

    def warn(self, relative: str, line: int, message: str) -> None:
        """Record a warning about line `line` of the project file `relative`."""
        message = " ".join(message.splitlines()).strip()
        self._warnings.add((self.shown(relative), line, message))

    def warnings(self) -> tuple[str, ...]:
        """The warnings as `FILE:LINE: warning: message` lines, sorted by file and line."""
        return tuple(f"{file}:{line}: warning: {message}"
                     for file, line, message in sorted(self._warnings))

    def raise_if_any(self) -> None:
        """Raise `ProjectErrors` (sorted by file and line, duplicates dropped) if any."""
        if not self.errors:
            return
        unique = {(e.file, e.line, e.message): e for e in self.errors}
        raise ProjectErrors([unique[key] for key in sorted(unique)])
