"""One-dimensional slices of the loss and the sharpness through the parameters (paper 004 §3.3).

Paper 004 (§3.3, Figs 3, 11) plots s ↦ L(θ_t + s d) and s ↦ S(θ_t + s d) along a unit
direction d (there the normalized gradient d = ∇L/‖∇L‖) to show the "curvature of S". Both are evaluated
here at a static set of m offsets s, one offset at a time (``lax.map``), so peak memory is that of one
evaluation; a curvature of the slice at s = 0 can be read off by a central difference of the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

Params = Any
Array = jax.Array


def _slice(fn: Callable[[Params], Array], params: Params, direction: Array, offsets: Array) -> Array:
    flat, unravel = ravel_pytree(params)  # (P,)
    d = jnp.asarray(direction, flat.dtype)
    if d.shape != flat.shape:
        raise ValueError(f"direction has shape {d.shape}; the flat parameters have shape {flat.shape}")
    d = d / jnp.linalg.norm(d)  # unit
    offsets = jnp.asarray(offsets, flat.dtype)  # (m,)
    return lax.map(lambda s: fn(unravel(flat + s * d)), offsets)  # (m,)


def loss_slice(loss: Callable[[Params], Array], params: Params, direction: Array, offsets: Array) -> Array:
    """L(θ + s d̂) for each offset s, d̂ = direction/‖direction‖. (m,).

    ``direction`` is a flat (P,) vector in ``ravel_pytree(params)`` order (e.g. the flattened gradient or
    an eigenvector from ``lanczos_top``); it is normalized here, so the offsets are Euclidean distances
    in parameter space. ``offsets`` (m,) may include 0 (the current point).
    """
    return _slice(loss, params, direction, offsets)


def sharpness_slice(
    sharpness: Callable[[Params], Array], params: Params, direction: Array, offsets: Array
) -> Array:
    """S(θ + s d̂) for each offset s, with ``sharpness`` a function params ↦ scalar. (m,).

    ``sharpness`` is the caller's top-eigenvalue function, e.g.
    ``lambda p: lanczos_top(hvp_fn(loss, p), P, 1, iters, key, dtype).values[0]`` (the same key at every
    offset keeps the slice smooth) or ``lambda p: top_eigenpair(loss, p).value`` for small problems.
    Direction and offsets as in ``loss_slice``.
    """
    return _slice(sharpness, params, direction, offsets)
