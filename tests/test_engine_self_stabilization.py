"""The ``self_stabilization`` measure in the engine, on paper 003's App. B toy where everything is closed
form (App. B, Fig. 2): L(x, y, z) = (1/η + (√β/2)y)x² − (α/√β)y − z.

GD on it is exactly the simplified dynamics eq. (3) with Y = √β·y; the constrained trajectory is
θ†_t = (0, 0, z_{t₀} + η(t − t₀)) with S(θ†) = 2/η, u = e₁, ∇S⊥ = (0, √β, 0), α_t = α, β_t = β and
δ = √(2α/β). So, recorded by the engine from t₀ on and checked against the run's own parameters:
dagger.distance = √(x² + y²) (z coincides), |ss.x| = |x|, ss.y = √β·y, ss.alpha/beta/delta = α, β, δ,
and the predicted dynamics started from the true deviation reproduce it (eq. (6) is exact on this toy).
Tolerances: the projection is exact here up to the LOBPCG/dense eigensolve (round-off, 1e-12 relative);
the prediction accumulates round-off over ~100 steps of a map with |1 + ηy| ≈ 1 (1e-9 absolute).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from eosdsl.engine.execute import execute
from eosdsl.spec.models import Spec

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

ETA, ALPHA, BETA = 0.1, 0.5, 2.0
DELTA = math.sqrt(2 * ALPHA / BETA)


def toy_run(steps: int = 160, x0: float = 1e-3, y0: float = -0.2, **measure: object):  # noqa: ANN201
    spec = {
        "name": "ss-toy",
        "constants": {"eta": ETA, "alpha": ALPHA, "beta": BETA},
        "problem": {
            "kind": "toy",
            "params": {"x": x0, "y": y0, "z": 0.0},
            "objective": "(1/eta + sqrt(beta)/2*y)*x**2 - alpha/sqrt(beta)*y - z",
        },
        "optimizer": {"kind": "gd", "lr": "eta"},
        "train": {"steps": steps},
        "measure": [
            {"kind": "loss"},
            {"kind": "params"},
            {"kind": "sharpness", "method": "dense"},
            {"kind": "self_stabilization", **measure},
        ],
    }
    return execute(Spec.model_validate(spec))


def test_constrained_trajectory_and_coordinates_match_the_closed_form() -> None:
    out = toy_run()
    s_steps, sharp = out.series["sharpness"]
    steps, _ = out.series["dagger.distance"]
    t0 = int(np.argmax(ETA * sharp >= 2.0))  # the time origin: first step with ηS ≥ 2
    assert steps[0] == s_steps[t0] and steps[-1] == 160
    x = out.series["params.x"][1][steps]
    y = out.series["params.y"][1][steps]
    # θ†₀ = proj_M(θ_{t₀}) by three linearized steps is exact only to second order in x_{t₀} ≈ 1e-3 (the
    # Hessian's off-diagonal √β·x tilts u); from (0, 0, z) on, every projection is exact.
    dist = out.series["dagger.distance"][1]
    assert dist[0] == pytest.approx(np.hypot(x[0], y[0]), rel=1e-4)
    np.testing.assert_allclose(dist[1:], np.hypot(x, y)[1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.abs(out.series["ss.x"][1]), np.abs(x), rtol=1e-4)
    np.testing.assert_allclose(np.abs(out.series["ss.x"][1])[1:], np.abs(x)[1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.series["ss.y"][1][1:], math.sqrt(BETA) * y[1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.series["dagger.sharpness"][1][1:], 2 / ETA, rtol=1e-12)
    np.testing.assert_allclose(out.series["dagger.newton"][1][1:], 0.0, atol=1e-12)
    np.testing.assert_allclose(out.series["ss.alpha"][1][1:], ALPHA, rtol=1e-9)
    np.testing.assert_allclose(out.series["ss.beta"][1][1:], BETA, rtol=1e-9)
    np.testing.assert_allclose(out.series["ss.delta"][1][1:], DELTA, rtol=1e-9)
    # z† advances by η per step like GD's z, so L(θ†) = −z† = −z_t
    np.testing.assert_allclose(
        out.series["dagger.loss"][1][1:], -out.series["params.z"][1][steps][1:], rtol=1e-12
    )


def test_predicted_dynamics_reproduce_gd_on_the_toy() -> None:
    """Eq. (6) is exact on the toy, so v̂ follows v up to the error of θ†₀ (second order in x_{t₀}, a
    relative 1e-7), which the blow-up of x amplifies with v itself: relative 1e-5 of the scale of x, y
    (1e-4 for the loss, quadratic in x)."""
    out = toy_run()
    for name in ("x", "y"):
        true, pred = out.series[f"ss.{name}"][1], out.series[f"pred.{name}"][1]
        np.testing.assert_allclose(pred, true, rtol=0, atol=1e-5 * np.max(np.abs(true)))
    # Theorem 1: L ≈ L(θ†) + x²/η; on the toy L − L(θ†) = (1/η + √β y/2)x² − (α/√β)y exactly
    steps, _ = out.series["pred.loss"]
    x, y = (out.series[f"params.{p}"][1][steps] for p in "xy")
    exact = (
        out.series["dagger.loss"][1]
        + (1 / ETA + math.sqrt(BETA) * y / 2) * x**2
        - ALPHA / math.sqrt(BETA) * y
    )
    np.testing.assert_allclose(out.series["loss"][1][steps][1:], exact[1:], rtol=1e-12)
    # Theorem 1's L(θ†) + x̂²/η misses exactly the (√β/2)y·x² − (α/√β)y part of that
    miss = out.series["loss"][1][steps] - out.series["pred.loss"][1]
    expected = math.sqrt(BETA) / 2 * y * x**2 - ALPHA / math.sqrt(BETA) * y
    np.testing.assert_allclose(miss[1:], expected[1:], rtol=0, atol=1e-4 * np.max(np.abs(expected)))


def test_gradient_flow_runs_on_the_same_clock() -> None:
    """GF over time η per GD step: while GD's x is negligible both move identically ((y, z) at rates
    (α/√β, 1)), so ‖θ − θ_GF‖ stays constant; it only jumps when x blows up (GD oscillates, GF does not).
    A clock error (GF time ≠ η per step) would make it drift linearly through the quiet phases."""
    out = toy_run(steps=240)
    steps, flow = out.series["flow.distance"]
    x = out.series["params.x"][1][steps]
    quiet = (np.abs(x[:-1]) < 1e-8) & (np.abs(x[1:]) < 1e-8)
    assert quiet.sum() > 30
    np.testing.assert_allclose(np.diff(flow)[quiet], 0.0, atol=1e-6)
    assert flow[-1] > 1.0  # the first blow-up separated them


def test_the_window_delays_the_time_origin() -> None:
    """t₀ is the first step of the window with ηS ≥ 2 (at step 100 the toy is between blow-ups, S < 2/η)."""
    out = toy_run(start=100)
    t0 = out.series["dagger.distance"][0][0]
    steps, sharp = out.series["sharpness"]
    hot = ETA * sharp >= 2.0
    assert t0 > 100 and hot[list(steps).index(t0)]
    assert not np.any(hot[(steps >= 100) & (steps < t0)])


def test_self_stabilization_needs_gd() -> None:
    spec = {
        "name": "x",
        "problem": {"kind": "toy", "params": {"x": 1.0}, "objective": "x**2"},
        "optimizer": {"kind": "heavy_ball", "lr": 0.1, "beta": 0.9},
        "train": {"steps": 1},
        "measure": [{"kind": "sharpness"}, {"kind": "self_stabilization"}],
    }
    import yaml

    from eosdsl.spec.errors import SpecError
    from eosdsl.spec.load import load

    with pytest.raises(SpecError, match="self_stabilization follows plain GD"):
        load("x.yaml", text=yaml.safe_dump(spec))
