"""Loading and running user scripts: isolated worker processes by default, inline on request.

```
ScriptPool(root, ScriptsConfig)      worker processes + inline runner for one project
├── run(script, data)               -> ScriptOutcome   (handle(data) of a flow/response script)
├── call_function(script, name, ctx) -> FunctionValue  (a service's `from: function`)
└── close()                          stops the workers (or `async with`)
```

Every failure is a `ScriptCallError` (a `interlink.errors.ScriptError`) whose message names the
script and what happened; `kind` says which category (`raised`, `timeout`, `memory`, …).
See docs/decisions/0002-script-isolation.md for why processes, and what inline gives up.
"""

from interlink.scripts.outcome import (
    FailureKind,
    FunctionValue,
    ScriptCallError,
    ScriptOutcome,
    validate_function_value,
    validate_outcome,
)
from interlink.scripts.pool import Isolation, ScriptPool, parse_function_ref

__all__ = [
    "FailureKind",
    "FunctionValue",
    "Isolation",
    "ScriptCallError",
    "ScriptOutcome",
    "ScriptPool",
    "parse_function_ref",
    "validate_function_value",
    "validate_outcome",
]
