"""Evaluate expressions with operations across steps on a run's recorded series (numpy).

An expression is evaluated bottom-up. A sub-expression without across-step operators is a per-step
expression: it is compiled by the expression compiler and ``vmap``-ed over the steps where every series
it uses was recorded (:func:`eosdsl.checks.series.per_step_series`). An across-step call
(:data:`eosdsl.expr.across.OPERATORS`) is evaluated here on whole series, its arguments first; the call
is then replaced by a placeholder name bound to its result (a series, or a scalar for reductions) and the
enclosing per-step expression is evaluated as usual.

A value is a :class:`Series` (int64 steps ascending, values with the step axis first) or a *scalar*
(a numpy array without a step axis: a number, a boolean, or a vector for vector series).

Alignment rules (documented in docs/expressions.md, "Operations across steps"):

1. Per-step operations on several series use the steps recorded by *all* of them (their intersection),
   as everywhere else in checks. If every operand has values but they share no step, that is an error
   naming each operand's steps (e.g. ``delta(sharpness)`` on a series recorded every 10 steps).
2. ``shift(x, k)`` moves x's values by k *steps*: its value at step t is x_{t−k}, defined where t − k
   was recorded. ``delta(x, k)`` = x − shift(x, k).
3. ``running_sum``/``running_prod`` accumulate over the recorded steps; ``rolling_mean(x, k)`` averages the
   k most recent *records* (pandas' ``rolling(k).mean()``).
4. ``at(x, t)`` needs t to be one of x's recorded steps (else an error that names the nearest ones).

Edge cases: a window is the inclusive step range [start, end] (default: the whole run) intersected with
the steps where ``where`` holds; a NaN bound (e.g. from a ``first`` that never happens) makes it empty.
``first``/``last`` of a never-true condition, and ``window_max/min/mean/argmax/argmin`` and ``fraction``
of an empty window are NaN; ``window_sum`` and ``count`` of an empty window are 0, ``any`` is false and
``all`` is true (numpy's conventions). A NaN value makes ``window_max/min/mean/sum/argmax/argmin`` NaN
(a diverged run never passes silently); a comparison with NaN is false, so it counts as a step where the
condition does not hold. ``at(x, nan)`` is NaN.
"""

from __future__ import annotations

import ast
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosdsl.checks.series import Series as SeriesTable
from eosdsl.checks.series import expression_name, per_step_series
from eosdsl.expr.across import OPERATORS, STEP
from eosdsl.expr.compiler import ExprError
from eosdsl.spec.scope import parse

__all__ = ["Series", "Value", "evaluate", "evaluate_with"]


@dataclass(frozen=True)
class Series:
    """A series value: ``steps`` (int64, ascending) and ``values`` (step axis first)."""

    steps: np.ndarray
    values: np.ndarray


Value = Series | np.ndarray


def _describe_steps(steps: np.ndarray) -> str:
    """``steps 0, 10, …, 990 (100 records, every 10)`` — for alignment errors."""
    if steps.size == 0:
        return "no steps"
    gaps = np.unique(np.diff(steps)) if steps.size > 1 else np.array([])
    every = f", every {int(gaps[0])}" if gaps.size == 1 else ""
    shown = ", ".join(str(int(s)) for s in steps[:3]) + (f", …, {int(steps[-1])}" if steps.size > 3 else "")
    return f"steps {shown} ({steps.size} records{every})"


class _Evaluator:
    def __init__(self, source: str, series: SeriesTable, scalars: Mapping[str, Any]) -> None:
        self.source = source
        self.lead = len(source) - len(source.lstrip())
        self.text = source.lstrip()
        self.series = {expression_name(k): v for k, v in series.items()}
        if STEP not in self.series and self.series:
            every = [np.asarray(s, dtype=np.int64) for s, _ in self.series.values()]
            steps = np.unique(np.concatenate(every))
            self.series[STEP] = (steps, steps.astype(float))
        self.scalars = dict(scalars)
        self.count = 0
        self.reductions: dict[str, float] = {}  # source of each across-step reduction → its value

    # ---- locations ---------------------------------------------------------------------------

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.unparse(node)

    def error(self, message: str, node: ast.AST) -> ExprError:
        lines = self.text.splitlines(keepends=True)
        start = sum(len(line) for line in lines[: node.lineno - 1])
        col = len(lines[node.lineno - 1].encode("utf-8")[: node.col_offset].decode("utf-8", errors="ignore"))
        return ExprError(f"{message} (in `{self.segment(node)}`)", self.source, self.lead + start + col)

    # ---- evaluation --------------------------------------------------------------------------

    def value(self, node: ast.AST) -> Value:
        name = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if name in OPERATORS:
            return self.operator(name, node)  # type: ignore[arg-type]
        if isinstance(node, ast.Name) and node.id in self.series:
            steps, values = self.series[node.id]
            return Series(np.asarray(steps, dtype=np.int64), np.asarray(values))
        return self.per_step(node)

    def per_step(self, node: ast.AST) -> Value:
        """Evaluate ``node`` per step after replacing its outermost across-step calls by their values."""
        bindings: dict[str, Value] = {}
        labels: dict[str, str] = {}  # placeholder → the across-step call it stands for
        evaluator = self

        class Replace(ast.NodeTransformer):
            def visit_Call(self, call: ast.Call) -> ast.AST:
                if isinstance(call.func, ast.Name) and call.func.id in OPERATORS:
                    evaluator.count += 1
                    placeholder = f"_across{evaluator.count}_"
                    bindings[placeholder] = evaluator.operator(call.func.id, call)
                    labels[placeholder] = evaluator.segment(call)
                    return ast.copy_location(ast.Name(id=placeholder, ctx=ast.Load()), call)
                return self.generic_visit(call)

        tree = Replace().visit(ast.Expression(body=copy.deepcopy(node)))  # keep the parsed tree intact
        source = ast.unparse(tree.body)
        expr = parse(source)
        scalars = {**self.scalars, **{k: v for k, v in bindings.items() if not isinstance(v, Series)}}
        table = dict(self.series)
        table.update({k: (v.steps, v.values) for k, v in bindings.items() if isinstance(v, Series)})
        used = sorted(n for n in expr.names if n in table and n not in scalars)
        if not used:
            missing = sorted(n for n in expr.names if n not in scalars)
            if missing:  # a KeyError like `aligned`'s: run_checks reports the check as not applicable
                recorded = ", ".join(sorted(self.series))
                raise KeyError(f"no recorded series {', '.join(missing)} (recorded: {recorded})")
            return np.asarray(expr(scalars))
        nonempty = [n for n in used if np.asarray(table[n][0]).size]
        if len(nonempty) == len(used) and len(used) > 1:
            common = table[used[0]][0]
            for n in used[1:]:
                common = np.intersect1d(common, table[n][0])
            if common.size == 0:
                described = "; ".join(
                    f"`{labels.get(n, n)}` at {_describe_steps(np.asarray(table[n][0]))}" for n in used
                )
                raise self.error(f"these series share no recorded step: {described}", node)
        steps, values = per_step_series(source, table, scalars)
        return Series(np.asarray(steps, dtype=np.int64), np.asarray(values))

    # ---- the operators -----------------------------------------------------------------------

    def bind(self, op: str, node: ast.Call) -> dict[str, ast.AST]:
        params = OPERATORS[op].params
        bound = dict(zip(params, node.args, strict=False))
        bound.update({kw.arg: kw.value for kw in node.keywords if kw.arg is not None})
        return bound

    def scalar(self, node: ast.AST, what: str) -> float:
        value = self.value(node)
        if isinstance(value, Series) or np.ndim(value) != 0:
            raise self.error(f"{what} must be a single number", node)
        return float(value)

    def integer(self, node: ast.AST) -> int:
        value = ast.literal_eval(node)
        if type(value) is not int:
            raise self.error("must be an integer literal", node)
        return value

    def operator(self, op: str, node: ast.Call) -> Value:
        value = self.compute(op, node)
        if not isinstance(value, Series) and np.ndim(value) == 0:
            self.reductions[self.segment(node)] = float(value)
        return value

    def compute(self, op: str, node: ast.Call) -> Value:
        bound = self.bind(op, node)
        x = self.value(bound[OPERATORS[op].params[0]])
        if op in ("shift", "delta"):
            k = self.integer(bound["k"]) if "k" in bound else 1
            if not isinstance(x, Series):
                return x if op == "shift" else np.zeros_like(x, dtype=float)
            if op == "shift":
                return Series(x.steps + k, x.values)
            return self.delta(x, k, node)
        if op in ("running_sum", "running_prod"):
            if not isinstance(x, Series):
                raise self.error(f"`{op}` needs a series", node)
            fn = np.cumsum if op == "running_sum" else np.cumprod
            return Series(x.steps, fn(np.asarray(x.values, dtype=float), axis=0))
        if op == "rolling_mean":
            return self.rolling_mean(x, self.integer(bound["k"]), node)
        if op == "final":
            if not isinstance(x, Series):
                return np.asarray(x)
            values = np.asarray(x.values)
            return values[-1] if x.steps.size else np.full(values.shape[1:], np.nan)
        if op == "at":
            return self.at(x, self.scalar(bound["t"], "the step of `at`"), bound["x"])
        return self.reduce(op, x, bound, node)

    def delta(self, x: Series, k: int, node: ast.Call) -> Series:
        """Δx_t = x_t − x_{t−k} on the steps t where both t and t − k were recorded."""
        steps, here, there = np.intersect1d(x.steps, x.steps + k, return_indices=True)
        if steps.size == 0 and x.steps.size > 1:
            raise self.error(
                f"no recorded step t has t − {k} recorded too ({_describe_steps(x.steps)}); pass the "
                "lag as the second argument, e.g. `delta(x, 10)` for a series recorded every 10 steps",
                node,
            )
        values = np.asarray(x.values, dtype=float)
        return Series(steps, values[here] - values[there])

    def rolling_mean(self, x: Value, k: int, node: ast.Call) -> Value:
        """Mean of the k most recent records, from the k-th record on (pandas ``rolling(k).mean()``)."""
        if not isinstance(x, Series):
            return np.asarray(x, dtype=float)
        values = np.asarray(x.values, dtype=float)
        if values.shape[0] < k:
            return Series(x.steps[:0], values[:0])
        windows = np.lib.stride_tricks.sliding_window_view(values, k, axis=0)
        return Series(x.steps[k - 1 :], windows.mean(axis=-1))

    def at(self, x: Value, t: float, node: ast.AST) -> np.ndarray:
        """x at step t: NaN for t = NaN; t must be one of x's recorded steps."""
        if not isinstance(x, Series):
            return np.asarray(x)
        values = np.asarray(x.values)
        if math.isnan(t):
            return np.full(values.shape[1:], np.nan)
        if t != round(t):
            raise self.error(f"step {t} is not an integer", node)
        i = int(np.searchsorted(x.steps, int(t)))
        if i >= x.steps.size or x.steps[i] != int(t):
            near = x.steps[max(i - 1, 0) : i + 1]
            raise self.error(
                f"step {int(t)} is not recorded (nearest recorded: {', '.join(str(int(s)) for s in near)}; "
                f"{_describe_steps(x.steps)})",
                node,
            )
        return values[i]

    def window(self, x: Value, bound: dict[str, ast.AST], node: ast.Call) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of x in the window [start, end] where ``where`` holds."""
        parts: list[Series] = [x] if isinstance(x, Series) else []
        mask_value = self.value(bound["where"]) if "where" in bound else None
        if isinstance(mask_value, Series):
            parts.append(mask_value)
        if not parts:
            raise self.error("needs a series (an expression over recorded series)", node)
        steps = parts[0].steps
        for part in parts[1:]:
            steps = np.intersect1d(steps, part.steps)
        if len(parts) > 1 and steps.size == 0 and all(p.steps.size for p in parts):
            raise self.error(
                "the series and its `where` condition share no recorded step "
                f"({_describe_steps(parts[0].steps)}; where: {_describe_steps(parts[1].steps)})",
                node,
            )
        keep = np.ones(steps.shape, dtype=bool)
        for pname, side in (("start", 1), ("end", -1)):
            if pname in bound:
                limit = self.scalar(bound[pname], f"`{pname}`")
                keep &= (steps >= limit) if side == 1 else (steps <= limit)  # NaN: empty window
        if mask_value is not None:
            if isinstance(mask_value, Series):
                mask = np.asarray(mask_value.values)[np.searchsorted(mask_value.steps, steps)]
            else:
                mask = np.broadcast_to(np.asarray(mask_value), steps.shape)
            keep &= np.asarray(mask, dtype=bool).reshape(steps.shape)
        if isinstance(x, Series):
            values = np.asarray(x.values)[np.searchsorted(x.steps, steps)]
        else:
            values = np.broadcast_to(np.asarray(x), steps.shape + np.shape(x))
        return steps[keep], values[keep]

    def reduce(self, op: str, x: Value, bound: dict[str, ast.AST], node: ast.Call) -> np.ndarray:
        steps, values = self.window(x, bound, node)
        if OPERATORS[op].condition:
            return _reduce_condition(op, steps, np.asarray(values, dtype=bool))
        return _reduce_values(op, steps, np.asarray(values, dtype=float))


def _reduce_condition(op: str, steps: np.ndarray, holds: np.ndarray) -> np.ndarray:
    """first/last/fraction/count/any/all of a boolean series (step axis first) over a window."""
    n = holds.shape[0]
    if op == "count":
        return np.sum(holds, axis=0).astype(float)
    if op == "fraction":
        return np.sum(holds, axis=0) / n if n else np.full(holds.shape[1:], np.nan)
    if op == "any":
        return np.any(holds, axis=0)
    if op == "all":
        return np.all(holds, axis=0)
    flat = holds.reshape(n, -1)
    out = np.full(flat.shape[1], np.nan)
    for j in range(flat.shape[1]):
        where = np.flatnonzero(flat[:, j])
        if where.size:
            out[j] = steps[where[0] if op == "first" else where[-1]]
    return out.reshape(holds.shape[1:])


def _reduce_values(op: str, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """window_max/min/mean/sum/argmax/argmin over a window (step axis first)."""
    if op == "window_sum":
        return np.sum(values, axis=0)
    if values.shape[0] == 0:
        return np.full(values.shape[1:], np.nan)
    if op == "window_max":
        return np.max(values, axis=0)
    if op == "window_min":
        return np.min(values, axis=0)
    if op == "window_mean":
        return np.mean(values, axis=0)
    index = np.argmax(values, axis=0) if op == "window_argmax" else np.argmin(values, axis=0)
    out = steps[index].astype(float)
    return np.where(np.any(np.isnan(values), axis=0), np.nan, out)


def evaluate_with(
    source: str, series: SeriesTable, scalars: Mapping[str, Any]
) -> tuple[Value, dict[str, float]]:
    """Evaluate ``source``; also return the value of each scalar across-step call, by its source text."""
    evaluator = _Evaluator(source, series, scalars)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as err:
        raise ExprError(f"syntax error: {err.msg}", source, None) from None
    return evaluator.value(tree.body), evaluator.reductions


def evaluate(source: str, series: SeriesTable, scalars: Mapping[str, Any]) -> Value:
    """The value of ``source`` (a :class:`Series` or a scalar array) over recorded series and scalars."""
    return evaluate_with(source, series, scalars)[0]
