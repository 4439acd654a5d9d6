"""Operations across steps: the names, signatures and static checks of the series algebra.

Spec expressions act within one step (``u**2 * v**2``, ``theta[0]``): the compiler of
:mod:`eosdsl.expr.compiler` builds closures that see one step's values, and check expressions are
``vmap``-ed over the recorded steps. The operators listed in :data:`OPERATORS` need the *step axis*:
``shift(u, 1)`` is u_{t−1}, ``first(u**2 < (2 - eps)/eta)`` is a step (τ_u), ``fraction(alpha < 0)`` a
share of steps. They are evaluated on whole recorded series after a run (``eosdsl.checks.series_ops``),
so only expressions of checks and derived measures may use them; everywhere else they are an unknown
function with a message saying where they belong.

This module has no numerical code: it parses, checks and types an expression statically, so that
``eosdsl validate`` reports a misspelled series name, a condition that is not a condition, or a window
bound that is not a single number, at the column where it is, before anything runs.

Static types. Every sub-expression is a *series* (it has a value at each of some recorded steps) or a
*scalar* (one value for the whole run), and a *condition* (boolean) or a *number*:

- a recorded series name (or ``step``) is a series; constants and reference values are scalars;
- ``shift``, ``delta``, ``running_sum``, ``running_prod``, ``rolling_mean`` give series;
- ``at``, ``final``, ``first``, ``last``, the ``window_*`` reductions, ``fraction``, ``count``, ``any``
  and ``all`` give scalars;
- any other operator or function is a series if one of its operands is.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eosdsl.expr.compiler import ExprError, compile_expr
from eosdsl.expr.functions import FUNCTIONS, arity, function_signature

__all__ = [
    "OPERATORS",
    "STEP",
    "Operator",
    "across_calls",
    "check_series_expression",
    "is_across",
    "operator_help",
    "uses_across",
]

STEP = "step"
"""In check expressions, the series of step numbers t (recorded at every step any series was)."""


@dataclass(frozen=True)
class Operator:
    """An across-step operator: its positional parameters, keywords and the kind of its result.

    ``params``: names of the positional parameters; ``required``: how many of them must be given.
    ``result``: ``"series"`` or ``"scalar"``. ``condition``: the first argument must be a condition.
    ``integer``: the positional parameter that must be an integer literal (a lag, a window length).
    ``doc``: one line for the documentation table.
    """

    params: tuple[str, ...]
    required: int
    result: str
    doc: str
    condition: bool = False
    integer: str | None = None
    window: bool = False  # takes start, end (positional or keyword) and where= (keyword)

    def signature(self, name: str) -> str:
        shown = [p if i < self.required else f"{p}=…" for i, p in enumerate(self.params)]
        if self.window:
            shown.append("where=…")
        return f"{name}({', '.join(shown)})"


_WINDOW = ("start", "end")


def _series(params: tuple[str, ...], required: int, doc: str, integer: str | None = None) -> Operator:
    return Operator(params, required, "series", doc, integer=integer)


def _reduction(doc: str, condition: bool = False) -> Operator:
    first = "cond" if condition else "x"
    return Operator((first, *_WINDOW), 1, "scalar", doc, condition=condition, window=True)


OPERATORS: dict[str, Operator] = {
    "shift": _series(("x", "k"), 2, "x_{t−k}: the value recorded k steps earlier (k < 0: later)", "k"),
    "delta": _series(("x", "k"), 1, "Δx_t = x_t − x_{t−k} (k = 1 by default)", "k"),
    "running_sum": _series(("x",), 1, "Σ_{s ≤ t} x_s over the recorded steps s (cumulative sum)"),
    "running_prod": _series(("x",), 1, "∏_{s ≤ t} x_s over the recorded steps s (cumulative product)"),
    "rolling_mean": _series(("x", "k"), 2, "mean of the k most recent records of x, from the k-th on", "k"),
    "at": Operator(("x", "t"), 2, "scalar", "x at step t (t a single number, e.g. `first(…)`)"),
    "final": Operator(("x",), 1, "scalar", "the last recorded value of x (x_T)"),
    "first": _reduction("first step in the window where cond holds", condition=True),
    "last": _reduction("last step in the window where cond holds", condition=True),
    "window_max": _reduction("max of x over the window"),
    "window_min": _reduction("min of x over the window"),
    "window_mean": _reduction("mean of x over the window"),
    "window_sum": _reduction("sum of x over the window"),
    "window_argmax": _reduction("step of the max of x in the window"),
    "window_argmin": _reduction("step of the min of x in the window"),
    "fraction": _reduction("share of the window's steps where cond holds", condition=True),
    "count": _reduction("number of the window's steps where cond holds", condition=True),
    "any": _reduction("cond holds at some step of the window", condition=True),
    "all": _reduction("cond holds at every step of the window", condition=True),
}
"""Every across-step operator by name."""

_BOOLEAN_RESULTS = frozenset({"any", "all"})


def is_across(name: str) -> bool:
    """Whether ``name`` is an across-step operator."""
    return name in OPERATORS


def operator_help(name: str) -> str:
    """The message for an across-step operator used where only per-step expressions are allowed."""
    return (
        f"`{name}` acts across steps ({OPERATORS[name].signature(name)}); it is available only in the "
        "expressions of checks and derived measures, which are evaluated on the recorded series"
    )


def _called(node: ast.AST) -> str | None:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def across_calls(tree: ast.AST) -> list[ast.Call]:
    """Every across-step call in ``tree``."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) in OPERATORS]


def uses_across(source: str) -> bool:
    """Whether ``source`` calls an across-step operator (False for sources that do not parse)."""
    if not any(name + "(" in source.replace(" ", "") for name in OPERATORS):
        return False
    try:
        return bool(across_calls(ast.parse(source.strip(), mode="eval")))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


@dataclass(frozen=True)
class Typed:
    """Static type of a sub-expression: does it vary by step, is it a condition."""

    series: bool
    condition: bool


class _Checker:
    """Walks an expression with across-step calls; per-step parts are compiled by the expression compiler."""

    def __init__(
        self,
        source: str,
        series: frozenset[str],
        scalars: frozenset[str],
        conditions: frozenset[str],
        cadence: Mapping[str, int],
    ) -> None:
        self.source = source
        self.conditions = conditions
        self.cadence = cadence
        self.lead = len(source) - len(source.lstrip())
        self.text = source.lstrip()
        self.series = series
        self.scalars = scalars
        self.names: set[str] = set()

    def offset(self, node: ast.AST) -> int | None:
        if getattr(node, "lineno", None) is None:
            return None
        lines = self.text.splitlines(keepends=True)
        start = sum(len(line) for line in lines[: node.lineno - 1])
        col = len(lines[node.lineno - 1].encode("utf-8")[: node.col_offset].decode("utf-8", errors="ignore"))
        return self.lead + start + col

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.unparse(node)

    def error(self, message: str, node: ast.AST) -> ExprError:
        return ExprError(message, self.source, self.offset(node))

    def check(self, node: ast.AST) -> Typed:
        if not across_calls(node):
            return self.per_step(node)
        name = _called(node)
        if name in OPERATORS:
            return self.operator(name, node)  # type: ignore[arg-type]
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            parts = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.operand]
            typed = [self.check(p) for p in parts]
            is_not = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
            return Typed(any(t.series for t in typed), is_not)
        if isinstance(node, ast.Compare | ast.BoolOp):
            parts = [node.left, *node.comparators] if isinstance(node, ast.Compare) else node.values
            typed = [self.check(p) for p in parts]
            return Typed(any(t.series for t in typed), True)
        if isinstance(node, ast.IfExp):
            typed = [self.check(p) for p in (node.test, node.body, node.orelse)]
            return Typed(any(t.series for t in typed), typed[1].condition and typed[2].condition)
        if isinstance(node, ast.Call) and name in FUNCTIONS:
            if node.keywords:
                signature = function_signature(name)
                raise self.error(f"`{name}` takes positional arguments only ({signature})", node)
            lo, hi = arity(name)
            if not lo <= len(node.args) <= hi:
                raise self.error(f"`{name}` takes {lo}–{hi} arguments ({function_signature(name)})", node)
            return Typed(any(self.check(a).series for a in node.args), False)
        if isinstance(node, ast.Subscript):
            inner = self.check(node.value)
            self.per_step_index(node)
            return Typed(inner.series, False)
        raise self.error(f"`{self.segment(node)}` is not allowed around an across-step operation", node)

    def per_step_index(self, node: ast.Subscript) -> None:
        probe = ast.Subscript(value=ast.Name(id="_probe", ctx=ast.Load()), slice=node.slice, ctx=ast.Load())
        try:
            compile_expr(ast.unparse(probe), names=["_probe"])
        except ExprError as err:
            raise self.error(err.message, node) from None

    def per_step(self, node: ast.AST) -> Typed:
        """A sub-expression without across-step calls: the expression compiler checks it."""
        text = self.segment(node)
        known = self.series | self.scalars
        try:
            expr = compile_expr(text, names=known)
        except ExprError as err:
            base = self.offset(node) or 0
            inner = None if err.offset is None else base + err.offset - (len(text) - len(text.lstrip()))
            message = err.message
            if message.startswith("unknown function '"):
                fn = message.split("'")[1]
                close = difflib.get_close_matches(fn, list(OPERATORS), n=1)
                if close and "did you mean" not in message:
                    message = f"unknown function '{fn}'; did you mean '{close[0]}'?"
            raise ExprError(message, self.source, inner) from None
        self.names |= expr.names
        named = isinstance(node, ast.Name) and node.id in self.conditions
        return Typed(bool(expr.names & self.series), named or _is_condition(node))

    def argument(self, op: str, spec: Operator, node: ast.Call) -> dict[str, ast.AST]:
        """Bind the call's arguments to the operator's parameter names (or raise)."""
        bound: dict[str, ast.AST] = {}
        if len(node.args) > len(spec.params):
            raise self.error(
                f"`{op}` takes at most {len(spec.params)} positional arguments ({spec.signature(op)})", node
            )
        for pname, arg in zip(spec.params, node.args, strict=False):
            if isinstance(arg, ast.Starred):
                raise self.error("starred arguments are not allowed", arg)
            bound[pname] = arg
        allowed = set(spec.params[1:]) | ({"where"} if spec.window else set())
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in allowed:
                shown = "**…" if kw.arg is None else kw.arg
                hint = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
                raise self.error(f"`{op}` has no keyword `{shown}` ({spec.signature(op)}){hint}", kw)
            if kw.arg in bound:
                raise self.error(f"`{op}` got `{kw.arg}` twice", kw)
            bound[kw.arg] = kw.value
        missing = [p for p in spec.params[: spec.required] if p not in bound]
        if missing:
            raise self.error(f"`{op}` needs {', '.join(missing)} ({spec.signature(op)})", node)
        return bound

    def lag_fits(self, op: str, x: ast.AST, k: int, where: ast.AST) -> None:
        """``delta(x, k)`` of a series recorded every c steps needs k to be a multiple of c."""
        every = self.cadence.get(x.id, 0) if isinstance(x, ast.Name) else 0
        if op == "delta" and every > 1 and k % every:
            raise self.error(
                f"`{x.id}` is recorded every {every} steps, so no step t has both t and t − {k} "
                f"recorded; use a lag that is a multiple of {every}, e.g. `delta({x.id}, {every})`",
                where,
            )

    def operator(self, op: str, node: ast.Call) -> Typed:
        spec = OPERATORS[op]
        bound = self.argument(op, spec, node)
        first = bound[spec.params[0]]
        typed = self.check(first)
        if spec.condition and not typed.condition:
            raise self.error(
                f"`{op}` needs a condition such as `alpha < 0` as its first argument, "
                f"not `{self.segment(first)}`",
                first,
            )
        if spec.condition and not typed.series:
            raise self.error(
                f"`{op}` needs a condition that varies by step (over a recorded series), "
                f"not `{self.segment(first)}`",
                first,
            )
        if spec.integer is not None and spec.integer in bound:
            arg = bound[spec.integer]
            value = _literal_int(arg)
            if value is None:
                raise self.error(
                    f"`{spec.integer}` of `{op}` must be an integer literal (as in `{op}(x, 2)`), "
                    f"not `{self.segment(arg)}`",
                    arg,
                )
            if op == "rolling_mean" and value < 1:
                raise self.error(f"the window of `rolling_mean` must be at least 1 record, got {value}", arg)
            self.lag_fits(op, first, value, arg)
        elif op == "delta":
            self.lag_fits(op, first, 1, node)
        for pname in ("t", "start", "end"):
            if pname in bound:
                arg = bound[pname]
                if self.check(arg).series:
                    raise self.error(
                        f"`{pname}` of `{op}` must be a single number (a step, e.g. `first(…)`), but "
                        f"`{self.segment(arg)}` varies by step",
                        arg,
                    )
        if "where" in bound:
            mask = self.check(bound["where"])
            if not mask.condition:
                raise self.error(
                    f"`where` of `{op}` must be a condition such as `sharpness > 2 / eta`, "
                    f"not `{self.segment(bound['where'])}`",
                    bound["where"],
                )
        if spec.result == "series":
            return Typed(True, typed.condition and op == "shift")
        return Typed(False, op in _BOOLEAN_RESULTS)


def _is_condition(node: ast.AST) -> bool:
    if isinstance(node, ast.Compare | ast.BoolOp):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return True
    if isinstance(node, ast.IfExp):
        return _is_condition(node.body) and _is_condition(node.orelse)
    return False


def _literal_int(node: ast.AST) -> int | None:
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def check_series_expression(
    source: str,
    series: Iterable[str],
    scalars: Iterable[str],
    conditions: Iterable[str] = (),
    cadence: Mapping[str, int] | None = None,
) -> tuple[frozenset[str], Typed]:
    """Statically check an expression of a check or derived measure; return (names used, its type).

    ``series``: the expression names of the recorded series (plus derived ones); ``scalars``: constants,
    reference values and other names with one value per run; ``conditions``: those of the names that
    are conditions (a claim's ``let: {unstable: sharpness > 2 / eta}``); ``cadence``: the ``every`` of
    series recorded at a fixed cadence (``delta`` of them must lag by a multiple of it). Raises
    :class:`ExprError` (with the offset of the offending node) for an unknown name (with a
    did-you-mean), an across-step operator used with the wrong arguments, a condition argument that is
    not a condition, a step bound that varies by step, or a lag that misses a series' cadence.
    """
    series = frozenset(series) | {STEP}
    scalars = frozenset(scalars)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        expr = compile_expr(source, names=series | scalars)  # raises the compiler's located syntax error
        return expr.names, Typed(bool(expr.names & series), False)
    checker = _Checker(source, series, scalars, frozenset(conditions), cadence or {})
    try:
        typed = checker.check(tree.body)
    except RecursionError:
        raise ExprError("expression is nested too deeply", source, None) from None
    names = frozenset(checker.names | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    return names & (series | scalars), typed
