"""One expression language everywhere: Jinja2 in an immutable sandbox.

Four shapes of user text are compiled here, once, when a project loads:

- an *expression* (`page.order.total > 100`): evaluated to a Python value;
- a *condition* (a response rule's `when`): an expression evaluated to true or false, where a
  missing value (or none) makes a comparison false instead of an error (`Condition`);
- an *interpolated string* (`/orders/{{ payload.id }}`): rendered to text; a string without
  `{{`/`{%` is a constant and never touches Jinja;
- a *template file* (`templates/held.xml`): rendered to text, autoescaped for XML and HTML.

The common shapes skip Jinja's render (5 µs a template, a third of a service answer): a
string that is one `{{ a.b.c }}`, and a template that is only text and such placeholders,
are dict walks (`_walk`). Jinja's own parse tree gives the text between placeholders, so
what Jinja does to it (newlines, whitespace control) is kept; a value the walk cannot be
sure of (past something that is not a dict) is left to Jinja.

Compilation is cached by source text, so the loader validating a project and the runtime
building from it share the same compiled objects.

The sandbox is immutable (no `list.append` from a template) and guarded against blow-ups that a
short expression can cause: `'x' * 10**9`, `10 ** (10 ** 10)`, `'{:>999999999}'.format(1)`,
`'%999999999s' % 1`, `range(10**9)`, `'a'|center(10**9)`. (Jinja's `**` is left-associative:
`10 ** 10 ** 10` is `(10 ** 10) ** 10`, a harmless 101-digit number.)
"""

from __future__ import annotations

import ast
import functools
import keyword
import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import orjson
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from interlink.errors import ExpressionError

__all__ = [
    "MAX_STRING",
    "Condition",
    "Expression",
    "Interpolation",
    "Template",
    "compile_condition",
    "compile_expression",
    "compile_interpolation",
    "compile_template",
    "environment",
    "expression_names",
    "render_data",
]

#: Longest string (and largest repeated sequence) an expression may build.
MAX_STRING = 1_000_000
#: Largest exponent `**` accepts; 2**4096 is already a 1,233-digit number.
MAX_EXPONENT = 4096
#: Largest integer `**` may build, in bits (about 20,000 decimal digits).
MAX_INT_BITS = 65_536


def _guarded_mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if (isinstance(seq, str | bytes | list | tuple) and isinstance(count, int)
                and len(seq) * count > MAX_STRING):
            raise SecurityError(f"result would be longer than {MAX_STRING:,} items")
    return operator.mul(left, right)


def _guarded_pow(left: Any, right: Any) -> Any:
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
        raise SecurityError(f"exponent larger than {MAX_EXPONENT}")
    # Jinja's `**` is left-associative, so `(10 ** 4096) ** 4096` passes the exponent check
    # with a huge base: bound the size of the result too.
    if (isinstance(left, int) and isinstance(right, int) and right > 0
            and abs(left).bit_length() * right > MAX_INT_BITS):
        raise SecurityError(f"result larger than {MAX_INT_BITS:,} bits")
    return operator.pow(left, right)


# A printf conversion: `%(name)-08.3f`, `%*d`, `%%`.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _guarded_printf(template: str, values: Any) -> None:
    """Refuse printf formatting that pads to a huge width or precision (`'%999999999s'`)."""
    star = False
    for match in _PRINTF.finditer(template):
        for number in match.groups():
            if number == "*":
                star = True
            elif number is not None and int(number) > MAX_STRING:
                raise SecurityError(f"width or precision larger than {MAX_STRING:,}")
    if star:
        args = values if isinstance(values, tuple) else (values,)
        if any(isinstance(a, int) and abs(a) > MAX_STRING for a in args):
            raise SecurityError(f"width or precision larger than {MAX_STRING:,}")


def _guarded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _guarded_printf(left, right)
    return operator.mod(left, right)


def _guarded_format_filter(filter_fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_fn)
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _guarded_printf(str(value), args or kwargs)
        return filter_fn(value, *args, **kwargs)

    return guarded


def _guarded_width(filter_fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_fn)
    def guarded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_STRING:
            raise SecurityError(f"width larger than {MAX_STRING:,}")
        return filter_fn(value, width, *args, **kwargs)

    return guarded


def _tojson(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus guards against memory blow-ups."""

    # Intercepted operators are also never folded into constants when compiling, so the guards
    # cover `'%0999999999d' % 1` written with literals too.
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            return _guarded_mul(left, right)
        if operator_name == "**":
            return _guarded_pow(left, right)
        if operator_name == "%":
            return _guarded_mod(left, right)
        return super().call_binop(context, operator_name, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja hands out a sandboxed `str.format` before `is_safe_attribute` is asked; that
        # wrapper still pads to any width, so `format` is refused like the other padders.
        return None

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Payloads are data: `payload.items` is the field `items`, not the dict method. Jinja
        # tries the attribute first for `.`, which gives `dict.items` for a common API field.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # str.format can pad to any width ("{:>999999999}"); `%` formatting is the same
        # operator Jinja already sandboxes, and the `format` filter stays available.
        if isinstance(obj, str) and attr in {"format", "format_map", "center", "ljust",
                                             "rjust", "zfill", "expandtabs"}:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


def _make_environment(autoescape: bool) -> jinja2.Environment:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=jinja2.ChainableUndefined,
        keep_trailing_newline=True,
        extensions=[],
    )
    # Only pure helpers: no lipsum/cycler/joiner/namespace, and a range that cannot be huge.
    env.globals.clear()
    env.globals.update({"range": _bounded_range, "dict": dict})
    for name in ("center", "indent", "wordwrap", "truncate"):
        env.filters[name] = _guarded_width(env.filters[name])
    env.filters["format"] = _guarded_format_filter(env.filters["format"])
    env.filters["tojson"] = _tojson
    env.filters["json"] = _tojson
    return env


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > 100_000:
        raise SecurityError("range larger than 100,000 items")
    return rng


_PLAIN = _make_environment(autoescape=False)
_ESCAPED = _make_environment(autoescape=True)


def environment(autoescape: bool = False) -> jinja2.Environment:
    """The shared sandboxed environment (autoescaping or not)."""
    return _ESCAPED if autoescape else _PLAIN


class _Missing(jinja2.ChainableUndefined):
    """A missing value (or none) in a condition: equal to none, false, and neither greater
    nor smaller than anything; arithmetic, attributes and calls on it stay missing."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, jinja2.Undefined)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(None)

    def _never(self, other: object) -> bool:
        return False

    # Jinja types these as always raising (`Never`); here they answer instead.
    __lt__ = __le__ = __gt__ = __ge__ = _never  # type: ignore[assignment]

    def _stays_missing(self, *args: Any, **kwargs: Any) -> _Missing:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = _stays_missing  # type: ignore[assignment]
    __mul__ = __rmul__ = __mod__ = __rmod__ = _stays_missing  # type: ignore[assignment]
    __truediv__ = __rtruediv__ = _stays_missing  # type: ignore[assignment]
    __floordiv__ = __rfloordiv__ = _stays_missing  # type: ignore[assignment]
    __pow__ = __rpow__ = __neg__ = __pos__ = _stays_missing  # type: ignore[assignment]
    __call__ = _stays_missing  # type: ignore[assignment]


class _ConditionContext(Context):
    """Top-level names that are none (`error`, `result` before the activity) are missing."""

    def resolve_or_missing(self, key: str) -> Any:
        value = super().resolve_or_missing(key)
        return missing if value is None else value


class _ConditionSandbox(_Sandbox):
    """The sandbox for conditions: every none or missing value on the way is `_Missing`."""

    context_class = _ConditionContext
    # Every arithmetic operator goes through `call_binop`, so that none + 1 stays missing.
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if left is None or right is None:
            return self.undefined(name=None)
        return super().call_binop(context, operator_name, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute) if value is None else value

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return self.undefined(obj=obj, name=argument) if value is None else value


def _is_none(value: Any) -> bool:
    return value is None or isinstance(value, jinja2.Undefined)


def _make_condition_environment() -> jinja2.Environment:
    env = _make_environment(autoescape=False)
    conditions = _ConditionSandbox(undefined=_Missing, keep_trailing_newline=True)
    conditions.globals.clear()
    conditions.globals.update(env.globals)
    conditions.filters = dict(env.filters)
    conditions.tests = {**env.tests, "none": _is_none}
    return conditions


_CONDITIONS = _make_condition_environment()


class Expression:
    """A compiled Jinja expression: `evaluate(context)` returns a Python value.

    The two most common shapes skip Jinja: a plain dotted path (`request.body.order`) is walked
    directly through the dicts, and so is the path of a comparison with a literal
    (`page.order.status == 'HELD'`): well under a microsecond where a Jinja call costs about
    fifteen. The walk gives exactly what Jinja gives (a missing key is None) and hands anything
    it is not sure of (a non-dict on the way) to the compiled expression.
    """

    __slots__ = ("_compare", "_fn", "_path", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._fn = _PLAIN.compile_expression(source, undefined_to_none=True)
        except jinja2.TemplateSyntaxError as exc:
            raise _invalid(source, exc) from exc
        self._path = _plain_path(source)
        self._compare: tuple[_Path, bool, Any] | None = None
        match = _COMPARISON.match(source)
        if match:
            path = _plain_path(match.group(1))
            if path is not None:
                self._compare = (path, match.group(2) == "==", ast.literal_eval(match.group(3)))

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against `context`; any failure becomes an `ExpressionError`."""
        if self._path is not None:
            value = _walk(self._path, context)
            if value is _UNSURE:
                return self._evaluate(context)
            return None if value is _MISSING else value
        if self._compare is not None:
            path, equal, literal = self._compare
            value = _walk(path, context)
            if value is _UNSURE:
                return self._evaluate(context)
            if value is _MISSING:
                value = None
            return value == literal if equal else value != literal
        return self._evaluate(context)

    def _evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            value = self._fn(**context)
        except ExpressionError:
            raise
        except Exception as exc:  # user code: every failure is reported alike
            raise ExpressionError(f"evaluating {self.source!r}: {exc}") from exc
        # `{'id': payload.missing}` holds an Undefined inside: a missing value is None there
        # too, as it is at the top (and as the store, scripts and JSON need).
        return _defined(value) if isinstance(value, dict | list) else value

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _invalid(source: str, exc: jinja2.TemplateSyntaxError) -> ExpressionError:
    """The error for an expression that does not parse; one written as a `{{ … }}`
    placeholder is told what to write instead."""
    hint = ""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}"):
        hint = f" (this is an expression, not a template: write {text[2:-2].strip()!r})"
    return ExpressionError(f"invalid expression {source!r}: {exc.message}{hint}")


def _defined(value: Any) -> Any:
    """`value` with every Undefined inside a dict or list replaced by None."""
    if isinstance(value, jinja2.Undefined):
        return None
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_defined(v) for v in value]
    return value


class Condition:
    """A compiled condition (`when`, `queue_when`): `holds(context)` is True or False.

    A missing value — a key that is not there, a step through none, a value that is none —
    is *missing*: equal to `none` (`page.x == none`, `page.x is none` hold), and any ordering
    comparison, `in` test, arithmetic or method call involving it is false rather than an
    error, so the next rule is tried: `page.order.total > 100` without a `total` is false,
    and so is `result.payload.item.price > 100` when `result.payload` is none. A condition
    that fails for another reason (a filter or function that raises, `'a' > 1`) raises
    `ExpressionError`.

    The common shapes skip Jinja, as in `Expression`: a dotted path (its truth), and a path
    compared with a literal by `==`, `!=`, `<`, `<=`, `>`, `>=`.
    """

    __slots__ = ("_compare", "_fn", "_path", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._fn = _CONDITIONS.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise _invalid(source, exc) from exc
        self._path = _plain_path(source)
        self._compare: tuple[_Path, Callable[[Any, Any], bool], Any] | None = None
        match = _ORDERED_COMPARISON.match(source)
        if match:
            path = _plain_path(match.group(1))
            if path is not None:
                self._compare = (path, _OPERATORS[match.group(2)],
                                 ast.literal_eval(match.group(3)))

    def holds(self, context: Mapping[str, Any]) -> bool:
        """Whether the condition is true for `context`; `ExpressionError` when it fails."""
        if self._path is not None:
            value = _walk(self._path, context)
            if value is not _UNSURE:
                return value is not _MISSING and bool(value)
        elif self._compare is not None:
            path, compare, literal = self._compare
            value = _walk(path, context)
            if value is _MISSING or value is None:
                return compare is operator.ne
            if type(value) is type(literal) or (
                    type(value) in (int, float) and type(literal) in (int, float)):
                return compare(value, literal)
            if (compare is operator.eq or compare is operator.ne) and type(value) in (
                    str, int, float, bool, dict, list):
                return compare(value, literal)
        return self._evaluate(context)

    def _evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._fn(**context))
        except jinja2.UndefinedError:
            return False  # an operation on a missing value: the condition does not hold
        except Exception as exc:  # user code: every other failure is reported alike
            raise ExpressionError(f"evaluating {self.source!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
_ORDERED_COMPARISON = re.compile(
    r"""^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>)\s*('[^'\\]*'|"[^"\\]*"|-?\d+(?:\.\d+)?)\s*$"""
)


_Path = tuple[str, tuple[str, ...]]
_UNSURE = object()
_MISSING = object()
_WHOLE_PATH = re.compile(r"^\{\{\s*([A-Za-z_][\w.]*)\s*\}\}$")
_COMPARISON = re.compile(
    r"""^\s*([A-Za-z_][\w.]*)\s*(==|!=)\s*('[^'\\]*'|"[^"\\]*"|-?\d+(?:\.\d+)?)\s*$"""
)


def _plain_path(source: str) -> _Path | None:
    parts = source.strip().split(".")
    if all(p.isidentifier() and p not in _NOT_KEYS for p in parts):
        return parts[0], tuple(parts[1:])
    return None


def _walk(path: _Path, context: Mapping[str, Any]) -> Any:
    """The value at `path`; `_MISSING` when a key is missing (or a step is None), `_UNSURE`
    past something that is not a dict (Jinja's attribute rules then decide)."""
    first, rest = path
    value = context.get(first, _MISSING)
    for part in rest:
        if value is None or value is _MISSING:
            return _MISSING
        if type(value) is not dict:
            return _UNSURE
        value = value.get(part, _MISSING)
    return value


#: names Jinja resolves to a dict method, a literal, an operator or a global, not to a key
_NOT_KEYS = (
    frozenset(dir(dict)) | frozenset(keyword.kwlist)
    | {"true", "false", "none", "and", "or", "not", "in", "is", "if", "else", "range", "dict",
       "self"}  # `self`: Jinja's reference to the template itself, whatever the context holds
)


class Interpolation:
    """A string that may contain `{{ … }}`; plain strings render without Jinja."""

    __slots__ = ("_path", "_template", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._template: jinja2.Template | None = None
        self._path: _Path | None = None
        if "{{" in source or "{%" in source:
            try:
                self._template = _PLAIN.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise ExpressionError(f"invalid template string {source!r}: {exc.message}") from exc
            # `{{ page.order.id }}` alone, the usual case, is a dict walk (see Expression).
            whole = _WHOLE_PATH.match(source)
            if whole:
                self._path = _plain_path(whole.group(1))

    @property
    def is_constant(self) -> bool:
        """True when the string has nothing to interpolate."""
        return self._template is None

    def render_required(self, context: Mapping[str, Any]) -> str:
        """Render, refusing a `{{ … }}` whose value is missing, None or empty.

        For URL paths and query values: `/prices/{{ payload.sku }}` without a `sku` would
        otherwise call `/prices/`, a different resource, without a word.
        """
        if self._template is None:
            return self.source
        for placeholder in _placeholders(self.source):
            value = placeholder.evaluate(context)
            if value is None or value == "":
                raise ExpressionError(f"rendering {self.source!r}: "
                                      f"{{{{ {placeholder.source} }}}} is missing or empty")
        return self.render(context)

    def render(self, context: Mapping[str, Any]) -> str:
        """Render against `context`; any failure becomes an `ExpressionError`."""
        if self._template is None:
            return self.source
        if self._path is not None:
            value = _walk(self._path, context)
            if value is _MISSING:
                return ""
            if value is not _UNSURE:
                return value if type(value) is str else str(value)
        try:
            return self._template.render(context)
        except Exception as exc:  # user code: every failure is reported alike
            raise ExpressionError(f"rendering {self.source!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Interpolation({self.source!r})"


_PLACEHOLDER = re.compile(r"\{\{-?\s*(.+?)\s*-?\}\}", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _placeholders(source: str) -> tuple[Expression, ...]:
    """The `{{ … }}` expressions of an interpolated string (none when it uses `{% … %}`)."""
    if "{%" in source:
        return ()
    return tuple(compile_expression(m.group(1)) for m in _PLACEHOLDER.finditer(source))


#: a template's pieces when it is only text and `{{ a.b.c }}`: text, or the path to walk
_Pieces = tuple["str | _Path", ...]


def _pieces(env: jinja2.Environment, text: str) -> _Pieces | None:
    """The text and the placeholders' paths of a template made only of those, else None."""
    body = env.parse(text).body
    if not body:
        return ("",)
    if len(body) != 1 or type(body[0]) is not nodes.Output:
        return None
    pieces: list[str | _Path] = []
    for node in body[0].nodes:
        if type(node) is nodes.TemplateData:
            pieces.append(node.data)
            continue
        names = []
        while type(node) is nodes.Getattr:
            names.append(node.attr)
            node = node.node
        if type(node) is not nodes.Name:
            return None
        names.append(node.name)
        if any(name in _NOT_KEYS for name in names):
            return None
        names.reverse()
        pieces.append((names[0], tuple(names[1:])))
    return tuple(pieces)


class Template:
    """A compiled template file; XML and HTML templates are autoescaped."""

    __slots__ = ("_escaped", "_pieces", "_template", "kind", "path", "text")

    def __init__(self, path: str, text: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.text = text
        self._escaped = kind in ("xml", "html")
        env = _ESCAPED if self._escaped else _PLAIN
        try:
            self._template = env.from_string(text)
            self._pieces = _pieces(env, text)
        except jinja2.TemplateSyntaxError as exc:
            raise ExpressionError(f"line {exc.lineno}: {exc.message}") from exc

    def as_kind(self, kind: str) -> Template:
        """This template compiled as `kind` (a declared `type` wins over the extension)."""
        return self if kind == self.kind else Template(self.path, self.text, kind)

    def render(self, context: Mapping[str, Any]) -> str:
        """Render against `context`; any failure becomes an `ExpressionError`."""
        try:
            text = self._walked(context)
            if text is not None:
                return text
            return self._template.render(context)
        except Exception as exc:  # user code: every failure is reported alike
            raise ExpressionError(f"rendering {self.path}: {exc}") from exc

    def _walked(self, context: Mapping[str, Any]) -> str | None:
        """The text Jinja would render, or None when the template is not only text and
        paths, or a walk is unsure (Jinja then renders): missing is empty, a value is
        `str`-ed, and escaped as Jinja escapes (`markupsafe`)."""
        if self._pieces is None:
            return None
        out: list[str] = []
        for piece in self._pieces:
            if type(piece) is str:
                out.append(piece)
                continue
            value = _walk(piece, context)  # type: ignore[arg-type]
            if value is _UNSURE:
                return None
            if value is not _MISSING:
                out.append(markupsafe.escape(value) if self._escaped else
                           value if type(value) is str else str(value))
        return "".join(out)


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile (once per distinct source) a Jinja expression."""
    return Expression(source)


@functools.lru_cache(maxsize=4096)
def compile_condition(source: str) -> Condition:
    """Compile (once per distinct source) a condition (`when`, `queue_when`)."""
    return Condition(source)


@functools.lru_cache(maxsize=4096)
def compile_interpolation(source: str) -> Interpolation:
    """Compile (once per distinct source) a string that may interpolate `{{ … }}`."""
    return Interpolation(source)


def compile_template(path: Path, kind: str | None = None) -> Template:
    """Compile a template file; its kind comes from `kind` or the file's extension."""
    kind = kind or template_kind(path)
    return Template(str(path), path.read_text(encoding="utf-8"), kind)


def template_kind(path: Path | str) -> str:
    """`xml`, `html`, `json` or `text`, from a template file's extension."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"xml": "xml", "html": "html", "htm": "html", "json": "json"}.get(suffix, "text")


def expression_names(source: str, *, interpolated: bool) -> set[str]:
    """The top-level variable names an expression (or interpolated string) reads."""
    text = source if interpolated else "{{ " + source + " }}"
    try:
        return set(meta.find_undeclared_variables(_PLAIN.parse(text)))
    except jinja2.TemplateSyntaxError:
        return set()


def render_data(value: Any, context: Mapping[str, Any]) -> Any:
    """Build JSON data: leaf strings interpolate, everything else is copied as is."""
    if isinstance(value, str):
        return compile_interpolation(value).render(context)
    if isinstance(value, Mapping):
        return {k: render_data(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_data(v, context) for v in value]
    return value
