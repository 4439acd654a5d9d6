"""Warm-started power iteration for the top algebraic eigenpair (k = 1) of a symmetric operator.

Power iteration (Golub & Van Loan, *Matrix Computations*, §8.2.1) on the shifted operator H + σI:

    w = H v,   θ = vᵀw,   r = ‖w − θv‖,   v ← (w + σv) / ‖w + σv‖.

It converges to the eigenvector of the eigenvalue of H + σI largest in *magnitude*, i.e. to the λ of H
maximizing |λ + σ|, at the linear rate max_{j≠1} |λ_j + σ| / |λ_1 + σ|. With σ = 0 that is the largest-|λ|
eigenvalue, which is the top *algebraic* one only when no negative eigenvalue has larger magnitude; a shift
σ ≥ −(λ_max + λ_min)/2 (e.g. σ ≥ |λ_min|, for a Hessian a bound on its negative curvature) makes the top
algebraic eigenvalue the dominant one of H + σI, at the price of a slower rate. θ is always the Rayleigh
quotient of H itself (not of H + σI) and r its true residual: w = Hv is computed for the very v returned,
so no certification HVP is needed. HVPs: 1 + iterations.

Stopping (relative, as ``eig.relative_residuals``): r ≤ tol·|θ|, or ``max_iters``. A ``lax.while_loop``
with fixed shapes: traces under ``jax.jit``, ``jax.vmap``, ``lax.scan`` and ``lax.cond``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from eosdsl.curvature.eig import HIGHEST, EigResult

Array = jax.Array


def power_top(
    matvec: Callable[[Array], Array],
    v0: Array,
    tol: float | Array,
    max_iters: int,
    shift: float | Array = 0.0,
) -> EigResult:
    """Top eigenpair of H by power iteration on H + ``shift``·I, warm-started from ``v0``: the
    ``EigResult`` of :func:`power_top_and_next` (see there)."""
    return power_top_and_next(matvec, v0, tol, max_iters, shift)[0]


def power_top_and_next(
    matvec: Callable[[Array], Array],
    v0: Array,
    tol: float | Array,
    max_iters: int,
    shift: float | Array = 0.0,
) -> tuple[EigResult, Array]:
    """Top eigenpair of H by power iteration on H + ``shift``·I, warm-started from ``v0`` (P,): k = 1.

    Warning: with ``shift`` = 0 (the default) this finds the eigenvalue of largest *magnitude*; if H has a
    negative eigenvalue λ_min with |λ_min| > λ_max, that one wins, not the sharpness λ_max. Pass
    ``shift`` ≥ −(λ_max + λ_min)/2 (any σ ≥ |λ_min| will do) to make λ_max dominant; larger shifts slow the
    rate max_{j≠1}|λ_j + σ| / (λ_max + σ). A zero ``v0`` is replaced by the all-ones direction.

    Returns ``(result, next)``: ``result`` an ``EigResult`` with (1,) value = vᵀHv, (1, P) unit vector,
    (1,) true residual ‖Hv − θv‖, ``iterations`` taken (stops at r ≤ ``tol``·|θ| or ``max_iters``, a
    static int), ``hvps`` = 1 + iterations and ``capped`` (stopped at ``max_iters`` with r > ``tol``·|θ|);
    ``next`` (P,) the next iterate unit(Hv + σv) of the returned v, free since Hv is computed: the start
    that continues the iteration (e.g. at the next measurement). ``v0``'s dtype is the working dtype and
    must be what ``matvec`` accepts.
    """
    if v0.ndim != 1:
        raise ValueError(f"v0 must be a (P,) vector; got shape {v0.shape}")
    if max_iters < 0:
        raise ValueError(f"max_iters must be ≥ 0; got {max_iters}")
    dtype = v0.dtype
    tol = jnp.asarray(tol, dtype)
    shift = jnp.asarray(shift, dtype)

    def unit(x: Array, fallback: Array) -> Array:
        n = jnp.linalg.norm(x)
        return jnp.where(n > 0, x / jnp.where(n > 0, n, 1.0), fallback)

    v = unit(v0, jnp.full_like(v0, 1.0 / jnp.sqrt(v0.shape[0])))

    def pair(v: Array) -> tuple[Array, Array, Array]:
        w = matvec(v).astype(dtype)  # one HVP
        theta = jnp.dot(v, w, precision=HIGHEST)
        return w, theta, jnp.linalg.norm(w - theta * v)

    def cond(state: tuple[Array, Array, Array, Array, Array]) -> Array:
        it, _, _, theta, r = state
        return (it < max_iters) & (r > tol * jnp.abs(theta))

    def body(state: tuple[Array, Array, Array, Array, Array]) -> tuple[Array, Array, Array, Array, Array]:
        it, v, w, _, _ = state
        v = unit(w + shift * v, v)  # (H + σI)v = 0: v is an exact eigenvector (θ = −σ, r = 0), keep it
        return (it + 1, v, *pair(v))

    it, v, w, theta, r = lax.while_loop(cond, body, (jnp.asarray(0), v, *pair(v)))
    capped = (it >= max_iters) & (r > tol * jnp.abs(theta))
    result = EigResult(
        values=theta[None], vectors=v[None], residuals=r[None], iterations=it, hvps=1 + it, capped=capped
    )
    return result, unit(w + shift * v, v)
