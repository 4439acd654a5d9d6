"""One entry point for the top-k eigenpairs of a symmetric operator, cold or warm-started.

``top_eigenpairs`` picks a solver by ``method``; all return ``Solve(result, block)``:

* ``result``: ``EigResult`` with k rows (values descending, (k, P) unit vectors, true residuals),
  ``hvps`` the total operator applications of the call (seeding included), and ``capped`` (the iterative
  solver stopped at ``max_iters`` unconverged);
* ``block``: a (b, P) orthonormal-ish block of the current top-b Ritz vectors (``"power"``: row 0 the
  next power iterate), b = ``block`` size (default max(k, 2)), to carry to the next call as ``warm``
  (e.g. in the engine's ``lax.scan`` state).

Methods (b ≥ k rows are computed, k returned):

* ``"dense"``: ``dense.dense_top`` on the (dim, dim) matrix built by dim HVPs. Exact to round-off.
* ``"lanczos"``: ``iters`` Lanczos steps from a random start (``key``); k certification HVPs. Fixed cost
  ``iters + k``, accuracy not controlled by ``tol`` (judge it by the residuals). Ignores ``warm``.
* ``"lobpcg"``: block LOBPCG to relative max(``tol``, √P·ε), stopping early on stagnation, values certified
  by one fresh HVP per returned vector (``lobpcg.lobpcg_top``), started from ``warm`` if given,
  else from the top-b Ritz vectors of ``iters`` Lanczos steps (cold start: Lanczos is the faster cold
  solver, LOBPCG the refinement that reaches ``tol`` and produces a block worth carrying).
* ``"power"``: power iteration on H + ``shift``·I (k = 1 only; see ``power.power_top`` for the shift),
  started from ``warm[0]`` if given, else from the top Lanczos Ritz vector of ``iters`` steps; the block
  it hands on holds the next iterate unit((H + σI)v) of the returned v (free: Hv is already computed).
* ``"auto"``: ``"dense"`` when dim ≤ ``dense_max``, else ``"lobpcg"``.

Within a jitted step where whether the carried block is usable is a *traced* flag (first measurement, or
after a reset), use ``top_eigenpairs_warm``: it selects warm vs cold with ``lax.cond``, so the caller never
branches in Python on a traced value. Under ``jax.vmap`` a ``lax.cond`` on a batched flag runs both branches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from eosdsl.curvature.dense import dense_top
from eosdsl.curvature.eig import EigResult, certify
from eosdsl.curvature.lanczos import lanczos_ritz
from eosdsl.curvature.lobpcg import lobpcg_top_block
from eosdsl.curvature.power import power_top_and_next

Array = jax.Array

METHODS = ("dense", "lanczos", "lobpcg", "power", "auto")


class Solve(NamedTuple):
    """``result``: the top-k ``EigResult`` (hvps = everything this call spent). ``block``: (b, P) rows,
    the ``warm`` for the next call: the top-b Ritz vectors (with ``"power"``, row 0 is the next power
    iterate instead)."""

    result: EigResult
    block: Array  # (b, P)


def _take(res: EigResult, k: int) -> EigResult:
    return res._replace(
        values=res.values[:k],
        vectors=res.vectors[:k],
        residuals=res.residuals[:k],
        capped=jnp.asarray(res.capped),
    )


def top_eigenpairs(
    matvec: Callable[[Array], Array],
    dim: int,
    dtype: jnp.dtype | type,
    *,
    method: str = "auto",
    k: int = 1,
    block: int | None = None,
    tol: float | Array = 1e-6,
    iters: int = 20,
    max_iters: int = 100,
    key: Array | None = None,
    warm: Array | None = None,
    dense_max: int = 2048,
    shift: float | Array = 0.0,
    warm_previous: Array | None = None,
) -> Solve:
    """Top-k algebraic eigenpairs of the symmetric operator ``matvec`` on ℝ^dim (see the module docstring).

    Statics: ``dim``, ``dtype``, ``method``, ``k``, ``block`` (b, default max(k, 2), capped at dim),
    ``iters`` (Lanczos steps of a cold start / of ``"lanczos"``), ``max_iters`` (LOBPCG / power iterations),
    ``dense_max`` and whether ``warm`` is None. Traced: ``tol`` (relative: residual ≤ tol·max_j|θ_j|),
    ``key`` (needed for a cold start), ``warm`` ((b, P), any rows; cast to ``dtype``), ``shift``.
    ``warm_previous``: the block of the measurement before ``warm``'s ((b, P), zero rows allowed), with
    ``warm`` and ``"lobpcg"``: LOBPCG starts from the Rayleigh–Ritz of both (min(2b, P) rows and HVPs), keeps
    the top b — at the edge of stability the Hessian two steps back is the closer one.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    b = min(dim, max(k, 2) if block is None else block)
    if not 1 <= k <= b:
        raise ValueError(f"need 1 ≤ k ≤ block ≤ dim; got k={k}, block={block}, dim={dim}")
    dtype = jnp.dtype(dtype)
    if method == "auto":
        method = "dense" if dim <= dense_max else "lobpcg"
    if warm is not None and warm.shape != (b, dim):
        raise ValueError(f"warm must have shape (block, dim) = {(b, dim)}; got {warm.shape}")

    if method == "dense":
        res = dense_top(matvec, dim, b, dtype)
        return Solve(_take(res, k), res.vectors)

    if method == "lanczos" or warm is None:
        if key is None:
            raise ValueError(f"method {method!r} without a warm block needs a PRNG key for Lanczos")
        steps = min(iters, dim)
        values, x0 = lanczos_ritz(matvec, dim, b, iters, key, dtype)  # (b,), (b, P): `steps` HVPs
    else:
        steps, x0 = 0, warm.astype(dtype)
    if warm_previous is not None and warm_previous.shape != (b, dim):
        raise ValueError(f"warm_previous must have shape {(b, dim)}; got {warm_previous.shape}")

    if method == "lanczos":
        residuals = certify(matvec, values[:k], x0[:k], dtype)  # k HVPs
        counts = jnp.asarray(steps), jnp.asarray(steps + k)
        res = EigResult(values[:k], x0[:k], residuals, *counts, capped=jnp.asarray(False))
        return Solve(res, x0)
    if method == "lobpcg":
        if warm is not None and warm_previous is not None:
            x0 = jnp.concatenate([x0, warm_previous.astype(dtype)])[:dim]  # (min(2b, P), P)
        res, blk = lobpcg_top_block(matvec, x0, k, tol, max_iters, block=b)
        return Solve(res._replace(hvps=res.hvps + steps), blk)
    if k != 1:
        raise ValueError(f"method 'power' computes k = 1 only; got k={k}")
    res, following = power_top_and_next(matvec, x0[0], tol, max_iters, shift)
    return Solve(res._replace(hvps=res.hvps + steps), x0.at[0].set(following))


def top_eigenpairs_warm(
    matvec: Callable[[Array], Array],
    dim: int,
    dtype: jnp.dtype | type,
    *,
    warm_block: Array,
    warm_valid: bool | Array,
    key: Array,
    method: str = "auto",
    k: int = 1,
    block: int | None = None,
    tol: float | Array = 1e-6,
    iters: int = 20,
    max_iters: int = 100,
    dense_max: int = 2048,
    shift: float | Array = 0.0,
    cond: Callable[..., Any] = lax.cond,
    warm_previous: Array | None = None,
) -> Solve:
    """``top_eigenpairs`` from ``warm_block`` (b, P) where the traced ``warm_valid`` holds, else cold.

    Cold = Lanczos-seeded from ``key``; the two are selected by ``cond`` (``lax.cond``, or a caller's
    equivalent that stays a conditional under ``vmap``, e.g. ``engine.lanes.Lanes.cond``) and return
    the same shapes, so the engine can carry ``Solve.block`` in its scan state (initialized to zeros of
    shape (b, P)) and pass e.g. ``warm_valid = has_measured``, with no Python branch on a traced value.
    ``warm_previous``: the block before ``warm_block`` (see ``top_eigenpairs``). Other arguments as
    ``top_eigenpairs``. Methods that take no warm start (``"dense"``, ``"lanczos"``, ``"auto"`` resolving
    to dense) ignore ``warm_block`` and ``warm_valid``.
    """
    kwargs = dict(
        method=method,
        k=k,
        block=block,
        tol=tol,
        iters=iters,
        max_iters=max_iters,
        dense_max=dense_max,
        shift=shift,
    )
    if method in ("dense", "lanczos") or (method == "auto" and dim <= dense_max):
        return top_eigenpairs(matvec, dim, dtype, key=key, **kwargs)
    return cond(
        ~jnp.asarray(warm_valid),
        lambda: top_eigenpairs(matvec, dim, dtype, key=key, **kwargs),  # cold: once per run
        lambda: top_eigenpairs(
            matvec, dim, dtype, key=key, warm=warm_block, warm_previous=warm_previous, **kwargs
        ),
    )
