"""Oracle tests for the dense sharpness solver ``eosdsl.curvature.dense``.

Oracles: closed-form top eigenvalues of the papers' toys (paper 000 §3.1 for the ReLU scalar net;
paper 004 eqs. (5)-(6) and App. C's secular equation for the product chain), and a random symmetric
quadratic with a known spectrum whose most *negative* eigenvalue dominates in magnitude, so that "largest
algebraic" and "largest magnitude" disagree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from eosdsl.curvature.dense import TopEig, hessian_matrix, top_eigenpair
from eosdsl.problems.build import problem_fns
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

jax.config.update("jax_enable_x64", True)

F64 = Scope({}, jnp.float64)
RTOL = 1e-10  # float64 eigh of a 2×2/4×4 Hessian vs. a closed form: round-off is ~1e-15 relative


def toy_loss(spec: dict):
    """The training loss of a closed-form problem as a function of its params dict."""
    prob = m.Spec.model_validate(
        {"name": "t", "problem": spec, "optimizer": {"kind": "gd", "lr": 0.1}, "train": {"steps": 1}}
    ).problem
    fns = problem_fns(prob, F64)
    return lambda params: fns.loss(params, {})


def top_eigs(loss, points: dict) -> TopEig:
    """``top_eigenpair`` at a batch of points (leading axis), jitted and vmapped as the engine would."""
    batch = {k: jnp.asarray(v, jnp.float64) for k, v in points.items()}
    out = jax.jit(jax.vmap(lambda p: top_eigenpair(loss, p)))(batch)
    return TopEig(*(np.asarray(x) for x in out))


def assert_eigenpair(h: np.ndarray, value: float, vector: np.ndarray, residual: float) -> None:
    """Unit vector, Hv = θv against an independently built H, and the reported residual ~0 (round-off)."""
    scale = float(np.max(np.abs(np.linalg.eigvalsh(h))))
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(h @ vector, value * vector, atol=1e-11 * scale)
    assert 0.0 <= residual <= 1e-11 * scale


# ---------------------------------------------------------------------------------------- ReLU scalar


def test_relu_scalar_top_eigenvalue_closed_form():
    """Paper 000 §3.1's L: λ_max = ½[(u² + v²) + √((u² − v²)² + 16u²v²)] for u > 0; 0 on the dead side.

    Points include v = 0 (λ = u², the paper's sharpness at a minimum), |v| > u and the Fig. 3 init
    (u, v) = (10, 1e-6). Tolerance 1e-10 relative: eigh of a 2×2 matrix in float64.
    """
    u = np.array([10.0, 10.0, 1.0, 0.3, 2.5, 4.0, -1.0])
    v = np.array([1e-6, 0.0, 1.0, 2.0, -0.7, 3.0, 2.0])
    eig = top_eigs(toy_loss({"kind": "relu_scalar"}), {"u": u, "v": v})
    expected = 0.5 * ((u**2 + v**2) + np.sqrt((u**2 - v**2) ** 2 + 16 * u**2 * v**2))
    expected[u < 0] = 0.0
    np.testing.assert_allclose(eig.value, expected, rtol=RTOL)
    assert eig.value[1] == 100.0  # (u, 0): S = u² exactly, eigenvector e_v
    np.testing.assert_allclose(np.abs(eig.vector[1]), [0.0, 1.0], atol=1e-15)
    for i in range(len(u)):
        h = np.array([[v[i] ** 2, 2 * u[i] * v[i]], [2 * u[i] * v[i], u[i] ** 2]]) * (u[i] > 0)
        assert_eigenpair(h, eig.value[i], eig.vector[i], eig.residual[i])


# ----------------------------------------------------------------------------------- product chain, n=2


def test_product_chain_fig1_init_constants():
    """Paper 004 Fig. 1 init θ0 = (−0.1, 10), z = Θ²: λ1 = 200.080 and |u11/u12| = R2 = 50.015.

    Hand arithmetic from eqs. (4)–(6) (printed to 3 decimals, so ±1e-3), and exactly eq. (5) and eq. (6)
    R2 = β + √(β² + 1), β = |z''(θ2² − θ1²)/(2(z' + z''Θ))| = 24.9975 to 1e-10 relative.
    """
    eig = top_eigs(toy_loss({"kind": "product_chain", "theta0": [-0.1, 10.0]}), {"theta": [[-0.1, 10.0]]})
    value, vector = float(eig.value[0]), eig.vector[0]
    assert value == pytest.approx(200.080, abs=1e-3)
    t1, t2, z1, z2, big = -0.1, 10.0, -2.0, 2.0, -1.0
    eq5 = 0.5 * (z2 * (t1**2 + t2**2) + np.sqrt(z2**2 * (t1**2 - t2**2) ** 2 + 4 * (z1 + z2 * big) ** 2))
    assert value == pytest.approx(eq5, rel=RTOL)
    beta = abs(z2 * (t2**2 - t1**2) / (2 * (z1 + z2 * big)))
    assert beta == pytest.approx(24.9975, rel=1e-12)
    r2 = beta + np.sqrt(beta**2 + 1)
    assert r2 == pytest.approx(50.015, abs=1e-3)
    assert abs(vector[0] / vector[1]) == pytest.approx(r2, rel=RTOL)
    assert_eigenpair(np.array([[200.0, -4.0], [-4.0, 0.02]]), value, vector, float(eig.residual[0]))


def test_product_chain_n2_eq5_eq6_at_random_points():
    """Eq. (5) eigenvalue and eq. (6) ratio |u11/u12| = R2(β) whenever θ2² > θ1² (z = Θ², sign-invariant).

    Signs are random (R2 is invariant to them, §3.1). Tolerance 1e-10 relative.
    """
    rng = np.random.default_rng(11)
    t1 = rng.uniform(0.05, 1.0, 8) * rng.choice([-1, 1], 8)
    t2 = rng.uniform(1.2, 5.0, 8) * rng.choice([-1, 1], 8)
    eig = top_eigs(toy_loss({"kind": "product_chain", "theta0": [1.0, 1.0]}), {"theta": np.c_[t1, t2]})
    big = t1 * t2
    z1, z2 = 2 * big, 2.0
    eq5 = 0.5 * (z2 * (t1**2 + t2**2) + np.sqrt(z2**2 * (t1**2 - t2**2) ** 2 + 4 * (z1 + z2 * big) ** 2))
    np.testing.assert_allclose(eig.value, eq5, rtol=RTOL)
    beta = np.abs(z2 * (t2**2 - t1**2) / (2 * (z1 + z2 * big)))
    np.testing.assert_allclose(
        np.abs(eig.vector[:, 0] / eig.vector[:, 1]), beta + np.sqrt(beta**2 + 1), rtol=RTOL
    )


# ----------------------------------------------------------------------------------- product chain, n=4


@pytest.mark.parametrize("z", [[0.0, 0.0, 1.0], [0.0, 0.0, 0.5, 0.0, 1.0]], ids=["square", "quartic"])
def test_product_chain_n4_top_eigenvalue_is_largest_secular_root(z):
    """Paper 004 App. C: λ1 is the largest root of D Σⱼ 1/(λθⱼ² + z'Θ) = 1, D = z''Θ² + z'Θ.

    Solved with ``brentq`` just above the largest pole max_j(−z'Θ/θⱼ²) (where the left side → +∞) and
    ‖H‖_F + 1 (≥ λ1, where it is < 1); the bracket is asserted. The eigenvector is also checked against
    the closed form uₖ ∝ θₖ/(λθₖ² + z'Θ). z = Θ² and Θ⁴ + ½Θ² satisfy the section's hypotheses (convex,
    even, minimum at 0). Tolerance 1e-10 relative: brentq to ~1e-15 and eigh round-off.
    """
    rng = np.random.default_rng(12)
    theta = rng.uniform(0.3, 2.0, (6, 4)) * rng.choice([-1, 1], (6, 4))
    eig = top_eigs(toy_loss({"kind": "product_chain", "theta0": [1.0] * 4, "z": z}), {"theta": theta})
    p = np.polynomial.Polynomial(z)
    for t, value, vector, residual in zip(theta, eig.value, eig.vector, eig.residual, strict=True):
        big = float(np.prod(t))
        z1, z2 = float(p.deriv(1)(big)), float(p.deriv(2)(big))
        zt = z1 * big
        d = z2 * big**2 + zt
        w = 1.0 / t
        h = d * np.outer(w, w) - zt * np.diag(w**2)

        def secular(lam: float, t=t, zt=zt, d=d) -> float:
            return d * float(np.sum(1.0 / (lam * t**2 + zt))) - 1.0

        pole = float(np.max(-zt / t**2))
        lo, hi = pole + 1e-9 * max(abs(pole), 1.0), float(np.linalg.norm(h)) + 1.0
        assert secular(lo) > 0 > secular(hi)
        root = brentq(secular, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
        assert value == pytest.approx(root, rel=RTOL)
        u = t / (root * t**2 + zt)
        u /= np.linalg.norm(u)
        assert abs(float(u @ vector)) == pytest.approx(1.0, abs=1e-10)
        assert_eigenpair(h, value, vector, residual)


# ------------------------------------------------------------------------------------ algebraic vs |λ|


def test_largest_algebraic_not_largest_magnitude_on_indefinite_quadratic():
    """½wᵀAw with spectrum {−7, −2, 0.5, 1.5, 3}: the sharpness is 3 (largest algebraic), not −7.

    Oracle: A = Q diag(λ) Qᵀ built from a random orthogonal Q, so the Hessian is A and the top
    eigenvector is ±Q[:, −1]. Also checks ``hessian_matrix`` on a two-leaf pytree flattens in
    ``ravel_pytree`` (sorted-key) order. Tolerance 1e-12: the Hessian of a quadratic is exact up to
    the symmetrization's round-off.
    """
    rng = np.random.default_rng(13)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    spectrum = np.array([-7.0, -2.0, 0.5, 1.5, 3.0])
    a = q @ np.diag(spectrum) @ q.T
    a = 0.5 * (a + a.T)
    a_j = jnp.asarray(a)

    def loss(params):
        w = jnp.concatenate([params["a"], params["b"]])  # "a" then "b": ravel_pytree's key order
        return 0.5 * w @ a_j @ w

    params = {"b": jnp.asarray(rng.normal(size=3)), "a": jnp.asarray(rng.normal(size=2))}
    h, eig = jax.jit(lambda p: (hessian_matrix(loss, p), top_eigenpair(loss, p)))(params)
    np.testing.assert_allclose(np.asarray(h), a, rtol=0, atol=1e-12)
    assert float(eig.value) == pytest.approx(3.0, rel=1e-12)
    assert abs(float(np.asarray(eig.vector) @ q[:, -1])) == pytest.approx(1.0, abs=1e-12)
    assert_eigenpair(a, float(eig.value), np.asarray(eig.vector), float(eig.residual))


def test_hessian_matrix_is_symmetrized():
    """``hessian_matrix`` returns (H + Hᵀ)/2: exactly symmetric even where autodiff's H is not bit-symmetric.

    Oracle: symmetry to the bit on a non-polynomial loss whose forward-over-reverse Hessian carries
    different round-off in its two triangles; values agree with central differences of the analytic
    gradient to 1e-7 (finite-difference truncation at step 1e-5).
    """

    def loss(p):
        x = p["x"]
        return jnp.sin(x[0] * x[1]) * jnp.exp(x[2]) + jnp.log1p(x[0] ** 2 * x[2] ** 2)

    x0 = np.array([0.7, -1.3, 0.4])
    h = np.asarray(jax.jit(lambda p: hessian_matrix(loss, p))({"x": jnp.asarray(x0)}))
    np.testing.assert_array_equal(h, h.T)
    grad = jax.jit(jax.vmap(jax.grad(lambda x: loss({"x": x}))))
    step = 1e-5
    g = np.asarray(grad(np.r_[x0 + step * np.eye(3), x0 - step * np.eye(3)]))
    fd = (g[:3] - g[3:]) / (2 * step)
    np.testing.assert_allclose(h, fd, rtol=0, atol=1e-7)
