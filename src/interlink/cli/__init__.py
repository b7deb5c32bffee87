"""The `interlink` command. The only place that calls `asyncio.run`.

One module per group of commands: `project` (init, check, schema, serve, worker), `runs`
(run, runs, runs show/retry/stop, with `progress` and `moments`), `queue`, `call`; `_common`
holds what they share. Importing a module adds its commands to `main`.
"""

from __future__ import annotations

from interlink.cli import call, project, queue, runs  # noqa: F401  (they add their commands)
from interlink.cli._app import main

__all__ = ["main"]
