"""Identifiers for runs and queue items: sortable by creation time, unguessable, URL-safe."""

from __future__ import annotations

import base64
import os
import time

__all__ = ["new_id"]

# RFC 4648 base32 sorts digits after letters; Crockford's alphabet (lower case) sorts like
# the bytes it encodes, so ids sort by their timestamp.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                              "0123456789abcdefghjkmnpqrstvwxyz")


def new_id(prefix: str = "") -> str:
    """A 26-character ULID-style id (48-bit milliseconds + 80 random bits), with a prefix."""
    raw = int(time.time() * 1000).to_bytes(6, "big") + os.urandom(10)
    return prefix + base64.b32encode(raw).decode("ascii")[:26].translate(_TO_CROCKFORD)
