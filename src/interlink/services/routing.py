"""Route matching, compiled once: method + path, with `{param}` segments.

Static paths are found with one dict lookup; paths with parameters are tried as compiled
regular expressions in the order the services were given. A path parameter matches one
segment (no `/`); `{name:path}` matches the rest of the path, slashes included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from interlink.services.failures import ServiceError

__all__ = ["Router"]

T = TypeVar("T")

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


def compile_path(path: str) -> re.Pattern[str] | None:
    """A regex for a path with `{params}`, or None for a static path."""
    if "{" not in path:
        return None
    pattern, last = "^", 0
    for match in _PARAM.finditer(path):
        pattern += re.escape(path[last:match.start()])
        body = ".+" if match.group(2) else "[^/]+"
        pattern += f"(?P<{match.group(1)}>{body})"
        last = match.end()
    rest = path[last:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"bad path parameter in {path!r}")
    return re.compile(pattern + re.escape(rest) + "$")


@dataclass(slots=True)
class _Methods(Generic[T]):
    static: dict[str, T] = field(default_factory=dict)
    dynamic: list[tuple[re.Pattern[str], T]] = field(default_factory=list)


class Router(Generic[T]):
    """Maps (method, path) to a target; tells 404 from 405."""

    __slots__ = ("_methods", "_paths")

    def __init__(self) -> None:
        self._methods: dict[str, _Methods[T]] = {}
        self._paths: dict[str, set[str]] = {}

    def add(self, method: str, path: str, target: T, *, name: str) -> None:
        """Route `method path` to `target`; a duplicate route is a `ServiceError`."""
        try:
            regex = compile_path(path)
        except ValueError as exc:
            raise ServiceError(f"service {name}: {exc}") from None
        methods = self._methods.setdefault(method, _Methods())
        if path in self._paths.setdefault(method, set()):
            raise ServiceError(f"service {name}: another service already answers {method} {path}")
        self._paths[method].add(path)
        if regex is None:
            methods.static[path] = target
        else:
            methods.dynamic.append((regex, target))

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target and path parameters for a request, or None."""
        methods = self._methods.get(method)
        if methods is None:
            return None
        target = methods.static.get(path)
        if target is not None:
            return target, {}
        for regex, candidate in methods.dynamic:
            found = regex.match(path)
            if found is not None:
                return candidate, found.groupdict()
        return None

    def allowed(self, path: str) -> list[str]:
        """The methods some service answers at `path` (for 405 and `Allow`)."""
        return sorted(m for m in self._methods if self.match(m, path) is not None)
