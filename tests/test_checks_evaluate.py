"""Oracle tests for spec checks evaluated on recorded series (``eosdsl.checks.evaluate``).

Series are hand-made ``name → (steps int64, values)`` dicts whose pass/fail, margin and worst step are
known by construction; the paper-000 named checks (Lemma 6, Theorem 2; paper 000 §3.2) run on the
ReLU scalar net's dynamics simulated here in numpy (App. D.1, eq. (5)).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from eosdsl.checks.evaluate import derived_series, evaluate_series, final_value, ordering, run_checks
from eosdsl.spec import models as m

jax.config.update("jax_enable_x64", True)

BASE = {
    "name": "t",
    "problem": {"kind": "relu_scalar"},
    "optimizer": {"kind": "gd", "lr": 0.1},
    "train": {"steps": 10},
}


def spec_with(**fields) -> m.Spec:
    """A relu_scalar GD spec with the given top-level fields replaced."""
    return m.Spec.model_validate({**BASE, **fields})


def series_of(**named: tuple[list[int] | np.ndarray, list[float] | np.ndarray]) -> dict:
    """name → (steps int64, values float64); a ``__`` in a keyword stands for a dot (``params__u``)."""
    return {
        k.replace("__", "."): (np.asarray(s, np.int64), np.asarray(v, np.float64))
        for k, (s, v) in named.items()
    }


def check(spec_checks: list[dict], series: dict, references: dict | None = None, **fields) -> list:
    """``run_checks`` of a spec carrying ``spec_checks`` on ``series``."""
    return run_checks(spec_with(checks=spec_checks, **fields), series, references or {})


def one(spec_check: dict, series: dict, references: dict | None = None, **fields):
    """The single result of one check."""
    (result,) = check([spec_check], series, references, **fields)
    return result


STEPS = np.arange(7)
SHARP = [1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0]  # mss = 4: equality at steps 3 and 5, violation at step 4
SERIES = series_of(sharpness=(STEPS, SHARP), mss=(STEPS, [4.0] * 7), loss=(STEPS, np.linspace(1.0, 0.2, 7)))


# ----------------------------------------------------------------------------------------------- final


def test_final_below_and_above_constants():
    """Final loss 0.2 against constant bounds: margin = bound − value (below) / value − bound (above).

    Oracle: arithmetic on the constructed last value; the margin of two bounds is the smaller one.
    Tolerance 1e-12: one float subtraction.
    """
    cases = [
        ({"below": 0.5}, True, 0.3),
        ({"below": 0.1}, False, -0.1),
        ({"above": 0.1}, True, 0.1),
        ({"above": 0.5}, False, -0.3),
        ({"below": 0.5, "above": 0.1}, True, 0.1),
        ({"below": 0.15, "above": 0.1}, False, -0.05),
    ]
    for bounds, passed, margin in cases:
        r = one({"kind": "final", "of": "loss", **bounds}, SERIES)
        assert r.applicable and r.passed is passed, bounds
        assert r.margin == pytest.approx(margin, abs=1e-12), bounds
        assert r.values["value"] == pytest.approx(0.2, abs=1e-15)


def test_final_threshold_expression_over_series_and_constants_and_references():
    """``below: mss`` reads the mss series' last value; expressions may mix series, constants, references.

    Final sharpness 3 vs. mss 4 passes with margin 1; ``mss * (1 - eps)`` with eps = 0.5 gives 2, which
    fails by 1. A reference ``test_loss.min_l2`` is addressed as ``test_loss_min_l2``. Exact arithmetic.
    """
    r = one({"kind": "final", "of": "sharpness", "below": "mss"}, SERIES)
    assert r.passed and r.margin == pytest.approx(1.0)
    r = one({"kind": "final", "of": "sharpness", "below": "mss * (1 - eps)"}, SERIES, constants={"eps": 0.5})
    assert not r.passed and r.margin == pytest.approx(-1.0)
    r = one(
        {"kind": "final", "of": "sharpness / mss", "below": 1.0, "above": "eps"},
        SERIES,
        constants={"eps": 0.5},
    )
    assert r.passed and r.margin == pytest.approx(0.25) and r.values["value"] == pytest.approx(0.75)
    s = {**SERIES, **series_of(test_loss=([0, 5], [3.0, 0.4]))}
    refs = {"test_loss.min_l2": 0.5, "test_loss.min_l1": 0.3}
    assert one({"kind": "final", "of": "test_loss", "below": "test_loss_min_l2"}, s, refs).passed
    r = one({"kind": "final", "of": "test_loss", "below": "test_loss_min_l1"}, s, refs)
    assert not r.passed and r.margin == pytest.approx(-0.1)


def test_final_tol_and_equality():
    """At equality a bound fails without tol (``below``/``above`` are strict) and passes with margin = tol.

    Within tol it passes with margin tol − excess; beyond tol it fails. Exact arithmetic (values 0.2, 0.25).
    """
    r = one({"kind": "final", "of": "sharpness", "below": 3.0}, SERIES)
    assert not r.passed and r.margin == 0.0
    r = one({"kind": "final", "of": "sharpness", "above": 3.0}, SERIES)
    assert not r.passed and r.margin == 0.0
    r = one({"kind": "final", "of": "sharpness", "below": 3.0, "tol": 1e-3}, SERIES)
    assert r.passed and r.margin == pytest.approx(1e-3)
    r = one({"kind": "final", "of": "sharpness", "below": 2.9, "tol": 0.25}, SERIES)
    assert r.passed and r.margin == pytest.approx(0.15)
    r = one({"kind": "final", "of": "sharpness", "below": 2.5, "tol": 0.25}, SERIES)
    assert not r.passed and r.margin == pytest.approx(-0.25)


def test_final_value_uses_each_series_last_record():
    """``final_value`` takes each series' own last value when cadences differ (loss at 10, sharpness at 9).

    Oracle: the constructed last entries; a NaN final value fails the check (never passes silently).
    """
    s = series_of(
        loss=(np.arange(11), np.arange(11.0)), sharpness=(np.arange(0, 11, 3), [1.0, 2.0, 3.0, 7.0])
    )
    assert final_value("loss + 100 * sharpness", s, {}) == 710.0
    assert final_value("loss * k", s, {"k": 0.5}) == 5.0
    nan = series_of(loss=([0, 1], [1.0, math.nan]))
    r = one({"kind": "final", "of": "loss", "below": 2.0}, nan)
    assert r.applicable and not r.passed


# ------------------------------------------------------------------------------------------ inequality


def test_inequality_per_step_worst_step_and_window():
    """sharpness ≤ mss per step: one violation (step 4, by 1); windows select steps inclusively.

    Oracle: the constructed sequence (slack = mss − sharpness = 3, 2, 1, 0, −1, 0, 1). Exact arithmetic.
    """
    ineq = {"kind": "inequality", "lhs": "sharpness", "op": "<=", "rhs": "mss"}
    r = one(ineq, SERIES)
    assert not r.passed and r.margin == -1.0
    assert r.values == {"violations": 1, "worst_step": 4}
    r = one({**ineq, "steps": [0, 3]}, SERIES)
    assert r.passed and r.margin == 0.0 and r.values == {"violations": 0, "worst_step": 3}
    r = one({**ineq, "steps": [4, 4]}, SERIES)  # inclusive at both ends
    assert not r.passed and r.values["worst_step"] == 4
    r = one({**ineq, "steps": [5, 6]}, SERIES)
    assert r.passed and r.values["worst_step"] == 5
    r = one({**ineq, "steps": [100, 200]}, SERIES)
    assert not r.applicable and r.passed and math.isnan(r.margin)
    # the same statement written the other way round
    r = one({"kind": "inequality", "lhs": "mss", "op": ">=", "rhs": "sharpness"}, SERIES)
    assert not r.passed and r.margin == -1.0 and r.values == {"violations": 1, "worst_step": 4}


def test_inequality_strict_vs_nonstrict_and_tol():
    """At equality (steps 3 and 5) ``<=``/``>=`` hold and ``<``/``>`` fail; tol > 0 makes ``<`` non-strict.

    Oracle: the constructed slack; with tol the margin is slack + tol. Exact arithmetic.
    """
    window = {"steps": [3, 3]}
    for op, lhs, rhs in (("<", "sharpness", "mss"), (">", "mss", "sharpness")):
        r = one({"kind": "inequality", "lhs": lhs, "op": op, "rhs": rhs, **window}, SERIES)
        assert not r.passed and r.margin == 0.0 and r.values == {"violations": 1, "worst_step": 3}
        r = one({"kind": "inequality", "lhs": lhs, "op": op, "rhs": rhs, "steps": [5, 6]}, SERIES)
        assert not r.passed and r.values == {"violations": 1, "worst_step": 5}
        r = one({"kind": "inequality", "lhs": lhs, "op": op, "rhs": rhs, "tol": 0.5, **window}, SERIES)
        assert r.passed and r.margin == 0.5
    r = one({"kind": "inequality", "lhs": "sharpness", "op": "<=", "rhs": "mss", "tol": 0.999}, SERIES)
    assert not r.passed and r.margin == pytest.approx(-0.001)
    r = one({"kind": "inequality", "lhs": "sharpness", "op": "<=", "rhs": "mss", "tol": 1.0}, SERIES)
    assert r.passed and r.margin == 0.0
    r = one({"kind": "inequality", "lhs": "sharpness", "op": "<", "rhs": "mss + 2"}, SERIES)
    assert r.passed and r.margin == 1.0 and r.values["worst_step"] == 4


def test_series_at_different_cadences_are_aligned_on_common_steps():
    """Per-step expressions use only the steps every series involved recorded.

    loss every step, sharpness every 3rd: ``loss <= sharpness`` sees steps {0, 3, 6, 9}; a violation at
    step 4 (not common) is invisible, one at step 6 is reported. Offsets 0, 2, 4, 6 vs 0, 3, 6 meet at
    {0, 6}. Oracle: set intersection by hand.
    """
    loss = np.full(11, 0.5)
    loss[4] = 9.0
    s = series_of(loss=(np.arange(11), loss), sharpness=(np.arange(0, 11, 3), [1.0, 1.0, 1.0, 1.0]))
    steps, values = evaluate_series("sharpness - loss", s, {})
    np.testing.assert_array_equal(steps, [0, 3, 6, 9])
    np.testing.assert_array_equal(values, [0.5, 0.5, 0.5, 0.5])
    ineq = {"kind": "inequality", "lhs": "loss", "op": "<=", "rhs": "sharpness"}
    assert one(ineq, s).passed
    loss[6] = 3.0
    s = series_of(loss=(np.arange(11), loss), sharpness=(np.arange(0, 11, 3), [1.0, 1.0, 1.0, 1.0]))
    r = one(ineq, s)
    assert not r.passed and r.values == {"violations": 1, "worst_step": 6} and r.margin == -2.0
    s2 = series_of(a=([0, 2, 4, 6], [1.0, 2.0, 3.0, 4.0]), b=([0, 3, 6], [10.0, 20.0, 30.0]))
    steps, values = evaluate_series("a + b", s2, {})
    np.testing.assert_array_equal(steps, [0, 6])
    np.testing.assert_array_equal(values, [11.0, 34.0])


# -------------------------------------------------------------------------------------------- monotone


def test_monotone_directions_tol_and_worst_step():
    """Nonincreasing u with a 1e-9 uptick at step 4: fails at tol 0 (margin −1e-9), passes at tol 1e-8.

    Nondecreasing on the same series fails at its largest drop (step 1, by 1). Oracle: np.diff by hand;
    tolerance 1e-15 on the reported margin (subtraction of O(1) floats).
    """
    u = [5.0, 4.0, 4.0, 3.5, 3.5 + 1e-9, 3.0]
    s = series_of(params__u=(np.arange(6), u))
    r = one({"kind": "monotone", "of": "u", "direction": "nonincreasing"}, s)
    assert not r.passed and r.margin == pytest.approx(-1e-9, abs=1e-15) and r.values["worst_step"] == 4
    r = one({"kind": "monotone", "of": "u", "direction": "nonincreasing", "tol": 1e-8}, s)
    assert r.passed and r.margin == pytest.approx(1e-8 - 1e-9, abs=1e-15)
    r = one({"kind": "monotone", "of": "u", "direction": "nondecreasing"}, s)
    assert not r.passed and r.margin == pytest.approx(-1.0) and r.values["worst_step"] == 1
    r = one({"kind": "monotone", "of": "-u", "direction": "nondecreasing", "tol": 1e-8}, s)
    assert r.passed
    flat = series_of(loss=(np.arange(4), [2.0, 2.0, 2.0, 2.0]))
    for direction in ("nonincreasing", "nondecreasing"):
        r = one({"kind": "monotone", "of": "loss", "direction": direction}, flat)
        assert r.passed and r.margin == 0.0
    r = one({"kind": "monotone", "of": "loss", "direction": "nonincreasing"}, series_of(loss=([0], [1.0])))
    assert not r.applicable


# ----------------------------------------------------------------------------- missing series, derived


def test_check_on_unrecorded_series_is_not_applicable():
    """Final, inequality and monotone checks on a series that was not recorded: ``applicable=False``.

    The missing name is in the detail and run_checks does not raise; the other checks still run.
    (``final`` used to raise the expression compiler's ExprError here; fixed in ``final_value``.)
    """
    s = series_of(loss=(STEPS, np.linspace(1.0, 0.2, 7)))
    results = check(
        [
            {"kind": "final", "of": "sharpness", "below": 1.0},
            {"kind": "final", "of": "loss", "below": "mss"},
            {"kind": "inequality", "lhs": "sharpness", "op": "<=", "rhs": "mss"},
            {"kind": "monotone", "of": "grad_norm", "direction": "nonincreasing"},
            {"kind": "final", "of": "loss", "below": 0.5},
        ],
        s,
    )
    missing = ["sharpness", "mss", "mss", "grad_norm"]
    for r, name in zip(results[:4], missing, strict=True):
        assert not r.applicable and r.passed and math.isnan(r.margin)
        assert name in r.detail
    assert results[4].applicable and results[4].passed


def test_derived_series_chained_with_constants_and_dotted_names():
    """Derived measures evaluate in order on aligned steps; later ones may use earlier ones.

    ``ratio = sharpness / mss`` (sharpness every 3rd step), ``excess = ratio - 1 + c`` (constant c), and
    ``rel = sharpness_residual / sharpness`` (``sharpness.residual`` → ``sharpness_residual``).
    Oracle: numpy arithmetic on the same steps; exact to 1e-15.
    """
    steps3 = np.arange(0, 10, 3)
    s = series_of(
        sharpness=(steps3, [1.0, 2.0, 4.0, 8.0]),
        sharpness__residual=(steps3, [1e-12, 2e-12, 4e-12, 8e-12]),
        mss=(np.arange(10), np.full(10, 4.0)),
    )
    spec = spec_with(
        constants={"c": 0.25},
        measure=[
            {"kind": "derived", "name": "ratio", "expr": "sharpness / mss"},
            {"kind": "derived", "name": "excess", "expr": "ratio - 1 + c"},
            {"kind": "derived", "name": "rel", "expr": "sharpness_residual / sharpness"},
        ],
        checks=[{"kind": "inequality", "lhs": "excess", "op": "<=", "rhs": "0"}],
    )
    out = derived_series(spec, s, {})
    assert set(out) == {"ratio", "excess", "rel"}
    np.testing.assert_array_equal(out["ratio"][0], steps3)
    np.testing.assert_allclose(out["ratio"][1], [0.25, 0.5, 1.0, 2.0], rtol=1e-15)
    np.testing.assert_allclose(out["excess"][1], [-0.5, -0.25, 0.25, 1.25], rtol=1e-15)
    np.testing.assert_allclose(out["rel"][1], np.full(4, 1e-12), rtol=1e-15)
    (r,) = run_checks(spec, {**s, **out}, {})
    assert (
        not r.passed and r.values == {"violations": 2, "worst_step": 9} and r.margin == pytest.approx(-1.25)
    )


def test_per_step_expressions_index_and_reduce_within_a_step():
    """Vector series (``params.theta``, shape (T, n)): ``theta[0]``, ``prod(theta)`` act on each step's θ.

    Paper 004's Θ = θ1θ2 and the ratio θ2/θ1 as derived series and checks. Oracle: numpy per-row
    arithmetic. (Before the fix, expressions ran on the stacked (T, n) array: ``prod(theta)`` multiplied
    across all steps and ``theta[0]`` picked step 0.) Exact to 1e-15.
    """
    steps = np.arange(5)
    theta = np.c_[np.linspace(-0.1, -0.05, 5), np.linspace(10.0, 8.0, 5)]
    s = series_of(params__theta=(steps, theta), loss=(steps, np.prod(theta, axis=1) ** 2))
    spec = spec_with(
        measure=[
            {"kind": "derived", "name": "Theta", "expr": "prod(theta)"},
            {"kind": "derived", "name": "ratio", "expr": "abs(theta[1] / theta[0])"},
            {"kind": "derived", "name": "size", "expr": "norm(theta)"},
        ]
    )
    out = derived_series(spec, s, {})
    np.testing.assert_allclose(out["Theta"][1], theta[:, 0] * theta[:, 1], rtol=1e-15)
    np.testing.assert_allclose(out["ratio"][1], np.abs(theta[:, 1] / theta[:, 0]), rtol=1e-15)
    np.testing.assert_allclose(out["size"][1], np.linalg.norm(theta, axis=1), rtol=1e-15)
    steps_out, values = evaluate_series("loss - prod(theta)**2", s, {})
    np.testing.assert_array_equal(steps_out, steps)
    np.testing.assert_allclose(values, 0.0, atol=1e-15)
    r = one({"kind": "inequality", "lhs": "abs(theta[0])", "op": "<=", "rhs": "0.08"}, s)
    assert (
        not r.passed and r.values == {"violations": 2, "worst_step": 0} and r.margin == pytest.approx(-0.02)
    )
    r = one({"kind": "monotone", "of": "prod(theta)", "direction": "nondecreasing"}, s)
    assert r.passed
    assert final_value("prod(theta)", s, {}) == pytest.approx(-0.4, rel=1e-15)


# -------------------------------------------------------------------------------------------- ordering


def test_ordering_pass_fail_over_and_unknown_label():
    """Sweep-level ordering of final values: strict, along ``over`` (or the labels), margin = smallest gap.

    Oracle: the constructed finals (3, 2, 1); ties fail; gaps must exceed ``min_gap``; an unknown label in
    ``over`` fails the check (a spec/sweep mismatch must not pass silently) and is named in the detail.
    """
    labels, finals = ["gd", "phb", "gd->phb"], [3.0, 2.0, 1.0]

    def order(**kw):
        return m.OrderingCheck.model_validate({"kind": "ordering", "of": "sharpness", **kw})

    r = ordering(order(order="decreasing"), labels, finals)
    assert r.applicable and r.passed and r.margin == 1.0
    assert r.values == {"gd": 3.0, "phb": 2.0, "gd->phb": 1.0}
    r = ordering(order(order="increasing"), labels, finals)
    assert not r.passed and r.margin == -1.0
    r = ordering(order(order="increasing", over=["gd->phb", "gd"]), labels, finals)
    assert r.passed and r.margin == 2.0 and list(r.values) == ["gd->phb", "gd"]
    r = ordering(order(order="decreasing"), labels, [3.0, 3.0, 1.0])
    assert not r.passed and r.margin == 0.0
    r = ordering(order(order="decreasing", min_gap=0.5), labels, finals)
    assert r.passed and r.margin == 0.5
    r = ordering(order(order="decreasing", min_gap=1.0), labels, finals)
    assert not r.passed and r.margin == 0.0
    r = ordering(order(order="decreasing", over=["gd", "zz"]), labels, finals)
    assert r.applicable and not r.passed and math.isnan(r.margin) and "zz" in r.detail


# ------------------------------------------------------------------------------ lemma 6 / theorem 2


U0, V0, EPS = 10.0, 1e-6, 0.01
ETA = (2 + EPS) / U0**2  # paper 000 §3.1: u0² = (2 + ε)/η
T = 8000  # GD: |v_T| ~ 1e-32 (v contracts by ηu² − 1 ≈ 0.99 a step), PHB(0.9) far smaller; u_T converged


def simulate(beta_of_t, T: int = T) -> tuple[np.ndarray, np.ndarray]:
    """Paper 000 eq. (5) in float64 (GD-equivalent η, applied (1+β)η, displacement carried, u₋₁ = u₀).

    ``beta_of_t(t)`` is the momentum used at step t, so a GD→PHB switch is a step function.
    """
    u, v = np.empty(T + 1), np.empty(T + 1)
    u[0], v[0] = U0, V0
    u_prev, v_prev = U0, V0
    for t in range(T):
        beta = beta_of_t(t)
        ut, vt = u[t], v[t]
        alive = 1.0 if ut >= 0 else 0.0
        u[t + 1] = ut + beta * (ut - u_prev) - ETA * (1 + beta) * ut * vt * vt * alive
        v[t + 1] = vt + beta * (vt - v_prev) - ETA * (1 + beta) * ut * ut * vt * alive
        u_prev, v_prev = ut, vt
    return u, v


@pytest.fixture(scope="module")
def trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """GD, PHB(β = 0.9) and a GD→PHB switch at step 100 from the Fig. 3 init (u0, v0) = (10, 1e-6)."""
    out = {"gd": simulate(lambda t: 0.0), "phb": simulate(lambda t: 0.9)}
    out["switch"] = simulate(lambda t: 0.0 if t < 100 else 0.9)
    return out


def params_series(u: np.ndarray, v: np.ndarray, every: int = 1) -> dict:
    """The engine's ``params.u``/``params.v`` series recorded every ``every`` steps from 0."""
    steps = np.arange(0, u.size, every)
    return series_of(params__u=(steps, u[steps]), params__v=(steps, v[steps]))


NAMED = [{"kind": "lemma6"}, {"kind": "theorem2"}]
RELU = {"kind": "relu_scalar", "u0": U0, "v0": V0}
LR = "(2 + eps) / 100"


@pytest.mark.parametrize(
    "optimizer",
    [
        {"kind": "gd", "lr": LR},
        {"kind": "heavy_ball", "lr": LR, "beta": 0.9},
        {"kind": "heavy_ball", "lr": f"1.9 * {LR}", "beta": 0.9, "lr_convention": "raw"},
    ],
    ids=["gd", "phb", "phb_raw"],
)
def test_lemma6_theorem2_pass_on_simulated_dynamics(trajectories, optimizer):
    """Lemma 6 (u nonincreasing) and Theorem 2 (u_T ≤ C_u/(1 + ηC_v)) hold on eq. (5) trajectories.

    Paper 000 §3.2: both are theorems for GD and PHB at u0² = (2 + ε)/η, 0 < ε < 1, |v0| < 1, so
    on an exact simulation they must be applicable and pass. The check must recover the GD-equivalent
    η = (2 + ε)/u0² from the spec under both lr conventions (``raw`` applies lr = (1 + β)η) and hence
    ε = 0.01. Tolerances: the checks' own round-off defaults; η, ε compared to 1e-12 relative.
    """
    beta = optimizer.get("beta", 0.0)
    u, v = trajectories["gd" if beta == 0 else "phb"]
    assert abs(v[-1]) < 1e-25  # converged: the truncated C_v and u_T are at their limits
    lemma, thm = check(NAMED, params_series(u, v), problem=RELU, optimizer=optimizer, constants={"eps": EPS})
    assert lemma.applicable and lemma.passed and lemma.margin >= -lemma.values["tol"]
    assert thm.applicable and thm.passed and thm.margin >= 0
    assert thm.values["eta"] == pytest.approx(ETA, rel=1e-12)
    assert thm.values["beta"] == beta
    assert thm.values["eps"] == pytest.approx(EPS, rel=1e-9)
    assert thm.values["tau_u"] > 0 and thm.values["u_min"] >= 0


def test_lemma6_theorem2_fail_on_tampered_trajectory(trajectories):
    """The checks can fail: an uptick of 1e-3 in u breaks Lemma 6, and raising u_T by 0.5 breaks Theorem 2.

    Oracle: the same converged GD trajectory, edited; margins are the edit sizes (1e-3 exactly for the
    uptick, since u is otherwise nonincreasing; Theorem 2's margin drops by 0.5 to below 0).
    """
    u, v = (a.copy() for a in trajectories["gd"])
    spec = {"problem": RELU, "optimizer": {"kind": "gd", "lr": LR}, "constants": {"eps": EPS}}
    _, thm = check(NAMED, params_series(u, v), **spec)
    u[-1] += 0.5
    _, bad = check(NAMED, params_series(u, v), **spec)
    assert bad.applicable and not bad.passed and bad.margin == pytest.approx(thm.margin - 0.5, abs=1e-12)
    u, v = (a.copy() for a in trajectories["gd"])
    u[1500] = u[1499] + 1e-3
    lemma, _ = check(NAMED, params_series(u, v), **spec)
    assert lemma.applicable and not lemma.passed
    assert lemma.margin == pytest.approx(-1e-3, rel=1e-9) and lemma.values["t_worst"] == 1499


def test_named_checks_not_applicable_without_every_step_params(trajectories):
    """Lemma 6 / Theorem 2 need u (and v) at every step from 0: every-2 cadence or missing v → not applicable.

    Oracle: hypotheses of the statements (they are about consecutive iterates). The reason names the
    series and the cadence requirement.
    """
    u, v = trajectories["gd"]
    spec = {"problem": RELU, "optimizer": {"kind": "gd", "lr": LR}, "constants": {"eps": EPS}}
    for r in check(NAMED, params_series(u, v, every=2), **spec):
        assert not r.applicable and r.passed and math.isnan(r.margin)
        assert "params.u" in r.detail and "every" in r.detail
    only_u = {"params.u": params_series(u, v)["params.u"]}
    lemma, thm = check(NAMED, only_u, **spec)
    assert lemma.applicable and lemma.passed
    assert not thm.applicable and "params.v" in thm.detail
    late = {k: (s[5:], x[5:]) for k, (s, x) in params_series(u, v).items()}  # not from step 0
    assert all(not r.applicable for r in check(NAMED, late, **spec))


def test_theorem2_not_applicable_when_switching_or_not_constant_rate(trajectories):
    """Theorem 2 is stated for one optimizer (GD or PHB) at a constant rate: switches, schedules, Adam → n/a.

    Lemma 6 stays applicable and passes across a GD→PHB switch: its induction u_{t+1} − u_t =
    β_t(u_t − u_{t−1}) − η(1+β_t)u_t v_t² 1[u_t ≥ 0] ≤ 0 holds step by step for any β_t ∈ [0, 1) with the
    displacement carried, so a switch does not void it (oracle: the simulated switched trajectory).
    """
    switch_event = {
        "when": {"step": {"at": 100}},
        "do": {"switch_optimizer": {"kind": "heavy_ball", "beta": 0.9}},
    }
    u, v = trajectories["switch"]
    lemma, thm = check(
        NAMED,
        params_series(u, v),
        problem=RELU,
        optimizer={"kind": "gd", "lr": LR},
        constants={"eps": EPS},
        events=[switch_event],
    )
    assert not thm.applicable and thm.passed and math.isnan(thm.margin) and "switch" in thm.detail
    assert lemma.applicable and lemma.passed
    u, v = trajectories["gd"]
    for optimizer in (
        {"kind": "gd", "lr": {"kind": "linear_warmup", "start": 0.0, "end": LR, "steps": 10}},
        {"kind": "adam", "lr": 1e-3},
        {"kind": "nesterov", "lr": LR},
    ):
        _, thm = check(NAMED, params_series(u, v), problem=RELU, optimizer=optimizer, constants={"eps": EPS})
        assert not thm.applicable and "constant learning rate" in thm.detail


def test_vector_valued_checks_hold_for_every_component():
    """A check on a vector series must hold for each component: the worst component decides.

    Oracle: hand-made series where one component violates the bound at one step.
    """
    spec = m.Spec.model_validate(
        {
            "name": "vec",
            "problem": {"kind": "product_chain", "theta0": [1.0, 2.0]},
            "optimizer": {"kind": "gd", "lr": 0.01},
            "train": {"steps": 3},
            "checks": [
                {"kind": "final", "of": "theta", "below": 3.0},
                {"kind": "inequality", "lhs": "theta", "op": "<=", "rhs": "2.5"},
                {"kind": "monotone", "of": "theta", "direction": "nonincreasing"},
            ],
        }
    )
    steps = np.arange(4, dtype=np.int64)
    theta = np.array([[1.0, 2.0], [0.9, 2.6], [0.8, 2.4], [0.7, 2.9]])
    final, inequality, monotone = run_checks(spec, {"params.theta": (steps, theta)}, {})
    assert final.passed and final.margin == pytest.approx(0.1)
    assert not inequality.passed and inequality.values["worst_step"] == 3
    assert inequality.margin == pytest.approx(2.5 - 2.9)
    assert not monotone.passed and monotone.margin == pytest.approx(-0.6)
