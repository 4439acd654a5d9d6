"""The constrained trajectory θ† of paper 003 (Damian, Nichani & Lee 2023), eq. (2):

    θ†₀ = proj_M(θ₀),    θ†_{t+1} = proj_M(θ†_t − η∇L(θ†_t)),
    M = {θ : S(θ) ≤ 2/η and u(θ)·∇L(θ) = 0}           (the "stable set"),

with the practical linearized projection of the authors' code (paper 003 App. D.3). A *Taylor
center* at p holds (p, L, ∇L, S, u, ∇S), ∇S = ∇³L(p)(u, u) (Lemma 2). One linearized projection step is

    ∇S⊥ = ∇S − u(u·∇S)
    Δ_S = −max(0, S − 2/η) ∇S⊥/‖∇S⊥‖²     (first-order fix of the inequality constraint S ≤ 2/η)
    Δ_N = −u (u·∇L)/S                       (Newton step on u·∇L = 0: ∂(u·∇L)/∂x along u ≈ S)
    p ← p + Δ_S + Δ_N,  then a new Taylor center with the eigensolver warm-started from u,

``project`` applies it ``num_proj_steps`` times (code default 3) and ``constrained_step`` is
``project(taylor_center(p − η∇L))``: 4 centers, so 4 eigensolves and 4 ∇³L(u, u) per step. Using ∇S⊥
rather than ∇S keeps the sharpness step from undoing the Newton step; to first order it changes S by
exactly −(S − 2/η) since ∇S·∇S⊥ = ‖∇S⊥‖².

The top eigenpair is a parameter: any ``top_eig(params, u_warm) -> (S, u, residual)`` (a ``TopEigFn``),
e.g. the engine's warm-started certified solver (``engine.self_stabilization.solver_top_eig``) or
``dense_top_eig`` here (exact ``eigh``, a few thousand parameters at most; the tests' oracle). Each
returns u with its sign aligned to ``u_warm`` (the sign of an eigenvector is arbitrary and solvers flip
it between calls).

Everything is pure and jittable; ``TaylorCenter`` is a NamedTuple, so ``constrained_scan_body`` is a
``lax.scan`` body. Flat vectors follow ``jax.flatten_util.ravel_pytree`` order (as ``curvature.hvp``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.dense import top_eigenpair
from eosdsl.curvature.third_order import perp, progressive_sharpening, sharpness_gradient

Params = Any
Array = jax.Array
Loss = Callable[[Params], Array]
TopEigFn = Callable[[Params, Array], tuple[Array, Array, Array]]
"""``top_eig(params, u_warm) -> (S, u, residual)``: top eigenvalue, its flat unit eigenvector (sign aligned
with ``u_warm``) and a residual ‖Hu − Su‖, warm-started from ``u_warm`` where the solver can be."""


# ------------------------------------------------------------------------------------- eigensolvers


def align_sign(u: Array, u_ref: Array) -> Array:
    """u or −u, whichever has u·u_ref ≥ 0 (eigenvectors are defined up to sign)."""
    return jnp.where(jnp.vdot(u, u_ref) < 0, -u, u)


def dense_top_eig(loss: Loss) -> TopEigFn:
    """A ``TopEigFn`` by ``eigh`` of the dense Hessian (``curvature.dense.top_eigenpair``): exact, O(P³).

    ``u_warm`` only fixes the sign. For problems up to a few thousand parameters, and as an oracle.
    """

    def top_eig(params: Params, u_warm: Array) -> tuple[Array, Array, Array]:
        res = top_eigenpair(loss, params)
        return res.value, align_sign(res.vector, u_warm), res.residual

    return top_eig


# ---------------------------------------------------------------------------------- Taylor centers


class TaylorCenter(NamedTuple):
    """Everything the projection needs at a point p; vectors flat (P,)."""

    params: Params  # p, the pytree
    loss: Array  # L(p)
    grad: Array  # ∇L(p): (P,)
    sharpness: Array  # S(p) = λ_max(∇²L(p))
    u: Array  # top unit eigenvector, sign aligned with the warm start: (P,)
    grad_s: Array  # ∇S(p) = ∇³L(p)(u, u): (P,)
    eig_residual: Array  # ‖∇²L u − S u‖ reported by the eigensolver


def taylor_center(loss: Loss, params: Params, u_ref: Array, top_eig: TopEigFn) -> TaylorCenter:
    """(p, L, ∇L, S, u, ∇S) at ``params``.

    Cost: 1 value-and-grad, 1 eigensolve warm-started at ``u_ref``, 1 ∇³L(u, u).
    """
    flat, unravel = ravel_pytree(params)
    value, grad = jax.value_and_grad(lambda z: loss(unravel(z)))(flat)
    s, u, residual = top_eig(params, u_ref.astype(flat.dtype))
    grad_s = sharpness_gradient(loss, params, u)
    return TaylorCenter(params, value, grad, s, u, grad_s, residual)


def _shift(params: Params, delta: Array) -> Params:
    """params + delta, delta flat (P,)."""
    flat, unravel = ravel_pytree(params)
    return unravel(flat + delta)


def linear_project(loss: Loss, center: TaylorCenter, eta: Array | float, top_eig: TopEigFn) -> TaylorCenter:
    """One linearized projection step onto M (App. D.3, after Lemma 13): p + Δ_S + Δ_N, re-centered.

    Δ_S = −max(0, S − 2/η) ∇S⊥/‖∇S⊥‖² (zero where ∇S⊥ = 0), Δ_N = −u(u·∇L)/S.
    """
    c = center
    gs_perp = perp(c.grad_s, c.u)  # ∇S⊥: (P,)
    norm2 = jnp.sum(gs_perp**2)
    excess = jnp.maximum(c.sharpness - 2.0 / eta, 0.0)
    d_s = jnp.where(norm2 > 0, -excess / jnp.where(norm2 > 0, norm2, 1.0), 0.0) * gs_perp
    d_n = -c.u * jnp.vdot(c.u, c.grad) / c.sharpness
    return taylor_center(loss, _shift(c.params, d_s + d_n), c.u, top_eig)


def project(
    loss: Loss, center: TaylorCenter, eta: Array | float, top_eig: TopEigFn, num_proj_steps: int = 3
) -> TaylorCenter:
    """proj_M by ``num_proj_steps`` (static) linearized steps, as the authors' code (no tolerance)."""
    return lax.fori_loop(0, num_proj_steps, lambda _, c: linear_project(loss, c, eta, top_eig), center)


def project_to_tolerance(
    loss: Loss,
    center: TaylorCenter,
    eta: Array | float,
    top_eig: TopEigFn,
    tol: float = 1e-10,
    max_steps: int = 50,
) -> TaylorCenter:
    """The "exact" projection for validation: linearized steps until both residuals are below ``tol``.

    Stops when max(S − 2/η, 0)·η ≤ tol and |u·∇L|/max(‖∇L‖, tiny) ≤ tol, or after ``max_steps`` steps.
    """

    def not_done(state: tuple[Array, TaylorCenter]) -> Array:
        k, c = state
        res_s = jnp.maximum(c.sharpness - 2.0 / eta, 0.0) * eta
        res_n = jnp.abs(jnp.vdot(c.u, c.grad)) / jnp.maximum(jnp.linalg.norm(c.grad), 1e-300)
        return (k < max_steps) & ((res_s > tol) | (res_n > tol))

    def body(state: tuple[Array, TaylorCenter]) -> tuple[Array, TaylorCenter]:
        k, c = state
        return k + 1, linear_project(loss, c, eta, top_eig)

    return lax.while_loop(not_done, body, (jnp.asarray(0), center))[1]


# ------------------------------------------------------------------------------- the PGD step


class ConstrainedDiagnostics(NamedTuple):
    """Per-step record of θ†_t: its projection residuals (App. D.3) and the Def. 4/6 coefficients (§5.1)."""

    loss: Array  # L(θ†_t)
    sharpness_residual: Array  # S(θ†_t) − 2/η
    newton_residual: Array  # u_t·∇L_t
    newton_residual_rel: Array  # |u_t·∇L_t| / ‖∇L_t‖
    alpha: Array  # −∇L_t·∇S_t
    beta: Array  # ‖∇S⊥_t‖²
    delta: Array  # √(2α/β), guarded
    epsilon: Array  # η√α (0 where α ≤ 0)
    grad_norm: Array  # ‖∇L_t‖
    eig_residual: Array  # the eigensolver's residual at θ†_t
    lemma13_residual: Array  # ‖θ†_{t+1} − θ†_t + η P⊥_{u_t,∇S_t} ∇L_t‖ / (η‖∇L_t‖), of the step into t


def center_diagnostics(
    center: TaylorCenter, eta: Array | float, lemma13: Array | float = 0.0
) -> ConstrainedDiagnostics:
    """The per-step diagnostics of a (projected) Taylor center; ``lemma13`` is filled by the step."""
    c = center
    coeffs = progressive_sharpening(c.grad, c.grad_s, c.u)
    grad_norm = jnp.linalg.norm(c.grad)
    newton = jnp.vdot(c.u, c.grad)
    return ConstrainedDiagnostics(
        loss=c.loss,
        sharpness_residual=c.sharpness - 2.0 / eta,
        newton_residual=newton,
        newton_residual_rel=jnp.abs(newton) / jnp.maximum(grad_norm, 1e-300),
        alpha=coeffs.alpha,
        beta=coeffs.beta,
        delta=coeffs.delta,
        epsilon=eta * jnp.sqrt(jnp.maximum(coeffs.alpha, 0.0)),
        grad_norm=grad_norm,
        eig_residual=c.eig_residual,
        lemma13_residual=jnp.asarray(lemma13, c.grad.dtype),
    )


def lemma13_direction(center: TaylorCenter) -> Array:
    """P⊥_{u,∇S} ∇L: the gradient with its components along u and ∇S removed (Lemma 13), flat (P,)."""
    c = center
    g = perp(c.grad, c.u)
    w = perp(c.grad_s, c.u)
    norm2 = jnp.sum(w**2)
    return g - jnp.where(norm2 > 0, jnp.vdot(w, g) / jnp.where(norm2 > 0, norm2, 1.0), 0.0) * w


def constrained_step(
    loss: Loss, center: TaylorCenter, eta: Array | float, top_eig: TopEigFn, num_proj_steps: int = 3
) -> tuple[TaylorCenter, ConstrainedDiagnostics]:
    """θ†_{t+1} = proj_M(θ†_t − η∇L(θ†_t)), eq. (2), with ``project``; returns (new center, its record)."""
    c = center
    pre = taylor_center(loss, _shift(c.params, -eta * c.grad), c.u, top_eig)
    new = project(loss, pre, eta, top_eig, num_proj_steps)
    step = ravel_pytree(new.params)[0] - ravel_pytree(c.params)[0]  # θ†_{t+1} − θ†_t: (P,)
    lemma13 = jnp.linalg.norm(step + eta * lemma13_direction(c)) / (eta * jnp.linalg.norm(c.grad))
    return new, center_diagnostics(new, eta, lemma13)


def initial_center(
    loss: Loss, params: Params, u_ref: Array, eta: Array | float, top_eig: TopEigFn, num_proj_steps: int = 3
) -> TaylorCenter:
    """θ†₀ = proj_M(θ₀) (eq. (2)) as a projected Taylor center; ``u_ref`` warm-starts the first solve."""
    return project(loss, taylor_center(loss, params, u_ref, top_eig), eta, top_eig, num_proj_steps)


def constrained_scan_body(
    loss: Loss, eta: Array | float, top_eig: TopEigFn, num_proj_steps: int = 3
) -> Callable[[TaylorCenter, Any], tuple[TaylorCenter, ConstrainedDiagnostics]]:
    """``lax.scan`` body ``(center, _) -> (next center, diagnostics)`` for ``constrained_step``."""

    def body(center: TaylorCenter, _: Any) -> tuple[TaylorCenter, ConstrainedDiagnostics]:
        return constrained_step(loss, center, eta, top_eig, num_proj_steps)

    return body
