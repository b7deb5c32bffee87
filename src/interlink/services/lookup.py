"""A fast path for the most common expression: a plain dotted path (`request.body.order`).

Mapping entries and context sources are mostly plain paths; walking dicts directly costs
well under a microsecond where a Jinja call costs about fifteen. The fast path gives exactly
what the sandboxed Jinja expression gives (a missing key → None) and hands anything it is
not sure about — a non-dict on the way, a name that is also a dict method (`items`),
a literal (`none`) — to the compiled expression.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

from interlink.expressions import compile_expression

__all__ = ["compile_value"]

#: names Jinja would resolve to a dict method or a literal rather than a key
_NOT_KEYS = frozenset(dir(dict)) | {"true", "false", "none", "True", "False", "None"} | set(
    keyword.kwlist
) | {"and", "or", "not", "in", "is", "if", "else"}


def compile_value(source: str) -> Callable[[dict[str, Any]], Any]:
    """`context -> value` for an expression; plain dotted paths skip Jinja."""
    expression = compile_expression(source)
    parts = source.strip().split(".")
    if not all(p.isidentifier() and p not in _NOT_KEYS for p in parts):
        return expression.evaluate
    first, rest = parts[0], tuple(parts[1:])

    def lookup(context: dict[str, Any]) -> Any:
        value = context.get(first)
        for part in rest:
            if value is None:
                return None
            if type(value) is not dict:
                return expression.evaluate(context)
            value = value.get(part)
        return value

    return lookup
