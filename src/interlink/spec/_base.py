"""Building blocks shared by every spec model: the strict base class and typed scalars.

The scalar types validate *and compile* user text at load time (durations parsed, expressions
and interpolated strings compiled into the shared cache of `interlink.expressions`), so a
syntax error is a validation error with a location, never a surprise at request time.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
)
from pydantic.json_schema import WithJsonSchema

from interlink.errors import ExpressionError
from interlink.expressions import compile_expression, compile_interpolation, expression_names

__all__ = ["ByteSize", "Duration", "Expr", "Interp", "Name", "Spec", "duration_field"]


class Spec(BaseModel):
    """Base of every project-file model: strict, frozen, unknown keys rejected."""

    model_config = ConfigDict(
        strict=True, frozen=True, extra="forbid", populate_by_name=True
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _decimal(number: float) -> str:
    """`number` exactly, in plain decimals: 30.0 → `30`, 2592000.0 → `2592000`, 1e-05 →
    `0.00001`."""
    text = f"{Decimal(repr(number)):f}"
    return text.removesuffix(".0")


def parse_duration(value: Any) -> float:
    """`"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"` → seconds (a float)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(
        f"bad duration {value!r}: expected a number and a unit (ms, s, m, h, d), like '10s'"
    )


_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_size(value: Any) -> int:
    """`"512KB"`, `"10MB"` → bytes."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"bad size {value!r}: expected a number and a unit (B, KB, MB, GB)")


def _forbid_env(source: str, info: ValidationInfo, *, interpolated: bool) -> None:
    # Secrets resolve only in interlink.yaml and connectors/; flows and services run with
    # request data in scope, so `env` there could echo a secret into a response or a log.
    forbid = bool(info.context and info.context.get("forbid_env"))
    if forbid and "env" in expression_names(source, interpolated=interpolated):
        raise ValueError(
            "env is resolved only in interlink.yaml and connectors/, "
            "so that no flow or service can echo a secret"
        )


def _check_expression(source: str, info: ValidationInfo) -> str:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
    _forbid_env(source, info, interpolated=False)
    return source


def _check_interpolation(source: str, info: ValidationInfo) -> str:
    try:
        compile_interpolation(source)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
    _forbid_env(source, info, interpolated=True)
    return source


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    # Dumped back as text so a dumped spec (kept with each run) validates again: exact, and
    # never with an exponent (`:g` wrote 14 days as 1.2096e+06s, which is no duration).
    PlainSerializer(lambda seconds: f"{_decimal(seconds)}s", return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)$"}),
]
"""A duration written `500ms`, `10s`, `5m`, `1h`, `1d`; held as seconds."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": "string", "pattern": r"^\d+\s*(B|KB|MB|GB)?$"}),
]
"""A size written `512KB`, `10MB`; held as bytes."""

Expr = Annotated[
    str,
    AfterValidator(_check_expression),
    WithJsonSchema({"type": "string", "description": "a Jinja expression"}),
]
"""A Jinja expression (compiled at load)."""

Interp = Annotated[
    str,
    AfterValidator(_check_interpolation),
    WithJsonSchema({"type": "string", "description": "text that may interpolate {{ … }}"}),
]
"""A string that may interpolate `{{ … }}` (compiled at load)."""

Name = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"}),
    AfterValidator(lambda v: _check_name(v)),
]
"""A name users refer to things by: letters, digits, `_`, `-`, `.`."""

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"bad name {value!r}: use letters, digits, '_', '-' and '.'")
    return value


def duration_field(default: str, description: str) -> Any:
    """A `Duration` field's default, written as users write it (`"30s"`) in the JSON Schema."""
    return Field(parse_duration(default), description=description,
                 json_schema_extra={"default": default})
