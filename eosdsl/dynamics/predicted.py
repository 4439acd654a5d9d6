"""Deviation from the constrained trajectory and the predicted dynamics of paper 003 (Damian, Nichani &
Lee 2023): eqs. (3), (4), (6), Definitions 5, 7, 8, Theorem 1, Lemma 3, and App. F's generalized form.

Notation (at θ†_t, from a projected ``TaylorCenter``): u_t, ∇L_t, ∇²L_t, ∇S_t, ∇S⊥_t = ∇S_t − u_t(u_t·∇S_t),
α_t = −∇L_t·∇S_t, β_t = ‖∇S⊥_t‖², δ_t² = 2α_t/β_t.

* Def. 5: v_t = θ_t − θ†_t, x_t = u_t·v_t, y_t = ∇S⊥_t·v_t (``deviation``).
* Eq. (6) / Def. 8 (``predicted_step``, form "paper"):
      v̂_{t+1} = P⊥_{u_{t+1}} [(I − η∇²L_t) P⊥_{u_t} v̂_t + η∇S⊥_t (δ_t² − x̂_t²)/2] − (1 + ηŷ_t) x̂_t u_{t+1}.
  Form "code" is ``predicted_step`` of the authors' code release, with no re-projection:
      v̂ ← v̂ − η[(x̂² − δ_t²)/2 ∇S⊥_t + ∇²L_t v̂ + u_t x̂ ŷ];
  the two agree exactly when u_{t+1} = u_t and S_t = 2/η.
* Generalized (App. F, Lemma 5; ``generalized=True``): the same ⊥ part, and along u_{t+1}
      x̂_{t+1} = −(1 + ηŷ_t) x̂_t − η F_t'(x̂_t),   F_t(x) = L(θ†_t + x u_t) − L(θ†_t) − x²/η,
  with the + sign on x̂_{t+1}u_{t+1}, as in eq. (6) (the OCR'd App. F has −). F_t' is computed exactly,
  F_t'(x) = u_t·∇L(θ†_t + x u_t) − 2x/η (one extra gradient), so it includes the projection residuals
  F_t'(0) = u_t·∇L_t and F_t''(0) = S_t − 2/η; the "code" form uses the same directional gradient, as
  the authors' code does. F is *not* symmetrized (App. F.2 allows taking its even part; the code does
  not, and the odd part only adds period-2 oscillation).
* Theorem 1 (``predicted_observables``): L(θ_t) ≈ L(θ†_t) + x̂_t²/η, S(θ_t) ≈ 2/η + ŷ_t + (∇S_t·u_t) x̂_t.
  Generalized (App. F.2, ``generalized_observables``): L ≈ L(θ†_t + x̂_t u_t) = L(θ†_t) + x̂²/η + F_t(x̂),
  S ≈ 2/η + ŷ_t + F_t''(x̂_t).
* Eq. (3) (``simplified_step``), ODE (4) (``envelope_field``, ``envelope_rk4_step``), Lemma 3's conserved
  g (``conserved_g``) and the leading-order per-step drift of g under the discrete map
  (``discrete_g_drift``): map (3) is not conservative, unlike ODE (4) (§4.2, Lemma 3).

Vectors are flat (P,), in ``ravel_pytree`` order. Hessian products use ``curvature.hvp.hvp_fn`` (1 HVP
per predicted step). All functions are pure and jittable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.third_order import perp
from eosdsl.dynamics.constrained import TaylorCenter
from eosdsl.dynamics.flow import rk4_step

Params = Any
Array = jax.Array
Loss = Callable[[Params], Array]


# ------------------------------------------------------------------------- deviation coordinates


class Deviation(NamedTuple):
    """Def. 5: v = θ − θ† (P,), x = u·v, y = ∇S⊥·v."""

    v: Array
    x: Array
    y: Array


def coordinates(v: Array, center: TaylorCenter) -> Deviation:
    """(v, u·v, ∇S⊥·v) for a flat deviation v (P,) in the frame of ``center``."""
    return Deviation(v, jnp.vdot(center.u, v), jnp.vdot(perp(center.grad_s, center.u), v))


def deviation(params: Params, center: TaylorCenter) -> Deviation:
    """Def. 5 for the GD iterate ``params`` against θ†_t = ``center.params``."""
    v = ravel_pytree(params)[0] - ravel_pytree(center.params)[0]
    return coordinates(v, center)


def _delta2(center: TaylorCenter) -> Array:
    """δ_t² = 2α_t/β_t, *signed* (the term η∇S⊥(δ² − x²)/2 re-adds the ∇S⊥ part of −η∇L removed by M)."""
    gs_perp = perp(center.grad_s, center.u)
    beta = jnp.sum(gs_perp**2)
    alpha = -jnp.vdot(center.grad, center.grad_s)
    return jnp.where(beta > 0, 2.0 * alpha / jnp.where(beta > 0, beta, 1.0), 0.0)


# ------------------------------------------------------------------------- the 1-D loss along u


class AlongU(NamedTuple):
    """φ(x) = L(θ† + x u) and its first two derivatives in x."""

    value: Array
    slope: Array
    curvature: Array


def along_u(loss: Loss, center: TaylorCenter, x: Array | float) -> AlongU:
    """φ(x), φ'(x) = u·∇L(θ† + xu), φ''(x) = uᵀ∇²L(θ† + xu)u, by forward-over-forward along the line."""
    flat, unravel = ravel_pytree(center.params)

    def phi(s: Array) -> Array:
        return loss(unravel(flat + s * center.u))

    def dphi(s: Array) -> Array:
        return jax.jvp(phi, (s,), (jnp.ones_like(s),))[1]

    x = jnp.asarray(x, flat.dtype)
    slope, curvature = jax.jvp(dphi, (x,), (jnp.ones_like(x),))
    return AlongU(phi(x), slope, curvature)


def nonquadratic_part(loss: Loss, center: TaylorCenter, x: Array | float, eta: Array | float) -> AlongU:
    """App. F: F_t(x) = L(θ†+xu) − L(θ†) − x²/η with F_t'(x) and F_t''(x) = φ''(x) − 2/η."""
    a = along_u(loss, center, x)
    return AlongU(a.value - center.loss - x**2 / eta, a.slope - 2.0 * x / eta, a.curvature - 2.0 / eta)


# ------------------------------------------------------------------------- predicted dynamics


def predicted_step(
    loss: Loss,
    center: TaylorCenter,
    next_center: TaylorCenter | None,
    v_hat: Array,
    eta: Array | float,
    *,
    form: str = "paper",
    generalized: bool = False,
) -> Array:
    """v̂_{t+1} from v̂_t (flat (P,)): eq. (6)/Def. 8 (``form="paper"``, needs ``next_center`` for u_{t+1})
    or the authors' code form (``form="code"``, ``next_center`` unused); ``generalized`` (static) replaces
    the quadratic model along u by the exact 1-D loss (App. F, Lemma 5). One HVP at θ†_t (+1 gradient
    when generalized).
    """
    if form not in ("paper", "code"):
        raise ValueError(f"predicted_step: form must be 'paper' or 'code', got {form!r}")
    c = center
    u = c.u
    gs_perp = perp(c.grad_s, u)  # ∇S⊥_t
    x, y = jnp.vdot(u, v_hat), jnp.vdot(gs_perp, v_hat)
    d2 = _delta2(c)
    hvp = hvp_fn(loss, c.params)
    if form == "code":
        if generalized:
            slope = along_u(loss, c, x).slope  # u·∇L(θ† + x̂u) = S x̂ + F'(x̂) + ...
            v_perp = perp(v_hat, u)
            return v_hat - eta * ((x**2 - d2) / 2 * gs_perp + hvp(v_perp) + u * slope + u * x * y)
        return v_hat - eta * ((x**2 - d2) / 2 * gs_perp + hvp(v_hat) + u * x * y)
    if next_center is None:
        raise ValueError("predicted_step: form='paper' needs next_center (for u_{t+1})")
    u1 = next_center.u
    v_perp = perp(v_hat, u)  # P⊥_{u_t} v̂
    w = v_perp - eta * hvp(v_perp) + eta * gs_perp * (d2 - x**2) / 2
    x_next = -(1.0 + eta * y) * x
    if generalized:
        x_next = x_next - eta * nonquadratic_part(loss, c, x, eta).slope
    return perp(w, u1) + x_next * u1


class PredictedObservables(NamedTuple):
    """Theorem 1's predictions from (x̂, ŷ) at θ†_t."""

    loss: Array  # L(θ†) + x̂²/η   (generalized: L(θ† + x̂u))
    sharpness: Array  # 2/η + ŷ + (∇S·u) x̂   (generalized: 2/η + ŷ + F''(x̂))
    sharpness_avg: Array  # 2/η + ŷ: the part that survives a two-step average (the code's S_avg)
    x: Array
    y: Array


def predicted_observables(center: TaylorCenter, v_hat: Array, eta: Array | float) -> PredictedObservables:
    """Theorem 1: L̂ = L(θ†) + x̂²/η, Ŝ = 2/η + ŷ + (∇S·u)x̂, and 2/η + ŷ.

    Pass the true v = θ − θ† instead of v̂ for a phase-independent check of Theorem 1 (§5.3).
    """
    d = coordinates(v_hat, center)
    s_avg = 2.0 / eta + d.y
    s = s_avg + jnp.vdot(center.grad_s, center.u) * d.x
    return PredictedObservables(center.loss + d.x**2 / eta, s, s_avg, d.x, d.y)


def generalized_observables(
    loss: Loss, center: TaylorCenter, v_hat: Array, eta: Array | float
) -> PredictedObservables:
    """App. F.2: L̂ = L(θ† + x̂u) = L(θ†) + x̂²/η + F(x̂), Ŝ = 2/η + ŷ + F''(x̂) (1 HVP-cost along the line)."""
    d = coordinates(v_hat, center)
    a = along_u(loss, center, d.x)
    s_avg = 2.0 / eta + d.y
    return PredictedObservables(a.value, s_avg + a.curvature - 2.0 / eta, s_avg, d.x, d.y)


# ------------------------------------------------------------------------- the 2-D models (§4)


def simplified_step(
    x: Array, y: Array, eta: Array | float, alpha: Array | float, beta: Array | float
) -> tuple[Array, Array]:
    """Eq. (3): x' = −(1 + ηy)x, y' = y + η(α − βx²/2)."""
    return -(1.0 + eta * y) * x, y + eta * (alpha - beta * x**2 / 2)


def envelope_field(
    state: tuple[Array, Array], alpha: Array | float, beta: Array | float
) -> tuple[Array, Array]:
    """ODE (4): X' = XY, Y' = α − βX²/2, in τ = η·(step index)."""
    big_x, big_y = state
    return big_x * big_y, alpha - beta * big_x**2 / 2


def envelope_rk4_step(
    state: tuple[Array, Array], dtau: Array | float, alpha: Array | float, beta: Array | float
) -> tuple[Array, Array]:
    """One RK4 step of ODE (4) over ``dtau``."""
    return rk4_step(lambda s: envelope_field(s, alpha, beta), state, dtau)


def conserved_g(big_x: Array, big_y: Array, alpha: Array | float, beta: Array | float) -> Array:
    """Lemma 3: g = h(βX²/(2α)) + Y²/α with h(z) = z − log z − 1; constant along ODE (4)."""
    z = beta * big_x**2 / (2.0 * alpha)
    return z - jnp.log(z) - 1.0 + big_y**2 / alpha


def discrete_g_drift(
    big_x: Array, big_y: Array, eta: Array | float, alpha: Array | float, beta: Array | float
) -> Array:
    """Leading-order change of g in one step of map (3) on (|x|, y) (g of Lemma 3, §4.2):

    Δg = (2/α) ΔH,  ΔH = (η²/2)[(βX²/2 − α)² + Y²(βX²/2 + α)] + O(η³) > 0,
    from q = log X, p = Y, H = p²/2 + βX²/4 − α log X, and the explicit update q' = q + log(1 + ηp),
    p' = p − η(βX²/2 − α).
    """
    a = beta * big_x**2 / 2
    return (eta**2 / alpha) * ((a - alpha) ** 2 + big_y**2 * (a + alpha))
