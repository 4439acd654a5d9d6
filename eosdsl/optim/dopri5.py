"""The Dormand–Prince 5(4) embedded Runge–Kutta method with adaptive step size, in one ``lax.while_loop``.

Dormand & Prince (1980), as in Hairer, Nørsett & Wanner, *Solving ODEs I* (HNW), §II.4–II.5 (Table 5.2,
the DOPRI5 code). For the autonomous ODE y' = f(y), one attempted step of size h from y is

    k₁ = f(y),  k_i = f(y + h Σ_{j<i} a_ij k_j)  (i = 2..7),
    y₁ = y + h Σ b_i k_i          (order 5; b = row 7 of a, so k₇ = f(y₁): "first same as last"),
    err = h Σ (b_i − b̂_i) k_i     (y₁ − ŷ₁, ŷ₁ the embedded order-4 solution).

Error norm (HNW (4.11)): ‖err‖ = √(mean_i (err_i / sc_i)²), sc_i = atol + rtol·max(|y_i|, |y₁_i|). A step
is accepted iff ‖err‖ ≤ 1; either way the next step is h·min(facmax, max(facmin, safety·‖err‖^(−1/5)))
(HNW (4.13)), with safety 0.9, facmin 0.2 and facmax 10 as in the DOPRI5 code (HNW's text suggests
facmax between 1.5 and 5), and facmax = 1 right after a rejection. After a step shortened to land at
the end, the next proposal is never below the step proposed before the cut. The first step of an
integration comes from HNW's starting-step algorithm (§II.4, "Starting Step Size").

:func:`integrate` advances y over a time interval T, landing exactly at T (the step that would pass T,
or reach within 1% of it, is cut to end there). At most ``max_steps`` steps are attempted (accepted or
rejected): the last one allowed is forced to end at T and accepted whatever its error, and ``capped``
says whether that forced step missed the tolerance (‖err‖ > 1). A step size that has shrunk to
≤ 10ε·|T| (ε the dtype's machine epsilon; it could not advance t: DOPRI5's "step size too small") forces
the landing step at once in the same way.

Non-finite values. If y or f(y) is not finite (at the start or after an accepted step) the integration
stops at once: t is set to T, y is left as it is (it or f(y) non-finite: the caller sees the blow-up
at its next evaluation) and ``capped`` is set, after no further right-hand-side evaluations. A
non-finite error estimate from a finite y and f(y) (a trial step too long: a stage overflowed or left
f's domain) counts as a rejection and shrinks h by facmin; if that goes on, h reaches the "too small"
bound after ~log₅(h/(10ε|T|)) rejections (about 20) and the forced step ends the interval, capped —
never the whole cap of attempts.

Pure and jittable; under ``vmap`` the loop runs until every lane has finished, finished lanes unchanged
(``while_loop``'s batching rule), so a lane's result does not depend on its neighbours; a lane that
stops at once costs its neighbours nothing. Forward-mode only, like every while loop.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction as F
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

A: tuple[tuple[F, ...], ...] = (
    (F(1, 5),),
    (F(3, 40), F(9, 40)),
    (F(44, 45), F(-56, 15), F(32, 9)),
    (F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)),
    (F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)),
    (F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)),
)
"""Butcher tableau of Dormand–Prince 5(4) (HNW Table 5.2), exact fractions: row i − 1 holds a_ij of stage
i = 2..7."""
C: tuple[F, ...] = (F(0), F(1, 5), F(3, 10), F(4, 5), F(8, 9), F(1), F(1))
"""Nodes c_i (= Σ_j a_ij; the method is applied to autonomous systems, so c only documents the tableau)."""
B: tuple[F, ...] = (*A[-1], F(0))
"""Fifth-order weights (the last row of a, with b₇ = 0)."""
B_HAT: tuple[F, ...] = (
    F(5179, 57600),
    F(0),
    F(7571, 16695),
    F(393, 640),
    F(-92097, 339200),
    F(187, 2100),
    F(1, 40),
)
"""Embedded fourth-order weights."""

SAFETY, FAC_MIN, FAC_MAX = 0.9, 0.2, 10.0
"""Step-size controller constants of the DOPRI5 code (the controller is HNW (4.13); HNW's text suggests
facmax between 1.5 and 5)."""
TOO_SMALL = 10.0
"""A step size ≤ TOO_SMALL·ε·|T| forces the landing step (DOPRI5: 0.1|h| ≤ |x|·uround)."""
LAND = 1.01
"""A step that reaches within 1% of the end of the interval is stretched to land on it (as in DOPRI5)."""


class Result(NamedTuple):
    """One call of :func:`integrate`."""

    y: Array  # y(T)
    h_next: Array  # the step size the controller proposes after T (the next interval's first try)
    accepted: Array  # int32: accepted steps
    rejected: Array  # int32: rejected steps
    capped: Array  # bool: a forced last step missed the tolerance, or y / f(y) went non-finite


def error_norm(err: Array, y: Array, y_new: Array, rtol: Array, atol: Array) -> Array:
    """HNW (4.11): √(mean((err / (atol + rtol·max(|y|, |y_new|)))²))."""
    scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new))
    return jnp.sqrt(jnp.mean((err / scale) ** 2))


def attempt(f: Callable[[Array], Array], y: Array, k1: Array, h: Array) -> tuple[Array, Array, Array]:
    """One Dormand–Prince step of size h from y with k₁ = f(y): (y₁, err = y₁ − ŷ₁, k₇ = f(y₁))."""
    dtype = y.dtype
    ks = [k1]
    for row in A[:-1]:  # stages 2..6; stage 7 is f(y₁) (FSAL)
        ks.append(f(y + h * sum(float(a) * k for a, k in zip(row, ks, strict=False) if a != 0)))
    y1 = y + h * sum(float(b) * k for b, k in zip(B, ks, strict=False) if b != 0)
    k7 = f(y1)
    ks.append(k7)
    err = h * sum(float(b - bh) * k for b, bh, k in zip(B, B_HAT, ks, strict=True) if b != bh)
    return y1.astype(dtype), jnp.asarray(err, dtype), k7


def initial_step(
    f: Callable[[Array], Array], y: Array, k1: Array, span: Array, rtol: Array, atol: Array
) -> Array:
    """HNW §II.4 starting step for order 5: d₀ = ‖y‖, d₁ = ‖f(y)‖ (norms scaled by atol + rtol|y|),
    h₀ = 0.01·d₀/d₁ (1e-6 if either is below 1e-5), d₂ = ‖f(y + h₀f(y)) − f(y)‖/h₀,
    h₁ = (0.01/max(d₁, d₂))^(1/5) (max(1e-6, 1e-3·h₀) if that max is ≤ 1e-15); h = min(100h₀, h₁, span).
    If f(y + h₀f(y)) is not finite (the probe left f's domain), h₁ = facmin·h₀ (as after a rejection)."""
    scale = atol + rtol * jnp.abs(y)
    rms = lambda v: jnp.sqrt(jnp.mean((v / scale) ** 2))  # noqa: E731
    d0, d1 = rms(y), rms(k1)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, 1e-6, 0.01 * d0 / jnp.where(small, 1.0, d1))
    h0 = jnp.minimum(h0, span)
    d2 = rms(f(y + h0 * k1) - k1) / jnp.where(h0 > 0, h0, 1.0)  # (span 0: h₀ = 0, nothing to take)
    probed = jnp.isfinite(d2)
    big = jnp.maximum(d1, jnp.where(probed, d2, 0.0))
    h1 = jnp.where(
        big <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.where(big <= 1e-15, 1.0, big)) ** (1 / 5)
    )
    h1 = jnp.where(probed, h1, FAC_MIN * h0)  # f is not finite at y + h₀f(y): shrink as a rejection would
    return jnp.minimum(jnp.minimum(100 * h0, h1), span).astype(y.dtype)


class _Carry(NamedTuple):
    t: Array  # time reached in [0, span]
    y: Array
    k1: Array  # f(y) (reused from the last accepted step's k₇)
    h: Array  # the controller's proposed next step
    accepted: Array
    rejected: Array
    after_reject: Array  # bool: the last attempt was rejected (facmax = 1)
    capped: Array


def _finite(*arrays: Array) -> Array:
    """Whether every entry of every array is finite (one bool)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


def integrate(
    f: Callable[[Array], Array],
    y0: Array,
    span: Array,
    rtol: Array,
    atol: Array,
    max_steps: int,
    h0: Array,
) -> Result:
    """y(span) of y' = f(y), y(0) = y0 (a 1-D array), span ≥ 0 (negative: integrated backwards, as
    y' = −f over |span|), to the tolerance (rtol, atol) by adaptive Dormand–Prince steps (module
    docstring), at most ``max_steps`` (static) attempted. ``h0`` > 0: the first step tried (a previous
    interval's ``h_next``); ``h0`` ≤ 0: chosen by :func:`initial_step`, which is evaluated only then
    (``lax.cond``; under ``vmap`` with a batched ``h0`` the cond becomes a select and both sides run).
    A non-finite y0 or f(y0) returns at once: y0, no steps, capped."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be ≥ 1; got {max_steps}")
    dtype = y0.dtype
    sign = jnp.where(span < 0, -1.0, 1.0).astype(dtype)
    length = jnp.abs(span).astype(dtype)
    g = lambda y: sign * f(y)  # noqa: E731
    k1 = g(y0)
    h_start = lax.cond(
        h0 > 0,
        lambda: jnp.asarray(h0, dtype),
        lambda: initial_step(g, y0, k1, length, rtol, atol),
    )
    tiny = (TOO_SMALL * jnp.finfo(dtype).eps * length).astype(dtype)
    zero = jnp.zeros((), jnp.int32)
    bad = ~_finite(y0, k1)  # nothing to integrate from: stop at once
    start = _Carry(
        jnp.where(bad, length, 0).astype(dtype), y0, k1, h_start, zero, zero, jnp.array(False), bad
    )

    def running(c: _Carry) -> Array:
        return (c.t < length) & (c.accepted + c.rejected < max_steps)

    def body(c: _Carry) -> _Carry:
        remaining = length - c.t
        # the last attempt the cap allows, or a step too small to advance t: land now, whatever the error
        forced = (c.accepted + c.rejected == max_steps - 1) | ~(c.h > tiny)
        lands = forced | (LAND * c.h >= remaining)
        h = jnp.where(lands, remaining, c.h)
        y1, err, k7 = attempt(g, c.y, c.k1, h)
        norm = error_norm(err, c.y, y1, rtol, atol)
        ok = norm <= 1.0
        accept = ok | forced
        blown = accept & ~_finite(y1, k7)  # accepted into a non-finite y or f(y): stop here
        fac_max = jnp.where(c.after_reject, 1.0, FAC_MAX)
        fac = jnp.where(
            jnp.isfinite(norm) & (norm > 0),
            jnp.clip(SAFETY * jnp.where(norm > 0, norm, 1.0) ** -0.2, FAC_MIN, fac_max),
            jnp.where(norm == 0, fac_max, FAC_MIN),
        )
        h_next = (h * fac).astype(dtype)
        # a step cut short to land proposes no less than the step the controller wanted before the cut
        h_next = jnp.where(lands & ok & (fac >= 1), jnp.maximum(h_next, c.h), h_next)
        return _Carry(
            t=jnp.where(accept, jnp.where(lands | blown, length, c.t + h), c.t),
            y=jnp.where(accept, y1, c.y),
            k1=jnp.where(accept, k7, c.k1),
            h=h_next,
            accepted=c.accepted + accept.astype(jnp.int32),
            rejected=c.rejected + (~accept).astype(jnp.int32),
            after_reject=~accept,
            capped=c.capped | (forced & ~ok) | blown,
        )

    end = lax.while_loop(running, body, start)
    return Result(end.y, end.h, end.accepted, end.rejected, end.capped)
