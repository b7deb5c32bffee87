"""The dotted-path fast paths (expressions, conditions, interpolations, templates) give
exactly what Jinja gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from interlink.errors import ExpressionError
from interlink.expressions import (
    Template,
    compile_condition,
    compile_expression,
    compile_interpolation,
    environment,
)

_JINJA = environment()

_names = st.sampled_from(["a", "b", "items", "none", "request", "body", "x1", "keys", "range"])
_data = st.recursive(
    st.none() | st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(), max_size=2),
    lambda inner: st.dictionaries(_names, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(context=st.dictionaries(_names, _data, max_size=4),
       path=st.lists(_names, min_size=1, max_size=4))
def test_fast_path_matches_jinja(context: dict[str, Any], path: list[str]) -> None:
    """For any data and any dotted path, the fast path and the Jinja expression agree."""
    expression = compile_expression(".".join(path))
    expected = expression._evaluate(context)
    got = expression.evaluate(context)
    if callable(expected):  # a dict method or a global: both must give something callable
        assert callable(got)
    else:
        assert got == expected


def test_non_paths_use_jinja() -> None:
    """Anything but a plain dotted path is evaluated by Jinja."""
    assert compile_expression("a.b + 1").evaluate({"a": {"b": 1}}) == 2
    assert compile_expression("a['b']").evaluate({"a": {"b": 3}}) == 3
    assert compile_expression("none").evaluate({"none": 1}) is None


@settings(max_examples=300, deadline=None)
@given(context=st.dictionaries(_names, _data, max_size=4),
       path=st.lists(_names, min_size=1, max_size=3),
       op=st.sampled_from(["==", "!="]),
       literal=st.sampled_from(["'a'", '"HELD"', "0", "-3", "2.5", "''"]))
def test_comparison_fast_path_matches_jinja(
    context: dict[str, Any], path: list[str], op: str, literal: str
) -> None:
    """`path == literal` and `path != literal` agree with Jinja for any data."""
    expression = compile_expression(f"{'.'.join(path)} {op} {literal}")
    assert expression.evaluate(context) == expression._evaluate(context)


@settings(max_examples=400, deadline=None)
@given(context=st.dictionaries(_names, _data | st.booleans() | st.floats(allow_nan=False),
                               max_size=4),
       path=st.lists(_names, min_size=1, max_size=4))
def test_interpolation_fast_path_matches_jinja(context: dict[str, Any], path: list[str]) -> None:
    """`{{ a.b }}` alone renders exactly as Jinja renders it, for any data."""
    source = "{{ " + ".".join(path) + " }}"
    fast = compile_interpolation(source).render(context)
    assert fast == _JINJA.from_string(source).render(context)


@settings(max_examples=400, deadline=None)
@given(context=st.dictionaries(_names, _data | st.floats(allow_nan=False), max_size=4),
       path=st.lists(_names, min_size=1, max_size=3),
       op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
       literal=st.sampled_from(["'a'", '"HELD"', "0", "-3", "2.5", "''"]))
def test_condition_fast_paths_match_jinja(
    context: dict[str, Any], path: list[str], op: str, literal: str
) -> None:
    """A condition's fast paths (a path, a path compared with a literal) agree with Jinja."""
    for source in (".".join(path), f"{'.'.join(path)} {op} {literal}"):
        condition = compile_condition(source)
        try:
            expected: object = condition._evaluate(context)
        except ExpressionError:
            expected = ExpressionError
        try:
            got: object = condition.holds(context)
        except ExpressionError:
            got = ExpressionError
        assert got == expected, source


_texts = st.text(alphabet=st.sampled_from(list("ab <>&\"'\n\r\t{}%#é")), max_size=8)
_placeholder = st.builds(
    lambda path, left, right: "{{" + left + " " + ".".join(path) + " " + right + "}}",
    st.lists(_names, min_size=1, max_size=3), st.sampled_from(["", "-"]),
    st.sampled_from(["", "-"]))


@settings(max_examples=500, deadline=None)
@given(context=st.dictionaries(_names, _data | st.booleans() | st.floats(allow_nan=False)
                               | _texts, max_size=4),
       parts=st.lists(_texts | _placeholder, max_size=6),
       kind=st.sampled_from(["xml", "html", "json", "text"]))
def test_template_fast_path_matches_jinja(context: dict[str, Any], parts: list[str],
                                          kind: str) -> None:
    """A template of text and `{{ a.b }}` placeholders renders exactly as Jinja renders it
    (escaping, whitespace control, newlines, missing values, dict-method names), for any
    data."""
    text = "".join(parts)
    try:
        template = Template("t", text, kind)
    except ExpressionError:  # text that is not a template (a stray `{%`, `{#`, `{{`)
        return
    assert template.render(context) == template._template.render(context)


def test_templates_of_text_and_paths_skip_jinja() -> None:
    """The shapes the fast path takes, and those it leaves to Jinja."""
    assert Template("t", '<a id="{{ page.order.id }}"/>\n', "xml")._pieces == (
        '<a id="', ("page", ("order", "id")), '"/>\n')
    assert Template("t", "", "text")._pieces == ("",)
    assert Template("t", "{# a note #}{{ a }}", "text")._pieces == (("a", ()),)
    for text in ("{% if a %}x{% endif %}", "{{ a | upper }}", "{{ a.items }}", "{{ a['b'] }}",
                 "{{ a.b() }}", "{{ 'x' }}", "{{ self }}", "{{ self.x }}"):
        assert Template("t", text, "text")._pieces is None, text
    # `self` is Jinja's reference to the template, not the context's key.
    for text in ("{{ self }}", "{{ self.x }}"):
        template = Template("t", text, "xml")
        assert template.render({"self": {"x": 1}}) == template._template.render(
            {"self": {"x": 1}})
    # Past something that is not a dict the walk is unsure: Jinja renders (a str's method).
    upper = Template("t", "{{ a.upper }}", "text")
    assert upper._pieces is not None
    assert upper.render({"a": "x"}).startswith("<built-in method upper")
