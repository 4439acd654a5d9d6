"""Learning-rate schedules η(t) as pure functions of a (traced) step clock.

Schedules are written in *GD-equivalent* learning rate; an optimizer's ``lr_convention`` decides the
rate it applies (paper 000 §2.1: PHB runs at (1+β)η).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp

from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

Resolve = Callable[[object], jnp.ndarray]
ScheduleFn = Callable[[jnp.ndarray], jnp.ndarray]
RateFn = Callable[[jnp.ndarray, Mapping[str, jnp.ndarray]], jnp.ndarray]
"""η_t of (schedule clock, latest measurements by name)."""


def constant(value: jnp.ndarray) -> ScheduleFn:
    """η_t = value."""
    return lambda t: value + 0.0 * t


def linear_warmup(start: jnp.ndarray, end: jnp.ndarray, steps: jnp.ndarray) -> ScheduleFn:
    """η_t = start + (end − start)·min(t/W, 1) (paper 000 §2.1: 10⁻⁸ → η_f over W = η_f·10⁶ steps).

    W = 0 is no warmup (η_t = end), not 0/0 at t = 0.
    """
    return lambda t: start + (end - start) * jnp.where(t >= steps, 1.0, jnp.clip(t / steps, 0.0, 1.0))


def piecewise(boundaries: list[jnp.ndarray], values: list[jnp.ndarray]) -> ScheduleFn:
    """η_t = values[i] where i = #{boundaries ≤ t}."""

    def fn(t: jnp.ndarray) -> jnp.ndarray:
        index = sum((t >= b).astype(jnp.int32) for b in boundaries)
        return jnp.stack(values)[index]

    return fn


def cosine(peak: jnp.ndarray, decay_steps: jnp.ndarray, end: jnp.ndarray, warmup: jnp.ndarray) -> ScheduleFn:
    """Linear warmup 0 → peak over ``warmup`` steps, then η = end + (peak − end)·½(1 + cos(π s)).

    s = (t − warmup)/decay_steps, clipped to [0, 1].
    """

    def fn(t: jnp.ndarray) -> jnp.ndarray:
        warm = peak * jnp.clip(t / jnp.maximum(warmup, 1e-30), 0.0, 1.0)
        s = jnp.clip((t - warmup) / decay_steps, 0.0, 1.0)
        decayed = end + (peak - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * s))
        return jnp.where(t < warmup, warm, decayed)

    return fn


def build_schedule(lr: m.LearningRate, resolve: Resolve) -> ScheduleFn:
    """The schedule function of an optimizer's ``lr`` field (a constant or a schedule model)."""
    if isinstance(lr, m.Constant):
        return constant(resolve(lr.value))
    if isinstance(lr, m.LinearWarmup):
        return linear_warmup(resolve(lr.start), resolve(lr.end), resolve(lr.steps))
    if isinstance(lr, m.Piecewise):
        return piecewise([resolve(b) for b in lr.boundaries], [resolve(v) for v in lr.values])
    if isinstance(lr, m.Cosine):
        return cosine(resolve(lr.peak), resolve(lr.decay_steps), resolve(lr.end), resolve(lr.warmup_steps))
    return constant(resolve(lr))  # a number (a tracer inside the program) or an expression


def build_rate(lr: m.LearningRate, scope: Scope) -> RateFn:
    """η_t of an optimizer's ``lr`` field as a function of the clock and the latest measurements.

    A ``measured`` rate evaluates its expression over the constants and the measurements
    (paper 003 App. G.1: η_t = 1/S(θ_t)); every other schedule reads the clock alone.
    """
    if isinstance(lr, m.Measured):
        return lambda t, latest: scope.child(**latest)(lr.value)
    schedule = build_schedule(lr, scope)
    return lambda t, latest: schedule(t)
