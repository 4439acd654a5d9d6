"""Recorded series as expressions see them: names, step alignment, per-step and final evaluation.

A run's series map a name to ``(steps, values)``: int64 steps ascending, values with the step axis first.
Expressions refer to a series by its *expression name*: ``params.u`` is ``u``, other dots become
underscores (``sharpness.residual`` → ``sharpness_residual``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from eosdsl.expr.across import STEP, uses_across
from eosdsl.spec.scope import parse

Series = Mapping[str, tuple[np.ndarray, np.ndarray]]


def expression_name(series_name: str) -> str:
    """The identifier by which expressions refer to a series or reference value."""
    name = series_name.removeprefix("params.")
    return name.replace(".", "_")


def _by_expression_name(series: Series) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {expression_name(k): v for k, v in series.items()}


def aligned(series: Series, names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The steps recorded by every series in ``names`` (expression names) and their values there."""
    table = _by_expression_name(series)
    missing = [n for n in names if n not in table]
    if missing:
        raise KeyError(f"no recorded series {', '.join(missing)} (recorded: {', '.join(sorted(table))})")
    if not names:
        return np.zeros(0, np.int64), {}
    steps = table[names[0]][0]
    for n in names[1:]:
        steps = np.intersect1d(steps, table[n][0])
    return steps, {n: table[n][1][np.searchsorted(table[n][0], steps)] for n in names}


def _whole_series(source: str, series: Series, scalars: Mapping[str, float]) -> bool:
    """Whether ``source`` needs the whole-series evaluator: an operation across steps, or the ``step``
    series (the step numbers, which no measure records)."""
    if uses_across(source):
        return True
    if STEP not in source:
        return False
    return STEP in parse(source).names and STEP not in scalars and STEP not in _by_expression_name(series)


def evaluate_series(
    source: str, series: Series, scalars: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of an expression over recorded series and scalars.

    Without operations across steps it is :func:`per_step_series`. With them (``shift``, ``delta``,
    ``rolling_mean``, …; :mod:`eosdsl.checks.series_ops`) the whole series are evaluated; an expression
    whose value is a single number (``fraction(alpha < 0)``) is an error here, since a series is needed.
    """
    if _whole_series(source, series, scalars):
        from eosdsl.checks.series_ops import Series as SeriesValue
        from eosdsl.checks.series_ops import evaluate

        value = evaluate(source, series, scalars)
        if not isinstance(value, SeriesValue):
            raise ValueError(f"`{source}` is a single number for the whole run, not a series")
        return value.steps, value.values
    return per_step_series(source, series, scalars)


def per_step_series(
    source: str, series: Series, scalars: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a per-step expression over recorded series and scalars.

    The expression sees one step's values at a time (``vmap`` over the aligned steps), so indexing and
    reductions act within a step (``theta[0]``, ``prod(theta)``), never across steps.
    """
    expr = parse(source)
    series_names = sorted(n for n in expr.names if n not in scalars)
    steps, env = aligned(series, series_names)
    if steps.size:
        values = np.asarray(jax.vmap(lambda step_env: expr({**scalars, **step_env}))(env))
    else:
        values = np.asarray(expr({**scalars, **env}))
    return steps, np.broadcast_to(
        values, steps.shape + values.shape[steps.ndim :] if values.ndim else steps.shape
    )


def final_value(source: str, series: Series, scalars: Mapping[str, float]) -> float | np.ndarray:
    """An expression over the *last* recorded value of each series and scalars (an array if a vector).

    With operations across steps, the expression is evaluated on the whole series and this is its last
    value (or its value, when it is a single number for the run).
    """
    if _whole_series(source, series, scalars):
        from eosdsl.checks.series_ops import Series as SeriesValue
        from eosdsl.checks.series_ops import evaluate

        result = evaluate(source, series, scalars)
        if isinstance(result, SeriesValue):
            if len(result.steps) == 0:
                raise KeyError(f"`{source}` has no recorded values")
            result = np.asarray(result.values)[-1]
        result = np.asarray(result)
        return float(result) if result.ndim == 0 else result
    table = _by_expression_name(series)
    expr = parse(source)
    missing = sorted(n for n in expr.names if n not in table and n not in scalars)
    if missing:  # a KeyError like `aligned`'s, so run_checks reports the check as not applicable
        raise KeyError(f"no recorded series {', '.join(missing)} (recorded: {', '.join(sorted(table))})")
    empty = sorted(n for n in expr.names if n in table and n not in scalars and len(table[n][1]) == 0)
    if empty:
        raise KeyError(f"series {', '.join(empty)} recorded no values")
    env = {n: table[n][1][-1] for n in expr.names if n in table and n not in scalars}
    value = np.asarray(expr({**scalars, **env}))
    return float(value) if value.ndim == 0 else value


def in_window(steps: np.ndarray, window: tuple[int, int] | None) -> np.ndarray:
    """Mask of the ``steps`` inside the inclusive ``[first, last]`` window (all of them without one)."""
    if window is None:
        return np.ones(steps.shape, dtype=bool)
    return (steps >= window[0]) & (steps <= window[1])
