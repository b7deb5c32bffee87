"""Identifiers for runs and queue items: sortable by creation time, unguessable, URL-safe."""

from __future__ import annotations

import base64
import hashlib
import os
import time

__all__ = ["derived_id", "new_id"]

# RFC 4648 base32 sorts digits after letters; Crockford's alphabet (lower case) sorts like
# the bytes it encodes, so ids sort by their timestamp.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                              "0123456789abcdefghjkmnpqrstvwxyz")


def new_id(prefix: str = "") -> str:
    """A 26-character ULID-style id (48-bit milliseconds + 80 random bits), with a prefix."""
    raw = int(time.time() * 1000).to_bytes(6, "big") + os.urandom(10)
    return prefix + base64.b32encode(raw).decode("ascii")[:26].translate(_TO_CROCKFORD)


def derived_id(prefix: str, at: float, key: str) -> str:
    """An id shaped like `new_id` but the same for the same time and key (idempotent writes)."""
    raw = int(at * 1000).to_bytes(6, "big") + hashlib.sha256(key.encode()).digest()[:10]
    return prefix + base64.b32encode(raw).decode("ascii")[:26].translate(_TO_CROCKFORD)
