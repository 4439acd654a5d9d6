"""Oracle tests for ``eosdsl.curvature.third_order``: ∇S = ∇³L(u, u) (paper 003, Lemma 2).

Oracles: (1) a central finite difference of the dense-``eigh`` sharpness on a tiny tanh MLP; (2) the
closed form of the App. B toy L = (1/η + (√β/2) y) x² − (α/√β) y − z (paper 003 App. B), where on the
line x = 0: u = e₁, S = 2/η + √β y, ∇S = (0, √β, 0), ∇L = (0, −α/√β, −1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.dense import top_eigenpair
from eosdsl.curvature.third_order import perp, progressive_sharpening, sharpness_gradient

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)


def tiny_mlp():
    """A 3-8-1 tanh MLP with MSE on 20 random points (P = 41), float64."""
    k = jax.random.split(jax.random.PRNGKey(3), 5)
    x = jax.random.normal(k[0], (20, 3)) + 1.0
    y = jnp.tanh(x @ jax.random.normal(k[1], (3, 16))) @ jax.random.normal(k[2], (16,)) / 4
    params = {
        "W1": jax.random.normal(k[3], (3, 8)) / jnp.sqrt(3.0),
        "b1": jnp.zeros(8),
        "W2": jax.random.normal(k[4], (8,)) / jnp.sqrt(8.0),
        "b2": jnp.zeros(()),
    }

    def loss(p):
        f = jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        return jnp.mean((f - y) ** 2)

    return loss, params


def test_sharpness_gradient_matches_central_difference():
    """∇S against (S(θ + h eᵢ) − S(θ − h eᵢ))/(2h) for every coordinate, h = 1e-4, float64.

    Truncation error is h²/6 · ∂³S ≈ 1e-8 · O(‖∇³S‖) and round-off ≈ ε_mach·S/h ≈ 1e-11 (S ≈ 5 here);
    the eigengap λ₁ − λ₂ ≈ 2 is ≫ h·‖∇³L‖, so S stays simple and smooth on the stencil. Observed relative
    error ≈ 1e-9; asserted 1e-6 relative to ‖∇S‖.
    """
    loss, params = tiny_mlp()
    flat, unravel = ravel_pytree(params)
    top = top_eigenpair(loss, params)
    vals = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda z: loss(unravel(z)))(flat)))
    assert vals[-1] - vals[-2] > 0.5  # simple top eigenvalue: Lemma 2 applies
    grad_s = jax.jit(sharpness_gradient, static_argnums=0)(loss, params, top.vector)

    h = 1e-4
    sharp = jax.jit(jax.vmap(lambda z: top_eigenpair(loss, unravel(z)).value))
    eye = jnp.eye(flat.size)
    fd = (sharp(flat + h * eye) - sharp(flat - h * eye)) / (2 * h)  # (P,)
    err = np.linalg.norm(np.asarray(fd - grad_s)) / np.linalg.norm(np.asarray(grad_s))
    assert err < 1e-6, err


def test_sharpness_gradient_sign_invariant_and_random_directions():
    """∇³L(u, u) = ∇³L(−u, −u), and ξ·∇S matches the directional difference along random unit ξ."""
    loss, params = tiny_mlp()
    flat, unravel = ravel_pytree(params)
    u = top_eigenpair(loss, params).vector
    g_plus = sharpness_gradient(loss, params, u)
    np.testing.assert_allclose(sharpness_gradient(loss, params, -u), g_plus, rtol=1e-12, atol=1e-14)
    h = 1e-4
    for i in range(3):
        xi = jax.random.normal(jax.random.PRNGKey(10 + i), flat.shape)
        xi = xi / jnp.linalg.norm(xi)
        s_p = top_eigenpair(loss, unravel(flat + h * xi)).value
        s_m = top_eigenpair(loss, unravel(flat - h * xi)).value
        assert float((s_p - s_m) / (2 * h)) == pytest.approx(
            float(xi @ g_plus), abs=1e-6 * np.linalg.norm(g_plus)
        )


ETA, ALPHA, BETA = 0.1, 0.7, 2.3


def toy_loss(p):
    """App. B toy, params a (3,) vector (x, y, z)."""
    x, y, z = p
    return (1 / ETA + jnp.sqrt(BETA) / 2 * y) * x**2 - ALPHA / jnp.sqrt(BETA) * y - z


@pytest.mark.parametrize("point", [(0.0, 0.0, 0.0), (0.0, -0.3, 1.7), (0.2, 0.1, -0.5)])
def test_toy_closed_form(point):
    """∇³L(e₁, e₁) = (0, √β, 0) everywhere (∂²L/∂x² = 2/η + √β y); at x = 0 it is ∇S, u = e₁, and
    α = −∇L·∇S = α, β = ‖∇S⊥‖² = β, δ = √(2α/β) exactly (round-off: 1e-12)."""
    p = jnp.asarray(point)
    e1 = jnp.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(sharpness_gradient(toy_loss, p, e1), [0.0, np.sqrt(BETA), 0.0], atol=1e-12)
    if point[0] == 0.0:
        top = top_eigenpair(toy_loss, p)
        u = top.vector * jnp.sign(top.vector[0])
        np.testing.assert_allclose(u, e1, atol=1e-12)
        assert float(top.value) == pytest.approx(2 / ETA + np.sqrt(BETA) * point[1], rel=1e-12)
        grad_s = sharpness_gradient(toy_loss, p, u)
        coeffs = progressive_sharpening(jax.grad(toy_loss)(p), grad_s, u)
        assert float(coeffs.alpha) == pytest.approx(ALPHA, rel=1e-12)
        assert float(coeffs.beta) == pytest.approx(BETA, rel=1e-12)
        assert float(coeffs.delta) == pytest.approx(np.sqrt(2 * ALPHA / BETA), rel=1e-12)


def test_toy_gradient_off_axis_matches_finite_difference():
    """At x ≠ 0 the top eigenvector tilts (off-diagonal √β x); ∇S is still the FD of the dense S."""
    p = jnp.array([0.3, 0.2, 0.0])
    top = top_eigenpair(toy_loss, p)
    grad_s = sharpness_gradient(toy_loss, p, top.vector)
    h = 1e-5
    fd = jnp.stack(
        [
            (top_eigenpair(toy_loss, p + h * e).value - top_eigenpair(toy_loss, p - h * e).value) / (2 * h)
            for e in jnp.eye(3)
        ]
    )
    np.testing.assert_allclose(grad_s, fd, rtol=1e-7, atol=1e-8)


def test_progressive_sharpening_guards():
    """δ = 0 (finite) when α ≤ 0 or ∇S ∥ u; ∇S⊥ ⟂ u."""
    u = jnp.array([1.0, 0.0])
    c = progressive_sharpening(jnp.array([0.0, 1.0]), jnp.array([0.0, 2.0]), u)  # α = −2 < 0
    assert float(c.alpha) == -2.0 and float(c.delta) == 0.0
    c = progressive_sharpening(jnp.array([0.0, -1.0]), jnp.array([3.0, 0.0]), u)  # ∇S ∥ u: β = 0
    assert float(c.beta) == 0.0 and float(c.delta) == 0.0
    assert float(perp(jnp.array([3.0, 4.0]), u) @ u) == 0.0
