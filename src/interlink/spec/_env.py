"""Substituting `{{ env.NAME }}` in `interlink.yaml` and `connectors/` when a project loads.

A string that reads `env` is rendered once, with only `env` in scope, and replaced by the result
before the file is validated; the values read are kept as the project's secrets so that they can
be redacted wherever run data is shown. A string may not mix `env` with names that exist only at
run time (`{{ env.HOST }}/{{ payload.id }}`): the first would be resolved now and the second later,
which is never what the author meant.

Every variable a string reads must be set, even under `| default(…)`: a silently empty password
is worse than an error at load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interlink.errors import ExpressionError
from interlink.expressions import compile_interpolation, expression_names
from interlink.spec._validation import Problem
from interlink.spec._yaml import YamlDocument

__all__ = ["resolve_env"]


class _Environ(dict[str, str]):
    """`os.environ` as the template sees it, remembering which names were read or missing."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        self.used: dict[str, str] = {}
        self.missing: list[str] = []

    def __getitem__(self, key: str) -> str:
        if dict.__contains__(self, key):
            value = dict.__getitem__(self, key)
            self.used[key] = value
            return value
        if key not in self.missing:
            self.missing.append(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default


#: keys whose env-provided values are addresses, not credentials: they stay readable in run
#: logs (a URL masked as `***/orders` helps nobody). Everything else read from env is a secret.
PUBLIC_KEYS = frozenset({"base_url", "token_url", "host", "port"})


def resolve_env(
    doc: YamlDocument, environ: Mapping[str, str] | None = None
) -> tuple[list[Problem], set[str]]:
    """Render every `env`-reading string of `doc` in place: the problems and the values read."""
    env = _Environ(os.environ if environ is None else environ)
    problems: list[Problem] = []
    secrets: set[str] = set()
    for path, text in list(doc.strings()):
        if "{{" not in text and "{%" not in text:
            continue
        line = doc.line_of(path)
        if "env" in text:
            try:
                compile_interpolation(text)
            except ExpressionError as exc:
                problems.append(Problem(line, str(exc)))
                continue
        names = expression_names(text, interpolated=True)
        if "env" not in names:
            continue
        others = sorted(names - {"env"})
        if others:
            problems.append(Problem(line, (
                f"{text!r} mixes env (resolved when the project loads) with "
                f"{', '.join(others)} (known only at run time); split them"
            )))
            continue
        env.used.clear()
        env.missing.clear()
        try:
            value = compile_interpolation(text).render({"env": env})
        except ExpressionError as exc:
            problems.append(Problem(line, str(exc)))
            continue
        if env.missing:
            problems.extend(
                Problem(line, f"environment variable {name} is not set") for name in env.missing
            )
            continue
        if not (path and path[-1] in PUBLIC_KEYS):
            secrets.update(v for v in env.used.values() if v)
        doc.replace(path, value)
    return problems, secrets


DOTENV_FILE = ".env"


def read_dotenv(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """`KEY=VALUE` lines of a project's `.env` file (`#` comments, optional quotes, `export`).

    Values from the real environment win over these (see `project_environ`).
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    if not path.is_file():
        return values, problems
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").strip()
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            problems.append(Problem(number, "expected NAME=value"))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values, problems


def project_environ(root: Path) -> tuple[dict[str, str], list[Problem]]:
    """The environment `{{ env.NAME }}` reads: the project's `.env` under `os.environ`."""
    values, problems = read_dotenv(root / DOTENV_FILE)
    return {**values, **os.environ}, problems
