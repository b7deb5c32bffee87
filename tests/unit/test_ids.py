"""Run and queue item ids: unique, URL-safe, sorted by creation time, 128 random bits."""

from __future__ import annotations

import base64
import os
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


def test_derived_ids_keep_their_value_across_versions() -> None:
    """A derived id names a stored record (a run's one retry, a schedule's fire): the same
    time and key must give the same id as the ids already in stores."""
    assert derived_id("r_", 1767225600.0, "r_x:retry") == "r_06dqdpn802yvfs2qph8d58g2sa0bqs172780"


def test_a_forked_child_never_repeats_the_parents_ids() -> None:
    """Random bytes are drawn from the OS in blocks; a child forked with part of a block left
    must not hand out what the parent hands out next."""
    new_id()  # the parent's pool holds bytes now
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent; it never returns into pytest
        try:
            os.close(reader)
            os.write(writer, " ".join(new_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(50)}
    assert len(child) == 50
    assert {random_part(i) for i in child}.isdisjoint({random_part(i) for i in parent})
