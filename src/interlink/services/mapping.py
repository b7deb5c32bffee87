"""`request.map`: write expression values into `page` (or `session`) of the context, in order.

A target is a dotted path whose first part is `page` or `session` (`page.order.id`); missing
dicts on the way are created. Entries run in file order, so a later expression can read what
an earlier one wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression
from interlink.services.failures import MappingFailure, ServiceError

__all__ = ["MapEntry", "RequestMapper"]

_ROOTS = ("page", "session")


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One compiled `target: expression` entry."""

    target: str
    root: str
    path: tuple[str, ...]
    evaluate: Callable[[dict[str, Any]], Any]


class RequestMapper:
    """The compiled `request.map` of one service."""

    __slots__ = ("entries", "writes_session")

    def __init__(self, service: str, entries: Mapping[str, str]) -> None:
        compiled = []
        for target, source in entries.items():
            root, *path = target.split(".")
            if root not in _ROOTS or not path or not all(p.isidentifier() for p in path):
                raise ServiceError(
                    f"service {service}: map target {target!r} must be page.<name>[.<name>…] "
                    "or session.<name>[.<name>…]"
                )
            if target == "session.id":
                raise ServiceError(f"service {service}: session.id is the session's own id "
                                   "and cannot be mapped")
            value_of = compile_expression(source).evaluate
            compiled.append(MapEntry(target, root, tuple(path), value_of))
        self.entries = tuple(compiled)
        self.writes_session = any(e.root == "session" for e in compiled)

    def apply(self, context: dict[str, Any]) -> None:
        """Evaluate every entry in order, writing into the context; `MappingFailure` on error."""
        for entry in self.entries:
            try:
                value = entry.evaluate(context)
            except ExpressionError as exc:
                raise MappingFailure(
                    "map_failed", f"mapping {entry.target} failed", str(exc)
                ) from None
            target = context[entry.root]
            if target is None:
                raise MappingFailure(
                    "map_failed", f"mapping {entry.target} failed: the package is stateless"
                )
            for part in entry.path[:-1]:
                nxt = target.get(part)
                if nxt is None:
                    nxt = target[part] = {}
                elif not isinstance(nxt, dict):
                    raise MappingFailure(
                        "map_failed", f"mapping {entry.target} failed: {part} is not a mapping"
                    )
                target = nxt
            target[entry.path[-1]] = value
