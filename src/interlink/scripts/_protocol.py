"""The wire format between the engine and a script worker process, and the result codec.

A frame is a 4-byte big-endian body length, a 1-byte tag and an orjson body (or raw bytes for
a function that returned bytes). JSON rather than pickle on purpose: the engine never unpickles
what user code produced, so a script cannot make the engine run code by returning a crafted
object; and "returns JSON-able data" is then enforced by construction.

Inline mode runs results through the same encode/decode, so both modes accept exactly the same
values and the script can never keep a reference into the engine's data.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import orjson

from interlink.scripts.outcome import (
    FunctionValue,
    ScriptCallError,
    ScriptOutcome,
    validate_function_value,
    validate_outcome,
)

__all__ = [
    "BYTES",
    "CALL",
    "ERROR",
    "HEADER",
    "READY",
    "VALUE",
    "decode_function_value",
    "decode_outcome",
    "encode_call",
    "encode_error",
    "encode_function_value",
    "encode_handle_result",
    "frame",
]

HEADER = struct.Struct(">IB")
#: engine → worker: a call (`{"script", "path", "name", "data"}`)
CALL = ord("C")
#: worker → engine: started and limits applied
READY = ord("R")
#: worker → engine: a JSON result
VALUE = ord("J")
#: worker → engine: a function's bytes result
BYTES = ord("B")
#: worker → engine: a failure (`{"kind", "reason", "line"}`)
ERROR = ord("E")


def frame(tag: int, body: bytes = b"") -> bytes:
    """One frame: header and body."""
    return HEADER.pack(len(body), tag) + body


def encode_call(script: str, path: Path, name: str, data: dict[str, Any]) -> bytes:
    """The frame of a call; `input` failure when `data` is not JSON."""
    try:
        body = orjson.dumps({"script": script, "path": str(path), "name": name, "data": data})
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ScriptCallError.because(
            script, "input", f"cannot pass the data to the script: {exc}"
        ) from None
    return frame(CALL, body)


def encode_error(error: ScriptCallError) -> bytes:
    """The frame of a failure."""
    return frame(
        ERROR,
        orjson.dumps({"kind": error.kind, "reason": error.reason, "line": error.line}),
    )


def decode_error(script: str, body: bytes) -> ScriptCallError:
    """The failure a worker sent."""
    fields = orjson.loads(body)
    return ScriptCallError(script, fields["kind"], fields["reason"], fields["line"])


def encode_handle_result(script: str, value: dict[str, Any]) -> bytes:
    """The frame of `handle()`'s (validated) result; `malformed` when it is not JSON."""
    try:
        return frame(VALUE, orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ScriptCallError.because(
            script, "malformed", f"handle() returned data that is not JSON: {exc}"
        ) from None


def decode_outcome(script: str, body: bytes) -> ScriptOutcome:
    """The outcome in a `VALUE` frame, checked again on the engine's side."""
    return validate_outcome(script, orjson.loads(body))


def encode_function_value(script: str, value: FunctionValue) -> bytes:
    """The frame of a function's result: raw bytes, or JSON (`malformed` when it is not)."""
    if isinstance(value, bytes):
        return frame(BYTES, value)
    try:
        return frame(VALUE, orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ScriptCallError.because(
            script, "malformed", f"returned a value that is not JSON: {exc}"
        ) from None


def decode_function_value(script: str, tag: int, body: bytes) -> FunctionValue:
    """The function result in a `VALUE` or `BYTES` frame."""
    if tag == BYTES:
        return body
    return validate_function_value(script, orjson.loads(body))
