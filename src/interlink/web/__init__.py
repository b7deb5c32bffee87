"""The run-log web UI at `/_interlink/ui/`: server-rendered pages (Jinja), a stylesheet and a
little plain JavaScript shipped in the package (no build step, no CDN), behind its own sign-in
(`auth`). Served by `interlink serve` on the listener of the engine endpoints (docs/ui.md)."""

from __future__ import annotations

from interlink.web.app import UiApp
from interlink.web.auth import UI_PATH

__all__ = ["UI_PATH", "UiApp"]
