"""The curated public API does not change by accident."""

from __future__ import annotations

import interlink


def test_exported_members() -> None:
    """`interlink.__all__` lists exactly the public names, and each exists."""
    assert sorted(interlink.__all__) == sorted(EXPECTED)
    for name in interlink.__all__:
        assert hasattr(interlink, name)


EXPECTED = ["InterlinkError", "__version__"]
