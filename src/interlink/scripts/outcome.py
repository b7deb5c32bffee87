"""The call contract of a user script, shared by both isolation modes.

A script's `handle(data)` must return a dict; it may add `response_code` (an int from 0 to 4),
`message` (a str written to the run log) and `logs` (a list of str lines). A named function
(`scripts/x.py:name`, used by services) must return str, bytes, int, float, bool, None, a list
or a dict. Whatever a script returns is checked here, by the same functions in the worker
process and in inline mode, so both modes fail the same garbage with the same reason.

Failures are `ScriptCallError`s (a `ScriptError`) whose message names the script and says what
happened, e.g. `script scripts/x.py: handle() returned list, expected a dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from interlink.errors import ScriptError

__all__ = [
    "CONTROL_KEYS",
    "FailureKind",
    "FunctionValue",
    "ScriptCallError",
    "ScriptOutcome",
    "type_name",
    "validate_function_value",
    "validate_outcome",
]

FailureKind = Literal[
    "raised",  # the script (or its module's top level) raised an exception
    "load",  # the file is missing, has a syntax error or lacks the function
    "timeout",  # the call took longer than its time limit
    "memory",  # the call exhausted the memory limit
    "crashed",  # the worker process died under the script
    "malformed",  # the script returned something outside the contract
    "input",  # the data given to the script could not be passed to it (not JSON)
    "unavailable",  # the pool is closed or a worker process could not start
]
"""What went wrong in a script call, for callers that decide by category."""

FunctionValue: TypeAlias = str | bytes | int | float | bool | list[Any] | dict[str, Any] | None
"""What a named function may return."""

#: keys a script adds to `data` to talk to the engine; they are lifted out of the data
CONTROL_KEYS = ("response_code", "message", "logs")


class ScriptCallError(ScriptError):
    """A script call failed; `str()` is the full reason, naming the script.

    `script` is the script as the project names it (`scripts/x.py` or `scripts/x.py:name`),
    `kind` the category of failure and `line` the script's line it happened on, when known.
    """

    def __init__(
        self, script: str, kind: FailureKind, reason: str, line: int | None = None
    ) -> None:
        self.script = script
        self.kind: FailureKind = kind
        self.line = line
        super().__init__(reason)

    @property
    def reason(self) -> str:
        """The full message, e.g. `script scripts/x.py: timed out after 2s`."""
        return str(self)

    @classmethod
    def because(
        cls, script: str, kind: FailureKind, detail: str, line: int | None = None
    ) -> ScriptCallError:
        """`script <script>: <detail>` — the usual shape of a reason."""
        return cls(script, kind, f"script {script}: {detail}", line)


@dataclass(frozen=True, slots=True)
class ScriptOutcome:
    """What a `handle(data)` call produced, checked against the contract.

    `data` is the returned dict without the control keys (`response_code`, `message`,
    `logs`), which are lifted into their own fields. `waited` is the seconds the call waited
    for a free worker process before it ran (0 when one was free, and inline).
    """

    data: dict[str, Any]
    response_code: int | None = None
    message: str | None = None
    logs: list[str] = field(default_factory=list)
    waited: float = 0.0


def type_name(value: object) -> str:
    """The name users know a value's type by: `list`, `str`, `NoneType`…"""
    return type(value).__name__


def validate_outcome(script: str, value: object) -> ScriptOutcome:
    """Check what `handle()` returned and split it into a `ScriptOutcome`.

    Raises `ScriptCallError` (kind `malformed`) naming the first thing that is wrong.
    """

    def bad(detail: str) -> ScriptCallError:
        return ScriptCallError.because(script, "malformed", detail)

    if not isinstance(value, dict):
        raise bad(f"handle() returned {type_name(value)}, expected a dict")
    for key in value:
        if not isinstance(key, str):
            raise bad(f"handle() returned a dict with key {key!r}, keys must be str")
    data = dict(value)
    code = data.pop("response_code", None)
    message = data.pop("message", None)
    logs = data.pop("logs", None)
    # bool is an int subclass: `True` is a mistake, not response code 1
    if code is not None and (
        not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 4
    ):
        shown = repr(code) if len(repr(code)) <= 40 else repr(code)[:40] + "…"
        raise bad(f"response_code must be an int from 0 to 4, got {type_name(code)} {shown}")
    if message is not None and not isinstance(message, str):
        raise bad(f"message must be a str, got {type_name(message)}")
    if logs is not None:
        if not isinstance(logs, list):
            raise bad(f"logs must be a list of str, got {type_name(logs)}")
        for n, line in enumerate(logs):
            if not isinstance(line, str):
                raise bad(f"logs must be a list of str, item {n} is {type_name(line)}")
    return ScriptOutcome(data=data, response_code=code, message=message, logs=list(logs or []))


def validate_function_value(script: str, value: object) -> FunctionValue:
    """Check what a named function returned: str, bytes, a number, bool, None, list or dict.

    Whether nested values are JSON is checked when the value is encoded.
    """
    if value is None or isinstance(value, str | bytes | int | float | bool | list | dict):
        return value
    raise ScriptCallError.because(
        script,
        "malformed",
        f"returned {type_name(value)}, expected str, bytes, int, float, bool, None, list or dict",
    )
