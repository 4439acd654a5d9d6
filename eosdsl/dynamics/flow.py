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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

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
