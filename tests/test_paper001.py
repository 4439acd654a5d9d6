"""Paper 001 (Li, Wang, Li) §3–4 on the spec library's two-layer linear network, in float64.

Oracles: the paper's exact identity ‖A_{t+1}‖² − ‖A_t‖² = −(4η/n)D_tᵀF_t + η²‖∇_A L_t‖² (an algebraic
fact of GD on a linear output layer with L = ‖D‖²/n), and the EoS picture of the paper: sharpness
rising to 2/η, crossing it, and a catapult (loss spike) that returns it below 2/η.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eosdsl.checks.evaluate import run_checks
from eosdsl.orchestration import run_one
from eosdsl.registry import Registry
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

SPEC = (
    Path(__file__).resolve().parents[1]
    / "specs"
    / "progressive-sharpening"
    / "two-layer-linear-catapult.yaml"
)
ETA = 2.5


def test_two_layer_linear_identity_and_catapult(tmp_path):
    spec = load(SPEC).spec
    run = run_one(spec, Registry(tmp_path)).run
    checks = {c["name"]: c for c in run.checks}
    identity = checks["output_norm_identity"]
    assert identity["passed"] and identity["values"]["max_rel_error"] <= 1e-10
    assert identity["values"]["steps_dominant"] >= 50  # the relative bound is exercised on many steps

    sharpness = run.series("sharpness")[1]
    loss = run.series("loss")[1]
    cross = int(np.argmax(sharpness > 2 / ETA))
    assert 0 < cross < 50, cross
    assert np.all(np.diff(sharpness[1 : cross + 1]) > 0)  # progressive sharpening up to the crossing
    assert sharpness.max() > 2 / ETA  # the peak is past 2/η
    assert loss[cross:].max() > loss[cross]  # the catapult: a loss spike after crossing
    assert ETA * sharpness[-1] < 2  # back below the edge of stability
    assert np.max(run.series("sharpness.residual")[1]) < 1e-10  # Lanczos values are certified


def test_identity_check_detects_a_perturbed_norm(tmp_path):
    """The check is not vacuous: a 1e-9 error in one stored ‖A‖² breaks it."""
    spec = load(SPEC, overrides=["train.steps=40"]).spec
    run = run_one(spec, Registry(tmp_path)).run
    series = {name: run.series(name) for name in run.series_names()}
    steps, norm = series["norm2.A"]
    norm = norm.copy()
    norm[20] += 1e-9
    series["norm2.A"] = (steps, norm)
    (identity,) = [
        c for c in run_checks(spec, series, run.info["references"]) if c.name == "output_norm_identity"
    ]
    assert not identity.passed
