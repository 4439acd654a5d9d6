"""Oracle tests for the curvature checks: ``eos_band``, ``eigengap``, ``tracks_constrained``,
``prediction`` (paper 003) and ``product_chain_identities`` (paper 004, §3.1, App. B, C).

The first four run on hand-made series whose margins are known by construction (exact arithmetic up to
a few float operations, hence ``abs=1e-12``). The product-chain oracle is checked against hand
arithmetic from eqs. (4)–(6) at the Fig. 1 start θ₀ = (−0.1, 10), against ``jax.hessian``, and on a real
engine run (dense eigensolver, float64), where every identity holds to round-off (≤ 1e-12 relative to ‖H‖).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.checks import product_chain as pc
from eosdsl.checks.evaluate import run_checks
from eosdsl.engine.execute import execute
from eosdsl.spec import models as m
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load
from eosdsl.spec.semantic import semantic_errors

jax.config.update("jax_enable_x64", True)

BASE = {
    "name": "t",
    "problem": {"kind": "product_chain", "theta0": [-0.1, 10.0]},
    "optimizer": {"kind": "gd", "lr": 0.1},
    "train": {"steps": 10},
}


def spec_with(**fields) -> m.Spec:
    return m.Spec.model_validate({**BASE, **fields})


def series_of(**named) -> dict:
    """name → (steps int64, values float64); a ``__`` in a keyword stands for a dot."""
    return {
        k.replace("__", "."): (np.asarray(s, np.int64), np.asarray(v, np.float64))
        for k, (s, v) in named.items()
    }


def one(spec_check: dict, series: dict, **fields):
    (result,) = run_checks(spec_with(checks=[spec_check], **fields), series, {})
    return result


def errors_of(checks: list[dict], measure: list[dict], **fields) -> list[tuple[str, str]]:
    """(dotted path, message) of every semantic error of a spec with these checks and measures."""
    spec = spec_with(checks=checks, measure=measure, **fields)
    return [(".".join(map(str, e.path)), e.message) for e in semantic_errors(spec)]


# ---------------------------------------------------------------------------------------------- eos_band

STEPS = np.arange(9)
LR = series_of(lr=(STEPS, [0.1] * 9))  # 2/lr = 20
# reaches 20 at step 4; afterwards the largest |S/20 − 1| is 21/20 − 1 = 0.05 (step 5)
SHARP = [5.0, 10.0, 15.0, 19.0, 20.5, 21.0, 19.5, 20.8, 19.2]


def test_eos_band_holds_after_the_first_reach_and_ignores_the_approach():
    """Progressive sharpening (5 → 19) is outside the band but before the reach, so it does not count.

    Oracle: margin = 0.1 − 0.05 by construction.
    """
    r = one({"kind": "eos_band", "rel": 0.1}, {**LR, **series_of(sharpness=(STEPS, SHARP))})
    assert r.applicable and r.passed
    assert r.margin == pytest.approx(0.05, abs=1e-12)
    assert r.values["reached_at"] == 4 and r.values["worst_step"] == 5


def test_eos_band_fails_with_negative_margin_when_the_sharpness_leaves_the_band():
    """A spike to 23 at step 8 is 15% above 2/η: margin 0.1 − 0.15 = −0.05; a window ending at 7 passes."""
    spiked = {**LR, **series_of(sharpness=(STEPS, [*SHARP[:8], 23.0]))}
    r = one({"kind": "eos_band", "rel": 0.1}, spiked)
    assert not r.passed and r.margin == pytest.approx(-0.05, abs=1e-12) and r.values["worst_step"] == 8
    r = one({"kind": "eos_band", "rel": 0.1, "steps": [0, 7]}, spiked)
    assert r.passed and r.margin == pytest.approx(0.05, abs=1e-12)
    r = one({"kind": "eos_band", "rel": 0.1, "steps": [6, 7]}, spiked)  # 19.5, 20.8 → 0.04
    assert r.passed and r.margin == pytest.approx(0.06, abs=1e-12)


def test_eos_band_never_reached_fails_or_is_not_applicable():
    """Sharpness peaking at 19 < 20: with must_reach it fails by the closest shortfall 19/20 − 1 = −0.05;
    without, it is not applicable. A NaN sharpness (divergence) after the reach fails."""
    low = {**LR, **series_of(sharpness=(STEPS, [5.0, 10.0, 15.0, 19.0, 18.0, 17.0, 16.0, 15.0, 14.0]))}
    r = one({"kind": "eos_band"}, low)
    assert r.applicable and not r.passed and r.margin == pytest.approx(-0.05, abs=1e-12)
    r = one({"kind": "eos_band", "must_reach": False}, low)
    assert not r.applicable and r.passed and "never reaches" in r.detail
    nan = {**LR, **series_of(sharpness=(STEPS, [*SHARP[:8], np.nan]))}
    r = one({"kind": "eos_band"}, nan)
    assert not r.passed and r.margin == -np.inf


def test_eos_band_threshold_and_of_are_expressions():
    """``threshold: 2 / eta`` over a constant without an lr series; ``of`` a derived two-step mean."""
    s = series_of(sharpness=(STEPS, SHARP))
    r = one({"kind": "eos_band", "threshold": "2 / eta"}, s, constants={"eta": 0.1})
    assert r.passed and r.margin == pytest.approx(0.05, abs=1e-12)
    r = one({"kind": "eos_band", "threshold": 25.0, "rel": 0.1}, s)
    assert r.applicable and not r.passed and r.margin == pytest.approx(21.0 / 25.0 - 1.0, abs=1e-12)


def test_eos_band_without_its_series_is_not_applicable():
    r = one({"kind": "eos_band"}, series_of(sharpness=(STEPS, SHARP)))
    assert not r.applicable and r.passed and np.isnan(r.margin) and "lr" in r.detail


# ---------------------------------------------------------------------------------------------- eigengap


def test_eigengap_margin_is_c_minus_eta_lambda2():
    """λ₂ = 5, 10, 18 at η = 0.1: max ηλ₂ = 1.8, so c = 1.9 passes by 0.1 and c = 1.7 fails by 0.1.

    A window excluding step 2 leaves max ηλ₂ = 1.0. η may be a constant instead of the lr series.
    """
    s = series_of(eigs=([0, 1, 2], [[30.0, 5.0], [30.0, 10.0], [30.0, 18.0]]), lr=([0, 1, 2], [0.1] * 3))
    r = one({"kind": "eigengap"}, s)
    assert r.passed and r.margin == pytest.approx(0.1, abs=1e-12) and r.values["worst_step"] == 2
    r = one({"kind": "eigengap", "c": 1.7}, s)
    assert not r.passed and r.margin == pytest.approx(-0.1, abs=1e-12) and r.values["violations"] == 1
    r = one({"kind": "eigengap", "c": 1.7, "steps": [0, 1]}, s)
    assert r.passed and r.margin == pytest.approx(0.7, abs=1e-12)
    r = one({"kind": "eigengap", "eta": 0.05}, {"eigs": s["eigs"]})
    assert r.passed and r.margin == pytest.approx(1.0, abs=1e-12)
    r = one({"kind": "eigengap", "c": 1.8}, s)  # equality fails: the assumption is strict
    assert not r.passed and r.margin == pytest.approx(0.0, abs=1e-12)


def test_eigengap_without_eigs_or_steps_is_not_applicable():
    r = one({"kind": "eigengap"}, LR)
    assert not r.applicable and "eigs" in r.detail
    s = series_of(eigs=([0, 1], [[3.0, 1.0], [3.0, 1.0]]), lr=([0, 1], [0.1, 0.1]))
    assert not one({"kind": "eigengap", "steps": [5, 9]}, s).applicable


# ------------------------------------------------------------------------------------ tracks_constrained

SS_STEPS = [5, 6, 7]  # θ† starts at t₀ = 5: the series exist from there on
SS = series_of(dagger__distance=(SS_STEPS, [0.1, 0.3, 0.5]), ss__delta=(SS_STEPS, [0.2, 0.2, 0.3]))


def test_tracks_constrained_relative_and_absolute_bounds():
    """Bounds 2δ = 0.4, 0.4, 0.6 leave slack 0.3, 0.1, 0.1 (margin 0.1); adding max_distance 0.4 makes
    step 7 fail by 0.1; an absolute bound alone needs no δ."""
    r = one({"kind": "tracks_constrained"}, SS)
    assert r.passed and r.margin == pytest.approx(0.1, abs=1e-12)
    r = one({"kind": "tracks_constrained", "max_distance": 0.4}, SS)
    assert not r.passed and r.margin == pytest.approx(-0.1, abs=1e-12) and r.values["worst_step"] == 7
    only_distance = {"dagger.distance": SS["dagger.distance"]}
    r = one({"kind": "tracks_constrained", "factor": None, "max_distance": 1.0}, only_distance)
    assert r.passed and r.margin == pytest.approx(0.5, abs=1e-12)
    r = one({"kind": "tracks_constrained", "factor": 1.0, "steps": [5, 6]}, SS)
    assert not r.passed and r.margin == pytest.approx(-0.1, abs=1e-12) and r.values["worst_step"] == 6


def test_tracks_constrained_skips_steps_where_delta_is_undefined():
    """δ = √(2α/β) is NaN where α < 0: those steps have no relative bound and are counted, not passed
    or failed; a NaN distance (divergence) fails."""
    s = series_of(dagger__distance=(SS_STEPS, [0.1, 9.0, 0.5]), ss__delta=(SS_STEPS, [0.2, np.nan, 0.3]))
    r = one({"kind": "tracks_constrained"}, s)
    assert r.passed and r.values["skipped"] == 1 and r.margin == pytest.approx(0.1, abs=1e-12)
    all_nan = series_of(dagger__distance=(SS_STEPS, [0.1] * 3), ss__delta=(SS_STEPS, [np.nan] * 3))
    assert not one({"kind": "tracks_constrained"}, all_nan).applicable
    diverged = series_of(dagger__distance=(SS_STEPS, [0.1, np.nan, 0.1]), ss__delta=(SS_STEPS, [0.2] * 3))
    r = one({"kind": "tracks_constrained"}, diverged)
    assert not r.passed and r.margin == -np.inf
    assert not one({"kind": "tracks_constrained"}, LR).applicable


# -------------------------------------------------------------------------------------------- prediction

PRED = series_of(
    sharpness=(SS_STEPS, [20.0, 20.0, 20.0]),
    pred__sharpness=(SS_STEPS, [20.2, 19.0, 24.0]),  # |Δ|/(2/η) = 0.01, 0.05, 0.2 at η = 0.1
    lr=(SS_STEPS, [0.1] * 3),
    loss=(SS_STEPS, [1.0, 2.0, 4.0]),
    pred__loss=(SS_STEPS, [1.1, 2.1, 4.0]),  # relative errors 0.1, 0.05, 0
)


def test_prediction_max_and_median():
    """max error 0.2 fails rel 0.1 by 0.1; the median 0.05 passes by 0.05; the loss comparison joins
    with its own margin (0.2 − 0.1 for the max) and the smaller margin decides."""
    r = one({"kind": "prediction", "rel": 0.1}, PRED)
    assert not r.passed and r.margin == pytest.approx(-0.1, abs=1e-12)
    assert r.values["sharpness_worst_step"] == 7
    r = one({"kind": "prediction", "rel": 0.1, "statistic": "median"}, PRED)
    assert r.passed and r.margin == pytest.approx(0.05, abs=1e-12)
    r = one({"kind": "prediction", "rel": 0.3, "rel_loss": 0.2}, PRED)
    assert r.passed and r.margin == pytest.approx(0.1, abs=1e-12)
    r = one({"kind": "prediction", "rel": None, "rel_loss": 0.08}, PRED)
    assert not r.passed and r.margin == pytest.approx(-0.02, abs=1e-12)
    r = one({"kind": "prediction", "rel": 0.1, "steps": [5, 6]}, PRED)
    assert r.passed and r.margin == pytest.approx(0.05, abs=1e-12)


def test_prediction_without_predictions_is_not_applicable():
    r = one({"kind": "prediction"}, LR)
    assert not r.applicable and "pred_sharpness" in r.detail


def test_models_refuse_checks_with_nothing_to_compare():
    with pytest.raises(ValueError, match="rel"):
        m.PredictionCheck(kind="prediction", rel=None)
    with pytest.raises(ValueError, match="max_distance"):
        m.TracksConstrainedCheck(kind="tracks_constrained", factor=None)
    with pytest.raises(ValueError, match="at least one"):
        m.ProductChainIdentitiesCheck(kind="product_chain_identities", hessian=False, secular=False, r2=False)


# ------------------------------------------------------------------------------ product chain: oracle


def test_closed_forms_at_the_fig1_start_match_hand_arithmetic():
    """Paper 004 eqs. (4)–(6) by hand: at θ₀ = (−0.1, 10), z = Θ²: H = [[200, −4], [−4, 0.02]], λ₁ = 200.080,
    β₀ = 24.9975, R₂ = 50.015 (rounded to these digits)."""
    theta, z = np.array([[-0.1, 10.0]]), np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(pc.hessian(theta, z)[0], [[200.0, -4.0], [-4.0, 0.02]], rtol=1e-14)
    lam1 = pc.secular_top_root(theta, z)
    assert lam1[0] == pytest.approx(200.080, abs=5e-4)
    measured, r2 = pc.r2_ratio(theta, z, lam1)
    assert r2[0] == pytest.approx(50.015, abs=5e-4) and measured[0] == pytest.approx(r2[0], rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_closed_form_hessian_and_secular_root_match_autodiff(n: int):
    """Against ``jax.hessian`` of z(∏θ) for a non-monomial convex even z = Θ² + 0.5Θ⁴ (plus a constant):
    the product form is exact, equals the App. C form D·wwᵀ − z'Θ·diag(w²), and the secular equation's
    largest root is λ₁. Tolerance 1e-12 relative to ‖H‖: a few roundings."""
    z = np.array([0.3, 0.0, 1.0, 0.0, 0.5])
    theta = np.random.default_rng(n).uniform(0.5, 1.5, size=(6, n)) * np.random.default_rng(7).choice(
        [-1.0, 1.0], size=(6, n)
    )

    def loss(t: jnp.ndarray) -> jnp.ndarray:
        big = jnp.prod(t)
        return sum(c * big**k for k, c in enumerate(z))

    auto = np.asarray(jax.jit(jax.vmap(jax.hessian(loss)))(jnp.asarray(theta)))
    exact = pc.hessian(theta, z)
    scale = np.abs(auto).max()
    np.testing.assert_allclose(exact, auto, atol=1e-12 * scale)
    big = theta.prod(axis=1)
    z1, z2 = pc.z_derivatives(z, big)
    w = 1.0 / theta
    d = z2 * big**2 + z1 * big
    division_form = d[:, None, None] * w[:, :, None] * w[:, None, :] - (z1 * big)[:, None, None] * (
        np.eye(n)[None] * (w**2)[:, None, :]
    )
    np.testing.assert_allclose(exact, division_form, atol=1e-12 * scale)
    top = np.linalg.eigvalsh(auto)[:, -1]
    np.testing.assert_allclose(pc.secular_top_root(theta, z), top, atol=1e-12 * scale)


def test_secular_root_is_undefined_at_a_zero_parameter():
    """The secular equation divides by θ_j (App. C): NaN there, while the Hessian is exact."""
    theta, z = np.array([[0.0, 3.0]]), np.array([0.0, 0.0, 1.0])
    assert np.isnan(pc.secular_top_root(theta, z)[0])
    np.testing.assert_allclose(pc.hessian(theta, z)[0], [[18.0, 0.0], [0.0, 0.0]])


# --------------------------------------------------------------------- product chain: on a real run


def chain_spec(theta0: list[float], lr: float, vectors: bool, k: int = 2, steps: int = 40) -> m.Spec:
    return m.Spec.model_validate(
        {
            "name": "chain",
            "problem": {"kind": "product_chain", "theta0": theta0},
            "optimizer": {"kind": "gd", "lr": lr},
            "train": {"steps": steps},
            "measure": [
                {"kind": "loss"},
                {"kind": "params"},
                {"kind": "sharpness", "method": "dense", "k": k, "vectors": vectors},
            ],
            "checks": [{"kind": "product_chain_identities", "rel_tol": 1e-12}],
        }
    )


@pytest.fixture(scope="module")
def fig1_run():
    """Paper 004 Fig. 1 start at an unstable rate (η = 0.011 > 2/λ₁ ≈ 0.009996), eigenvectors stored."""
    spec = chain_spec([-0.1, 10.0], 0.011, vectors=True)
    assert not semantic_errors(spec)
    return spec, execute(spec)


def test_identities_hold_on_an_engine_run(fig1_run):
    """Every identity holds to 1e-12 along the run (dense eigh in float64 is backward stable, so the
    recorded eigenvalues are within a few ulps of ‖H‖); R₂ is read from the recorded eigenvectors."""
    spec, out = fig1_run
    (r,) = run_checks(spec, out.series, out.references)
    assert r.applicable and r.passed and r.margin > 0, r.detail
    assert r.values["steps_checked"] == 41
    for identity in ("hessian", "secular", "r2"):
        assert r.values[f"{identity}_max_rel_error"] <= 1e-12
    assert "recorded eigenvectors" in r.detail


def test_identities_fail_when_the_recorded_sharpness_is_off(fig1_run):
    """A sharpness 1e-6 too large breaks the Hessian and secular identities: margin = 1e-12 − ~1e-6 < 0.
    Without eigvecs, R₂ comes from eq. (4) with the recorded λ₁ and breaks too."""
    spec, out = fig1_run
    steps, sharp = out.series["sharpness"]
    bad = {k: v for k, v in out.series.items() if k not in ("eigs", "eigvecs")}
    bad["sharpness"] = (steps, sharp * (1 + 1e-6))
    (r,) = run_checks(spec, bad, out.references)
    assert r.applicable and not r.passed
    worst = max(r.values[f"{i}_max_rel_error"] for i in ("hessian", "secular", "r2"))
    assert r.margin == pytest.approx(1e-12 - worst, rel=1e-12) and r.margin < -5e-7
    assert r.values["hessian_max_rel_error"] == pytest.approx(1e-6, rel=1e-3)  # λ₁ is ‖H‖ here
    assert r.values["r2_max_rel_error"] > 1e-8 and "eq. (4)" in r.detail
    r2 = {"kind": "product_chain_identities", "hessian": False, "secular": False, "rel_tol": 1e-12}
    only_r2 = m.Spec.model_validate({**spec.model_dump(), "checks": [r2]})
    (r,) = run_checks(only_r2, bad, out.references)
    assert not r.passed and r.margin < 0


def test_identities_on_three_parameters_skip_r2():
    """n = 3 (k = 1, no eigenvectors): the Hessian and secular identities hold; R₂ is reported skipped."""
    spec = chain_spec([0.5, -2.0, 4.0], 0.01, vectors=False, k=1, steps=10)
    out = execute(spec)
    (r,) = run_checks(spec, out.series, out.references)
    assert r.passed and r.margin > 0 and "R₂ skipped" in r.detail


def test_identities_not_applicable_without_params():
    spec = chain_spec([-0.1, 10.0], 0.011, vectors=False)
    r = run_checks(spec, series_of(sharpness=([0], [1.0])), {})[0]
    assert not r.applicable and "theta" in r.detail


# ------------------------------------------------------------------------------------ load-time errors


def test_load_time_errors_are_located_at_the_check_field():
    """Missing measures and foreign problems are errors at ``checks[i].<field>`` naming what to add."""
    loss = [{"kind": "loss"}]
    sharp = {"kind": "sharpness"}
    errs = errors_of([{"kind": "eos_band"}], loss)
    assert [p for p, _ in errs] == ["checks.0.of", "checks.0.threshold"]
    assert "a `sharpness` measure" in errs[0][1]
    assert "`{kind: lr}`" in errs[1][1]
    custom = [{"kind": "eos_band", "threshold": "2 / eta"}]
    ((path, message),) = errors_of(custom, [*loss, sharp])
    assert path == "checks.0.threshold" and "unknown name 'eta'" in message
    assert errors_of(custom, [*loss, sharp], constants={"eta": 0.1}) == []

    errs = errors_of([{"kind": "eigengap", "eta": 0.1}], [*loss, sharp])
    assert errs == [
        ("checks.0.kind", "eigengap needs λ₂: a sharpness measure with k ≥ 2 (measure[1] has k = 1)")
    ]
    assert errors_of([{"kind": "eigengap"}], [*loss, {"kind": "sharpness", "k": 2}, {"kind": "lr"}]) == []
    assert [p for p, _ in errors_of([{"kind": "eigengap"}], [*loss, {"kind": "sharpness", "k": 2}])] == [
        "checks.0.eta"
    ]

    errs = errors_of([{"kind": "tracks_constrained"}], [*loss, sharp])
    assert [p for p, _ in errs] == ["checks.0.kind"] and "self_stabilization" in errs[0][1]
    ss = {"kind": "self_stabilization"}
    both = [{"kind": "tracks_constrained"}, {"kind": "prediction", "rel_loss": 0.1}]
    assert errors_of(both, [*loss, sharp, ss, {"kind": "lr"}]) == []
    errs = errors_of([{"kind": "prediction", "rel": None, "rel_loss": 0.1}], [sharp, ss])
    assert errs == [("checks.0.rel_loss", "prediction needs the series loss: add `{kind: loss}` to measure")]

    errs = errors_of([{"kind": "product_chain_identities"}], loss)
    assert [p for p, _ in errs] == ["checks.0.kind"] and "`{kind: params}`" in errs[0][1]
    assert errors_of([{"kind": "product_chain_identities"}], [{"kind": "params"}, sharp]) == []
    errs = errors_of(
        [{"kind": "final", "of": "loss", "below": 1.0}, {"kind": "product_chain_identities"}],
        [*loss, {"kind": "params"}, sharp],
        problem={"kind": "relu_scalar"},
    )
    assert errs == [
        ("checks.1.kind", "product_chain_identities is a theorem about the product_chain problem")
    ]


def test_load_reports_file_line_and_key():
    """Through the loader the error carries the file position and the dotted key."""
    text = """\
name: x
problem: {kind: product_chain, theta0: [-0.1, 10.0]}
optimizer: {kind: gd, lr: 0.01}
train: {steps: 5}
measure: [{kind: loss}, {kind: sharpness}]
checks:
  - {kind: eos_band}
"""
    with pytest.raises(SpecError) as err:
        load("x.yaml", text=text)
    assert "checks.0.threshold" in str(err.value) and "{kind: lr}" in str(err.value)


def test_secular_root_is_outside_its_hypotheses_when_one_over_theta_squared_overflows() -> None:
    """z = Θ² at θ = (θ₁, 10): λ₁ → 2θ₂² = 200 as θ₁ → 0. At θ₁ = 1e-100 the form is still evaluable and
    exact; at 6e-155, 1/θ₁² overflows and the step is reported as outside the hypotheses (NaN), not inf."""
    coeffs = np.array([0.0, 0.0, 1.0])
    roots = pc.secular_top_root(np.array([[1e-100, 10.0], [6e-155, 10.0]]), coeffs)
    assert roots[0] == pytest.approx(200.0, rel=1e-14)
    assert np.isnan(roots[1])
