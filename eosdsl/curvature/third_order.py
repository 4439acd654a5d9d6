"""The gradient of the sharpness, ∇S = ∇³L(u, u) (paper 003, Lemma 2), and the progressive-sharpening
coefficients built from it (Definitions 2 and 4).

Lemma 2 (Damian, Nichani & Lee 2023, "Self-Stabilization"): where the top Hessian eigenvalue
S(θ) = λ_max(∇²L(θ)) is simple with unit eigenvector u(θ), S is differentiable and

    ∇S(θ) = ∇³L(θ)(u, u),    i.e.  ∇S(θ) = ∇_θ' [uᵀ ∇²L(θ') u] |_{θ'=θ}  with u held fixed

(differentiating uᵀHu = S through u contributes 2uᵀH ∂u = 2S uᵀ∂u = 0, since ‖u‖ = 1). It is computed
here exactly that way: the quadratic form q(θ) = uᵀ∇²L(θ)u by forward-over-reverse (the JVP of the
gradient along u, dotted with u), and its gradient by reverse mode, with u a constant. Cost ≈ a few
gradients; no Hessian is formed.

Flat vectors (``u``, the result) are over ``jax.flatten_util.ravel_pytree(params)[0]``, the order of
``eosdsl.curvature.hvp.hvp_fn`` and ``eosdsl.curvature.dense.hessian_matrix``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

Params = Any
Array = jax.Array


def sharpness_gradient_flat(flat_loss: Callable[[Array], Array], x: Array, u: Array) -> Array:
    """∇S = ∇³f(x)(u, u) for a loss ``flat_loss`` of a flat vector x (P,); u (P,) is held fixed."""

    def quad_form(z: Array) -> Array:  # q(z) = uᵀ∇²f(z)u, forward-over-reverse
        return jnp.vdot(u, jax.jvp(jax.grad(flat_loss), (z,), (u,))[1])

    return jax.grad(quad_form)(x)  # (P,)


def sharpness_gradient(loss: Callable[[Params], Array], params: Params, u: Array) -> Array:
    """∇S(θ) = ∇³L(θ)(u, u) (Lemma 2) as a flat (P,) vector, u the flat unit top eigenvector.

    Equals the gradient of the sharpness when u is the top eigenvector of a simple top eigenvalue; for any
    other u it is the gradient of the Rayleigh quotient's numerator θ ↦ uᵀ∇²L(θ)u at fixed u. Jittable;
    ``loss`` is a static callable of the params pytree.
    """
    flat, unravel = ravel_pytree(params)  # flat: (P,)
    return sharpness_gradient_flat(lambda z: loss(unravel(z)), flat, u.astype(flat.dtype))


def perp(vec: Array, u: Array) -> Array:
    """P⊥_u vec = vec − u (u·vec) for a unit u: the component orthogonal to the top eigenvector."""
    return vec - u * jnp.vdot(u, vec)


class SharpeningCoefficients(NamedTuple):
    """α = −∇L·∇S (Def. 2), β = ‖∇S⊥‖² (Def. 4) and δ = √(2α/β) (guarded, see ``progressive_sharpening``)."""

    alpha: Array
    beta: Array
    delta: Array


def progressive_sharpening(grad_flat: Array, grad_s: Array, u: Array) -> SharpeningCoefficients:
    """α = −∇L·∇S (Def. 2), β = ‖∇S⊥‖² with ∇S⊥ = ∇S − u(u·∇S) (Def. 4), δ = √(2α/β) (Def. 6).

    δ is guarded: √(max(2α/β, 0)), and 0 where β = 0, so it is finite when there is no progressive
    sharpening (α ≤ 0) or ∇S ∥ u. On the stable set (u·∇L = 0) α = −∇L·∇S⊥; off it the two differ by
    (u·∇L)(u·∇S), the projection residual (Defs. 4 and 6, §5.1). The signed ratio 2α/β (which the
    predicted dynamics use as δ²) is ``2 * alpha / beta``.
    """
    alpha = -jnp.vdot(grad_flat, grad_s)
    beta = jnp.sum(perp(grad_s, u) ** 2)
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    delta = jnp.where(beta > 0, jnp.sqrt(jnp.maximum(2.0 * alpha / safe_beta, 0.0)), 0.0)
    return SharpeningCoefficients(alpha, beta, delta)
