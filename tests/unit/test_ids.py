"""Run and queue item ids: unique, URL-safe, sorted by creation time."""

from __future__ import annotations

import re
import time

from interlink.ids import new_id


def test_ids_are_unique_url_safe_and_sortable() -> None:
    """Ids made later sort later; none repeat; only lower-case Crockford base32 is used."""
    first = [new_id("r_") for _ in range(1000)]
    time.sleep(0.002)
    later = new_id("r_")
    assert len(set(first)) == 1000
    assert all(re.fullmatch(r"r_[0-9a-hjkmnp-tv-z]{26}", i) for i in [*first, later])
    assert max(first) < later
