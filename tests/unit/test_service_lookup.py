"""The dotted-path fast path gives exactly what the Jinja expression gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.expressions import compile_expression
from interlink.services.lookup import compile_value

_names = st.sampled_from(["a", "b", "items", "none", "request", "body", "x1", "keys"])
_data = st.recursive(
    st.none() | st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(), max_size=2),
    lambda inner: st.dictionaries(_names, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(context=st.dictionaries(_names, _data, max_size=4),
       path=st.lists(_names, min_size=1, max_size=4))
def test_fast_path_matches_jinja(context: dict[str, Any], path: list[str]) -> None:
    """For any data and any dotted path, the fast path and Jinja agree."""
    source = ".".join(path)
    expected = compile_expression(source).evaluate(context)
    got = compile_value(source)(context)
    if callable(expected):  # a dict method: both must hand back the same bound method kind
        assert callable(got)
    else:
        assert got == expected


def test_non_paths_use_jinja() -> None:
    """Anything but a plain dotted path is evaluated by Jinja."""
    assert compile_value("a.b + 1")({"a": {"b": 1}}) == 2
    assert compile_value("a['b']")({"a": {"b": 3}}) == 3
    assert compile_value("none")({"none": 1}) is None
