"""Run and queue item ids: unique, URL-safe, sorted by creation time, 128 random bits."""

from __future__ import annotations

import base64
import re
import time

from interlink.ids import ID_LENGTH, RANDOM_BITS, derived_id, new_id

_FROM_CROCKFORD = str.maketrans("0123456789abcdefghjkmnpqrstvwxyz",
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def random_part(identifier: str) -> int:
    """The bits of an id after its 48-bit time, as an integer (the prefix dropped)."""
    text = identifier.split("_", 1)[-1].translate(_FROM_CROCKFORD)
    raw = base64.b32decode(text + "=" * (-len(text) % 8))
    return int.from_bytes(raw[6:], "big")


def test_ids_are_unique_url_safe_and_sortable() -> None:
    """Ids made later sort later; none repeat; only lower-case Crockford base32 is used."""
    first = [new_id("r_") for _ in range(1000)]
    time.sleep(0.002)
    later = new_id("r_")
    assert len(set(first)) == 1000
    assert all(re.fullmatch(r"r_[0-9a-hjkmnp-tv-z]{36}", i) for i in [*first, later])
    assert max(first) < later


def test_every_one_of_the_128_random_bits_varies() -> None:
    """Over 2,000 ids each random bit is set in 35–65% of them: none is fixed or derived."""
    assert RANDOM_BITS >= 122
    parts = [random_part(new_id("q_")) for _ in range(2000)]
    for bit in range(RANDOM_BITS):
        share = sum(part >> bit & 1 for part in parts) / len(parts)
        assert 0.35 < share < 0.65, f"random bit {bit} is set in {share:.0%} of the ids"


def test_derived_ids_are_stable_and_shaped_like_new_ids() -> None:
    """The same time and key give the same id; another key another one; both sort by time."""
    at = time.time() - 1
    same = derived_id("r_", at, "r_x:retry")
    assert same == derived_id("r_", at, "r_x:retry")
    assert same != derived_id("r_", at, "r_y:retry")
    assert len(same) == len(new_id("r_")) == 2 + ID_LENGTH
    assert derived_id("r_", at - 1, "k") < derived_id("r_", at, "k") < new_id("r_")
