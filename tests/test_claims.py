"""The ``claim`` check, the one table of recorded series, located validation errors of claims, and the
paper claims of the spec library on their runs (with the Python checks as independent oracles)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.checks import phb_relu
from eosdsl.checks.claims import claim
from eosdsl.cli import app
from eosdsl.spec import models as m
from eosdsl.spec.checks import ClaimCheck
from eosdsl.spec.load import load
from eosdsl.spec.recorded import recorded_series
from eosdsl.spec.semantic import semantic_errors, series_names

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "bad_specs"
runner = CliRunner()

STEPS = np.arange(100, dtype=np.int64)
U = 10.0 - 0.01 * np.sqrt(STEPS)
TABLE = {"params.u": (STEPS, U), "alpha": (STEPS[::2], np.where(STEPS[::2] < 60, -1.0, 1.0))}


def _claim(that: str, **fields) -> ClaimCheck:
    return ClaimCheck(kind="claim", that=that, **fields)


# --------------------------------------------------------------------------------------- evaluation


def test_scalar_claim_margin_and_values():
    r = claim(_claim("fraction(alpha < 0) >= 0.5", name="alpha"), TABLE, {})
    assert r.name == "alpha" and r.passed and r.margin == pytest.approx(0.6 - 0.5)
    assert r.values["lhs"] == pytest.approx(0.6) and r.values["rhs"] == 0.5
    assert r.values["fraction(alpha < 0)"] == pytest.approx(0.6)
    r = claim(_claim("fraction(alpha < 0) >= 0.7"), TABLE, {})
    assert not r.passed and r.margin == pytest.approx(-0.1)
    assert r.name == "fraction(alpha < 0) >= 0.7"


def test_strict_comparisons_tolerance_and_nan():
    assert not claim(_claim("final(u) < final(u)"), TABLE, {}).passed
    assert claim(_claim("final(u) <= final(u)"), TABLE, {}).passed
    assert claim(_claim("final(u) < final(u)", tol=1e-9), TABLE, {}).passed
    r = claim(_claim("at(u, first(u < 0)) <= 1"), TABLE, {})  # never true → NaN → fails
    assert not r.passed and math.isnan(r.margin)


def test_let_binds_series_numbers_and_conditions():
    check = _claim(
        "window_max(delta(u), where=late) <= 0",
        let={"t0": "first(alpha > 0)", "late": "step >= t0"},
    )
    r = claim(check, TABLE, {})
    assert r.passed and r.values["t0"] == 60.0
    assert r.margin == pytest.approx(-np.max(np.diff(U)[59:]))


def test_series_claim_holds_at_every_step():
    r = claim(_claim("u <= 10"), TABLE, {})
    assert r.passed and r.values["violations"] == 0 and r.values["steps"] == 100
    r = claim(_claim("u < 9.95"), TABLE, {})
    assert not r.passed and r.values["violations"] == int(np.sum(U >= 9.95)) and r.values["worst_step"] == 0


# ---------------------------------------------------------------------------------------- the table


def _spec(text: str) -> m.Spec:
    import yaml

    return m.Spec.model_validate(yaml.safe_load(text))


def test_recorded_series_is_the_one_table(tmp_path):
    """Validation's names and the engine's series come from recorded_series."""
    from eosdsl.engine.execute import layout_of, prepare
    from eosdsl.engine.program import series_of

    spec = _spec(
        """
name: t
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 3}
measure:
  - {kind: loss, every: 2}
  - {kind: params}
  - {kind: lr}
  - {kind: sharpness, k: 2}
  - {kind: loss}
  - {kind: derived, name: ratio, expr: sharpness / lr}
"""
    )
    table = recorded_series(spec)
    assert [r.name for r in table][:6] == ["loss", "params.u", "params.v", "lr", "lr_applied", "sharpness"]
    assert series_names(spec) == list(dict.fromkeys(r.expression for r in table))
    assert "eigs_residual" in series_names(spec) and "ratio" in series_names(spec)
    engine = series_of(spec, layout_of(spec, prepare(spec)))
    assert engine == {
        r.name: (0 if r.every == 0 else min(x.every for x in table if x.name == r.name))
        for r in table
        if not r.derived
    }
    assert engine["loss"] == 1 and engine["eigs"] == 0


def test_recorded_series_of_a_network_names_its_groups():
    spec = load(ROOT / "specs" / "progressive-sharpening" / "two-layer-linear-catapult.yaml").spec
    names = [r.name for r in recorded_series(spec)]
    assert {"norm2.A", "grad_norm2.W", "residual.dot"} <= set(names)
    assert "norm2_A" in series_names(spec)


# --------------------------------------------------------------------------- validation and the CLI

BAD_CLAIMS = [
    ("claim_unknown_series.yaml", "7:19 checks.0.that", ["unknown name 'uu'", "did you mean 'u'", "col"]),
    ("claim_not_a_condition.yaml", "8:5 checks.0.that", ["`fraction` needs a condition", "not `u`"]),
    ("claim_not_a_comparison.yaml", "8:5 checks.0.that", ["one comparison", "window_max(delta(u))"]),
    ("claim_needs_measure.yaml", "8:11 checks.0.let.unstable", ["needs the series sharpness", "sharpness"]),
    ("claim_misaligned_delta.yaml", "7:19 checks.0.that", ["recorded every 10 steps", "`delta(mss, 10)`"]),
]


@pytest.mark.parametrize(("name", "where", "words"), BAD_CLAIMS)
def test_bad_claim_is_a_located_validation_error(name, where, words):
    path = BAD / name
    result = runner.invoke(app, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"{path}:{where}" in result.output, result.output
    for word in words:
        assert word in result.output
    assert "Traceback" not in result.output
    assert result.output.count(str(path)) == 1  # one error, no cascade


def test_across_step_operators_are_refused_outside_checks(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        """name: t
problem: {kind: toy, params: {u: 1.0}, objective: "shift(u, 1)**2"}
optimizer: {kind: gd, lr: 0.1}
events:
  - when: {expr: "fraction(u < 0) > 0.5"}
    do: {stop: true}
train: {steps: 10}
"""
    )
    result = runner.invoke(app, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "problem.objective: `shift` acts across steps" in result.output
    assert "events.0.when.expr: `fraction` acts across steps" in result.output
    assert "checks and derived measures" in result.output


def test_derived_measure_must_be_a_series(tmp_path):
    spec = _spec(
        """
name: t
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 3}
measure:
  - {kind: params}
  - {kind: derived, name: du, expr: delta(u)}
  - {kind: derived, name: share, expr: fraction(u > 0)}
checks:
  - {kind: final, of: running_sum(du), below: 1}
"""
    )
    errors = semantic_errors(spec)
    assert [e.path for e in errors] == [("measure", 2, "expr")]
    assert "single number for the run" in errors[0].message


def test_scalar_product_validates_with_its_default_g():
    """Regression: the default g(s) failed with `problem.g: unknown name 's'`."""
    base = "name: t\nproblem: {kind: scalar_product, x0: 1.0, y0: 0.5%s}\noptimizer: {kind: gd, lr: 0.1}\n"
    assert semantic_errors(_spec(base % "" + "train: {steps: 2}\n")) == []
    errors = semantic_errors(_spec(base % ", g: 's**2 + q'" + "train: {steps: 2}\n"))
    assert [e.path for e in errors] == [("problem", "g")] and "unknown name 'q'" in errors[0].message


@pytest.mark.slow
def test_scalar_product_runs(tmp_path):
    from eosdsl.orchestration import run_one
    from eosdsl.registry import Registry

    spec = _spec(
        "name: t\nproblem: {kind: scalar_product, x0: 1.5, y0: 0.5}\noptimizer: {kind: gd, lr: 0.1}\n"
        "train: {steps: 20}\nmeasure: [{kind: loss}, {kind: params}]\n"
        "checks: [{kind: claim, that: 'final(loss) <= at(loss, 0)'}]\n"
    )
    run = run_one(spec, Registry(tmp_path)).run
    assert run.checks[0]["passed"]


# ------------------------------------------------------------------------------- the paper claims


def _runs(path: Path, labels: tuple[str, ...], tmp_path: Path) -> dict:
    from eosdsl.orchestration import run_one
    from eosdsl.registry import Registry

    loaded = load(path)
    points = [p for p in loaded.points if p.label in labels] if labels else loaded.points
    return {p.label: (p.spec, run_one(p.spec, Registry(tmp_path)).run) for p in points}


@pytest.mark.slow
def test_paper000_claims_pass_and_agree_with_the_python_checks(tmp_path):
    """Lemma 6, Theorems 2 and 7, eq. (10), Lemma 8 and the telescoping identity pass as claims on the GD
    run; on GD and PHB the claim versions of Lemma 6 and Theorem 2 give the margins of the Python checks
    (phb_relu.lemma6/theorem2/telescoping_residual), up to the claim's stated tolerance."""
    path = ROOT / "specs" / "phb-catapults" / "relu-scalar-four-scenarios.yaml"
    runs = _runs(path, ("gd", "phb"), tmp_path)
    for label, (spec, run) in runs.items():
        results = {c["name"]: c for c in run.checks}
        assert all(c["passed"] and c["applicable"] for c in results.values()), results
        u, v = run.series("params.u")[1], run.series("params.v")[1]
        beta = 0.0 if label == "gd" else 0.9
        eta, eps = 0.0201, 0.01
        oracle = phb_relu.theorem2(u, v, eta, beta, eps)
        tol = next(c.tol for c in spec.checks if getattr(c, "name", None) == "theorem2")
        assert results["theorem2"]["margin"] - tol == pytest.approx(oracle.margin, rel=1e-9, abs=1e-14)
        assert results["theorem2"]["values"]["tau_u"] == oracle.values["tau_u"]
        lemma6 = phb_relu.lemma6(u)
        assert results["lemma6"]["values"]["lhs"] == pytest.approx(-lemma6.margin, abs=1e-15)
        assert results["lemma6"]["values"]["rhs"] == pytest.approx(lemma6.values["tol"], rel=1e-12)
    gd = {c["name"]: c for c in runs["gd"][1].checks}
    u, v = runs["gd"][1].series("params.u")[1], runs["gd"][1].series("params.v")[1]
    residual = np.nanmax(np.abs(phb_relu.telescoping_residual(u, v, 0.0201, 0.0, 0.01)))
    assert gd["theorem2 telescoping"]["values"]["lhs"] == pytest.approx(residual, abs=1e-13)
    assert 0 < gd["theorem7"]["margin"] < 1e-3  # eq. (9) holds, and is tight (u_T − bound ≈ 6e-5)
    assert gd["theorem7 eq10"]["values"]["rhs"] == pytest.approx(42.31, abs=0.01)  # (10) by hand: ≈ 42.3


@pytest.mark.slow
def test_paper001_sign_agreement_claim(tmp_path):
    path = ROOT / "specs" / "progressive-sharpening" / "two-layer-linear-catapult.yaml"
    ((spec, run),) = _runs(path, (), tmp_path).values()
    result = next(c for c in run.checks if c["name"] == "sharpness follows output norm")
    s, a = run.series("sharpness")[1], run.series("norm2.A")[1]
    oracle = np.mean(np.sign(np.diff(s)) == np.sign(np.diff(a)))  # both recorded at every step
    assert result["passed"] and result["values"]["lhs"] == pytest.approx(oracle)


@pytest.mark.slow
def test_paper004_alpha_negative_while_unstable(tmp_path):
    from eosdsl.data.images import fashion_mnist_available

    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    path = ROOT / "specs" / "eigenvector-rotation" / "fmnist-mlp-alpha.yaml"
    ((spec, run),) = _runs(path, (), tmp_path).values()
    results = {c["name"]: c for c in run.checks}
    assert all(c["passed"] for c in results.values()), results
    steps_s, s = run.series("sharpness")
    steps_a, alpha = run.series("alpha")
    common, i, j = np.intersect1d(steps_s, steps_a, return_indices=True)
    unstable = s[i] > 2 / 0.1
    oracle = np.mean(alpha[j][unstable] < 0)
    assert results["alpha negative while unstable"]["values"]["lhs"] == pytest.approx(oracle)


def test_named_eos_checks_written_as_claims_agree_with_them():
    """eos_band and eigengap (eosdsl/checks/eos.py) as claims give the same margins (oracles)."""
    from eosdsl.checks import eos

    rng = np.random.default_rng(1)
    steps = np.arange(200, dtype=np.int64)
    s = np.concatenate([np.linspace(10, 19.9, 80), 20 + 1.5 * rng.normal(size=120)])
    eigs = np.stack([s, 15 + rng.normal(size=200)], axis=1)
    table = {"sharpness": (steps, s), "eigs": (steps, eigs)}
    scalars = {"eta": 0.1}
    band = eos.eos_band(m.EosBandCheck(kind="eos_band", threshold="2 / eta", rel=0.2), table, scalars)
    as_claim = claim(
        _claim("window_max(abs(sharpness / (2 / eta) - 1), start=first(sharpness >= 2 / eta)) <= 0.2"),
        table,
        scalars,
    )
    assert as_claim.margin == pytest.approx(band.margin) and as_claim.passed == band.passed
    windowed = eos.eos_band(
        m.EosBandCheck(kind="eos_band", threshold="2 / eta", rel=0.2, steps=(120, 180)), table, scalars
    )
    as_claim = claim(
        _claim(
            "window_max(abs(sharpness / (2 / eta) - 1), start=maximum(reach, 120), end=180) <= 0.2",
            let={"reach": "first(sharpness >= 2 / eta, end=180)"},
        ),
        table,
        scalars,
    )
    assert as_claim.margin == pytest.approx(windowed.margin)
    pred = {"pred_sharpness": (steps[50:], s[50:] + 0.05 * rng.normal(size=150)), "lr": (steps, 0.1 + 0 * s)}
    table |= pred
    prediction = eos.prediction(m.PredictionCheck(kind="prediction", rel=0.01, steps=(60, 190)), table, {})
    that = "window_max(abs(pred_sharpness - sharpness) * lr / 2, 60, 190) <= 0.01"
    as_claim = claim(_claim(that), table, {})
    assert as_claim.margin == pytest.approx(prediction.margin) and as_claim.passed == prediction.passed
    gap = eos.eigengap(m.EigengapCheck(kind="eigengap", eta="eta", c=1.9), table, scalars)
    as_claim = claim(_claim("window_max(eta * eigs[1]) < 1.9"), table, scalars)
    assert as_claim.margin == pytest.approx(gap.margin) and as_claim.passed == gap.passed


def test_a_claim_on_a_series_the_run_never_recorded_is_not_applicable():
    from eosdsl.checks.evaluate import run_checks

    spec = _spec(
        """
name: t
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 3}
measure: [{kind: params}, {kind: sharpness, start: 1000}]
checks:
  - {kind: claim, that: 'window_max(sharpness) <= 100'}
  - {kind: claim, that: 'final(u) <= 10'}
"""
    )
    empty = (np.zeros(0, np.int64), np.zeros(0))
    series = {"params.u": (STEPS[:4], U[:4]), "params.v": (STEPS[:4], U[:4]), "sharpness": empty}
    first, second = run_checks(spec, series, {})
    assert not first.applicable and "sharpness (measure[1], sharpness)" in first.detail
    assert second.applicable and second.passed


def test_the_table_imports_no_jax_and_agrees_with_the_toy_forms():
    import subprocess
    import sys

    code = "import sys, eosdsl.spec.recorded; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    from eosdsl.spec.recorded import param_names
    from eosdsl.spec.toy import as_toy

    problems = [
        m.ReluScalar(kind="relu_scalar"),
        m.LdnPoint(kind="ldn_point"),
        m.ProductChain(kind="product_chain", theta0=[1.0, 2.0]),
        m.ScalarProduct(kind="scalar_product", x0=1.0, y0=1.0),
        m.ToyProblem(kind="toy", params={"a1": 1.0, "w": [1.0, 2.0]}, objective="a1 * sum(w)"),
    ]
    for problem in problems:
        assert param_names(problem) == list(as_toy(problem).params)
