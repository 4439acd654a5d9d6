"""Operations across steps (eosdsl.checks.series_ops, eosdsl.expr.across), each against a numpy oracle:
lags and differences, cumulative sums and products, rolling means, values at a step, first passage,
window reductions, fractions and counts; misaligned cadences, NaN, empty windows, never-true conditions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from eosdsl.checks.series import evaluate_series, final_value
from eosdsl.checks.series_ops import Series, evaluate
from eosdsl.expr import ExprError
from eosdsl.expr.across import OPERATORS, check_series_expression

RNG = np.random.default_rng(0)
T = 50
STEPS = np.arange(T, dtype=np.int64)
X = RNG.normal(size=T)
Y = RNG.normal(size=T)
THETA = RNG.normal(size=(T, 3))
S10 = STEPS[::10]  # a series recorded every 10 steps
Z10 = RNG.normal(size=S10.size)
TABLE = {
    "x": (STEPS, X),
    "y": (STEPS, Y),
    "params.theta": (STEPS, THETA),
    "z": (S10, Z10),
    "empty": (np.zeros(0, np.int64), np.zeros(0)),
}
SCALARS = {"c": 0.25}


def ev(source: str, table=TABLE, scalars=SCALARS):
    return evaluate(source, table, scalars)


def series_of(value) -> tuple[np.ndarray, np.ndarray]:
    assert isinstance(value, Series), value
    return value.steps, np.asarray(value.values)


# ------------------------------------------------------------------------------------------ series ops


def test_shift_moves_values_by_steps():
    steps, values = series_of(ev("shift(x, 2)"))
    np.testing.assert_array_equal(steps, STEPS + 2)
    np.testing.assert_array_equal(values, X)
    steps, values = series_of(ev("x - shift(x, 2)"))  # aligned on the steps both have: t = 2..49
    np.testing.assert_array_equal(steps, STEPS[2:])
    np.testing.assert_allclose(values, X[2:] - X[:-2])
    steps, values = series_of(ev("shift(x, -1) - x"))  # a lead: x_{t+1} − x_t for t = 0..48
    np.testing.assert_array_equal(steps, STEPS[:-1])
    np.testing.assert_allclose(values, np.diff(X))


def test_delta_is_numpy_diff_and_a_lag_k():
    steps, values = series_of(ev("delta(x)"))
    np.testing.assert_array_equal(steps, STEPS[1:])
    np.testing.assert_allclose(values, np.diff(X))
    steps, values = series_of(ev("delta(x, 3)"))
    np.testing.assert_allclose(values, X[3:] - X[:-3])
    steps, values = series_of(ev("delta(z, 10)"))  # the lag in steps of a series recorded every 10
    np.testing.assert_array_equal(steps, S10[1:])
    np.testing.assert_allclose(values, np.diff(Z10))
    steps, values = series_of(ev("delta(theta)"))  # vectors: per component
    np.testing.assert_allclose(values, np.diff(THETA, axis=0))


def test_delta_of_a_coarser_series_is_a_located_error():
    with pytest.raises(ExprError) as err:
        ev("1 + delta(z)")
    assert "t − 1 recorded too" in err.value.message and "every 10" in err.value.message
    assert err.value.offset == 4  # the column of `delta(z)`


def test_running_sum_and_prod_are_cumsum_and_cumprod():
    np.testing.assert_allclose(series_of(ev("running_sum(x**2)"))[1], np.cumsum(X**2))
    np.testing.assert_allclose(series_of(ev("running_prod(1 + 0.1 * x)"))[1], np.cumprod(1 + 0.1 * X))
    np.testing.assert_allclose(series_of(ev("running_sum(theta)"))[1], np.cumsum(THETA, axis=0))


def test_rolling_mean_is_the_mean_of_the_last_k_records():
    steps, values = series_of(ev("rolling_mean(x, 4)"))
    np.testing.assert_array_equal(steps, STEPS[3:])
    np.testing.assert_allclose(values, np.convolve(X, np.ones(4) / 4, mode="valid"))
    steps, values = series_of(ev("rolling_mean(z, 2)"))  # records, not steps: (z_0 + z_10)/2 at 10, ...
    np.testing.assert_array_equal(steps, S10[1:])
    np.testing.assert_allclose(values, (Z10[1:] + Z10[:-1]) / 2)
    assert series_of(ev("rolling_mean(z, 9)"))[0].size == 0  # fewer records than k: an empty series


def test_mixed_cadences_align_on_the_common_steps():
    steps, values = series_of(ev("x * z"))
    np.testing.assert_array_equal(steps, S10)
    np.testing.assert_allclose(values, X[::10] * Z10)
    assert float(ev("window_mean(x - z)")) == pytest.approx(np.mean(X[::10] - Z10))


def test_series_sharing_no_step_is_a_located_error():
    table = {**TABLE, "w": (S10 + 5, Z10)}
    with pytest.raises(ExprError) as err:
        ev("window_max(shift(z, 1) + w)", table)
    assert "share no recorded step" in err.value.message and err.value.offset == 11


# ------------------------------------------------------------------------------------- reductions


def test_at_final_first_last_against_numpy():
    assert float(ev("at(x, 7)")) == X[7]
    assert float(ev("final(x)")) == X[-1]
    np.testing.assert_array_equal(ev("at(theta, 3)"), THETA[3])
    t = int(np.flatnonzero(X > 1)[0])
    assert float(ev("first(x > 1)")) == t
    assert float(ev("last(x > 1)")) == np.flatnonzero(X > 1)[-1]
    assert float(ev("at(y, first(x > 1))")) == Y[t]
    assert float(ev("first(x > 1, start=20)")) == 20 + np.flatnonzero(X[20:] > 1)[0]


def test_never_true_condition_and_nan_step():
    assert math.isnan(float(ev("first(x > 100)")))
    assert math.isnan(float(ev("last(x > 100)")))
    assert math.isnan(float(ev("at(x, first(x > 100))")))  # at(x, nan) is nan: never a silent pass
    assert math.isnan(float(ev("window_max(x, first(x > 100))")))  # a NaN bound: an empty window


def test_at_a_step_not_recorded_is_an_error_naming_the_nearest():
    with pytest.raises(ExprError, match="step 15 is not recorded.*10, 20"):
        ev("at(z, 15)")


@pytest.mark.parametrize(
    ("op", "oracle"),
    [
        ("window_max", np.max),
        ("window_min", np.min),
        ("window_mean", np.mean),
        ("window_sum", np.sum),
        ("window_argmax", lambda v: 10 + int(np.argmax(v))),
        ("window_argmin", lambda v: 10 + int(np.argmin(v))),
    ],
)
def test_window_reductions(op, oracle):
    assert float(ev(f"{op}(x, 10, 30)")) == pytest.approx(oracle(X[10:31]))


def test_window_with_where_and_vectors():
    mask = Y > 0
    assert float(ev("window_mean(x, where=y > 0)")) == pytest.approx(np.mean(X[mask]))
    assert float(ev("window_argmax(x, where=y > 0)")) == STEPS[mask][np.argmax(X[mask])]
    np.testing.assert_allclose(ev("window_max(theta)"), THETA.max(axis=0))


def test_fraction_count_any_all():
    assert float(ev("fraction(x > 0)")) == pytest.approx(np.mean(X > 0))
    assert float(ev("count(x > 0, 5, 24)")) == np.sum(X[5:25] > 0)
    assert float(ev("fraction(x > 0, where=y > 0)")) == pytest.approx(np.mean(X[Y > 0] > 0))
    assert bool(ev("any(x > 2)")) == bool(np.any(X > 2))
    assert bool(ev("all(abs(x) < 10)"))
    # the paper-001 style claim: Δx and Δy agree in sign on this fraction of steps
    agree = np.mean(np.sign(np.diff(X)) == np.sign(np.diff(Y)))
    assert float(ev("fraction(sign(delta(x)) == sign(delta(y)))")) == pytest.approx(agree)


def test_empty_windows_follow_numpy_conventions():
    assert math.isnan(float(ev("window_max(x, 30, 10)")))
    assert math.isnan(float(ev("window_mean(x, where=x > 100)")))
    assert math.isnan(float(ev("window_argmax(x, 60)")))
    assert float(ev("window_sum(x, 60)")) == 0.0
    assert float(ev("count(x > 0, 60)")) == 0.0
    assert math.isnan(float(ev("fraction(x > 0, 60)")))
    assert not bool(ev("any(x > 0, 60)"))
    assert bool(ev("all(x > 100, 60)"))  # vacuously true


def test_nan_values_propagate_to_reductions_and_fail_conditions():
    bad = X.copy()
    bad[5] = np.nan
    table = {"x": (STEPS, bad)}
    for op in ("window_max", "window_min", "window_mean", "window_sum", "window_argmax"):
        assert math.isnan(float(evaluate(f"{op}(x)", table, {}))), op
    assert float(evaluate("window_max(x, 6)", table, {})) == np.max(X[6:])  # outside the window: fine
    # a comparison with NaN is false: the NaN step counts as one where the condition fails
    assert float(evaluate("count(x > -100)", table, {})) == T - 1
    assert float(evaluate("fraction(x > -100)", table, {})) == pytest.approx((T - 1) / T)


def test_step_in_a_per_step_expression():
    steps, values = evaluate_series("x * step", TABLE, {})
    np.testing.assert_allclose(values, X * STEPS)
    assert final_value("step", {"z": TABLE["z"]}, {}) == 40.0


def test_scalars_and_step():
    assert float(ev("window_max(x) + c")) == pytest.approx(X.max() + 0.25)
    assert float(ev("first(step >= 13)")) == 13
    assert float(ev("count(step % 10 == 0)")) == 5


# ------------------------------------------------------------------- through evaluate_series / final


def test_evaluate_series_and_final_value_use_the_algebra():
    steps, values = evaluate_series("delta(x) / c", TABLE, SCALARS)
    np.testing.assert_allclose(values, np.diff(X) / 0.25)
    assert final_value("running_sum(x)", TABLE, SCALARS) == pytest.approx(X.sum())
    assert final_value("fraction(x > 0)", TABLE, SCALARS) == pytest.approx(np.mean(X > 0))
    with pytest.raises(ValueError, match="single number"):
        evaluate_series("fraction(x > 0)", TABLE, SCALARS)
    # per-step functions keep acting within a step: sum(theta) is Σ_i θ_i at each step
    np.testing.assert_allclose(evaluate_series("delta(sum(theta))", TABLE, {})[1], np.diff(THETA.sum(axis=1)))


# -------------------------------------------------------------------------------- static checks


@pytest.mark.parametrize(
    ("source", "words", "column"),
    [
        ("fraction(xx < 0)", ["unknown name 'xx'", "did you mean 'x'"], 9),
        ("fraction(x)", ["needs a condition", "`x`"], 9),
        ("window_mx(x)", ["unknown function 'window_mx'", "did you mean 'window_max'"], 0),
        ("at(x, y)", ["must be a single number", "varies by step"], 6),
        ("shift(x, c)", ["integer literal"], 9),
        ("rolling_mean(x, 0)", ["at least 1"], 16),
        ("fraction(x < 0, stop=3)", ["no keyword `stop`"], 16),
        ("window_max(x, where=y)", ["`where`", "condition"], 20),
        ("first(c > 0)", ["varies by step"], 6),
        ("at(x)", ["needs t"], 0),
    ],
)
def test_static_errors_are_located(source, words, column):
    with pytest.raises(ExprError) as err:
        check_series_expression(source, ["x", "y", "theta"], ["c"])
    for word in words:
        assert word in err.value.message, err.value.message
    assert err.value.offset == column


def test_static_lag_must_fit_the_cadence():
    cadence = {"z": 10, "x": 1}
    with pytest.raises(ExprError, match="recorded every 10 steps") as err:
        check_series_expression("1 + delta(z, 5)", ["x", "z"], [], cadence=cadence)
    assert err.value.offset == 13  # the lag
    check_series_expression("delta(z, 20) + delta(x)", ["x", "z"], [], cadence=cadence)


def test_static_types():
    _, typed = check_series_expression("fraction(x > 0) >= 0.5", ["x"], [])
    assert not typed.series and typed.condition
    _, typed = check_series_expression("delta(x) * 2", ["x"], [])
    assert typed.series and not typed.condition
    names, _ = check_series_expression("at(x, first(y > c))", ["x", "y"], ["c"])
    assert names == {"x", "y", "c"}


def test_every_operator_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "expressions.md").read_text(encoding="utf-8")
    for name in OPERATORS:
        assert f"`{name}(" in text, name
