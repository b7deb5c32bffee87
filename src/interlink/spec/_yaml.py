"""Reading project YAML files (YAML 1.2, ruamel.yaml) into plain data that remembers its lines.

pydantic validates plain `dict`/`list`/`str` data, while error messages need the line a value
was written on. `read_yaml` returns both: the data, converted from ruamel's round-trip tree, and
a table from each *path* (`("steps", 0, "connector")`) to its 1-based line. A mapping entry's
line is the line of its key; a sequence item's line is the line the item starts on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = [
    "DataPath",
    "YamlDocument",
    "YamlError",
    "describe",
    "format_path",
    "plain_scalar",
    "read_yaml",
]

DataPath = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and sequence indexes from the top."""

#: Aliases let a few lines expand to a huge tree ("billion laughs"); project files never
#: need more values than this.
MAX_VALUES = 200_000


class YamlError(Exception):
    """A file could not be read as a YAML mapping; carries the 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass
class YamlDocument:
    """A YAML file as plain data plus the line of every path in it."""

    data: dict[Any, Any]
    lines: dict[DataPath, int] = field(default_factory=dict)

    def has(self, path: DataPath) -> bool:
        """True when `path` was written in the file."""
        return path == () or path in self.lines

    def line_of(self, path: DataPath) -> int:
        """The line of `path`, or of its nearest ancestor that was written (1 at worst)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def get(self, path: DataPath) -> Any:
        """The value at `path` (`None` when it is not there)."""
        node: Any = self.data
        for part in path:
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not in_list and not (isinstance(node, dict) and part in node):
                return None
            node = node[part]
        return node

    def strings(self) -> Iterator[tuple[DataPath, str]]:
        """Every string value (not key) in the document with its path."""
        stack: list[tuple[DataPath, Any]] = [((), self.data)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, str):
                yield path, node
            elif isinstance(node, dict):
                stack.extend(((*path, k), v) for k, v in node.items())
            elif isinstance(node, list):
                stack.extend(((*path, i), v) for i, v in enumerate(node))

    def replace(self, path: DataPath, value: Any) -> None:
        """Replace the value at `path` (which must exist and not be the top level)."""
        parent = self.get(path[:-1])
        parent[path[-1]] = value


def read_yaml(path: Path) -> YamlDocument:
    """Read a YAML file whose top level is a mapping; raise `YamlError` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(1, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise YamlError(1, f"cannot read: {exc.strerror}") from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except YAMLError as exc:  # errors without a position
        raise YamlError(1, str(exc).strip()) from None
    if tree is None:
        raise YamlError(1, "the file is empty; expected a mapping of keys to values")
    if not isinstance(tree, CommentedMap):
        raise YamlError(1, f"expected a mapping of keys to values, got {describe(tree)}")
    doc = YamlDocument(data={})
    converter = _Converter(doc.lines)
    doc.data = converter.mapping(tree, ())
    return doc


def _syntax_error(exc: MarkedYAMLError) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = exc.problem or exc.context or "invalid YAML"
    if type(exc).__name__ == "DuplicateKeyError":
        # ruamel's text carries a paragraph about how to turn the check off; we keep the facts.
        first = exc.context_mark.line + 1 if exc.context_mark is not None else None
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        where = f" (the mapping starts at line {first})" if first else ""
        return YamlError(line, f"duplicate key {key!r}{where}")
    context = f" ({exc.context} at line {exc.context_mark.line + 1})" if (
        exc.context and exc.problem and exc.context_mark is not None
    ) else ""
    return YamlError(line, f"YAML syntax error: {problem}{context}")


class _Converter:
    """Copies a ruamel round-trip tree into plain Python data, recording lines on the way."""

    def __init__(self, lines: dict[DataPath, int]) -> None:
        self.lines = lines
        self.count = 0
        self.active: set[int] = set()  # containers being converted: catches recursive aliases

    def value(self, node: Any, path: DataPath, line: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise YamlError(line, f"the file expands to more than {MAX_VALUES:,} values")
        if isinstance(node, CommentedMap | CommentedSeq):
            if id(node) in self.active:
                raise YamlError(line, "an alias refers to a mapping or list that contains it")
            self.active.add(id(node))
            try:
                if isinstance(node, CommentedMap):
                    return self.mapping(node, path)
                return self.sequence(node, path)
            finally:
                self.active.discard(id(node))
        return plain_scalar(node)

    def mapping(self, node: CommentedMap, path: DataPath) -> dict[Any, Any]:
        own = node.lc.line + 1 if node.lc.line is not None else 1
        out: dict[Any, Any] = {}
        for key, val in node.items():
            key = plain_scalar(key)
            try:
                line = node.lc.key(key)[0] + 1
            except (KeyError, TypeError):  # merged (`<<`) keys have no position of their own
                line = own
            self.lines[(*path, key)] = line
            out[key] = self.value(val, (*path, key), line)
        return out

    def sequence(self, node: CommentedSeq, path: DataPath) -> list[Any]:
        own = node.lc.line + 1 if node.lc.line is not None else 1
        out: list[Any] = []
        for index, val in enumerate(node):
            try:
                line = node.lc.item(index)[0] + 1
            except (KeyError, TypeError):
                line = own
            self.lines[(*path, index)] = line
            out.append(self.value(val, (*path, index), line))
        return out


def plain_scalar(value: Any) -> Any:
    """A ruamel scalar (ScalarInt, ScalarFloat, LiteralScalarString, …) as its plain type."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value  # YAML timestamps stay dates; the models reject them where not wanted


def describe(value: Any) -> str:
    """How a value reads in an error message: `'x'`, `42`, `a mapping`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str | int | float):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "…'"
    return f"a {type(value).__name__}"


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: DataPath) -> str:
    """`("steps", 0, "retry")` → `steps[0].retry`; odd keys are quoted: `map['page.x']`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out
