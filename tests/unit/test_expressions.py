"""The Jinja sandbox: guards against blow-ups, autoescaping, data rendering, compile caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.errors import ExpressionError
from interlink.expressions import (
    Template,
    compile_condition,
    compile_expression,
    compile_interpolation,
    compile_template,
    expression_names,
    render_data,
)

BLOW_UPS = [
    "'x' * 10**9",
    "10 ** 100 ** 4000",
    "10 ** (10 ** 10)",
    "(10 ** 4096) ** 4096",
    "'{:>999999999}'.format(1)",
    "'{0:>999999999}'.format_map({})",
    "'%999999999s' % 1",
    "'%0999999999d' % 1",
    "'%.999999999f' % 1.0",
    "'%*d' % (999999999, 1)",
    "'%999999999s' | format('x')",
    "range(10**9)",
    "'a' | center(10**9)",
    "'a' | indent(10**9)",
    "'a'.ljust(10**9)",
    "[1, 2] * 10**9",
    "10**9 * 'x'",
]


@pytest.mark.parametrize("source", BLOW_UPS)
def test_blow_ups_raise_expression_error(source: str) -> None:
    """Expressions that would build a huge value raise ExpressionError instead."""
    with pytest.raises(ExpressionError):
        compile_expression(source).evaluate({})


def test_left_associative_power_is_harmless() -> None:
    """Jinja's `**` is left-associative: `10 ** 10 ** 10` is (10**10)**10, a small number."""
    assert compile_expression("10 ** 10 ** 10").evaluate({}) == 10**100


def test_blow_ups_in_templates_and_interpolations(tmp_path: Path) -> None:
    """The same guards hold in interpolated strings and template files."""
    with pytest.raises(ExpressionError):
        compile_interpolation("{{ 'x' * 10**9 }}").render({})
    path = tmp_path / "t.txt"
    path.write_text("{{ '%999999999s' % 1 }}", encoding="utf-8")
    with pytest.raises(ExpressionError):
        compile_template(path).render({})


def test_ordinary_arithmetic_and_formatting_still_work() -> None:
    """The guards let normal sizes through."""
    assert compile_expression("'ab' * 3").evaluate({}) == "ababab"
    assert compile_expression("2 ** 10").evaluate({}) == 1024
    assert compile_expression("'%05.1f|%-3s|%%' % (3.14159, 'a')").evaluate({}) == "003.1|a  |%"
    assert compile_expression("'%s-%s' | format('a', 'b')").evaluate({}) == "a-b"
    assert compile_expression("range(3) | list").evaluate({}) == [0, 1, 2]
    assert compile_expression("'a' | center(5)").evaluate({}) == "  a  "
    assert compile_expression("x % 3").evaluate({"x": 10}) == 1


def test_immutable_sandbox() -> None:
    """A template cannot mutate data it is given."""
    items: list[int] = []
    with pytest.raises(ExpressionError):
        compile_expression("items.append(1)").evaluate({"items": items})
    assert items == []


def test_missing_values_chain_to_none() -> None:
    """`page.missing.deeper` is None (falsy), not an error."""
    assert compile_expression("page.missing.deeper").evaluate({"page": {}}) is None
    assert compile_expression("not page.missing.deeper").evaluate({"page": {}}) is True
    assert compile_expression("page.missing.deeper or 'fallback'").evaluate({}) == "fallback"
    assert compile_interpolation("[{{ page.missing.deeper }}]").render({"page": {}}) == "[]"


def test_xml_and_html_templates_are_autoescaped(tmp_path: Path) -> None:
    """XML and HTML templates escape values; text templates do not."""
    context = {"name": "<b>&'\"</b>"}
    for suffix in ("xml", "html"):
        path = tmp_path / f"t.{suffix}"
        path.write_text("<n>{{ name }}</n>", encoding="utf-8")
        assert compile_template(path).render(context) == (
            "<n>&lt;b&gt;&amp;&#39;&#34;&lt;/b&gt;</n>"
        )
    text = tmp_path / "t.txt"
    text.write_text("{{ name }}\n", encoding="utf-8")
    template = compile_template(text)
    assert template.kind == "text"
    assert template.render(context) == "<b>&'\"</b>\n"
    assert compile_template(text, "xml").render(context).startswith("&lt;b&gt;")


def test_template_syntax_error_carries_the_line() -> None:
    """A template syntax error is an ExpressionError naming the template's line."""
    with pytest.raises(ExpressionError, match="line 2") as info:
        Template("t.xml", "<a>\n{{ x + }}\n</a>", "xml")
    assert getattr(info.value.__cause__, "lineno", None) == 2


def test_render_data_interpolates_leaf_strings_only() -> None:
    """JSON data keeps its shape and types; only leaf strings interpolate."""
    data = {"id": "{{ page.id }}", "n": 3, "ok": True, "none": None,
            "items": ["{{ page.id }}-x", 1.5, {"deep": "plain"}], "tuple": ("{{ page.id }}",)}
    assert render_data(data, {"page": {"id": 7}}) == {
        "id": "7", "n": 3, "ok": True, "none": None,
        "items": ["7-x", 1.5, {"deep": "plain"}], "tuple": ["7"],
    }


def test_compilation_is_cached() -> None:
    """Compiling the same source twice returns the same object."""
    assert compile_expression("a.b == 1") is compile_expression("a.b == 1")
    assert compile_interpolation("/x/{{ a }}") is compile_interpolation("/x/{{ a }}")
    assert compile_interpolation("plain").is_constant


def test_syntax_errors_are_expression_errors() -> None:
    """Bad syntax fails at compile time, naming the source."""
    with pytest.raises(ExpressionError, match="invalid expression 'a =='"):
        compile_expression("a ==")
    with pytest.raises(ExpressionError, match="invalid template string"):
        compile_interpolation("{{ a ")


def test_expression_names() -> None:
    """The top-level names an expression or interpolated string reads."""
    assert expression_names("env.X ~ payload.id", interpolated=False) == {"env", "payload"}
    assert expression_names("/a/{{ env.HOST }}/{{ x }}", interpolated=True) == {"env", "x"}
    assert expression_names("{{ broken", interpolated=True) == set()


def test_no_unsafe_globals() -> None:
    """Only pure helpers are global: no lipsum, cycler, joiner or namespace."""
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        assert compile_expression(f"{name} is defined").evaluate({}) is False


def test_an_expression_written_as_a_placeholder_is_told_what_to_write() -> None:
    """`body: "{{ payload }}"` is an expression field: the error says to write `payload`."""
    with pytest.raises(ExpressionError, match=r"not a template: write 'payload\.id'"):
        compile_expression("{{ payload.id }}")
    with pytest.raises(ExpressionError, match=r"not a template: write 'x > 1'"):
        compile_condition("{{ x > 1 }}")
