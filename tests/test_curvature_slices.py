"""Oracle tests for ``eosdsl.curvature.slices``: closed-form quadratic / quartic slices and direct evaluation.

Tolerances: 1e-12 relative — each value is one loss evaluation at a point that differs from the oracle's
only by the rounding of θ + s d̂ (a few ulps per coordinate).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.dense import top_eigenpair
from eosdsl.curvature.slices import loss_slice, sharpness_slice

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)

OFFSETS = np.linspace(-1.5, 2.0, 8)


def test_quadratic_closed_form() -> None:
    """L(θ) = ½θᵀAθ + bᵀθ: L(θ + s d̂) = L(θ) + s (Aθ + b)ᵀd̂ + ½ s² d̂ᵀAd̂."""
    rng = np.random.default_rng(0)
    p = 12
    a = rng.normal(size=(p, p))
    a = a + a.T
    b = rng.normal(size=p)
    theta = rng.normal(size=p)
    d = 3.7 * rng.normal(size=p)  # not unit: normalized inside
    u = d / np.linalg.norm(d)

    def loss(t):
        return 0.5 * t @ jnp.asarray(a) @ t + jnp.asarray(b) @ t

    got = np.asarray(loss_slice(loss, jnp.asarray(theta), jnp.asarray(d), jnp.asarray(OFFSETS)))
    l0 = 0.5 * theta @ a @ theta + b @ theta
    want = l0 + OFFSETS * ((a @ theta + b) @ u) + 0.5 * OFFSETS**2 * (u @ a @ u)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_pytree_params_direct_evaluation_jit_and_vmap() -> None:
    """A small MLP loss over dict params: matches evaluating L at unravel(θ + s d̂), under jit and vmap."""
    key = jax.random.key(0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w1": jax.random.normal(k1, (3, 4)), "w2": jax.random.normal(k2, (4, 1))}
    x = jax.random.normal(k3, (10, 3))
    y = jax.random.normal(k4, (10, 1))

    def loss(prm):
        return jnp.mean((jnp.tanh(x @ prm["w1"]) @ prm["w2"] - y) ** 2)

    flat, unravel = ravel_pytree(params)
    dirs = jax.random.normal(jax.random.key(5), (3, flat.shape[0]))
    got = jax.jit(jax.vmap(lambda d: loss_slice(loss, params, d, jnp.asarray(OFFSETS))))(dirs)
    assert got.shape == (3, len(OFFSETS))
    for i in range(3):
        u = dirs[i] / jnp.linalg.norm(dirs[i])
        want = np.array([float(loss(unravel(flat + s * u))) for s in OFFSETS])
        np.testing.assert_allclose(np.asarray(got[i]), want, rtol=1e-12)
    # scaling the direction changes nothing
    np.testing.assert_allclose(
        np.asarray(loss_slice(loss, params, 10.0 * dirs[0], OFFSETS)), np.asarray(got[0]), rtol=1e-13
    )


def test_sharpness_slice_closed_form() -> None:
    """L(θ) = Σ a_i θ_i⁴/12 has H = diag(a_i θ_i²), so along d̂ = −e₀:
    S(θ − s e₀) = max(a₀(θ₀ − s)², max_{i>0} a_iθ_i²)."""
    a = jnp.array([2.0, 1.0, 0.5])
    theta = jnp.array([0.3, 1.1, -0.9])

    def loss(t):
        return jnp.sum(a * t**4) / 12.0

    def sharpness(t):
        return top_eigenpair(loss, t).value

    d = jnp.array([-2.0, 0.0, 0.0])  # −e₀ after normalization
    got = np.asarray(jax.jit(lambda t: sharpness_slice(sharpness, t, d, jnp.asarray(OFFSETS)))(theta))
    rest = max(float(a[1] * theta[1] ** 2), float(a[2] * theta[2] ** 2))
    want = np.maximum(float(a[0]) * (float(theta[0]) - OFFSETS) ** 2, rest)
    np.testing.assert_allclose(got, want, rtol=1e-12)
