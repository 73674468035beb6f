"""Workflow templates and expressions in a Jinja2 sandbox that fails with one clear error.

Templates (``"Disk full on {{ body.host }}"``) render to text; expressions
(``body.severity == 'critical'``, bare or wrapped in one ``{{ }}``) evaluate to native
values. Undefined names, sandbox refusals and runtime errors all become
:class:`TemplateError`, whose message quotes the template. Rendered text, and every string
or list built along the way, is capped at :data:`MAX_RENDER_CHARS`. The work one render
may do is capped by a :class:`Budget`: every loop iteration, call, attribute or item read
and operator is counted (a filter or call also counts the items of the lists it is
given), and the wall time is checked at each count, so nested loops fail fast instead of
hanging the caller. Trigger templates run on the API's request thread and get
:data:`TRIGGER_BUDGET`; step templates get :data:`STEP_BUDGET`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, nodes, pass_context
from jinja2 import TemplateError as JinjaError
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import FILTERS
from jinja2.meta import TrackingCodeGenerator
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.errors import PermanentStepError

#: Longest rendered text, and longest string or list built while rendering, in characters.
MAX_RENDER_CHARS = 65_536
#: Largest integer arithmetic may build, in bits (``2 ** 4096`` passes, ``10 ** 10 ** 9`` not).
MAX_INTEGER_BITS = 4096
#: The names a workflow template may read.
CONTEXT_NAMES = frozenset(
    {"body", "headers", "query", "trigger", "vars", "secrets", "execution", "steps"}
)
#: How much of a template an error message quotes, in characters.
EXCERPT_CHARS = 200

_WRAPPED = re.compile(r"\A\s*\{\{-?(?P<inner>.*?)-?\}\}\s*\Z", re.DOTALL)
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_TEMPLATE_FILE = "<template>"
_LOADS = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


@dataclass(frozen=True)
class Budget:
    """The most work one render (or evaluation) may do: counted operations and wall time."""

    #: Whose templates these are, for the error message ("trigger", "step").
    name: str
    #: Loop iterations, calls, attribute/item reads and operators, plus list items handed
    #: to filters and calls.
    operations: int
    #: Wall time, in milliseconds; checked at every counted operation.
    milliseconds: int


#: Step templates (http, notify, approval, ``when``, condition expressions) in the worker.
STEP_BUDGET = Budget("step", operations=250_000, milliseconds=5_000)
#: ``dedupe_key`` and ``resolve_when``: they run on the API's request thread for every
#: webhook sender, authenticated or not, so they get a small budget.
TRIGGER_BUDGET = Budget("trigger", operations=10_000, milliseconds=250)


class TemplateError(PermanentStepError):
    """A template or expression cannot compile or render; the message quotes it."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class _TooLarge(Exception):
    """A value would grow past MAX_RENDER_CHARS."""


class _OverBudget(Exception):
    """A render did more work than its Budget allows."""


class _Meter:
    """What is left of one render's Budget."""

    __slots__ = ("budget", "deadline", "left")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.left = budget.operations
        self.deadline = time.monotonic() + budget.milliseconds / 1000

    def spend(self, operations: int) -> None:
        self.left -= operations
        if self.left < 0:
            raise _OverBudget(
                f"it does more than {self.budget.operations} operations (loop iterations, calls, "
                f"reads), the limit for {self.budget.name} templates; make it simpler"
            )
        if time.monotonic() > self.deadline:
            raise _OverBudget(
                f"it runs for more than {self.budget.milliseconds} ms, the limit for "
                f"{self.budget.name} templates; make it simpler"
            )


# The meter of the render running in this thread (or task); None outside any render.
_METER: ContextVar[_Meter | None] = ContextVar("template_meter", default=None)


def _spend(operations: int = 1) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.spend(operations)


def _items(values: Iterable[Any]) -> int:
    """How many list, dict and range items ``values`` hold: the work a call over them may do."""
    return sum(len(value) for value in values if isinstance(value, (list, tuple, dict, set, range)))


@contextmanager
def _metered(budget: Budget) -> Iterator[None]:
    """Count the work done inside against ``budget``; inside another render, share its meter."""
    if _METER.get() is not None:
        yield
        return
    token = _METER.set(_Meter(budget))
    try:
        yield
    finally:
        _METER.reset(token)


def _size(value: Any) -> int:
    """Characters plus items in ``value``, nested containers counted; stops past the cap."""
    total, pending = 0, [value]
    while pending and total <= MAX_RENDER_CHARS:
        item = pending.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, (list, tuple, dict)):
            total += len(item)
            if total <= MAX_RENDER_CHARS:
                pending.extend(item.values() if isinstance(item, dict) else item)
    return total


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_RENDER_CHARS:
        raise _TooLarge(f"{what} would be over {MAX_RENDER_CHARS} characters")


def _checked(value: Any, what: str) -> Any:
    _refuse_over(_size(value), what)
    return value


def _check_widths(widths: Iterable[str | None]) -> None:
    for width in widths:
        if width == "*" or (width and (len(width) > 6 or int(width) > MAX_RENDER_CHARS)):
            raise _TooLarge(f"a format width over {MAX_RENDER_CHARS} (or '*') is refused")


def _check_percent_format(text: str) -> None:
    for match in _PERCENT_FIELD.finditer(text):
        _check_widths(match.groups())


def _check_brace_format(text: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(text):
        if spec and "{" in spec:
            raise _TooLarge("a nested format width is refused")
        _check_widths(re.findall(r"\d+", spec or ""))


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, (str, bytes, list, tuple)):
        left, right = right, left
    if isinstance(right, int) and isinstance(left, (str, bytes, list, tuple)):
        _refuse_over(_size(left) * max(right, 0), "the repeated value")
    elif isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise _TooLarge(f"the product would be over {MAX_INTEGER_BITS} bits")
    return left * right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, (str, bytes, list, tuple)):
        _refuse_over(_size(left) + _size(right), "the joined value")
    return left + right


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * (abs(left).bit_length() - 1) > MAX_INTEGER_BITS:
            raise _TooLarge(f"the power would be over {MAX_INTEGER_BITS} bits")
    return left**right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_percent_format(left)
        return _checked(left % right, "the formatted text")
    return left % right


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": _multiply,
    "+": _add,
    "**": _power,
    "%": _modulo,
}


def _check_str_method(owner: str | bytes, name: str, args: tuple, kwargs: dict) -> tuple:
    """``args``, after refusing str methods whose arguments would build text over the cap."""
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        _refuse_over(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        _refuse_over(
            len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * tab, name
        )
    elif name == "replace" and len(args) >= 2:
        _refuse_over(len(owner) + (owner.count(args[0]) * (len(args[1]) - len(args[0]))), name)
    elif name == "join" and args:
        items = list(args[0])
        _refuse_over(_size(items) + len(owner) * max(len(items) - 1, 0), "str.join()")
        return (items, *args[1:])
    return args


def _bounded_filter(name: str, guard: Callable[..., None]) -> Callable[..., Any]:
    """Jinja's filter ``name``, with ``guard(*args)`` first and its result capped."""
    original = FILTERS[name]
    pass_arg = getattr(original, "jinja_pass_arg", None)  # set by @pass_eval_context & co.

    def bounded(*args: Any, **kwargs: Any) -> Any:
        guard(*(args[1:] if pass_arg else args), **kwargs)
        return _checked(original(*args, **kwargs), f"the {name} filter's result")

    if pass_arg is not None:
        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return bounded


def _guard_width(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    lines = str(value).count("\n") + 1
    _refuse_over(lines * (len(width) if isinstance(width, str) else int(width)), "the padding")


def _guard_count(value: Any, count: Any, *args: Any, **kwargs: Any) -> None:
    _refuse_over(int(count), "the number of groups")


def _guard_join(value: Any, d: str = "", *args: Any, **kwargs: Any) -> None:
    d = kwargs.get("d", d)
    if isinstance(value, (list, tuple, str, range)):
        _refuse_over(len(str(d)) * max(len(value) - 1, 0), "the joined text")


def _guard_replace(s: Any, old: Any, new: Any, count: Any = None, **kwargs: Any) -> None:
    text, old, new = str(s), str(old), str(new)
    _refuse_over(len(text) + text.count(old) * (len(new) - len(old)), "the replaced text")


def _guard_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent_format(str(value))


def _guard_sum(iterable: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(iterable, (list, tuple)):
        _refuse_over(_size(iterable) + _size(kwargs.get("start", 0)), "the sum")


# What a filter marked @pass_context, @pass_eval_context or @pass_environment is given first.
_PASSED: dict[str | None, Callable[[Context], tuple]] = {
    None: lambda context: (),
    "context": lambda context: (context,),
    "eval_context": lambda context: (context.eval_ctx,),
    "environment": lambda context: (context.environment,),
}


def _metered_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    """Jinja filter ``original``, charged one operation plus the items of its arguments.

    Taking the render's context also keeps Jinja from calling it while compiling: its
    constant folding would run filters outside any budget, and retries every level of a
    filter chain (100 chained filters took 10 s to compile, at upload).
    """
    pass_arg = getattr(original, "jinja_pass_arg", None)  # set by @pass_eval_context & co.
    passed = _PASSED[pass_arg.name if pass_arg is not None else None]

    @pass_context
    def metered(context: Context, *args: Any, **kwargs: Any) -> Any:
        _spend(1 + _items(args) + _items(kwargs.values()))
        return original(*passed(context), *args, **kwargs)

    return metered


def _counted_body(node: nodes.For) -> nodes.For:
    """``node`` with a call to ``environment.count_iteration()`` first in its body."""
    tick = nodes.Call(nodes.EnvironmentAttribute("count_iteration"), [], [], None, None)
    counted = copy.copy(node)
    counted.body = [nodes.ExprStmt(tick, lineno=node.lineno), *node.body]
    return counted


class _CodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a call that refuses text over the cap, and counts loop iterations."""

    def visit_For(self, node: nodes.For, frame: Any) -> None:  # noqa: N802 - Jinja's name
        # Every iteration, recursive loops included, goes through the sandbox's call().
        super().visit_For(_counted_body(node), frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:  # noqa: N802 - Jinja's name
        self.write("environment.concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class _Undefined(ChainableUndefined, StrictUndefined):
    """Fails when printed, compared or tested, yet chains: ``a.b.c | default('x')`` works."""

    __slots__ = ()


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with size guards on operators, string methods and growing filters.

    Every loop iteration, call, attribute or item read and intercepted operator is charged
    to the running render's meter (see :class:`Budget`).
    """

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset(_BINOPS)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _spend()
        return _BINOPS[operator_](left, right)

    @staticmethod
    def count_iteration() -> None:
        """Called first in every loop iteration; the call itself is what is charged."""

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend()
        return super().getitem(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _spend()
        if isinstance(obj, Undefined):
            return obj  # keep the first failure's message: it names what is missing
        # Also refuse ``body._key``: a dotted name starting with "_" reads like an attribute.
        if attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        # Payload keys win over dict methods: ``body.items`` is the data, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        owner = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_brace_format(owner)
            return _checked(sandboxed(*args, **kwargs), "the formatted text")

        return checked

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _spend(1 + _items(args) + _items(kwargs.values()))
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, bytes)):
            args = _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    @staticmethod
    def concat(values: Iterable[Any]) -> str:
        """Join ``a ~ b`` and block output (macros, ``{% set %}`` blocks), capped."""
        parts = [str(value) for value in values]
        _spend()
        _refuse_over(sum(map(len, parts)), "the joined text")
        return "".join(parts)


# Jinja's optimizer re-walks each expression's subtree at every level: quadratic in how
# deeply expressions nest, and all it saves is folding constants, which we do not need.
_ENV = _Sandbox(undefined=_Undefined, autoescape=False, optimized=False)
del _ENV.globals["lipsum"]  # random prose with a size argument: no use here, a way to blow up
_ENV.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False, "default": str}
_ENV.filters.update(
    {
        "center": _bounded_filter("center", _guard_width),
        "indent": _bounded_filter("indent", _guard_width),
        "batch": _bounded_filter("batch", _guard_count),
        "slice": _bounded_filter("slice", _guard_count),
        "join": _bounded_filter("join", _guard_join),
        "replace": _bounded_filter("replace", _guard_replace),
        "format": _bounded_filter("format", _guard_format),
        "sum": _bounded_filter("sum", _guard_sum),
    }
)
_ENV.filters = {name: _metered_filter(original) for name, original in _ENV.filters.items()}
_KNOWN_GLOBALS = frozenset(_ENV.globals)


def _quote(source: str) -> str:
    text = source if len(source) <= EXCERPT_CHARS else source[: EXCERPT_CHARS - 3] + "..."
    return '"' + text.replace("\n", "\\n") + '"'


def _template_line(error: BaseException) -> int | None:
    line, trace = None, error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _failure(error: Exception, source: str) -> TemplateError:
    """``error`` raised while compiling or running ``source``, as one TemplateError."""
    where = _quote(source)
    line = getattr(error, "lineno", None) or _template_line(error)
    if line and "\n" in source.strip():
        where += f" (line {line})"
    if isinstance(error, SecurityError):
        message = f"unsafe access refused in {where}: {str(error).rstrip('.')}"
    elif isinstance(error, _TooLarge):
        message = f"output too large in {where}: {error}"
    elif isinstance(error, _OverBudget):
        message = f"too much work in {where}: {error}"
    elif isinstance(error, TemplateSyntaxError):
        message = f"template syntax error in {where}: {error.message}"
    elif isinstance(error, JinjaError):
        message = f"template error in {where}: {error.message}"
    else:
        message = f"template error in {where}: {type(error).__name__}: {error}"
    return TemplateError(message, source=source)


def expression_source(text: str) -> str:
    """The expression inside ``text``: itself when bare, the inside of one ``{{ }}`` when wrapped."""
    match = _WRAPPED.match(text)
    return match.group("inner") if match else text


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    try:
        return _ENV.from_string(source)
    except Exception as error:
        raise _failure(error, source) from error


@functools.lru_cache(maxsize=1024)
def _expression(text: str) -> TemplateExpression:
    try:
        return _ENV.compile_expression(expression_source(text), undefined_to_none=False)
    except Exception as error:
        raise _failure(error, text) from error


def _require_text(text: Any) -> None:
    if not isinstance(text, str):
        raise TemplateError(f"expected template text, got {type(text).__name__}", source=repr(text))


def render(template: str, context: Mapping[str, Any], *, budget: Budget = STEP_BUDGET) -> str:
    """``template`` rendered against ``context``: at most MAX_RENDER_CHARS characters.

    The render may do at most ``budget``'s work; beyond it, TemplateError says so.
    """
    _require_text(template)
    if "{" not in template:
        if len(template) > MAX_RENDER_CHARS:
            raise _failure(_TooLarge(f"the text is over {MAX_RENDER_CHARS} characters"), template)
        return template
    compiled = _template(template)
    parts: list[str] = []
    size = 0
    try:
        with _metered(budget):
            for part in compiled.generate(context):
                size += len(part)
                _refuse_over(size, "the rendered text")
                parts.append(part)
    except Exception as error:
        raise _failure(error, template) from error
    return "".join(parts)


def render_value(value: Any, context: Mapping[str, Any], *, budget: Budget = STEP_BUDGET) -> Any:
    """``value`` with every string inside it (dict values, list items) rendered; keys are not.

    All the strings share one ``budget``.
    """
    with _metered(budget):
        return _render_each(value, context)


def _render_each(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {key: _render_each(item, context) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_render_each(item, context) for item in value)
    return value


def _settled(value: Any) -> Any:
    """``value`` with iterators made lists; an Undefined anywhere in it raises."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Iterator):
        value = list(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_settled(item) for item in value)
    if isinstance(value, dict):
        return {key: _settled(item) for key, item in value.items()}
    return value


def evaluate(expression: str, context: Mapping[str, Any], *, budget: Budget = STEP_BUDGET) -> Any:
    """The native value of ``expression`` (bare, or wrapped in one ``{{ }}``) in ``context``.

    The evaluation may do at most ``budget``'s work; beyond it, TemplateError says so.
    """
    _require_text(expression)
    compiled = _expression(expression)
    try:
        with _metered(budget):
            return _settled(compiled(context))
    except Exception as error:
        raise _failure(error, expression) from error


# ---- static checks -------------------------------------------------------------------------


class _UndeclaredNames(TrackingCodeGenerator):
    """``jinja2.meta.find_undeclared_variables``'s tracker, without Jinja's optimizer."""

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(
            self, environment, "<introspection>", "<introspection>", optimized=False
        )
        self.undeclared_identifiers: set[str] = set()


def _undeclared(tree: nodes.Template) -> set[str]:
    """The context names template ``tree`` reads."""
    tracker = _UndeclaredNames(_ENV)
    tracker.visit(tree)
    return tracker.undeclared_identifiers


@functools.lru_cache(maxsize=1024)
def _analysis(text: str, expression: bool) -> tuple[frozenset[str], tuple[str, ...], tuple]:
    """(names read from the context, problems seen in the tree, the tree) of valid ``text``."""
    if expression:
        _expression(text)
        parser = Parser(_ENV, expression_source(text), state="variable")
        tree: nodes.Node = nodes.Template([nodes.Output([parser.parse_expression()])])
        names = {name.name for name in tree.find_all(nodes.Name) if name.ctx == "load"}
    else:
        _template(text)
        tree = _ENV.parse(text)
        names = _undeclared(tree)
    private = [node.attr for node in tree.find_all(nodes.Getattr) if node.attr.startswith("_")]
    problems = []
    if private:
        listed = ", ".join(repr(name) for name in dict.fromkeys(private))
        subject = "attributes {} start" if len(set(private)) > 1 else "attribute {} starts"
        problems.append(f"{subject.format(listed)} with '_', which the sandbox refuses")
    if any(True for _ in tree.find_all(_LOADS)):
        problems.append("extends, include and import are not available in workflow templates")
    return frozenset(names), tuple(problems), (tree,)


def _check(text: str, names: frozenset[str], expression: bool) -> list[str]:
    try:
        used, problems, _ = _analysis(text, expression)
    except TemplateError as error:
        hint = ""
        if expression and ("{{" in text or "}}" in text):
            hint = " (write the whole expression inside one {{ }}, or none)"
        return [_strip_quote(error) + hint]
    found = list(problems)
    allowed = names | _KNOWN_GLOBALS
    for name in sorted(used - allowed):
        close = difflib.get_close_matches(name, sorted(names), n=1)
        suggestion = f"did you mean {close[0]!r}?" if close else f"use {', '.join(sorted(names))}"
        found.append(f"unknown name {name!r}; {suggestion}")
    return found


def _strip_quote(error: TemplateError) -> str:
    """``template syntax error in "...": X`` -> ``template syntax error: X`` (the field is known)."""
    message = str(error)
    head, _, detail = message.partition(f" in {_quote(error.source)}")
    return f"{head}{detail}" if detail else message


def check_template(text: str, *, names: frozenset[str] = CONTEXT_NAMES) -> list[str]:
    """Problems in template ``text``: syntax, names outside ``names``, refused attributes."""
    return _check(text, names, expression=False)


def check_expression(text: str, *, names: frozenset[str] = CONTEXT_NAMES) -> list[str]:
    """Problems in expression ``text`` (bare or wrapped), as for :func:`check_template`."""
    return _check(text, names, expression=True)


def referenced_keys(text: str, name: str, *, expression: bool = False) -> set[str]:
    """Every X in ``name.X`` or ``name['X']`` in ``text``; empty when it does not parse."""
    try:
        _, _, (tree,) = _analysis(text, expression)
    except TemplateError:
        return set()
    found = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == name):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def referenced_steps(text: str, *, expression: bool = False) -> set[str]:
    """Every X in ``steps.X`` or ``steps['X']`` in ``text``; empty when it does not parse."""
    return referenced_keys(text, "steps", expression=expression)


__all__ = [
    "CONTEXT_NAMES",
    "MAX_RENDER_CHARS",
    "STEP_BUDGET",
    "TRIGGER_BUDGET",
    "Budget",
    "TemplateError",
    "check_expression",
    "check_template",
    "evaluate",
    "expression_source",
    "referenced_keys",
    "referenced_steps",
    "render",
    "render_value",
]
