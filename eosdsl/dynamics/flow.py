"""Gradient-flow reference trajectory dθ/dτ = −∇L(θ) (paper 003 §6 / Fig. 4; App. D.3).

GD step t corresponds to flow time τ = ηt, so one GD step is matched by ``gradient_flow_step`` over
``time = η``. The interval is cut into n = ⌈time·S / (2·fraction)⌉ equal sub-steps h = time/n, so that
h·S ≤ 2·fraction: explicit Euler is stable for h·S < 2 on the top curvature direction (RK4 for
h·S < 2.78), and ``fraction`` < 1 leaves room for accuracy and for S growing inside the interval. The
authors' code uses Euler with ⌈ηS⌉ sub-steps, i.e. h·S ≤ 1: ``method="euler", fraction=0.5``. The paper
does not name an integrator [unspecified]; RK4 (default here) is the higher-order alternative.

``sharpness`` is supplied by the caller (e.g. the last top eigenvalue at θ_GF, or 2/η at the start);
the distance between GF and GD is the caller's job. Pure and jittable; the sub-step count is data, so
the loop is a ``lax.fori_loop`` with a traced trip count (forward-mode only, like any while loop).

``gradient_flow_limit`` runs the same integrator until the flow has (numerically) stopped: the limit
θ* = lim_{τ→∞} θ(τ) of the flow started at θ, its projection onto the set of minimizers (paper 000
App. E.5, the θ*_t of eq. (16)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

Params = Any
Array = jax.Array
PyTree = Any


def euler_step(f: Callable[[PyTree], PyTree], y: PyTree, h: Array | float) -> PyTree:
    """One explicit Euler step y + h f(y) of the autonomous ODE y' = f(y), y a pytree."""
    return jax.tree.map(lambda a, k: a + h * k, y, f(y))


def rk4_step(f: Callable[[PyTree], PyTree], y: PyTree, h: Array | float) -> PyTree:
    """One classical Runge–Kutta 4 step of the autonomous ODE y' = f(y), y a pytree.

    k₁ = f(y), k₂ = f(y + h k₁/2), k₃ = f(y + h k₂/2), k₄ = f(y + h k₃),
    y ← y + h (k₁ + 2k₂ + 2k₃ + k₄)/6.
    """

    def axpy(a: PyTree, k: PyTree, s: Array | float) -> PyTree:
        return jax.tree.map(lambda ai, ki: ai + s * ki, a, k)

    k1 = f(y)
    k2 = f(axpy(y, k1, h / 2))
    k3 = f(axpy(y, k2, h / 2))
    k4 = f(axpy(y, k3, h))
    return jax.tree.map(lambda a, b, c, d, e: a + h * (b + 2 * c + 2 * d + e) / 6, y, k1, k2, k3, k4)


MAX_SUBSTEPS = 1 << 16
"""Cap on the sub-steps of one flow step: a non-finite or absurd S (a diverged or not-yet-started
companion, evaluated but discarded in a vmap-packed program) must not turn into 2³¹ iterations."""


def num_substeps(time: Array | float, sharpness: Array | float, fraction: float = 0.5) -> Array:
    """n = max(1, ⌈time·S / (2·fraction)⌉): the fewest equal sub-steps with h·S ≤ 2·fraction (at most
    :data:`MAX_SUBSTEPS`; 1 for a non-finite S)."""
    s = jnp.where(jnp.isfinite(sharpness), jnp.maximum(sharpness, 0.0), 0.0)
    n = jnp.ceil(jnp.minimum(time * s / (2.0 * fraction), MAX_SUBSTEPS))
    return jnp.maximum(1, n).astype(jnp.int32)


def gradient_flow_step(
    loss: Callable[[Params], Array],
    params: Params,
    time: Array | float,
    sharpness: Array | float,
    *,
    fraction: float = 0.5,
    method: str = "rk4",
) -> Params:
    """Integrate dθ/dτ = −∇L(θ) over ``time`` (η for one GD step) from ``params``.

    ``method`` (static): "rk4" or "euler"; ``num_substeps(time, sharpness, fraction)`` equal sub-steps.
    """
    if method not in ("rk4", "euler"):
        raise ValueError(f"gradient_flow_step: method must be 'rk4' or 'euler', got {method!r}")
    integrator = rk4_step if method == "rk4" else euler_step
    grad = jax.grad(loss)

    def field(p: Params) -> Params:
        return jax.tree.map(jnp.negative, grad(p))

    n = num_substeps(time, sharpness, fraction)
    h = time / n
    return lax.fori_loop(0, n, lambda _, p: integrator(field, p, h), params)


class FlowLimit(NamedTuple):
    """The end of :func:`gradient_flow_limit`: θ*, how far the flow went, and how well it converged."""

    params: Params  # θ*: the flow's end point (the pytree)
    time: Array  # flow time τ integrated
    steps: Array  # integrator sub-steps taken (int32)
    grad_norm: Array  # ‖∇L(θ*)‖: the convergence certificate (≤ tol where the flow converged)
    sharpness: Array  # S at the start of the last round (sets its sub-step), for the caller's warm start
    vector: Array  # its flat unit eigenvector


def gradient_flow_limit(
    loss: Callable[[Params], Array],
    params: Params,
    top_eig: Callable[[Params, Array], tuple[Array, Array, Array]],
    *,
    tol: Array | float,
    horizon: Array | float = jnp.inf,
    max_steps: int = 10_000,
    round_steps: int = 16,
    fraction: float = 0.5,
    method: str = "rk4",
    active: Array | bool = True,
) -> FlowLimit:
    """θ* = lim_{τ→∞} θ(τ) for dθ/dτ = −∇L(θ), θ(0) = ``params`` (paper 000 App. E.5: the projection θ*_t
    of an iterate onto the minimizers along gradient flow).

    The flow is integrated in rounds by :func:`gradient_flow_step`: each round measures S = λ_max(∇²L) at
    its start by ``top_eig(params, u_warm) -> (S, u, residual)`` (warm-started from the previous round's
    eigenvector) and advances the flow by ``round_steps`` sub-steps of h = 2·``fraction``/S (the
    stability budget h·S ≤ 2·fraction of :func:`num_substeps`, re-set as S changes along the flow). It
    stops at the first round end where ‖∇L(θ)‖ ≤ ``tol`` (converged), at flow time ``horizon``, after at
    least ``max_steps`` sub-steps, where S ≤ 0 or is not finite (no step size: the flow is not near a
    minimizer), or at once where ``active`` is false. A ``lax.while_loop``: jittable and vmappable (a
    batched loop runs until every member stops; stopped members keep their values), forward-mode only.

    Accuracy: near a minimizer the flow contracts at the rate of the smallest positive Hessian
    eigenvalue, so ``tol`` is reached only where that rate is not tiny; ``grad_norm`` tells the caller
    whether it was. The limit's error from the integrator is RK4's global error over the transient
    (O(h⁴) per unit time), small where θ starts close to the minimizers.
    """
    grad = jax.grad(loss)
    flat, _ = ravel_pytree(params)

    def grad_norm(p: Params) -> Array:
        return jnp.linalg.norm(ravel_pytree(grad(p))[0])

    def proceed(state: tuple[Any, ...]) -> Array:
        p, tau, steps, g, s, u, stuck = state
        return active & (g > tol) & (tau < horizon) & (steps < max_steps) & ~stuck

    def round_(state: tuple[Any, ...]) -> tuple[Any, ...]:
        p, tau, steps, g, s, u, stuck = state
        s, u, _ = top_eig(p, u)
        stuck = ~(jnp.isfinite(s) & (s > 0))
        safe = jnp.where(stuck, 1.0, s)
        time = jnp.minimum(round_steps * 2.0 * fraction / safe, horizon - tau)
        time = jnp.where(stuck, 0.0, time)
        p = lax.cond(
            stuck,
            lambda q: q,
            lambda q: gradient_flow_step(loss, q, time, safe, fraction=fraction, method=method),
            p,
        )
        n = jnp.where(stuck, 0, num_substeps(time, safe, fraction))
        return p, tau + time, steps + n, grad_norm(p), s, u, stuck

    zero = jnp.zeros((), flat.dtype)
    steps, u, stuck = jnp.zeros((), jnp.int32), jnp.zeros_like(flat), jnp.array(False)
    init = (params, zero, steps, grad_norm(params), zero, u, stuck)
    p, tau, steps, g, s, u, _ = lax.while_loop(proceed, round_, init)
    return FlowLimit(p, tau, steps, g, s, u)
