"""Validating a YAML document against a spec model, with errors as `(line, message)`.

pydantic reports a location (`loc`) per error. A loc mostly follows the data, with two kinds of
extra parts: the tag of a discriminated union (`("steps", 0, "connector", "endpoint")`, where
`connector` is the step's `type`) and, last, the member of a plain union that was tried
(`(…, "value", "str")`). `_resolve` walks the loc through the document, skipping both, so the
message names the path the user wrote and the line is that of the key (or of the nearest
enclosing item when the key is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from interlink.spec._yaml import DataPath, YamlDocument, describe, format_path

__all__ = ["Problem", "validate"]

M = TypeVar("M", bound=BaseModel)

#: Discriminator keys of the spec models' tagged unions (step/auth `type`, source `from`).
_TAG_KEYS = ("type", "from")

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: a 1-based line and a message."""

    line: int
    message: str


def validate(
    model: type[M], doc: YamlDocument, context: Mapping[str, Any] | None = None
) -> tuple[M | None, list[Problem]]:
    """Validate `doc` as `model`: the instance, or `None` and the problems found."""
    try:
        return model.model_validate(doc.data, context=dict(context or {})), []
    except ValidationError as exc:
        return None, _problems(exc, doc)


def _problems(exc: ValidationError, doc: YamlDocument) -> list[Problem]:
    # Errors of one plain union (`str | int | float | bool`) arrive one per member; they are
    # merged into one "expected A or B" message per path.
    merged: dict[DataPath, list[str]] = {}
    unions: dict[DataPath, Any] = {}
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        path, rest = _resolve(doc, tuple(error["loc"]))
        if rest and error["type"] in _EXPECTED:
            merged.setdefault(path, []).append(_EXPECTED[error["type"]])
            unions[path] = error["input"]
            continue
        problems.append(_problem(doc, error, path, rest))
    for path, expected in merged.items():
        options = list(dict.fromkeys(expected))
        choices = ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]
        message = f"expected {choices}, got {describe(unions[path])}"
        problems.append(Problem(doc.line_of(path), _at(path, message)))
    return problems


def _resolve(doc: YamlDocument, loc: tuple[Any, ...]) -> tuple[DataPath, tuple[Any, ...]]:
    """The part of `loc` that exists in the document, and the rest (tags dropped)."""
    path: DataPath = ()
    for index, part in enumerate(loc):
        node = doc.get(path)
        last = index == len(loc) - 1
        if isinstance(node, dict) and not last and any(node.get(k) == part for k in _TAG_KEYS):
            continue  # the tag a discriminated union adds after the union's own path
        if doc.has((*path, part)):
            path = (*path, part)
            continue
        return path, tuple(loc[index:])
    return path, ()


def _problem(doc: YamlDocument, error: Any, path: DataPath, rest: tuple[Any, ...]) -> Problem:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error["input"]
    if kind == "missing" and rest:
        return Problem(doc.line_of(path), _at(path, f"missing required key {rest[0]!r}"))
    if kind == "extra_forbidden":
        parent, key = (path, rest[0]) if rest else (path[:-1], path[-1] if path else "?")
        return Problem(doc.line_of(path), _at(parent, f"unknown key {key!r}"))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        keys = [k.strip(" '") for k in str(ctx.get("discriminator", "")).split("|")]
        key = next((k for k in keys if isinstance(value, dict) and k in value), keys[-1])
        if kind == "union_tag_not_found":
            return Problem(doc.line_of(path), _at(path, f"missing required key {key!r}"))
        tag_path = (*path, key)
        message = f"unknown {key} {ctx.get('tag')!r}, expected one of {ctx.get('expected_tags')}"
        return Problem(doc.line_of(tag_path), _at(tag_path, message))
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {describe(value)}"
    elif kind == "literal_error":
        message = f"expected {ctx.get('expected')}, got {describe(value)}"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx["error"]) if "error" in ctx else error["msg"]
    elif kind == "too_short":
        noun = "entry" if ctx.get("field_type") == "Dictionary" else "item"
        count = ctx.get("min_length", 1)
        message = f"needs at least {count} {noun}{'' if count == 1 else 's'}"
    elif kind == "string_pattern_mismatch":
        message = f"expected text matching {ctx.get('pattern')!r}, got {describe(value)}"
    else:
        # pydantic's own wording ("Input should be greater than or equal to 1"), made to read
        # as part of our sentence.
        msg: str = error["msg"]
        msg = msg.removeprefix("Input ").removeprefix("Value error, ")
        message = f"{msg[:1].lower()}{msg[1:]}, got {describe(value)}"
    return Problem(doc.line_of(path), _at(path, message))


def _at(path: DataPath, message: str) -> str:
    return f"{format_path(path)}: {message}" if path else message
