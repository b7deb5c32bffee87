"""Integers in JSON past 64 bits: orjson reads them as floats, without a word.

`orjson.loads` keeps integers from -2**63 to 2**64-1 exactly and turns a wider one into the
nearest float (`18446744073709551617` → `1.8446744073709552e+19`), so an order id past that
range would be sent on, and answered, changed. Only a literal of 19 digits or more can be that
wide, so a text without one (nearly every text) costs one scan in C; one with it is read again
by Python's `json`, whose integers are exact.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["INT_MAX", "INT_MIN", "WideInteger", "loads", "refuse_wide"]

#: the integers orjson (and so the store) holds exactly
INT_MIN, INT_MAX = -(2**63), 2**64 - 1

#: every digit to `0`, every other byte to a space: a run of 19 digits is then found by a
#: substring search (C speed; the regex `\d{19}` took 14 µs on an 800-byte order)
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_RUN = b"0" * 19


class WideInteger(ValueError):
    """A JSON integer outside `INT_MIN`…`INT_MAX`."""


def _has_long_digits(raw: bytes | str) -> bool:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return _RUN in data.translate(_DIGITS)


def loads(raw: bytes | str) -> Any:
    """`orjson.loads`, with every integer exact, however wide (raises `orjson.JSONDecodeError`
    as it does)."""
    value = orjson.loads(raw)
    return json.loads(raw) if _has_long_digits(raw) else value


def refuse_wide(raw: bytes | str) -> None:
    """Raise `WideInteger` when the JSON text `raw` (already parsed by orjson, so valid) holds
    an integer outside `INT_MIN`…`INT_MAX`."""
    if _has_long_digits(raw):
        json.loads(raw, parse_int=_narrow)


def _narrow(literal: str) -> int:
    number = int(literal)
    if not INT_MIN <= number <= INT_MAX:
        raise WideInteger(f"the integer {literal[:40]}{'…' if len(literal) > 40 else ''} "
                          "is past 64 bits")
    return number
