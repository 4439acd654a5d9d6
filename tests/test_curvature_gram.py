"""Oracle tests for ``eosdsl.curvature.gram``: Gram/NTK sharpness against an explicit ``jax.jacfwd`` Jacobian.

The oracle is M = (2/n) J Jᵀ with J (n·k, P) built by forward-mode autodiff of the flattened outputs, and
its top eigenvalue by ``numpy.linalg.eigvalsh``. The matrix-free operators are checked entry by entry
against JᵀJ and JJᵀ times random vectors (1e-12 relative: one jvp + one vjp vs. a dense matvec, round-off
~ε times a few hundred terms), and Lanczos on them runs iters = dim steps, where T is similar to the
operator and the top Ritz value is exact to round-off, so relative 1e-10 leaves a wide margin (~1e-14
observed). For a model linear in θ the MSE Hessian *is* (c/n)JᵀJ (∇²F = 0), so the dense Hessian of
``eosdsl.problems.losses.mse`` under each convention must equal the Gram operator with c = ``gram_scale(...)``
to round-off (1e-12 relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.dense import hessian_matrix
from eosdsl.curvature.gram import gram_matvec, gram_output_matvec, gram_scale
from eosdsl.curvature.lanczos import lanczos_top
from eosdsl.problems.losses import mse

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)


def mlp_apply(params: dict, x: jax.Array) -> jax.Array:
    """A tanh MLP d → 5 → 4 → k with biases. (n, k)."""
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    h = jnp.tanh(h @ params["w2"] + params["b2"])
    return h @ params["w3"] + params["b3"]


def mlp_params(key: jax.Array, d: int, k: int) -> dict:
    ks = jax.random.split(key, 6)
    shapes = {"w1": (d, 5), "b1": (5,), "w2": (5, 4), "b2": (4,), "w3": (4, k), "b3": (k,)}
    return {
        name: 0.8 * jax.random.normal(kk, shape, jnp.float64)
        for kk, (name, shape) in zip(ks, shapes.items(), strict=True)
    }


def linear_apply(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]


def explicit_jacobian(apply, params, x) -> np.ndarray:
    flat, unravel = ravel_pytree(params)
    jac = jax.jacfwd(lambda th: jnp.ravel(apply(unravel(th), x)))(flat)  # (n·k, P)
    return np.asarray(jac)


@pytest.mark.parametrize("k", [1, 3])
def test_gram_sharpness_matches_explicit_jacobian(k: int) -> None:
    n, d = 7, 3
    params = mlp_params(jax.random.key(k), d, k)
    x = jax.random.normal(jax.random.key(10 + k), (n, d), jnp.float64)
    jac = explicit_jacobian(mlp_apply, params, x)  # (n·k, P)
    p = jac.shape[1]
    gram = (2.0 / n) * jac @ jac.T  # (n·k, n·k), paper 001's M
    expected = np.linalg.eigvalsh(gram)[-1]

    def run(params, x):
        mv = gram_matvec(mlp_apply, params, x)
        mv_out, dim_out = gram_output_matvec(mlp_apply, params, x)
        top_p = lanczos_top(mv, p, 1, p, jax.random.key(0), jnp.float64).values[0]
        top_o = lanczos_top(mv_out, dim_out, 1, dim_out, jax.random.key(1), jnp.float64).values[0]
        return top_p, top_o

    top_params, top_outputs = jax.jit(run)(params, x)
    assert abs(float(top_params) - expected) <= 1e-10 * expected
    assert abs(float(top_outputs) - expected) <= 1e-10 * expected

    rng = np.random.default_rng(k)
    v = rng.normal(size=p)
    u = rng.normal(size=n * k)
    got_v = np.asarray(gram_matvec(mlp_apply, params, x)(jnp.asarray(v)))
    want_v = (2.0 / n) * jac.T @ (jac @ v)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-12, atol=1e-12 * np.abs(want_v).max())
    mv_out, dim_out = gram_output_matvec(mlp_apply, params, x)
    assert dim_out == n * k
    want_u = gram @ u
    np.testing.assert_allclose(
        np.asarray(mv_out(jnp.asarray(u))), want_u, rtol=1e-12, atol=1e-12 * np.abs(want_u).max()
    )


@pytest.mark.parametrize(
    ("convention", "scale"),
    [("sum_over_n", 1.0), ("half_sum_over_n", 1.0), ("mean", 1.0), ("sum_over_n", 0.3)],
)
def test_linear_model_gram_equals_mse_hessian(convention: str, scale: float) -> None:
    """f = xW + b is linear in θ, so ∇²L = (c/n)JᵀJ exactly with c = gram_scale(convention, k, scale)."""
    n, d, k = 9, 4, 3
    kw, kb, kx, ky = jax.random.split(jax.random.key(3), 4)
    params = {"w": jax.random.normal(kw, (d, k), jnp.float64), "b": jax.random.normal(kb, (k,), jnp.float64)}
    x = jax.random.normal(kx, (n, d), jnp.float64)
    y = jax.random.normal(ky, (n, k), jnp.float64)
    c = gram_scale(convention, k, scale)
    hess = np.asarray(hessian_matrix(lambda p: mse(linear_apply(p, x), y, convention, scale), params))
    p = hess.shape[0]
    mv = gram_matvec(linear_apply, params, x, c)
    gram_op = np.asarray(jax.vmap(mv)(jnp.eye(p)))  # rows: (c/n)JᵀJ e_i, symmetric
    np.testing.assert_allclose(gram_op, hess, rtol=0, atol=1e-12 * np.abs(hess).max())
    top = float(
        jax.jit(
            lambda prm: lanczos_top(
                gram_matvec(linear_apply, prm, x, c), p, 1, p, jax.random.key(0), jnp.float64
            ).values[0]
        )(params)
    )
    expected = np.linalg.eigvalsh(hess)[-1]
    assert abs(top - expected) <= 1e-10 * expected


def test_paper001_scalar_output() -> None:
    """Paper 001's setting: scalar output, ±1 labels, L = Σr²/n; c = 2 is the default and k = 1."""
    assert gram_scale() == 2.0
    assert gram_scale("mean", 1) == gram_scale("sum_over_n", 1)  # Σr²/(n·1) = Σr²/n
    with pytest.raises(ValueError, match="convention"):
        gram_scale("sum")


def test_gram_matvec_vmaps_over_params() -> None:
    """The whole measurement maps over a batch of parameter sets like a loop."""
    n, d, k = 5, 3, 2
    batch = [mlp_params(jax.random.key(i), d, k) for i in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batch)
    x = jax.random.normal(jax.random.key(99), (n, d), jnp.float64)
    v = jax.random.normal(jax.random.key(98), (ravel_pytree(batch[0])[0].shape[0],), jnp.float64)
    got = jax.jit(jax.vmap(lambda prm: gram_matvec(mlp_apply, prm, x)(v)))(stacked)
    for i, prm in enumerate(batch):
        jac = explicit_jacobian(mlp_apply, prm, x)
        np.testing.assert_allclose(
            np.asarray(got[i]), (2.0 / n) * jac.T @ (jac @ np.asarray(v)), rtol=1e-12, atol=1e-13
        )
