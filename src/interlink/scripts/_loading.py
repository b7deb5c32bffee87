"""Loading script files and calling their functions; used by worker processes and inline mode.

Modules are cached by path and reloaded when the file's mtime or size changes, so an edited
script takes effect on its next call without a restart. Sources are compiled here rather than
imported, so no `__pycache__` is written into the project and a stale `.pyc` (whose mtime has
one-second resolution) can never shadow a quick edit.
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlink.scripts.outcome import (
    FunctionValue,
    ScriptCallError,
    validate_function_value,
    validate_outcome,
)

__all__ = ["HANDLE", "ScriptModules", "describe_exception"]

#: the function a script step or response script calls
HANDLE = "handle"
_MAX_TEXT = 300


def describe_exception(
    script: str, path: Path, exc: BaseException, *, loading: bool = False, memory_note: str = ""
) -> ScriptCallError:
    """Turn what a script raised into a one-line reason with the script's line number.

    No traceback dump: the reason is the exception type and message, plus the line of the
    innermost frame that belongs to the script file (the call site, when the exception came
    from a library the script called).
    """
    if isinstance(exc, MemoryError):
        return ScriptCallError.because(script, "memory", f"ran out of memory{memory_note}")
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        return ScriptCallError.because(
            script, "load", f"syntax error: {exc.msg} (line {exc.lineno})", exc.lineno
        )
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    try:
        text = str(exc)
    except Exception:  # a user exception whose __str__ itself raises
        text = "<message could not be shown>"
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + "…"
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = f" (line {line})" if line is not None else ""
    when = " while loading" if loading else ""
    return ScriptCallError(script, "raised", f"script {script} raised {what}{where}{when}", line)


class ScriptModules:
    """Script modules loaded once per process, by path, reloaded when the file changes."""

    def __init__(self, memory_note: str = "") -> None:
        self._cache: dict[str, tuple[tuple[int, int], types.ModuleType]] = {}
        self._memory_note = memory_note

    def function(self, script: str, path: Path, name: str) -> Callable[[Any], Any]:
        """The function `name` of the script at `path`, loading the module if needed."""
        module = self._module(script, path)
        fn = getattr(module, name, None)
        if not callable(fn):
            wanted = "handle(data)" if name == HANDLE else f"{name}(context)"
            raise ScriptCallError.because(script, "load", f"has no function {wanted}")
        return fn  # type: ignore[no-any-return]

    def call_handle(self, script: str, path: Path, data: dict[str, Any]) -> dict[str, Any]:
        """Call `handle(data)` and check its result against the contract.

        Returns the raw dict the script returned (already validated); the caller encodes it.
        """
        fn = self.function(script, path, HANDLE)
        try:
            value = fn(data)
        except BaseException as exc:  # SystemExit too: a script must not end its process
            raise describe_exception(script, path, exc, memory_note=self._memory_note) from None
        validate_outcome(script, value)
        return value  # type: ignore[no-any-return]  # validated as a dict just above

    def call_function(
        self, script: str, path: Path, name: str, context: dict[str, Any]
    ) -> FunctionValue:
        """Call the named function with the context and check its result's type."""
        fn = self.function(script, path, name)
        try:
            value = fn(context)
        except BaseException as exc:
            raise describe_exception(script, path, exc, memory_note=self._memory_note) from None
        return validate_function_value(script, value)

    def _module(self, script: str, path: Path) -> types.ModuleType:
        key = str(path)
        try:
            stat = os.stat(path)
            version = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == version:
                return cached[1]
            source = path.read_bytes()
        except FileNotFoundError:
            raise ScriptCallError.because(script, "load", "file not found") from None
        except OSError as exc:
            raise ScriptCallError.because(script, "load", f"cannot read: {exc}") from None
        # A stable, unique module name, registered in sys.modules so that dataclasses,
        # typing and pickle inside the script can find their own module.
        name = "interlink_script_" + hashlib.sha1(key.encode()).hexdigest()[:16]
        module = types.ModuleType(name)
        module.__file__ = key
        sys.modules[name] = module
        try:
            code = compile(source, key, "exec", dont_inherit=True)
            exec(code, module.__dict__)
        except BaseException as exc:
            if sys.modules.get(name) is module:
                del sys.modules[name]
            raise describe_exception(
                script, path, exc, loading=True, memory_note=self._memory_note
            ) from None
        self._cache[key] = (version, module)
        return module
