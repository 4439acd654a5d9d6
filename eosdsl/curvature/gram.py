"""Gram / NTK sharpness of an MSE loss, matrix-free (paper 001).

For a model f(θ; x) evaluated on the n examples X, stack all n·k output entries into F(θ) ∈ ℝ^{n·k} and let
J = ∂F/∂θ ∈ ℝ^{(n·k)×P}. Paper 001 (§2, §3.2) defines the sharpness as

    Λ = λ_max(M),   M = (c/n) J Jᵀ  (the n·k × n·k Gram / empirical-NTK matrix),   c = 2,

for its loss L = (1/n) Σ_i ‖f(θ; x_i) − y_i‖². Writing any MSE loss as L = (c/(2n)) Σ_e r_e² over the
residual entries r = F − Y, its Hessian is ∇²L = (c/n)(JᵀJ + Σ_e r_e ∇²F_e): (c/n) JᵀJ is the Gauss–Newton
part, and JJᵀ and JᵀJ share their nonzero eigenvalues, so Λ = λ_max((c/n) JᵀJ) — exactly the Hessian's
sharpness when the model is linear in θ (∇²F = 0), an approximation otherwise (paper 001 App. F).

The constant c is the second derivative of the loss in one residual entry, times n. For the MSE
conventions of ``eosdsl.problems.losses.mse`` (N = n examples, k outputs each, ``scale`` s):

=====================  ===================  ================
``convention``         L                    c (``gram_scale``)
=====================  ===================  ================
``sum_over_n``         s Σ r² / n           2s  (paper 001)
``half_sum_over_n``    s ½ Σ r² / n         s
``mean``               s Σ r² / (n·k)       2s / k
=====================  ===================  ================

so that with c = ``gram_scale(convention, k, s)`` the Gram sharpness is on the same scale as the Hessian
sharpness of that loss and compares with the same 2/η threshold.

Matrix-free: ``gram_matvec`` gives v ↦ (c/n) Jᵀ(Jv) over the flat parameters (P,), one forward-mode and one
reverse-mode product per call, for an eigensolver such as ``eosdsl.curvature.lanczos.lanczos_top``;
``gram_output_matvec`` gives u ↦ (c/n) J(Jᵀu) over the flat outputs (n·k,), the matrix M itself, whose top
eigenvector v₁ ∈ ℝ^{n·k} is the direction paper 001 projects the residual D on (D = F − Y, R = (I − v₁v₁ᵀ)D).
Both linearize F once (``jax.linearize``) and transpose the linearization (``jax.linear_transpose``), so
the forward pass is not recomputed per product; that keeps the residuals of one forward pass alive while
the returned function is in use.

Dense (small problems): ``gram_blocks`` builds M_g = (c/n) J_g J_gᵀ for every parameter group g (M = Σ_g M_g,
paper 001 §3.2's M = M_A + M_W), and ``gram_spectrum`` eigen-decomposes M for the quantities of paper 001
§3 that need all of it: λ_min(M) (Lemmas 3.3, 3.5), the residual's projections Dᵀv_i on its top
eigenvectors (Lemma 3.2, Fig. 3(b)) and the blocks' top eigenvalues (Fig. 3(a)); ``residual_recursion``
advances Lemma 3.5's auxiliary recursion R′(t+1) = (I − ηM(t)(I − v₁v₁ᵀ))R′(t) by one step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

Params = Any
Array = jax.Array


def gram_scale(convention: str = "sum_over_n", outputs: int = 1, scale: float = 1.0) -> float:
    """The constant c in M = (c/n) JJᵀ for ``eosdsl.problems.losses.mse(convention, scale)`` with
    ``outputs`` = k.

    c = 2·scale (``sum_over_n``, paper 001), scale (``half_sum_over_n``), 2·scale/k (``mean``), which makes
    (c/n) JᵀJ exactly the Gauss–Newton part of that loss's Hessian.
    """
    if convention == "sum_over_n":
        return 2.0 * scale
    if convention == "half_sum_over_n":
        return 1.0 * scale
    if convention == "mean":
        return 2.0 * scale / outputs
    raise ValueError(
        f"unknown MSE convention {convention!r}; expected 'half_sum_over_n', 'mean' or 'sum_over_n'"
    )


def _linearized(apply: Callable[[Params, Array], Array], params: Params, x: Array):
    """(J·, Jᵀ·, n, n·k, P) for F(θ) = ravel(apply(θ, x)) at ``params``."""
    flat, unravel = ravel_pytree(params)  # (P,)
    n = x.shape[0]

    def outputs(theta: Array) -> Array:
        return jnp.ravel(apply(unravel(theta), x))  # (n·k,)

    out, jvp = jax.linearize(outputs, flat)  # jvp: (P,) -> (n·k,)
    vjp = jax.linear_transpose(jvp, flat)  # (n·k,) -> ((P,),)
    return jvp, (lambda u: vjp(u)[0]), n, out.shape[0], flat.shape[0]


def gram_matvec(
    apply: Callable[[Params, Array], Array], params: Params, x: Array, c: float = 2.0
) -> Callable[[Array], Array]:
    """v ↦ (c/n) Jᵀ(J v) over the flat parameters (P,), J = ∂ ravel(apply(params, x)) / ∂θ.

    ``apply(params, x)`` returns the outputs (n, …) for the n = ``x.shape[0]`` examples; all n·k entries
    are rows of J. ``v`` and the result have the shape (P,) and dtype of ``ravel_pytree(params)[0]`` (the
    order of ``hvp_fn``). λ_max of this operator is the Gram sharpness Λ = λ_max((c/n) JJᵀ); hand it to
    ``lanczos_top(matvec, dim=P, ...)``. ``c`` is 2 for paper 001's loss; see ``gram_scale``. Jittable,
    and the returned function is vmappable.
    """
    jvp, vjp, n, _, _ = _linearized(apply, params, x)
    return lambda v: (c / n) * vjp(jvp(v))


def gram_output_matvec(
    apply: Callable[[Params, Array], Array], params: Params, x: Array, c: float = 2.0
) -> tuple[Callable[[Array], Array], int]:
    """(u ↦ (c/n) J(Jᵀu), n·k): the Gram/NTK matrix M of paper 001 as an operator on flat outputs.

    ``u`` is a vector over ``jnp.ravel(apply(params, x))`` (example-major, shape (n·k,)). M has the same
    nonzero eigenvalues as ``gram_matvec``'s operator, so λ_max agrees; it is the cheaper space when
    n·k < P, and its eigenvectors live where paper 001's residual D = F − Y does.
    """
    jvp, vjp, n, dim, _ = _linearized(apply, params, x)
    return (lambda u: (c / n) * jvp(vjp(u))), dim


def gram_blocks(
    apply: Callable[[Params, Array], Array],
    params: Params,
    x: Array,
    groups: Callable[[Params], dict[str, Params]],
    c: float = 2.0,
) -> dict[str, Array]:
    """{g: M_g = (c/n) J_g J_gᵀ}, the Gram matrix of each parameter group (paper 001 §3.2), densely.

    J_g = ∂F/∂θ_g is the Jacobian of the n·k flat outputs F = ravel(apply(params, x)) (example-major)
    with respect to group g's parameters, ``groups(tree)`` the network's map from a parameter-shaped
    tree to its groups (``ModelFns.groups``: every parameter in exactly one group). Since J = [J_g]_g,
    M = (c/n) JJᵀ = Σ_g M_g exactly: for f = Aᵀh(W, x) paper 001 writes M = M_A + M_W. Each block is
    (n·k, n·k) and positive semi-definite.

    Dense: the Jacobian is built by n·k reverse-mode products (``jax.jacrev``) and held whole
    (n·k × P floats), so this is for small problems (paper 001's two-layer linear net: n·k = 200,
    P ≈ 2·10⁴); the matrix-free operators above scale further but give only top eigenpairs.
    """
    n = x.shape[0]
    jac = jax.jacrev(lambda p: jnp.ravel(apply(p, x)))(params)  # leaves (n·k, *leaf.shape)

    def block(tree: Params) -> Array:
        rows = [leaf.reshape(leaf.shape[0], -1) for leaf in jax.tree.leaves(tree)]
        return (c / n) * sum(j @ j.T for j in rows)

    return {name: block(tree) for name, tree in groups(jac).items()}


class GramSpectrum(NamedTuple):
    """Dense spectral quantities of M = Σ_g M_g (:func:`gram_spectrum`)."""

    values: Array  # (n·k,) every eigenvalue of M, descending (values[-1] = λ_min(M))
    projections: Array  # (p,) Dᵀv_i for the top p unit eigenvectors v_i, oriented so that Yᵀv_i ≥ 0
    block_tops: Array  # (G,) λ_max(M_g) of the blocks asked for, in their order
    top: Array  # (n·k,) the top unit eigenvector v₁ of M, oriented so that Yᵀv₁ ≥ 0
    matrix: Array  # (n·k, n·k) M = Σ_g M_g itself (for the recursion R′, :func:`residual_recursion`)


def gram_spectrum(
    blocks: Sequence[Array], residual: Array, labels: Array, projections: int, tops: Sequence[Array] = ()
) -> GramSpectrum:
    """Eigen-decompose M = Σ ``blocks`` (dense ``eigh``) and project the residual on its top eigenvectors.

    ``residual`` is D = F − Y and ``labels`` Y, flat over the outputs (n·k,). Paper 001 §3 splits
    D = (Dᵀv₁)v₁ + R with R = (I − v₁v₁ᵀ)D, so L = ‖D‖²/n = (Dᵀv₁)²/n + ‖R‖²/n (Fig. 3(b)); Lemma 3.2
    has |Dᵀv₁| grow geometrically while Λ > 2/η. An eigenvector's sign is arbitrary: each v_i is
    oriented so that Yᵀv_i ≥ 0 (Y is fixed during a run, so the sign is stable while v_i moves
    slowly, and the alternation of Dᵀv₁ across steps at the edge of stability stays visible).
    ``tops``: matrices whose λ_max is wanted (the blocks M_A, M_W of Fig. 3(a)).
    """
    total = sum(blocks)
    values, vectors = jnp.linalg.eigh(total)  # ascending
    values, top = values[::-1], vectors[:, ::-1][:, : max(projections, 1)]  # (n·k,), (n·k, max(p, 1))
    top = top * jnp.where(labels @ top < 0, -1.0, 1.0).astype(top.dtype)  # oriented: Yᵀv_i ≥ 0
    block_tops = jnp.stack([jnp.linalg.eigvalsh(b)[-1] for b in tops]) if tops else jnp.zeros((0,))
    projected = residual @ top[:, :projections]
    return GramSpectrum(values, projected, block_tops.astype(values.dtype), top[:, 0], total)


def residual_off_top(top: Array, residual: Array) -> Array:
    """R = (I − v₁v₁ᵀ)D: the residual without its component on the unit vector v₁ (paper 001 (4))."""
    return residual - top * (top @ residual)


class Recursion(NamedTuple):
    """One step of paper 001's auxiliary recursion R′ (:func:`residual_recursion`)."""

    gap: Array  # ‖R(t) − R′(t)‖
    r: Array  # ‖R(t)‖
    r_prime: Array  # ‖R′(t)‖
    r_prime_dot: Array  # R′(t)ᵀ(R′(t) + Y)  (App. E.1: < 0)
    r_dot: Array  # R(t)ᵀ(R(t) + Y)  (Phase IV: < 0)
    next: Array  # (n·k,) R′(t+1)


def residual_recursion(
    gram: Array, top: Array, residual: Array, labels: Array, r_prime: Array, lr: Array, first: Array
) -> Recursion:
    """Lemma 3.5 of paper 001: the residual off the top Gram eigenvector and its auxiliary recursion.

    ``gram`` is M(t) (n·k × n·k), ``top`` its top unit eigenvector v₁(t), ``residual`` D(t) = F − Y and
    ``labels`` Y, flat over the outputs. R(t) = (I − v₁v₁ᵀ)D(t) (decomposition (4); v₁'s sign cancels).
    ``r_prime`` is the carried R′(t), replaced by R(t) where ``first`` (the recursion's first step t₀:
    R′(t₀) = R(t₀)), and

        R′(t+1) = (I − η_t M(t)(I − v₁(t)v₁(t)ᵀ)) R′(t),

    the GD-like linear recursion that R follows up to the error Lemma 3.5 bounds (‖R − R′‖ ≤
    c_r B_D(B_Λ − 1)√ε₂/(ηλ_r); Theorem 2.3: O(√(n³d)/(λ_r√m)) for the two-layer linear net). App. E.1
    claims R′(t)ᵀ(R′(t) + Y) < 0 for all t. η_t is the rate of GD's step from t to t+1.
    """
    r = residual_off_top(top, residual)
    r_prime = jnp.where(first, r, r_prime)
    off = residual_off_top(top, r_prime)  # (I − v₁v₁ᵀ)R′(t)
    return Recursion(
        gap=jnp.linalg.norm(r - r_prime),
        r=jnp.linalg.norm(r),
        r_prime=jnp.linalg.norm(r_prime),
        r_prime_dot=r_prime @ (r_prime + labels),
        r_dot=r @ (r + labels),
        next=r_prime - lr * (gram @ off),
    )
