"""Identifiers for runs, queue items and the like: sortable by creation time, unguessable,
URL-safe.

An id is 48 bits of milliseconds then 128 random bits (`RANDOM_BITS`), written as 36
characters of lower-case Crockford base32 after a prefix (`r_`, `q_`). Every id handed to a
caller has those 128 random bits, so knowing one id (or the time it was made) does not help
guess another. `derived_id` has the same shape with a hash in place of the random part.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time

__all__ = ["ID_LENGTH", "RANDOM_BITS", "derived_id", "new_id"]

#: random bits in every `new_id` (a UUIDv4 has 122)
RANDOM_BITS = 128
#: characters of an id after its prefix: (48 + 128) bits in base32
ID_LENGTH = 36

# RFC 4648 base32 sorts digits after letters; Crockford's alphabet (lower case) sorts like
# the bytes it encodes, so ids sort by their timestamp.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                              "0123456789abcdefghjkmnpqrstvwxyz")


def _encode(prefix: str, at: float, tail: bytes) -> str:
    raw = int(at * 1000).to_bytes(6, "big") + tail
    return prefix + base64.b32encode(raw).decode("ascii")[:ID_LENGTH].translate(_TO_CROCKFORD)


def new_id(prefix: str = "") -> str:
    """A new id: 48-bit milliseconds + 128 random bits, 36 characters after `prefix`."""
    return _encode(prefix, time.time(), os.urandom(RANDOM_BITS // 8))


def derived_id(prefix: str, at: float, key: str) -> str:
    """An id shaped like `new_id` but the same for the same time and key (idempotent writes).

    It is as hard to guess as `key`: derive only from keys that hold a random id.
    """
    return _encode(prefix, at, hashlib.sha256(key.encode()).digest()[:RANDOM_BITS // 8])
