"""Curvature measures recorded by the engine, checked against oracles computed from the run's own
recorded parameters (dense ``eigh`` of ``jax.hessian``, central finite differences of S, an explicit
Jacobian), never against numbers copied from eosdsl output.

The toy is a quartic in 4 parameters with a non-constant Hessian, so the eigenpairs move along the GD
trajectory and warm starts are exercised; float64 throughout. Tolerances: the warm LOBPCG runs at
relative residual 1e-10, so eigenvalues agree with ``eigh`` to ~1e-10·S (the residual bounds the error,
and for a simple eigenvalue the error is O(r²/gap), far below); dense agrees to round-off (1e-12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import QUARTIC_OBJECTIVE, quartic

from eosdsl.engine.execute import execute, prepare
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load
from eosdsl.spec.models import Spec

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)

def toy_spec(measure: list[dict], steps: int = 30, lr: float = 0.1) -> dict:
    return {
        "name": "curvature-test",
        "problem": {"kind": "toy", "params": {"w": [1.0, 0.5, 0.2, -0.3]}, "objective": QUARTIC_OBJECTIVE},
        "optimizer": {"kind": "gd", "lr": lr},
        "train": {"steps": steps},
        "measure": [{"kind": "loss"}, {"kind": "params"}, *measure],
    }


def run(spec: dict):  # noqa: ANN201
    return execute(Spec.model_validate(spec))


def eigh_along(ws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues descending, eigenvectors as rows, descending) of the exact Hessian at each w."""
    hess = jax.jit(jax.hessian(quartic))
    vals, vecs = [], []
    for w in ws:
        lam, v = np.linalg.eigh(np.asarray(hess(jnp.asarray(w))))
        vals.append(lam[::-1])
        vecs.append(v[:, ::-1].T)
    return np.array(vals), np.array(vecs)


@pytest.mark.parametrize("method", ["dense", "lobpcg", "lanczos"])
def test_top_k_eigenvalues_match_eigh_along_the_trajectory(method: str) -> None:
    out = run(toy_spec([{"kind": "sharpness", "method": method, "k": 3, "block": 3, "tol": 1e-10}]))
    steps, ws = out.series["params.w"]
    lam, _ = eigh_along(ws)
    s_steps, eigs = out.series["eigs"]
    np.testing.assert_array_equal(s_steps, steps)
    np.testing.assert_allclose(eigs, lam[:, :3], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.series["sharpness"][1], lam[:, 0], rtol=1e-9)
    # each stored residual bounds the true error of its value
    resid = out.series["eigs.residual"][1]
    err = np.min(np.abs(eigs[:, :, None] - lam[:, None, :]), axis=2)
    assert np.all(err <= resid + 1e-12)
    assert np.all(out.series["sharpness.hvps"][1] > 0)


def test_power_hands_on_its_next_iterate_and_certifies_each_value() -> None:
    """``method: power`` with one iteration per measurement: after the first (cold: 3 Lanczos steps, then
    2 products) every measurement costs 2 HVPs — the handed-on start u = unit(H_{t−1}v_{t−1}) (one power
    step past the previous measurement's vector, free since H_{t−1}v_{t−1} was computed) and one step
    v_t = unit(H_t u). Each stored value and residual are vᵀHv and ‖Hv − θv‖ of the stored vector under the
    exact Hessian at that step's recorded parameters, so an eigenvalue lies within the residual of the
    value. Oracle: ``jax.hessian`` at the recorded parameters; float64: identities to round-off (1e-12
    relative; residuals, a difference of nearby vectors, 1e-8)."""
    power = {"kind": "sharpness", "method": "power", "max_iters": 1, "iters": 3, "tol": 1e-14}
    power["vectors"] = True
    out = run(toy_spec([power], steps=30))
    _, ws = out.series["params.w"]
    hess = jax.jit(jax.hessian(quartic))
    hessians = [np.asarray(hess(jnp.asarray(w))) for w in ws]
    vecs = out.series["eigvecs"][1].reshape(len(ws), -1)
    theta, resid = out.series["sharpness"][1], out.series["sharpness.residual"][1]
    hvps = out.series["sharpness.hvps"][1]
    assert hvps[0] == 3 + 2 and np.all(hvps[1:] == 2)
    for t, h in enumerate(hessians):
        v = vecs[t]
        hv = h @ v
        assert theta[t] == pytest.approx(v @ hv, rel=1e-12)
        assert resid[t] == pytest.approx(np.linalg.norm(hv - theta[t] * v), rel=1e-8, abs=1e-14)
        assert np.min(np.abs(np.linalg.eigvalsh(h) - theta[t])) <= resid[t] + 1e-12
        if t:
            u = hessians[t - 1] @ vecs[t - 1]
            step = h @ (u / np.linalg.norm(u))
            np.testing.assert_allclose(v, step / np.linalg.norm(step), rtol=0, atol=1e-12)


def test_warm_lobpcg_spends_fewer_hvps_after_the_first_solve() -> None:
    out = run(toy_spec([{"kind": "sharpness", "method": "lobpcg", "k": 1, "iters": 4, "tol": 1e-8}]))
    hvps = out.series["sharpness.hvps"][1]
    iters = out.series["sharpness.iterations"][1]
    assert hvps[0] > 4  # the first solve is seeded by 4 Lanczos steps, then refined
    assert np.all(iters[1:] <= iters[0] + 1)
    assert np.median(hvps[1:]) < hvps[0]


def test_rotation_with_period_two_matches_stored_eigenvectors() -> None:
    out = run(
        toy_spec(
            [
                {"kind": "sharpness", "method": "dense", "k": 3, "vectors": True},
                {"kind": "rotation", "k": 2, "period": 2},
            ]
        )
    )
    v_steps, vecs = out.series["eigvecs"]
    r_steps, cos = out.series["rotation.cos"]
    np.testing.assert_array_equal(r_steps, v_steps[2:])  # the baseline exists from step 2 on
    expected = np.abs(np.einsum("tkp,tkp->tk", vecs[2:, :2], vecs[:-2, :2]))
    np.testing.assert_allclose(cos, expected, atol=1e-12)
    # k = 2 subspace similarity from principal angles: cosines = singular values of V_tᵀV_{t−2}
    sv = np.array(
        [np.linalg.svd(a[:2] @ b[:2].T, compute_uv=False) for a, b in zip(vecs[2:], vecs[:-2], strict=False)]
    )
    np.testing.assert_allclose(out.series["rotation.prod_cos"][1], np.prod(sv, axis=1), atol=1e-12)
    np.testing.assert_allclose(out.series["rotation.mean_cos2"][1], np.mean(sv**2, axis=1), atol=1e-12)


def test_rotation_against_a_fixed_step_and_window() -> None:
    out = run(
        toy_spec(
            [
                {"kind": "sharpness", "method": "dense", "k": 2, "vectors": True},
                {"kind": "rotation", "k": 1, "baseline": "step", "at": 5, "start": 3, "stop": 20},
            ]
        )
    )
    r_steps, cos = out.series["rotation.cos"]
    np.testing.assert_array_equal(r_steps, np.arange(5, 21))
    _, vecs = out.series["eigvecs"]
    np.testing.assert_allclose(cos[:, 0], np.abs(vecs[5:21, 0] @ vecs[5, 0]), atol=1e-12)
    assert cos[0, 0] == pytest.approx(1.0, abs=1e-14)


def test_sharpness_gradient_matches_finite_differences_of_sharpness() -> None:
    """α = −∇L·∇S and ∇S·u against central differences of the exact S (h = 1e-5: truncation O(h²)
    ≈ 1e-10 relative to the third derivatives here, round-off ~1e-16/h ≈ 1e-11)."""
    out = run(
        toy_spec([{"kind": "sharpness", "method": "dense"}, {"kind": "sharpness_gradient", "every": 7}])
    )
    steps, ws = out.series["params.w"]
    a_steps, alpha = out.series["alpha"]
    np.testing.assert_array_equal(a_steps, [0, 7, 14, 21, 28, 30])
    hess = jax.jit(jax.hessian(quartic))
    grad = jax.jit(jax.grad(quartic))

    def sharp(w: np.ndarray) -> float:
        return float(np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(w))))[-1])

    h = 1e-5
    for t, a in zip(a_steps, alpha, strict=True):
        w = ws[list(steps).index(t)]
        fd = np.array([(sharp(w + h * e) - sharp(w - h * e)) / (2 * h) for e in np.eye(4)])
        assert a == pytest.approx(-float(np.dot(np.asarray(grad(jnp.asarray(w))), fd)), rel=1e-7, abs=1e-9)
        norm2 = out.series["grad_s.norm2"][1][list(a_steps).index(t)]
        assert norm2 == pytest.approx(float(fd @ fd), rel=1e-7)


def test_densify_measures_every_step_while_eta_s_is_high() -> None:
    """S of the quartic falls along GD from 4.19: with η = 0.1, η·S > 0.3 holds for the first steps
    only; there the cadence is 1, elsewhere 10."""
    out = run(
        toy_spec(
            [{"kind": "sharpness", "method": "dense", "every": 10, "densify": {"above": 0.3, "every": 1}}]
        )
    )
    steps, sharp = out.series["sharpness"]
    _, ws = out.series["params.w"]
    lam, _ = eigh_along(ws)
    hot = 0.1 * lam[:, 0] > 0.3
    # a step is measured when due by cadence or when the *previous* measured S was hot
    expected, last = [], np.nan
    for t in range(31):
        if t % 10 == 0 or t == 30 or (0.1 * last > 0.3):
            expected.append(t)
            last = lam[t, 0]
    np.testing.assert_array_equal(steps, expected)
    assert hot[0] and not hot[-1]
    assert len(expected) > 4


def test_gram_sharpness_matches_an_explicit_jacobian() -> None:
    text = """
name: gram
precision: float64
problem:
  kind: supervised
  data:
    source: gaussian_spectrum
    n: 40
    d: 6
    spectrum: {gap_plus_linear: {top: 4.0, lo: 0.5, hi: 1.5}}
  model: {kind: mlp, widths: [5], activation: tanh, bias: true}
  loss: {kind: mse, convention: sum_over_n}
optimizer: {kind: gd, lr: 0.05}
train: {steps: 0}
measure:
  - {kind: loss}
  - {kind: sharpness, method: dense}
  - {kind: gram_sharpness, method: dense}
"""
    spec = load("gram.yaml", text=text).spec
    out = execute(spec)
    host = prepare(spec)
    from eosdsl.problems.supervised import network

    net = network(dict(host.network))
    flat, unravel = jax.flatten_util.ravel_pytree(host.params)
    x = jnp.asarray(host.data["x"])
    jac = jax.jacfwd(lambda z: jnp.ravel(net.apply(unravel(z), x)))(flat)  # (n·k, P)
    n = x.shape[0]
    expected = np.linalg.eigvalsh(np.asarray((2.0 / n) * jac @ jac.T))[-1]
    assert out.series["gram_sharpness"][1][0] == pytest.approx(expected, rel=1e-10)
    # for MSE the Gauss–Newton part and the Hessian differ by the residual term: both are recorded
    assert np.isfinite(out.series["sharpness"][1][0])


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        ([{"kind": "rotation"}], "rotation needs a sharpness measure"),
        ([{"kind": "sharpness", "k": 2}, {"kind": "rotation", "k": 3}], "needs sharpness k ≥ 3"),
        ([{"kind": "sharpness_gradient"}], "sharpness_gradient needs a sharpness measure"),
        ([{"kind": "gram_sharpness"}], "gram_sharpness is defined for networks trained with MSE"),
        ([{"kind": "sharpness"}, {"kind": "sharpness"}], "sharpness is already measured"),
        ([{"kind": "sharpness", "start": 5, "stop": 2}], "stop (2) is before start (5)"),
        ([{"kind": "sharpness", "k": 3, "block": 2}], "block (2) must be at least k (3)"),
        ([{"kind": "preconditioned_sharpness"}], "needs an adam or rmsprop optimizer"),
        ([{"kind": "sharpness", "method": "power", "k": 2}], "power iteration finds one eigenpair"),
    ],
)
def test_curvature_measure_errors_are_located(measure: list[dict], message: str) -> None:
    import yaml

    with pytest.raises(SpecError) as err:
        load("bad.yaml", text=yaml.safe_dump(toy_spec(measure)))
    assert message in str(err.value)


def test_preconditioned_sharpness_of_adam_matches_a_numpy_replay() -> None:
    """Adam on a quadratic ½wᵀAw: replay optax's second moment ν_t = β₂ν_{t−1} + (1 − β₂)g_t² (g_t = Aw_t,
    count t + 1) in numpy from the recorded w_t, P = √(ν_t/(1 − β₂^{t+1})) + ε, and compare
    λ_max(P^{-1/2}AP^{-1/2}) (dense, float64; 1e-10 relative) and the threshold (2 + 2β₁)/((1 − β₁)η)."""
    a = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    lr, b1, b2, eps = 0.05, 0.9, 0.99, 1e-8
    spec = {
        "name": "adam-precond",
        "problem": {
            "kind": "toy",
            "params": {"w": [1.0, -2.0, 0.5]},
            "objective": "0.5*(3*w[0]**2 + 2*w[1]**2 + w[2]**2) + w[0]*w[1] + 0.5*w[1]*w[2]",
        },
        "optimizer": {"kind": "adam", "lr": lr, "b1": b1, "b2": b2, "eps": eps},
        "train": {"steps": 12},
        "measure": [{"kind": "params"}, {"kind": "preconditioned_sharpness", "method": "dense"}],
    }
    out = run(spec)
    steps, ws = out.series["params.w"]
    nu = np.zeros(3)
    expected = []
    for t, w in enumerate(ws):
        g = a @ w
        nu = b2 * nu + (1 - b2) * g**2
        p = np.sqrt(nu / (1 - b2 ** (t + 1))) + eps
        scaled = a / np.sqrt(np.outer(p, p))
        expected.append(np.linalg.eigvalsh(scaled)[-1])
    np.testing.assert_allclose(out.series["preconditioned_sharpness"][1], expected, rtol=1e-10)
    np.testing.assert_allclose(
        out.series["preconditioned_sharpness.threshold"][1], (2 + 2 * b1) / ((1 - b1) * lr), rtol=1e-12
    )


def test_slices_along_the_gradient_and_the_top_eigenvector() -> None:
    """slice.loss and slice.sharpness equal the quartic and its exact top eigenvalue evaluated at
    w_t + s·d̂, with d̂ the unit gradient (recomputed from the recorded w_t) or the unit top eigenvector
    (sign-free: the offsets are symmetric, so compare the sorted pair of values at ±s)."""
    offsets = [-0.2, -0.1, 0.0, 0.1, 0.2]
    for direction in ("gradient", "eigenvector"):
        slice_measure = {
            "kind": "slice",
            "direction": direction,
            "offsets": offsets,
            "sharpness": True,
            "every": 5,
        }
        out = run(toy_spec([{"kind": "sharpness", "method": "dense"}, slice_measure], steps=10))
        steps, ws = out.series["params.w"]
        s_steps, losses = out.series["slice.loss"]
        np.testing.assert_array_equal(s_steps, [0, 5, 10])
        _, sharps = out.series["slice.sharpness"]
        hess = jax.jit(jax.hessian(quartic))
        for t, row_l, row_s in zip(s_steps, losses, sharps, strict=True):
            w = ws[t]
            if direction == "gradient":
                d = np.asarray(jax.grad(quartic)(jnp.asarray(w)))
            else:
                d = np.linalg.eigh(np.asarray(hess(jnp.asarray(w))))[1][:, -1]
            d = d / np.linalg.norm(d)
            exp_l = np.array([float(quartic(jnp.asarray(w + s * d))) for s in offsets])
            exp_s = np.array(
                [np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(w + s * d))))[-1] for s in offsets]
            )
            mirrored = direction == "eigenvector" and not np.allclose(row_l, exp_l, rtol=1e-12)
            if mirrored:  # u and −u: the slice may be mirrored
                exp_l, exp_s = exp_l[::-1], exp_s[::-1]
            np.testing.assert_allclose(row_l, exp_l, rtol=1e-12)
            np.testing.assert_allclose(row_s, exp_s, rtol=1e-10)


@pytest.mark.slow
def test_capped_series_records_solver_cap_hits() -> None:
    """``sharpness.capped`` is 1 at every measurement where LOBPCG stopped at ``max_iters`` short of its
    tolerance (1 iteration, tol 1e-9, cold start of 2 Lanczos steps: never converged at the first step) and
    0 when the solver has room (``max_iters`` 100) or is fixed-cost (dense); ``solver_notes`` (the line
    ``eosdsl run``/``show`` print) counts them."""
    from eosdsl.cli.solver_note import solver_notes

    class Stored:  # the two methods of a stored run that ``solver_notes`` reads
        def __init__(self, out) -> None:  # noqa: ANN001
            self.out = out

        def series_names(self) -> list[str]:
            return list(self.out.series)

        def series(self, name: str):  # noqa: ANN201
            return self.out.series[name]

    tight = {"kind": "sharpness", "method": "lobpcg", "k": 1, "iters": 2, "tol": 1e-9, "max_iters": 1}
    out = run(toy_spec([tight], steps=10))
    steps, capped = out.series["sharpness.capped"]
    assert capped.dtype.kind == "i" and capped.shape == steps.shape and capped[0] == 1
    assert set(np.unique(capped)) <= {0, 1}
    note = solver_notes(Stored(out))
    assert len(note) == 1 and f"{int(capped.sum())} of {capped.size} measurements" in note[0]
    for measure in ({**tight, "max_iters": 100}, {"kind": "sharpness", "method": "dense"}):
        out = run(toy_spec([measure], steps=10))
        assert not np.any(out.series["sharpness.capped"][1]) and solver_notes(Stored(out)) == []
