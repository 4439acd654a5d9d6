"""Paper 001 (Li, Wang, Li) §2 / App. F: Gram (NTK) sharpness Λ vs Hessian sharpness S, float64.

What is asserted, and why. For L = ‖D‖²/n with D = F − Y, ∇²L = (2/n)JᵀJ + (2/n)Σ_i D_i∇²f_i: the
Gauss–Newton part, whose top eigenvalue is Λ = λ_max((2/n)JJᵀ) (JᵀJ and JJᵀ share their nonzero
eigenvalues), plus a residual term. For the two-layer linear net f(x) = AᵀWx/√m the only second
derivatives are ∂²f/∂A_j∂W_kl = δ_jk x_l/√m, so the residual term is a symmetric off-diagonal block
matrix with spectrum ±(2/n)‖XᵀD‖/√m, and ∇_W L = (2/n)A(XᵀD)ᵀ/√m gives its norm from stored series:
‖∇²L − (2/n)JᵀJ‖₂ = ‖∇_W L‖_F/‖A‖ (``resid_norm``). Hence, by Weyl, at every step

    |S − Λ| ≤ resid_norm  (+ the solvers' residual certificates),

with equality of S and Λ wherever ∇_W L = 0 (at the converged point of this run, which does not
interpolate: L → 0.296). Λ > 0 always (a nonzero PSD Gram matrix). Beyond the theorem, the run shows
where the two differ most: in the catapult (a loss spike), not during progressive sharpening.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eosdsl.orchestration import run_one
from eosdsl.registry import Registry
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

SPEC = Path(__file__).resolve().parents[1] / "specs" / "progressive-sharpening" / "two-layer-linear-gram.yaml"
ETA = 2.5


def test_gram_vs_hessian_sharpness_two_layer_linear(tmp_path):
    spec = load(SPEC, overrides=["train.steps=120"]).spec
    run = run_one(spec, Registry(tmp_path)).run
    assert all(c["passed"] for c in run.checks), [c["detail"] for c in run.checks]

    s = run.series("sharpness")[1]
    g = run.series("gram_sharpness")[1]
    loss = run.series("loss")[1]
    bound = run.series("resid_norm")[1]
    certs = run.series("sharpness.residual")[1] + run.series("gram_sharpness.residual")[1]
    assert certs.max() < 1e-10  # both top eigenvalues are certified to round-off

    # Weyl's bound with the exact norm of the residual term, at every step.
    assert np.all(np.abs(s - g) <= bound + certs + 1e-12)
    assert np.all(g > 0)

    # Towards the (non-interpolating) stationary point ∇_W L → 0, and S and Λ coincide with it
    # (resid_norm ≈ 2e-5 at step 120, 1e-10 at step 400).
    assert bound[-1] < 1e-4 and abs(s[-1] - g[-1]) <= bound[-1] + 1e-9
    assert loss[-1] > 0.1  # not an interpolating point: the residual itself stays large

    # Progressive sharpening (before the loss spike) S ≈ Λ; the catapult is where they part.
    spike = int(np.argmax(loss))
    cross = int(np.argmax(s > 2 / ETA))
    assert 0 < cross < spike
    rel = np.abs(s - g) / s
    assert rel[: cross + 1].max() < 0.07  # only the first steps (‖A‖ ≈ 0) differ by a few %
    assert rel[cross : spike - 3].max() < 0.01
    assert rel[spike - 2 : spike + 2].max() > 0.1  # the catapult: S and Λ differ by > 10 %
