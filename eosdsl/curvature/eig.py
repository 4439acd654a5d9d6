"""The result type shared by the top-k eigensolvers, and the certificates that come with it.

Every solver in ``eosdsl.curvature`` (``dense.dense_top``, ``lanczos.lanczos_top``, ``lobpcg.lobpcg_top``,
``power.power_top`` and the dispatcher ``solve.top_eigenpairs``) returns an ``EigResult``: the top-k
*algebraic* Ritz pairs (θ_i, v_i) of a symmetric operator H, each with the true residual
r_i = ‖H v_i − θ_i v_i‖ of the returned vector, so that ``residual_interval`` certifies an eigenvalue of H
within r_i of θ_i whatever the iteration did, and ``relative_residuals`` puts r_i on the scale of the
returned block for a solver-independent convergence test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on GPUs for the basis algebra


class EigResult(NamedTuple):
    """Top-k Ritz pairs of a symmetric operator with their certificates.

    ``values``: (k,) top-k algebraic Ritz values, descending. ``vectors``: (k, P) unit Ritz vectors.
    ``residuals``: (k,) true residuals ‖H v_i − θ_i v_i‖ of the returned vectors (computed with H applied to
    exactly those vectors); by ``residual_interval`` some eigenvalue of H lies in [θ_i − r_i, θ_i + r_i].
    ``iterations``: the solver's own iteration count (Lanczos steps, LOBPCG or power iterations, 0 for
    dense). ``hvps``: every application of the operator to one vector, certification included.
    ``capped``: () bool, True when an iterative solver stopped at its ``max_iters`` cap without meeting its
    tolerance and without detecting stagnation (``lobpcg_top``, ``power_top``); False for fixed-cost
    solvers (dense, Lanczos). The residuals are true either way; the flag says the run did not converge.
    """

    values: Array  # (k,)
    vectors: Array  # (k, P)
    residuals: Array  # (k,)
    iterations: Array  # () int
    hvps: Array  # () int
    capped: Array | bool = False  # () bool


def residual_interval(value: Array, residual: Array) -> tuple[Array, Array]:
    """The certified interval (θ − r, θ + r) that contains an eigenvalue of H.

    Residual bound (Parlett, *The Symmetric Eigenvalue Problem*, Thm 4.5.1; equivalently Bauer–Fike /
    Weyl for normal matrices): for symmetric H, any unit vector v and any scalar θ,

        min_λ∈spec(H) |λ − θ| ≤ ‖Hv − θv‖.

    (Proof: expand v in the orthonormal eigenbasis, ‖Hv − θv‖² = Σ c_i²(λ_i − θ)² ≥ min_i (λ_i − θ)².)
    So with r = ``residual`` from any solver here (a true residual, computed with H applied to the returned
    vector) the interval holds an eigenvalue whatever the iteration did. It does *not* by itself say which
    eigenvalue: that θ₁ approximates λ_max is supported by θ₁ ≤ λ_max (a Rayleigh quotient, up to
    round-off) and by convergence, not certified. Works elementwise on arrays of values and residuals.
    """
    return value - residual, value + residual


def relative_residuals(result: EigResult) -> Array:
    """r_i / max_j |θ_j|: residuals on the scale of the returned top block. (k,), or (..., k) if batched.

    The scale s = max_j |θ_j| over the k returned values (the last axis) is a lower bound on ‖H‖₂ up to
    round-off, so r_i / s ≤ tol says the interval ``residual_interval`` gives is tol·s wide, i.e. θ_i is
    certified to relative accuracy tol *of the top of the spectrum* (not of θ_i itself, which may be near
    0). This is the stopping test of ``lobpcg_top`` and ``power_top``. Guard: where s = 0 (H = 0 on the
    block) the scale is taken as 1, so zero residuals stay 0 and nonzero ones are reported absolutely.
    """
    scale = jnp.max(jnp.abs(result.values), axis=-1, keepdims=True)
    return result.residuals / jnp.where(scale > 0, scale, jnp.ones_like(scale))


ROW_BATCH = 8
"""Rows per vectorized HVP batch in :func:`apply_rows` (LOBPCG blocks are usually ≤ 8 rows)."""


def apply_rows(matvec: Callable[[Array], Array], rows: Array, dtype: jnp.dtype) -> Array:
    """H applied to each row of ``rows`` (n, P): n HVPs, vectorized in batches of ``ROW_BATCH`` rows.

    A batch of rows is one ``vmap``-ped product (matrix–matrix work, ~1.6× the cost of one HVP for two
    rows on CPU instead of 2×); batches run one after another (``lax.map``) so that peak memory stays at
    ``ROW_BATCH`` HVPs' activations however many rows there are. (n, P).
    """
    return lax.map(lambda v: matvec(v).astype(dtype), rows, batch_size=min(ROW_BATCH, rows.shape[0]))


def certify(matvec: Callable[[Array], Array], values: Array, vectors: Array, dtype: jnp.dtype) -> Array:
    """True residuals ‖H v_i − θ_i v_i‖ of (k,) ``values`` and (k, P) unit ``vectors``: k HVPs. (k,)."""
    hv = apply_rows(matvec, vectors, dtype)  # (k, P)
    return jnp.linalg.norm(hv - values[:, None] * vectors, axis=1)
