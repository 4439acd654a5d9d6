"""The gradient-flow projection θ* of an iterate onto the minimizers (paper 000 App. E.5, eq. (16)):
``eosdsl.dynamics.flow.gradient_flow_limit`` against closed forms, and the ``flow_projection`` measure in
the engine (lone, packed, resumed) and in the spec layer.

Oracles:

* a quadratic ½(θ − c)ᵀA(θ − c) with A ⪰ 0 singular: the flow is θ(τ) = c + e^{−Aτ}(θ₀ − c), so the
  limit is c + Π_ker A (θ₀ − c), the orthogonal projection of θ₀ onto the minimizer set c + ker A;
* the single-point diagonal network ½(u² − v² − 1)²: uv is conserved, θ* by eq. (18) of paper 000;
* the ReLU scalar network ½u²v²·1[u ≥ 0]: u² − v² is conserved, θ* = (√(u² − v²), 0), S(θ*) = u² − v²,
  w_max(θ*) = e_v, so ⟨w_max, θ − θ*⟩ = v (eq. (16) reduces to eq. (3) with u → √(u² − v²)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.dynamics import constrained, flow

jax.config.update("jax_enable_x64", True)


def _ldn(p: jax.Array) -> jax.Array:
    return 0.5 * (p[0] ** 2 - p[1] ** 2 - 1) ** 2


def _eq18(u: float, v: float) -> np.ndarray:
    """Paper 000 eq. (18): the flow limit of ½(u² − v² − 1)² for u > 0, L < ½."""
    us = np.sqrt((1 + np.sqrt(1 + 4 * u * u * v * v)) / 2)
    return np.array([us, u * v / us])


def _limit(loss, theta0, **kw):  # noqa: ANN001, ANN003, ANN202
    top = constrained.dense_top_eig(loss)
    return jax.jit(lambda p: flow.gradient_flow_limit(loss, p, top, **kw))(jnp.asarray(theta0))


# ------------------------------------------------------------------------------------- the integrator


def test_quadratic_limit_is_the_orthogonal_projection_onto_the_minimizers() -> None:
    """A rank-2 A in R⁴: the null component of θ₀ − c never moves (RK4's propagator is 1 at λ = 0) and the
    range component decays until ‖∇L‖ = ‖A(θ − c)‖ ≤ tol, so ‖θ* − proj‖ ≤ tol/λ_min⁺ (here 1e-12/0.5)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a = q[:, :2] @ np.diag([3.0, 0.5]) @ q[:, :2].T
    c = rng.normal(size=4)
    theta0 = rng.normal(size=4)

    def loss(p: jax.Array) -> jax.Array:
        d = p - c
        return 0.5 * d @ (a @ d)

    out = _limit(loss, theta0, tol=1e-12)
    null = q[:, 2:] @ q[:, 2:].T
    exact = c + null @ (theta0 - c)
    assert float(out.grad_norm) <= 1e-12
    np.testing.assert_allclose(np.asarray(out.params), exact, rtol=0, atol=1e-12 / 0.5)
    assert int(out.steps) % 16 == 0 and int(out.steps) > 0  # whole rounds of 16 sub-steps
    assert float(out.sharpness) == pytest.approx(3.0, rel=1e-12)  # λ_max, constant on a quadratic


def test_horizon_stops_the_flow_at_that_time() -> None:
    """With a horizon τ = 0.8 the flow ends at flow time τ exactly. On a quadratic each RK4 sub-step
    multiplies a mode of curvature λ by R(−hλ), R(z) = 1 + z + z²/2 + z³/6 + z⁴/24: one round at S = 2 with
    h·S ≤ 1 is n = ⌈0.8·2⌉ = 2 sub-steps of h = 0.4, so θ(τ) = R(−0.4λ)²θ₀ to rounding (1e-15)."""
    lam = np.array([2.0, 0.7, 0.0])
    theta0 = np.array([1.0, -2.0, 0.3])
    out = _limit(lambda p: 0.5 * p @ (lam * p), theta0, tol=1e-14, horizon=0.8)
    assert float(out.time) == pytest.approx(0.8, rel=1e-15)
    assert int(out.steps) == 2
    z = -0.4 * lam
    rk4 = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    np.testing.assert_allclose(np.asarray(out.params), rk4**2 * theta0, rtol=0, atol=1e-15)
    assert float(out.grad_norm) > 1e-14  # stopped by the horizon, not converged


def test_ldn_point_limit_matches_eq18_and_rk4_is_fourth_order() -> None:
    """Eq. (18) at points with u > 0 and L < ½. The error of θ* is RK4's global error over the transient,
    O(h⁴): halving h·S (fraction 0.5 → 0.25) divides it by ≈ 16 (measured 13–25 here; asserted > 8), and at
    fraction 0.1 it is below 1e-6 (measured ≤ 6.6e-7 at the farthest point, ≤ 1e-10 near a minimum)."""
    points = [(5.06, 4.95), (5.2, 4.9), (1.3, 0.2), (0.9, -0.3), (2.0, 1.0)]
    for u, v in points:
        exact = _eq18(u, v)
        errors = []
        for fraction in (0.5, 0.25, 0.1):
            out = _limit(_ldn, (u, v), tol=1e-12, fraction=fraction)
            assert float(out.grad_norm) <= 1e-12
            errors.append(np.abs(np.asarray(out.params) - exact).max())
        assert errors[0] / errors[1] > 8, (u, v, errors)
        assert errors[2] <= 1e-6, (u, v, errors)


def test_inactive_and_concave_starts_do_not_move() -> None:
    """``active`` false: no round at all. A concave start (S ≤ 0: no stable step size, not near a minimizer)
    stops after its first eigenvalue, with θ unchanged and ‖∇L‖ > tol reported."""
    off = _limit(_ldn, (2.0, 1.0), tol=1e-12, active=False)
    assert int(off.steps) == 0 and float(off.time) == 0.0
    np.testing.assert_array_equal(np.asarray(off.params), [2.0, 1.0])
    concave = _limit(lambda p: -0.5 * jnp.sum(p**2), (1.0, 2.0), tol=1e-12)
    assert int(concave.steps) == 0
    np.testing.assert_array_equal(np.asarray(concave.params), [1.0, 2.0])
    assert float(concave.grad_norm) == pytest.approx(np.sqrt(5.0))


def test_capped_flow_reports_its_residual_gradient() -> None:
    """A flat direction with slow contraction (λ = 1e-4 beside λ = 1): the sub-step cap ends the flow
    before ‖∇L‖ ≤ tol, and the recorded ‖∇L(θ*)‖ says so."""
    out = _limit(lambda p: 0.5 * (p[0] ** 2 + 1e-4 * p[1] ** 2), (1.0, 1.0), tol=1e-12, max_steps=64)
    assert 64 <= int(out.steps) < 64 + 16
    assert float(out.grad_norm) > 1e-12


# ------------------------------------------------------------------------------------------ the spec


def test_spec_fields_series_and_identity() -> None:
    from eosdsl.spec.load import load
    from eosdsl.spec.measures import FlowProjectionMeasure
    from eosdsl.spec.recorded import recorded_series
    from eosdsl.spec.semantic import RECORDED_BY

    spec = load("fp.yaml", text=LDN).points[0].spec
    meas = spec.measure[-1]
    assert isinstance(meas, FlowProjectionMeasure)
    defaults = (meas.tol, meas.horizon, meas.max_steps, meas.round_steps, meas.flow, meas.flow_fraction)
    assert defaults == (1e-8, None, 4096, 16, "rk4", 0.25)
    names = [r.name for r in recorded_series(spec) if r.kind == "flow_projection"]
    assert names == [
        "theta_star.sharpness",
        "theta_star.residual",
        "theta_star.loss",
        "theta_star.grad_norm",
        "theta_star.distance",
        "theta_star.deviation",
        "theta_star.time",
        "theta_star.steps",
        "theta_star.params",
    ]
    assert RECORDED_BY["theta_star_deviation"] == "a `flow_projection` measure"
    # A new kind only: a spec without it keeps its canonical JSON (no new default leaks into others).
    plain = load("plain.yaml", text=LDN.replace("  - {kind: flow_projection, every: 3, params: true}\n", ""))
    assert "flow_projection" not in plain.points[0].spec.model_dump_json()


def test_spec_errors_name_the_measure_and_field() -> None:
    from eosdsl.spec.errors import SpecError
    from eosdsl.spec.load import load

    text = LDN.replace("  - {kind: flow_projection, every: 3, params: true}\n", "") + (
        "checks:\n  - {kind: claim, that: final(theta_star_sharpness) <= 100}\n"
    )
    with pytest.raises(SpecError, match="flow_projection"):
        load("bad.yaml", text=text)
    for bad, message in (
        (LDN + "  - {kind: flow_projection}\n", "flow_projection is already measured"),
        (LDN.replace("every: 3,", "every: 3, tol: 0,"), "measure.1.tol"),
        (LDN.replace("every: 3,", "every: 3, flow: heun,"), "measure.1.flow"),
    ):
        with pytest.raises(SpecError, match=message):
            load("bad.yaml", text=bad)


# ----------------------------------------------------------------------------------------- the engine

LDN = """
name: flow-projection-test
precision: float64
constants: {beta: 0.9}
problem: {kind: ldn_point, u0: 5.06, v0: 4.9496}
optimizer: {kind: heavy_ball, lr: 0.01, beta: beta, lr_convention: gd_equivalent}
train: {steps: 30}
runtime: {chunk: 10}
measure:
  - {kind: params}
  - {kind: flow_projection, every: 3, params: true}
"""

RELU = """
name: flow-projection-relu
precision: float64
problem: {kind: relu_scalar, u0: 10.0, v0: 0.5}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 40}
measure:
  - {kind: params}
  - {kind: sharpness}
  - {kind: flow_projection, tol: 1.0e-12, flow_fraction: 0.05}
"""


@pytest.mark.slow
def test_relu_scalar_projection_reduces_eq16_to_eq3() -> None:
    """ReLU scalar net through the engine: S(θ*_t) = u_t² − v_t² (the conserved quantity) and the deviation
    ⟨w_max(θ*), θ_t − θ*⟩ = v_t (w_max = e_v). Tolerances: θ* is converged to ‖∇L‖ ≤ 1e-12; from v₀ = 0.5 the
    RK4 error of θ* at the default h·S ≤ 0.5 is ≈ 4e-6 relative on S (measured), so the spec takes h·S ≤ 0.1
    (error / 5⁴): 1e-7 relative on S ≈ 100 and on ‖θ_t − θ*‖, 1e-9 absolute on v."""
    from eosdsl.engine.execute import execute
    from eosdsl.spec.load import load

    out = execute(load("relu.yaml", text=RELU).points[0].spec)
    u, v = out.series["params.u"][1], out.series["params.v"][1]
    steps = out.series["theta_star.sharpness"][0]
    np.testing.assert_array_equal(steps, out.series["params.u"][0])
    np.testing.assert_allclose(out.series["theta_star.sharpness"][1], u**2 - v**2, rtol=1e-7)
    np.testing.assert_allclose(out.series["theta_star.deviation"][1], v, rtol=0, atol=1e-9)
    distance = np.hypot(u - np.sqrt(u**2 - v**2), v)  # θ_t − θ* = (u − √(u² − v²), v)
    np.testing.assert_allclose(out.series["theta_star.distance"][1], distance, rtol=1e-7)
    assert np.all(out.series["theta_star.grad_norm"][1] <= 1e-12)
    assert np.all(out.series["theta_star.loss"][1] <= 1e-20)


def _bitwise(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.slow
def test_packed_points_equal_their_lone_runs_bitwise() -> None:
    """Three β of the LDN toy packed into one program (the flow's while loop batched across members, each
    due every 3 steps): the trajectory and the flow (θ*, its loss, gradient, distance, time, sub-steps) equal
    each lone run bit for bit. The eigenpair at θ* comes from a batched ``eigh``, which may round the last
    bit differently (measured: 1.4e-16 relative on S and the deviation): those agree to 1e-14 relative,
    and the residual ‖Hw − Sw‖ (itself rounding noise, ~1e-14) is left out, as in tests/test_packing.py.
    θ* agrees with eq. (18)."""
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack
    from eosdsl.spec.load import load

    points = load("pack.yaml", text=LDN, multirun=["constants.beta=0,0.5,0.9"]).points
    specs = [p.spec for p in points]
    hosts = [prepare(s) for s in specs]
    alone = [execute(s, h) for s, h in zip(specs, hosts, strict=True)]
    packed = execute_pack(specs, hosts)
    for p, a, b in zip(points, alone, packed, strict=True):
        assert a.series.keys() == b.series.keys()
        for name in a.series:
            assert np.array_equal(a.series[name][0], b.series[name][0]), (p.label, name)
            if name in ("theta_star.sharpness", "theta_star.deviation"):
                np.testing.assert_allclose(b.series[name][1], a.series[name][1], rtol=1e-14, atol=1e-300)
            elif name != "theta_star.residual":
                assert _bitwise(a.series[name][1], b.series[name][1]), (p.label, name)
        steps, star = a.series["theta_star.params"]
        assert list(steps) == list(range(0, 31, 3))
        at = np.searchsorted(a.series["params.u"][0], steps)
        u, v = a.series["params.u"][1][at], a.series["params.v"][1][at]
        exact = np.stack([_eq18(x, y) for x, y in zip(u, v, strict=True)])
        np.testing.assert_allclose(star, exact, rtol=0, atol=1e-6)  # RK4 at fraction 0.25: ≤ 2e-6 measured


@pytest.mark.slow
def test_resumed_run_is_bit_identical() -> None:
    from conftest import assert_resume_is_bitwise

    from eosdsl.spec.load import load

    assert_resume_is_bitwise(load("resume.yaml", text=LDN).points[0].spec, at=20)
