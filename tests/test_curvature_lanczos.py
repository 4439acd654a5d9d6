"""Oracle tests for ``eosdsl.curvature.lanczos`` and ``eosdsl.curvature.hvp`` against dense ``eigh``.

Test matrices are A = U diag(λ) Uᵀ with a prescribed spectrum λ and U a product of three random Householder
reflections (dense A in O(P²) instead of an O(P³) random orthogonal matrix; Lanczos from a random Gaussian
start vector is orthogonally invariant, so the eigenbasis does not matter beyond making every product
dense). The oracle is ``numpy.linalg.eigvalsh`` of the float64 matrix, itself checked against λ; for the
float32 runs the rounding A → A₃₂ moves eigenvalues by at most ‖A₃₂ − A‖_F (Weyl), which is added to the
round-off allowance of the residual check (≤ 1.5e-5 here, far below the 1e-4 relative tolerance).

Spectra (chosen so the stated iteration counts reach float64 round-off, ~1e-15 relative observed; the
asserted tolerance is the brief's 1e-8 in float64 and 1e-4 in float32):

* P = 50, indefinite: top 8 = 8, 7, …, 1.5 and 42 eigenvalues in [−30, −1] (the most negative dominates
  in magnitude). iters = 50 = P, the whole space: T is similar to A, exact up to round-off.
* P = 300, clustered top: 10, 9.999, …, 9.993 (relative gaps 1e-4) above a bulk uniform in [−15, 5].
  iters = 100 (80 still leaves ~2e-6 relative error).
* P = 2000, decaying: 20·0.9ⁱ for i < 12, a bulk uniform in [−20, 5] and negative outliers −90, −120,
  −150. iters = 80 (60 reaches ~1e-15 in the values but only ~1e-8 in the residuals).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.eig import EigResult, residual_interval
from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.lanczos import lanczos_top

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)

K = 8


def dense_with_spectrum(spectrum: np.ndarray, seed: int) -> np.ndarray:
    """U diag(λ) Uᵀ, U = H₃H₂H₁ with Householder reflections H = I − 2uuᵀ, exactly symmetrized. (P, P)."""
    rng = np.random.default_rng(seed)
    a = np.diag(np.asarray(spectrum, np.float64))
    for _ in range(3):
        u = rng.normal(size=a.shape[0])
        u /= np.linalg.norm(u)
        au = a @ u
        a = a - 2.0 * (np.outer(u, au) + np.outer(au, u)) + 4.0 * float(u @ au) * np.outer(u, u)
    return 0.5 * (a + a.T)


def spectrum_of(case: str) -> np.ndarray:
    rng = np.random.default_rng({"indefinite50": 1, "clustered300": 2, "decaying2000": 3}[case])
    if case == "indefinite50":
        return np.r_[np.linspace(-30.0, -1.0, 42), [1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]
    if case == "clustered300":
        return np.r_[10.0 - 1e-3 * np.arange(8), rng.uniform(-15.0, 5.0, 292)]
    return np.r_[20.0 * 0.9 ** np.arange(12), rng.uniform(-20.0, 5.0, 1985), [-90.0, -120.0, -150.0]]


ITERS = {"indefinite50": 50, "clustered300": 100, "decaying2000": 80}


@functools.cache
def matrix_and_oracle(case: str) -> tuple[np.ndarray, np.ndarray]:
    """The float64 test matrix and its ascending eigenvalues by ``numpy.linalg.eigvalsh``, checked vs λ."""
    spectrum = spectrum_of(case)
    a = dense_with_spectrum(spectrum, seed=len(spectrum))
    oracle = np.linalg.eigvalsh(a)
    np.testing.assert_allclose(oracle, np.sort(spectrum), rtol=0, atol=1e-12 * np.abs(spectrum).max())
    return a, oracle


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def solve(a: jax.Array, key: jax.Array, dim: int, k: int, iters: int) -> EigResult:
    """``lanczos_top`` on v ↦ a v, jitted with the matrix closed over by the matvec."""
    return lanczos_top(lambda v: a @ v, dim, k, iters, key, a.dtype)


def assert_certified(values: np.ndarray, residuals: np.ndarray, oracle: np.ndarray, roundoff: float) -> None:
    """Every Ritz value is within its residual (+ round-off) of *some* eigenvalue: ``residual_interval``."""
    lo, hi = residual_interval(values, residuals)
    for low, high in zip(lo, hi, strict=True):
        assert np.any((oracle >= low - roundoff) & (oracle <= high + roundoff))


# ----------------------------------------------------------------------------------- random symmetric


@pytest.mark.parametrize(
    "case, dtype, rtol",
    [
        ("indefinite50", "float64", 1e-8),
        ("clustered300", "float64", 1e-8),
        ("decaying2000", "float64", 1e-8),
        ("clustered300", "float32", 1e-4),
        ("decaying2000", "float32", 1e-4),
    ],
)
def test_top8_matches_dense_eigvalsh(case, dtype, rtol):
    """Top-8 algebraic eigenvalues (not the dominant negative ones) to ``rtol``, certified residuals.

    Checks: values descending and equal to eigvalsh's top 8 to 1e-8 (float64) / 1e-4 (float32) relative;
    |θ_i − λ_closest| ≤ r_i + 20·ε·‖A‖ (round-off of the residual's own HVP and of eigvalsh); unit,
    mutually orthogonal Ritz vectors (QQᵀ = I is what full re-orthogonalization buys); the stored
    residual equals an independent numpy ‖Av − θv‖; ``hvps == iters + k``.
    """
    a64, oracle = matrix_and_oracle(case)
    a = a64.astype(dtype)
    # Weyl: rounding A to ``dtype`` moves every eigenvalue by at most ‖A_dtype − A‖₂ ≤ ‖·‖_F (0 in float64).
    shift = float(np.linalg.norm(a.astype(np.float64) - a64))
    p, iters = a.shape[0], ITERS[case]
    res = jax.tree.map(np.asarray, solve(jnp.asarray(a), jax.random.key(7), p, K, iters))
    eps, norm = float(np.finfo(dtype).eps), float(np.abs(oracle).max())
    top = oracle[::-1][:K]
    assert res.values.dtype == np.dtype(dtype) and res.vectors.shape == (K, p)
    assert np.all(np.diff(res.values) <= 0)
    np.testing.assert_allclose(res.values, top, rtol=rtol)
    assert_certified(res.values, res.residuals, oracle, roundoff=20 * eps * norm + shift)
    np.testing.assert_allclose(np.linalg.norm(res.vectors, axis=1), 1.0, atol=10 * eps)
    np.testing.assert_allclose(res.vectors @ res.vectors.T, np.eye(K), atol=100 * eps)
    v64 = res.vectors.astype(np.float64)
    direct = np.linalg.norm(v64 @ a.astype(np.float64) - res.values[:, None].astype(np.float64) * v64, axis=1)
    np.testing.assert_allclose(res.residuals, direct, rtol=0, atol=10 * np.sqrt(p) * eps * norm)
    assert int(res.iterations) == iters and int(res.hvps) == iters + K


def test_residual_interval_is_value_plus_minus_residual():
    """(θ − r, θ + r), elementwise."""
    lo, hi = residual_interval(jnp.array([3.0, -1.0]), jnp.array([0.5, 0.0]))
    np.testing.assert_array_equal(np.asarray(lo), [2.5, -1.0])
    np.testing.assert_array_equal(np.asarray(hi), [3.5, -1.0])


# ------------------------------------------------------------------------------------- MLP Hessian


def mlp_problem():
    """A 2-layer tanh network 8 → 48 → 4 with squared loss on 64 random points: P = 628 parameters."""
    rng = np.random.default_rng(5)
    x, y = jnp.asarray(rng.normal(size=(64, 8))), jnp.asarray(rng.normal(size=(64, 4)))
    params = {
        "w1": jnp.asarray(rng.normal(size=(8, 48)) / np.sqrt(8)),
        "b1": jnp.asarray(0.1 * rng.normal(size=48)),
        "w2": jnp.asarray(rng.normal(size=(48, 4)) / np.sqrt(48)),
        "b2": jnp.zeros(4),
    }

    def loss(p):
        z = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return 0.5 * jnp.mean(jnp.sum((z - y) ** 2, axis=-1))

    return loss, params


def test_hvp_and_lanczos_on_mlp_hessian():
    """``hvp_fn`` = jax.hessian · v (to 1e-12 relative) and Lanczos's sharpness = dense eigh's (to 1e-8).

    The Hessian of a tanh MLP is indefinite (top ≈ 5.35, bottom ≈ −0.89 at this point); 60 steps of
    Lanczos reach round-off (~1e-15 relative) in all top-8 values, 40 already in the top 4. The top Ritz
    vector is parallel to dense ``eigh``'s top eigenvector (the gap to λ₂ ≈ 5.03 makes it well defined).
    """
    loss, params = mlp_problem()
    flat, unravel = ravel_pytree(params)
    p = flat.shape[0]
    vs = np.random.default_rng(6).normal(size=(3, p))

    @jax.jit
    def measure(params, vs, key):
        hvp = hvp_fn(loss, params)
        hess = jax.hessian(lambda w: loss(unravel(w)))(ravel_pytree(params)[0])  # (P, P)
        return hess, jax.vmap(hvp)(vs), lanczos_top(hvp, p, K, 60, key, jnp.float64)

    hess, hvs, res = jax.tree.map(np.asarray, measure(params, jnp.asarray(vs), jax.random.key(0)))
    assert hvs.dtype == np.float64 and hvs.shape == (3, p)
    np.testing.assert_allclose(hvs, vs @ hess.T, rtol=0, atol=1e-12 * np.abs(hess).sum(1).max())
    oracle, eigvecs = np.linalg.eigh(0.5 * (hess + hess.T))
    assert oracle[0] < 0 < oracle[-1]
    np.testing.assert_allclose(res.values, oracle[::-1][:K], rtol=1e-8)
    assert abs(float(res.vectors[0] @ eigvecs[:, -1])) == pytest.approx(1.0, abs=1e-8)
    assert_certified(res.values, res.residuals, oracle, roundoff=1e-13)
    assert np.all(res.residuals < 1e-9)
    assert int(res.iterations) == 60 and int(res.hvps) == 68


# ------------------------------------------------------------------------------------------ breakdown


def test_breakdown_rank2_and_zero_matrix_no_nan():
    """Invariant subspaces: exact eigenvalues, no NaN; restart fills the rest with valid Ritz pairs.

    * rank 2 (eigenvalues 5, −7, rest 0; P = 60, iters = 20): the Krylov space of q₀ has dimension 3, so
      β₂ ≈ 0; the top-4 values are 5, 0, 0, 0 to 1e-12, all residuals at round-off. The most negative
      eigenvalue −7 dominates in magnitude and is correctly *not* returned first.
    * A = 0: β = 0 at every step (exact breakdown, the restart branch every time): values 0, unit vectors.
    * Both under ``jax.vmap`` (``lax.cond`` becomes a select, so the unselected 0/0 must stay harmless).
    """
    rng = np.random.default_rng(8)
    u = np.linalg.qr(rng.normal(size=(60, 2)))[0]  # (60, 2) orthonormal
    rank2 = 5.0 * np.outer(u[:, 0], u[:, 0]) - 7.0 * np.outer(u[:, 1], u[:, 1])
    mats = jnp.asarray(np.stack([rank2, np.zeros((60, 60))]))
    keys = jax.random.split(jax.random.key(1), 2)
    res = jax.tree.map(np.asarray, jax.jit(jax.vmap(lambda a, kk: solve(a, kk, 60, 4, 20)))(mats, keys))
    assert all(np.all(np.isfinite(x)) for x in res)
    np.testing.assert_allclose(res.values[0], [5.0, 0.0, 0.0, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.values[1], np.zeros(4))
    assert np.all(res.residuals[0] < 1e-12) and np.all(res.residuals[1] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(res.vectors, axis=-1), 1.0, atol=1e-14)
    assert abs(float(res.vectors[0, 0] @ u[:, 0])) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.vectors[0] @ res.vectors[0].T, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(res.iterations, [20, 20])
    np.testing.assert_array_equal(res.hvps, [24, 24])


def test_invalid_static_arguments():
    with pytest.raises(ValueError, match="exceeds"):
        lanczos_top(lambda v: v, 5, 6, 10, jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match="≥ 1"):
        lanczos_top(lambda v: v, 5, 0, 10, jax.random.key(0), jnp.float64)


# ---------------------------------------------------------------------------------------- jit / scan


def test_compiles_once_for_same_static_shapes_and_small_dim():
    """Three different matrices, same statics: one trace. dim = 6 < iters = 20 also caps the steps.

    At most 6 orthonormal vectors exist, so 6 steps run (iterations = 6, hvps = 6 + k) and, the Krylov
    space being all of ℝ⁶, the values are the exact spectrum (to 1e-13) of each dense 6×6 matrix.
    """
    traces = []

    @functools.partial(jax.jit, static_argnums=(2, 3, 4))
    def counted(a, key, dim, k, iters):
        traces.append((dim, k, iters))
        return lanczos_top(lambda v: a @ v, dim, k, iters, key, a.dtype)

    spectra = [
        [-9.0, -2.0, 0.5, 1.0, 3.0, 4.0],
        [-1.0, 0.0, 0.0, 2.0, 2.5, 7.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    ]
    for i, spectrum in enumerate(spectra):
        a = dense_with_spectrum(np.array(spectrum), seed=20 + i)
        res = jax.tree.map(np.asarray, counted(jnp.asarray(a), jax.random.key(i), 6, 3, 20))
        np.testing.assert_allclose(res.values, sorted(spectrum)[::-1][:3], rtol=1e-13)
        assert int(res.iterations) == 6 and int(res.hvps) == 9
    assert traces == [(6, 3, 20)]


def test_runs_inside_scan_and_cond():
    """Per-step measurement in ``lax.scan``: a different matrix is the scan input each step.

    Only steps whose flag is set measure (``lax.cond``, as the engine does for a measurement cadence),
    giving each such matrix's top-3 to 1e-10; the others carry NaN placeholders.
    """
    rng = np.random.default_rng(10)
    spectra = [np.r_[rng.uniform(-6.0, 1.0, 37), [1.5, 2.0, 2.5]] + s for s in (0.0, 1.0, 2.0, 3.0)]
    mats = np.stack([dense_with_spectrum(s, seed=i) for i, s in enumerate(spectra)])  # (4, 40, 40)

    @jax.jit
    def trajectory(mats, flags, key):
        def body(key, inputs):
            a, flag = inputs
            key, sub = jax.random.split(key)
            vals = lax.cond(
                flag,
                lambda: lanczos_top(lambda v: a @ v, 40, 3, 40, sub, a.dtype).values,
                lambda: jnp.full((3,), jnp.nan, a.dtype),
            )
            return key, vals

        return lax.scan(body, key, (mats, flags))[1]  # (steps, 3)

    flags = np.array([True, False, True, True])
    out = np.asarray(trajectory(jnp.asarray(mats), jnp.asarray(flags), jax.random.key(3)))
    for i, a in enumerate(mats):
        if flags[i]:
            np.testing.assert_allclose(out[i], np.linalg.eigvalsh(a)[::-1][:3], rtol=1e-10)
        else:
            assert np.all(np.isnan(out[i]))
