"""Identifiers for runs, queue items and the like: sortable by creation time, unguessable,
URL-safe.

An id is 48 bits of milliseconds then 128 random bits (`RANDOM_BITS`), written as 36
characters of lower-case Crockford base32 after a prefix (`r_`, `q_`). Every id handed to a
caller has those 128 random bits, so knowing one id (or the time it was made) does not help
guess another. `derived_id` has the same shape with a hash in place of the random part.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

__all__ = ["ID_LENGTH", "RANDOM_BITS", "derived_id", "new_id"]

#: random bits in every `new_id` (a UUIDv4 has 122)
RANDOM_BITS = 128
#: characters of an id after its prefix: (48 + 128) bits in base32
ID_LENGTH = 36

# Crockford's base32 alphabet (lower case) sorts like the bits it encodes, so ids sort by their
# timestamp (RFC 4648's puts digits after letters).
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Two characters per 10 bits: 18 lookups make an id (base64.b32encode is a Python loop, and
# an id was 4.5 µs, a tenth of a webhook's own work).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(170, -10, -10)
_TAIL_BYTES = RANDOM_BITS // 8

# Random bytes come from os.urandom 4 KiB at a time: one system call (during which the
# event loop thread gives up the GIL to the store's writer) per 256 ids instead of one per id.
# The bytes are the same CSPRNG output; a forked child starts with an empty pool, so parent
# and child never hand out the same bytes.
_POOL_BYTES = 4096
_pool = b""
_pool_at = 0
_pool_lock = threading.Lock()


def _empty_pool() -> None:
    # A new lock too: another thread may have held the old one when the process forked.
    global _pool, _pool_at, _pool_lock
    _pool, _pool_at, _pool_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_empty_pool)


def _random_tail() -> bytes:
    global _pool, _pool_at
    with _pool_lock:
        if _pool_at + _TAIL_BYTES > len(_pool):
            _pool, _pool_at = os.urandom(_POOL_BYTES), 0
        start = _pool_at
        _pool_at = start + _TAIL_BYTES
        return _pool[start:start + _TAIL_BYTES]


def _encode(prefix: str, at: float, tail: bytes) -> str:
    # 48 bits of milliseconds, the 128-bit tail, 4 zero bits: 180 bits, 36 characters.
    bits = ((int(at * 1000) & 0xFFFF_FFFF_FFFF) << RANDOM_BITS | int.from_bytes(tail, "big")) << 4
    return prefix + "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: str = "") -> str:
    """A new id: 48-bit milliseconds + 128 random bits, 36 characters after `prefix`."""
    return _encode(prefix, time.time(), _random_tail())


def derived_id(prefix: str, at: float, key: str) -> str:
    """An id shaped like `new_id` but the same for the same time and key (idempotent writes).

    It is as hard to guess as `key`: derive only from keys that hold a random id.
    """
    return _encode(prefix, at, hashlib.sha256(key.encode()).digest()[:_TAIL_BYTES])
