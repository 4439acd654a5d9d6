"""The ``claim`` check: a paper's formula ``lhs op rhs`` over one run's recorded series.

``let`` names are evaluated in order (each a series or a single number, by
:mod:`eosdsl.checks.series_ops`), then ``that``. Its margin is ≥ 0 iff the claim holds:

* ``lhs <= rhs`` / ``lhs < rhs``: margin = rhs − lhs + tol;
* ``lhs >= rhs`` / ``lhs > rhs``: margin = lhs − rhs + tol;

a strict comparison with ``tol = 0`` needs margin > 0. When a side varies by step, the margin is the
smallest over the steps both sides share (and over the components of a vector), and the worst step and the
number of violating steps are reported. A NaN margin (a NaN side, e.g. ``first`` of a condition that never
holds) fails the claim. The result's ``values`` hold lhs and rhs (when they are single numbers), each
``let`` number and each across-step reduction of ``that`` (by its source text).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import Series as SeriesTable
from eosdsl.checks.series import expression_name
from eosdsl.checks.series_ops import Series, evaluate_with
from eosdsl.spec.checks import ClaimCheck
from eosdsl.spec.recorded import RecordedSeries

__all__ = ["claim"]

_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_MAX_REPORTED = 12


def _sides(that: str) -> tuple[str, str, str]:
    """(lhs source, op, rhs source) of a one-comparison claim."""
    text = that.strip()
    body = ast.parse(text, mode="eval").body
    if not (isinstance(body, ast.Compare) and len(body.ops) == 1 and type(body.ops[0]) in _OPS):
        raise ValueError(f"a claim is one comparison `lhs op rhs` (<=, <, >=, >), got `{that}`")
    lhs = ast.get_source_segment(text, body.left) or ast.unparse(body.left)
    rhs = ast.get_source_segment(text, body.comparators[0]) or ast.unparse(body.comparators[0])
    return lhs, _OPS[type(body.ops[0])], rhs


def _number(value: Any) -> float | None:
    array = np.asarray(value)
    return float(array) if array.ndim == 0 and array.dtype.kind in "biuf" else None


def _bind(
    check: ClaimCheck, series: SeriesTable, scalars: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """Evaluate the ``let`` names in order: (series table, scalars, their numbers) for ``that``."""
    table, env, numbers = dict(series), dict(scalars), {}
    for name, source in check.let.items():
        value, _ = evaluate_with(source, table, env)
        if isinstance(value, Series):
            table[name] = (value.steps, value.values)
        else:
            env[name] = value
            if _number(value) is not None:
                numbers[name] = _number(value)
    return table, env, numbers


def _unrecorded(
    check: ClaimCheck, series: SeriesTable, table: Sequence[RecordedSeries]
) -> list[RecordedSeries]:
    """The spec's series (from the one table) that the claim uses but the run holds no values of."""
    used: set[str] = set()
    for source in (*check.let.values(), check.that):
        used |= {n.id for n in ast.walk(ast.parse(source.strip(), mode="eval")) if isinstance(n, ast.Name)}
    present = {expression_name(k) for k, (steps, _) in series.items() if np.asarray(steps).size}
    return [rec for rec in table if rec.expression in used and rec.expression not in present]


def claim(
    check: ClaimCheck,
    series: SeriesTable,
    scalars: Mapping[str, Any],
    table: Sequence[RecordedSeries] | None = None,
) -> CheckResult:
    """Evaluate one ``claim`` check on a run's series (see the module docstring).

    ``table``: the spec's recorded series (:func:`eosdsl.spec.recorded.recorded_series`); a series of it
    that the claim uses but the run recorded no values of (a measure window the run never reached)
    makes the claim not applicable, naming the measure.
    """
    name = check.name or " ".join(check.that.split())
    missing = _unrecorded(check, series, table or ())
    if missing:
        shown = ", ".join(f"{r.expression} (measure[{r.measure}], {r.kind})" for r in missing)
        return CheckResult.not_applicable(name, f"the run recorded no values of {shown}", {})
    table, env, numbers = _bind(check, series, scalars)
    lhs_src, op, rhs_src = _sides(check.that)
    slack_src = f"({rhs_src}) - ({lhs_src})" if op in ("<", "<=") else f"({lhs_src}) - ({rhs_src})"
    slack, reductions = evaluate_with(slack_src, table, env)
    values: dict[str, float] = dict(numbers)
    for source, number in list(reductions.items())[:_MAX_REPORTED]:
        values.setdefault(" ".join(source.split())[:60], number)
    strict = op in ("<", ">") and check.tol == 0
    if isinstance(slack, Series):
        steps = np.asarray(slack.steps)
        if steps.size == 0:
            return CheckResult.not_applicable(name, "the two sides share no recorded step", values)
        per_step = np.asarray(slack.values, dtype=float).reshape(steps.size, -1).min(axis=1) + check.tol
        per_step = np.where(np.isnan(per_step), -np.inf, per_step)  # a NaN step never passes
        ok = per_step > 0 if strict else per_step >= 0
        worst = int(np.argmin(per_step))
        margin = float(per_step[worst])
        violations = int(np.sum(~ok))
        values |= {"violations": violations, "worst_step": int(steps[worst]), "steps": int(steps.size)}
        detail = (
            f"{lhs_src} {op} {rhs_src}: {violations} of {steps.size} steps violate it; tightest at step "
            f"{int(steps[worst])} (margin {margin:.3g}" + (f", tol {check.tol:g})" if check.tol else ")")
        )
        return CheckResult(name, bool(np.all(ok)), margin, detail + _lets(numbers), values)
    lhs, _ = evaluate_with(lhs_src, table, env)
    rhs, _ = evaluate_with(rhs_src, table, env)
    margin = float(np.min(np.asarray(slack, dtype=float))) + check.tol
    for side, value in (("lhs", lhs), ("rhs", rhs)):
        if _number(value) is not None:
            values[side] = _number(value)
    passed = (margin > 0 if strict else margin >= 0) and not math.isnan(margin)
    detail = (
        f"{_side(lhs_src, lhs)} {op} {_side(rhs_src, rhs)} (margin {margin:.3g}"
        + (f", tol {check.tol:g})" if check.tol else ")")
    )
    return CheckResult(name, passed, margin, detail + _lets(numbers), values)


def _side(source: str, value: Any) -> str:
    """``source = value``, or just the source when it is a number literal."""
    try:
        literal = isinstance(ast.literal_eval(source), int | float)
    except (ValueError, SyntaxError, TypeError):
        literal = False
    return source if literal else f"{source} = {_show(value)}"


def _show(value: Any) -> str:
    number = _number(value)
    return f"{number:.10g}" if number is not None else np.array2string(np.asarray(value), precision=6)


def _lets(numbers: Mapping[str, float]) -> str:
    return "; " + ", ".join(f"{k} = {v:.6g}" for k, v in numbers.items()) if numbers else ""
