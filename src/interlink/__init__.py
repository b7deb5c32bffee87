"""Interlink: an integration engine for Python teams."""

from interlink.errors import InterlinkError

__all__ = ["InterlinkError", "__version__"]

__version__ = "0.1.0"
