"""The `interlink` command group; the commands register themselves on it (see `__init__`)."""

from __future__ import annotations

import click

from interlink import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="interlink")
def main() -> None:
    """Interlink: services, process flows and durable runs from an integration project."""
