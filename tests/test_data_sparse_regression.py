"""Tests for the sparse-regression data of paper 000 (App. B) and array fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from eosdsl.data import (
    SparseRegression,
    array_fingerprint,
    make_sparse_regression,
    min_l1_interpolator,
    min_l2_interpolator,
    population_risk,
)


@pytest.fixture(scope="module")
def data() -> SparseRegression:
    return make_sparse_regression()


@pytest.fixture(scope="module")
def interpolators(data):
    return min_l2_interpolator(data.X, data.y), min_l1_interpolator(data.X, data.y)


def _rel_residual(X, y, w):
    return np.linalg.norm(X @ w - y) / np.linalg.norm(y)


# ------------------------------------------------------------------------------------------ generation


def test_seeded_reproducible():
    a, b, c = make_sparse_regression(seed=3), make_sparse_regression(seed=3), make_sparse_regression(seed=4)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y) and a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint and not np.array_equal(a.X, c.X)
    assert make_sparse_regression(sigma2=4.0).fingerprint != make_sparse_regression().fingerprint


def test_documented_draw_order(data):
    Z = np.random.Generator(np.random.PCG64(0)).standard_normal((50, 100))
    assert np.array_equal(data.X, 5.0 + np.sqrt(5.0) * Z)


def test_shapes_and_defaults(data):
    assert data.X.shape == (50, 100) and data.y.shape == (50,) and data.w_star.shape == (100,)
    assert data.X.dtype == data.y.dtype == data.w_star.dtype == data.mu.dtype == np.float64
    assert np.array_equal(data.mu, np.full(100, 5.0)) and data.sigma2 == 5.0
    assert data.n == 50 and data.d == 100
    assert np.linalg.norm(data.w_star) == pytest.approx(1.0, abs=1e-15)
    assert np.count_nonzero(data.w_star) == 5 and np.all(data.w_star[:5] == 1 / np.sqrt(5))
    assert np.array_equal(data.y, data.X @ data.w_star)
    # sample moments are roughly right (5000 entries)
    assert abs(data.X.mean() - 5.0) < 0.15 and abs(data.X.var() - 5.0) < 0.4
    assert data.fingerprint == array_fingerprint(
        X=data.X, y=data.y, w_star=data.w_star, mu=data.mu, sigma2=np.float64(5.0)
    )


# -------------------------------------------------------------------------------------- population risk


def test_population_risk_zero_at_wstar_and_monte_carlo(data, interpolators):
    assert population_risk(data.w_star, data, 1.0) == 0.0
    rng = np.random.Generator(np.random.PCG64(12345))
    ws = [interpolators[0], data.w_star + 0.1 * rng.standard_normal(100), np.zeros(100)]
    n_mc, chunk = 200_000, 20_000
    sums = np.zeros(len(ws))
    E = np.stack([w - data.w_star for w in ws], axis=1)  # (d, 3)
    for _ in range(n_mc // chunk):
        x = data.mu + np.sqrt(data.sigma2) * rng.standard_normal((chunk, 100))
        sums += ((x @ E) ** 2).sum(axis=0)
    mc = sums / n_mc
    for w, m in zip(ws, mc, strict=True):
        assert population_risk(w, data, 0.5) == pytest.approx(0.5 * m, rel=0.01)


def test_population_risk_batched_and_jax(data):
    rng = np.random.Generator(np.random.PCG64(7))
    W = rng.standard_normal((3, 4, 100))
    batched = population_risk(W, data, 2.0)
    assert batched.shape == (3, 4)
    assert batched[1, 2] == pytest.approx(population_risk(W[1, 2], data, 2.0), rel=1e-13)
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    got = jax.jit(lambda w: population_risk(w, data, 2.0))(jnp.asarray(W, dtype=jnp.float32))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(np.asarray(got), batched, rtol=1e-4)
    grad = jax.grad(lambda w: population_risk(w, data, 1.0))(jnp.asarray(data.w_star, dtype=jnp.float32))
    assert np.abs(np.asarray(grad)).max() < 1e-4


# ----------------------------------------------------------------------------------------- interpolators


def test_interpolators(data, interpolators):
    X, y = data.X, data.y
    w2, w1 = interpolators
    assert _rel_residual(X, y, w2) <= 1e-8 and _rel_residual(X, y, w1) <= 1e-8
    closed = X.T @ np.linalg.solve(X @ X.T, y)
    np.testing.assert_allclose(w2, closed, rtol=0, atol=1e-10 * np.abs(closed).max())
    l2 = {name: np.linalg.norm(w) for name, w in (("l2", w2), ("l1", w1), ("star", data.w_star))}
    assert l2["l2"] <= min(l2.values()) + 1e-12
    l1 = {name: np.abs(w).sum() for name, w in (("l2", w2), ("l1", w1), ("star", data.w_star))}
    assert l1["l1"] <= l1["l2"] + 1e-9 and l1["l1"] <= l1["star"] + 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_recovers_wstar(seed):
    # Basis pursuit recovers a k-sparse vector from N generic measurements when k is well below the
    # Donoho-Tanner phase transition; here N/d = 0.5 and k/N = 0.1 (the transition at N/d = 0.5 is near
    # k/N = 0.38). Observed exact (to ~1e-14) for seeds 0..19 including the rank-one mean shift.
    data = make_sparse_regression(seed=seed)
    w1 = min_l1_interpolator(data.X, data.y)
    np.testing.assert_allclose(w1, data.w_star, rtol=0, atol=1e-10)


def test_l1_infeasible_raises():
    X = np.array([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(RuntimeError, match="linprog"):
        min_l1_interpolator(X, np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        min_l2_interpolator(np.ones((2, 3)), np.ones(3))


# ----------------------------------------------------------------------------------------- fingerprints


def test_fingerprint_sensitivity():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    f = array_fingerprint(a)
    assert len(f) == 64 and f == array_fingerprint(a.copy())
    assert f != array_fingerprint(a.astype(np.float32))  # dtype
    assert f != array_fingerprint(a.astype(">f8"))  # byte order
    assert f != array_fingerprint(a.reshape(3, 2))  # shape
    assert f != array_fingerprint(a.ravel())
    b = a.copy()
    b[1, 2] = np.nextafter(b[1, 2], np.inf)  # one element, one ulp
    assert f != array_fingerprint(b)
    assert f == array_fingerprint(np.asfortranarray(a))  # layout does not matter
    assert array_fingerprint(a.T) == array_fingerprint(np.ascontiguousarray(a.T))


def test_fingerprint_names_and_order():
    a, b = np.zeros(2), np.ones(2)
    assert array_fingerprint(a, b) != array_fingerprint(b, a)
    assert array_fingerprint(x=a, y=b) == array_fingerprint(y=b, x=a)  # named: sorted by name
    assert array_fingerprint(x=a, y=b) != array_fingerprint(x=b, y=a)
    assert array_fingerprint(x=a) != array_fingerprint(z=a) != array_fingerprint(a)
    # framing: concatenating arrays differently must not collide
    assert array_fingerprint(np.zeros(4)) != array_fingerprint(np.zeros(2), np.zeros(2))
    with pytest.raises(TypeError):
        array_fingerprint(np.array([object()]))
