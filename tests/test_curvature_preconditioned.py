"""Oracle tests for ``eosdsl.curvature.preconditioned``.

* The operator against the dense P^{-1/2} H P^{-1/2} (1e-12 relative: a diagonal scaling around one exact
  matvec) and its top eigenvalue against ``eigvalsh`` of the dense matrix and against the (real) eigenvalues
  of the non-symmetric P⁻¹H from ``numpy.linalg.eigvals`` (1e-10 relative: Lanczos with iters = P is exact
  up to round-off; eigvals of a non-symmetric matrix adds ~ε·cond(eigenvectors) ≲ 1e-12 here).
* The preconditioners against optax itself: the update direction of ``scale_by_adam`` / ``scale_by_rms``
  must equal m̂ / p and g / p elementwise (1e-13 relative, the same arithmetic in another order).
* The thresholds against the optimizers' MSS and against simulation: Adam with a frozen preconditioner on
  a quadratic (heavy ball in P's geometry) decays at 0.9× the threshold and blows up at 1.1×.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.lanczos import lanczos_top
from eosdsl.curvature.preconditioned import (
    adam_preconditioner,
    adaptive_threshold,
    preconditioned_matvec,
    rmsprop_preconditioner,
)
from eosdsl.optim.optimizers import adam, rmsprop

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)


def random_symmetric(p: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(p, p))
    return 0.5 * (a + a.T) + 2.0 * np.diag(rng.uniform(0, 3, p))


def test_matches_dense_preconditioned_hessian() -> None:
    rng = np.random.default_rng(0)
    p = 30
    h = random_symmetric(p, rng)
    pre = rng.uniform(0.01, 5.0, p)  # widely varying, like √v̂ + ε
    dense = h / np.sqrt(np.outer(pre, pre))  # P^{-1/2} H P^{-1/2}
    mv = preconditioned_matvec(lambda v: jnp.asarray(h) @ v, jnp.asarray(pre))
    v = rng.normal(size=p)
    np.testing.assert_allclose(np.asarray(mv(jnp.asarray(v))), dense @ v, rtol=1e-12, atol=1e-12)
    top = float(
        jax.jit(
            lambda q: lanczos_top(
                preconditioned_matvec(lambda v: jnp.asarray(h) @ v, q),
                p,
                1,
                p,
                jax.random.key(0),
                jnp.float64,
            ).values[0]
        )(jnp.asarray(pre))
    )
    expected = np.linalg.eigvalsh(dense)[-1]
    assert abs(top - expected) <= 1e-10 * abs(expected)
    eig_pinv_h = np.linalg.eigvals(h / pre[:, None])  # P⁻¹H: similar, real spectrum
    assert np.max(np.abs(eig_pinv_h.imag)) < 1e-8
    assert abs(np.max(eig_pinv_h.real) - expected) <= 1e-10 * abs(expected)


def test_with_hvp_of_a_loss_and_vmap() -> None:
    """On a real loss (pytree params) via hvp_fn, mapped over a batch of preconditioners."""
    params = {"a": jnp.array([0.3, -1.2, 0.7]), "b": jnp.array([[0.5, 2.0], [-0.4, 1.1]])}

    def loss(prm):
        z = jnp.concatenate([prm["a"], prm["b"].ravel()])
        return jnp.sum(jnp.cos(z) * z**2) + 0.25 * jnp.sum(z) ** 4

    flat, _ = ravel_pytree(params)
    p = flat.shape[0]
    h = np.asarray(jax.hessian(lambda z: loss(ravel_pytree(params)[1](z)))(flat))
    pres = jnp.asarray(np.random.default_rng(1).uniform(0.1, 3.0, (4, p)))
    hvp = hvp_fn(loss, params)
    tops = jax.jit(
        jax.vmap(
            lambda q: lanczos_top(
                preconditioned_matvec(hvp, q), p, 1, p, jax.random.key(0), jnp.float64
            ).values[0]
        )
    )(pres)
    for i in range(4):
        q = np.asarray(pres[i])
        expected = np.linalg.eigvalsh(h / np.sqrt(np.outer(q, q)))[-1]
        assert abs(float(tops[i]) - expected) <= 1e-10 * abs(expected)


def test_adam_preconditioner_is_optax() -> None:
    """optax.scale_by_adam's direction is m̂ / p with p = √v̂ + ε from the post-update state."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
    tx = optax.scale_by_adam(b1, b2, eps)
    state = tx.init(params)
    rng = np.random.default_rng(2)
    for _ in range(3):
        g = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
        direction, state = tx.update(g, state)
    adam_state = state
    pre = adam_preconditioner(adam_state.nu, adam_state.count, b2, eps)
    m_hat = ravel_pytree(adam_state.mu)[0] / (1 - b1 ** int(adam_state.count))
    np.testing.assert_allclose(np.asarray(ravel_pytree(direction)[0]), np.asarray(m_hat / pre), rtol=1e-13)


def test_rmsprop_preconditioner_is_optax() -> None:
    """optax.scale_by_rms's direction is g / p with p = √(ν + ε) (ε inside the root)."""
    decay, eps = 0.9, 1e-3  # a large ε, so inside vs outside the root would differ visibly
    params = {"w": jnp.zeros((4,))}
    tx = optax.scale_by_rms(decay=decay, eps=eps)
    state = tx.init(params)
    rng = np.random.default_rng(3)
    for _ in range(3):
        g = {"w": jnp.asarray(rng.normal(size=4) * 0.01)}
        direction, state = tx.update(g, state)
    pre = rmsprop_preconditioner(state.nu, eps)
    np.testing.assert_allclose(np.asarray(direction["w"]), np.asarray(g["w"] / pre), rtol=1e-13)


@pytest.mark.parametrize("b1", [0.0, 0.5, 0.9])
def test_threshold_is_the_optimizers_mss(b1: float) -> None:
    lr = 0.03
    assert abs(float(adaptive_threshold(lr, b1)) - float(adam(b1, 0.999, 1e-8).mss(jnp.asarray(lr)))) < 1e-12
    if b1 == 0.0:
        assert abs(float(adaptive_threshold(lr)) - float(rmsprop(0.9, 1e-8).mss(jnp.asarray(lr)))) < 1e-12
        assert abs(float(adaptive_threshold(lr)) - 2 / lr) < 1e-12
    assert abs(float(adaptive_threshold(0.01, 0.9)) - 3800.0) < 1e-9  # 38/η


@pytest.mark.parametrize("b1", [0.0, 0.9])
def test_threshold_separates_stable_from_unstable(b1: float) -> None:
    """Frozen-P Adam, m ← β₁m + (1−β₁)g, θ ← θ − ηP⁻¹m, on L = ½θᵀHθ: stable iff λ_max(P⁻¹H) < threshold."""
    rng = np.random.default_rng(4)
    p = 8
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    h = q @ np.diag(np.linspace(0.1, 4.0, p)) @ q.T
    pre = rng.uniform(0.5, 2.0, p)
    lam = np.linalg.eigvalsh(h / np.sqrt(np.outer(pre, pre)))[-1]
    for factor, stable in [(0.9, True), (1.1, False)]:
        lr = float((2 + 2 * b1) * factor / ((1 - b1) * lam))  # the η at which λ_max = factor × threshold
        assert abs(lam / float(adaptive_threshold(lr, b1)) - factor) < 1e-12
        theta, m = rng.normal(size=p), np.zeros(p)
        for _ in range(3000):
            m = b1 * m + (1 - b1) * (h @ theta)
            theta = theta - lr * m / pre
            if np.linalg.norm(theta) > 1e6:
                break
        assert np.linalg.norm(theta) < 1e-3 if stable else np.linalg.norm(theta) > 1e6
