"""Top-k algebraic eigenpairs of a symmetric operator by Lanczos with full re-orthogonalization.

Algorithm: Lanczos with full re-orthogonalization (Golub & Van Loan, *Matrix Computations*, the chapter
on Lanczos methods; Parlett, *The Symmetric Eigenvalue Problem*, SIAM 1998, ch. 13). Given only v ↦ Hv
for a symmetric H of order P and a random unit q₀, build an orthonormal basis Q = [q₀, …, q_{m−1}] of the
Krylov space K_m(H, q₀) = span{q₀, Hq₀, …, H^{m−1}q₀}:

    w = H q_j,                α_j = q_jᵀ w
    w ← w − Q (Qᵀ w)          (twice: classical Gram–Schmidt twice, "CGS2", against *all* previous q_i)
    β_j = ‖w‖,                q_{j+1} = w / β_j.

Because every q_{j+1} is orthogonal to all previous ones to working precision and H is symmetric,
q_iᵀ H q_j = 0 for |i − j| > 1, so QᵀHQ = T is the tridiagonal matrix with diagonal α and off-diagonal
β₀ … β_{m−2}. Full re-orthogonalization is what keeps this true in floating point: plain three-term
Lanczos loses orthogonality as soon as a Ritz value converges and then produces spurious copies
("ghosts") of converged eigenvalues. It costs O(m² P) flops and m·P memory for Q, on top of m HVPs.

The Ritz pairs are (θ_i, Q y_i) for the eigenpairs (θ_i, y_i) of T. The largest θ converge first to the
largest *algebraic* eigenvalues of H (the most negative end converges too, and is simply not returned).
Each returned Ritz value is certified by one extra HVP: the true residual r_i = ‖H v_i − θ_i v_i‖ (not
the Lanczos estimate β_{m−1}|e_mᵀy_i|, which round-off and breakdown handling can make optimistic).

Breakdown. If β_j ≈ 0 the Krylov space is an invariant subspace of H: its Ritz values are exact
eigenvalues. The iteration then *restarts* inside the same basis (as ARPACK does): a fresh random vector
is orthogonalized (CGS2) against Q and becomes q_{j+1}, with β_j := 0, so T becomes block diagonal: the
earlier blocks are H restricted to invariant subspaces, the last one the Lanczos matrix of a Krylov space in
their orthogonal complement (still invariant under H, by symmetry). T = QᵀHQ still holds, all Ritz pairs
remain valid, and the remaining steps explore the complement (which may hold eigenvalues the start vector
missed). No step is wasted and nothing divides by zero. Breakdown is declared when β_j ≤ ε·max‖Hq_i‖
(ε the dtype's machine epsilon), i.e. at round-off level, where dropping β_j is a backward error of the
size of the round-off already made. Since at most P orthonormal vectors exist, the number of steps is
min(iters, P); with P steps T is similar to H and the eigenvalues are exact to round-off.

Everything is a fixed-length ``lax.scan`` with shapes fixed by the static ``dim``, ``k``, ``iters`` and
``dtype``, so ``lanczos_top`` traces under ``jax.jit`` (with ``matvec`` a closure over traced arrays, e.g.
``hvp_fn(loss, params)``), ``jax.vmap``, ``lax.scan`` and ``lax.cond``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from eosdsl.curvature.eig import HIGHEST as _HIGHEST
from eosdsl.curvature.eig import EigResult, certify, residual_interval

__all__ = ["EigResult", "lanczos_ritz", "lanczos_top", "lanczos_tridiagonal", "residual_interval"]

Array = jax.Array


def _project_out(basis: Array, w: Array) -> Array:
    """w − Q(Qᵀw) twice (CGS2) for the rows of ``basis`` (m, P); unused rows are zero and drop out."""
    for _ in range(2):
        w = w - jnp.dot(jnp.dot(basis, w, precision=_HIGHEST), basis, precision=_HIGHEST)
    return w


def lanczos_tridiagonal(
    matvec: Callable[[Array], Array], start: Array, steps: int, key: Array, dtype: jnp.dtype | type
) -> tuple[Array, Array, Array]:
    """(α, β, Q) of m = ``steps`` Lanczos steps from the unit vector ``start``, with full
    re-orthogonalization (CGS2): α (m,) the diagonal of T = QᵀHQ, β (m − 1,) its off-diagonal, Q (m, P)
    the orthonormal basis. A breakdown (β_j ≤ ε·max‖Hq_i‖: an invariant subspace to round-off, or H = 0)
    restarts with a random unit vector orthogonal to the basis (from ``key`` folded with j) and sets
    β_j = 0, so T stays QᵀHQ, block diagonal. m HVPs; m ≤ P.
    """
    dtype = jnp.dtype(dtype)
    dim = start.shape[0]
    if not 1 <= steps <= dim:
        raise ValueError(f"need 1 ≤ steps ≤ dim; got steps={steps}, dim={dim}")
    eps = jnp.finfo(dtype).eps

    def unit(x: Array) -> Array:
        return x / jnp.linalg.norm(x)

    basis0 = jnp.zeros((steps, dim), dtype).at[0].set(start.astype(dtype))  # rows j+1.. still zero

    def step(carry: tuple[Array, Array], j: Array) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
        basis, scale = carry  # (m, P), () running max ‖Hq_i‖ ≤ ‖H‖
        q = basis[j]  # (P,)
        w = matvec(q).astype(dtype)  # (P,)
        alpha = jnp.dot(q, w, precision=_HIGHEST)
        scale = jnp.maximum(scale, jnp.linalg.norm(w))
        w = _project_out(basis, w)  # ⟂ q_0 … q_j
        beta = jnp.linalg.norm(w)
        broke = beta <= eps * scale

        def restart(_: None) -> tuple[Array, Array]:
            r = unit(jax.random.normal(jax.random.fold_in(key, j), (dim,), dtype))
            return unit(_project_out(basis, r)), jnp.zeros((), dtype)

        def proceed(_: None) -> tuple[Array, Array]:
            return w / jnp.where(broke, 1.0, beta), beta

        q_next, beta = lax.cond(broke, restart, proceed, None)
        basis = basis.at[j + 1].set(q_next, mode="drop")  # the last step's q_m is not kept
        return (basis, scale), (alpha, beta)

    (basis, _), (alphas, betas) = lax.scan(step, (basis0, jnp.zeros((), dtype)), jnp.arange(steps))
    return alphas, betas[:-1], basis


def lanczos_ritz(
    matvec: Callable[[Array], Array],
    dim: int,
    k: int,
    iters: int,
    key: Array,
    dtype: jnp.dtype | type,
) -> tuple[Array, Array]:
    """The k largest Ritz pairs after m = min(iters, dim) Lanczos steps, *uncertified*: m HVPs.

    Returns ``(values, vectors)``, (k,) descending and (k, P) unit rows. This is ``lanczos_top`` without
    the k certification HVPs, for callers that go on to refine the block (``solve.top_eigenpairs`` seeds
    LOBPCG with it, and LOBPCG computes H on the block itself). Same arguments and errors as
    ``lanczos_top``.
    """
    if k < 1 or iters < 1 or dim < 1:
        raise ValueError(f"need k, iters, dim ≥ 1; got k={k}, iters={iters}, dim={dim}")
    steps = min(iters, dim)
    if k > steps:
        raise ValueError(f"k={k} exceeds the number of Lanczos steps min(iters, dim)={steps}")
    dtype = jnp.dtype(dtype)
    key_start, key_restart = jax.random.split(key)
    q0 = jax.random.normal(key_start, (dim,), dtype)
    q0 = q0 / jnp.linalg.norm(q0)  # (P,)
    alphas, off, basis = lanczos_tridiagonal(matvec, q0, steps, key_restart, dtype)  # (m,), (m−1,), (m, P)
    tri = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)  # T: (m, m)
    theta, y = jnp.linalg.eigh(tri)  # ascending; y: (m, m)
    values = theta[::-1][:k]  # (k,) descending
    coeffs = y[:, ::-1][:, :k]  # (m, k)
    vectors = jnp.dot(coeffs.T, basis, precision=_HIGHEST)  # (k, P)
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
    return values, vectors


def lanczos_top(
    matvec: Callable[[Array], Array],
    dim: int,
    k: int,
    iters: int,
    key: Array,
    dtype: jnp.dtype | type,
) -> EigResult:
    """Top-k algebraic eigenpairs of the symmetric operator ``matvec`` (ℝ^dim → ℝ^dim) by Lanczos.

    Runs m = min(iters, dim) Lanczos steps with full re-orthogonalization (CGS2) from a random unit start
    vector drawn from ``key``, takes the k largest eigenpairs (θ_i, y_i) of the m×m tridiagonal T = QᵀHQ,
    maps them back v_i = Qᵀy_i / ‖Qᵀy_i‖, and certifies each with its true residual ‖Hv_i − θ_iv_i‖
    (k more ``matvec`` calls, applied one at a time with ``lax.map`` so peak memory is one HVP's).
    Breakdown (an invariant subspace reached) restarts with a fresh random orthogonal vector, see the
    module docstring. ``dtype`` is that of the Krylov vectors and must be what ``matvec`` accepts (for
    ``hvp_fn``, the flat parameters' dtype). ``dim``, ``k``, ``iters`` and ``dtype`` are static Python
    values; ``matvec`` may close over traced arrays. Call it under ``jax.jit`` (e.g. a wrapper with
    ``static_argnums`` for the statics), ``lax.scan`` or ``lax.cond``.

    Accuracy: Ritz values converge to the extreme eigenvalues at a rate set by the gap of λ_i to the
    rest of the spectrum relative to its spread; use ``residuals`` (``residual_interval``) to judge.
    Cost: (m + k) HVPs, O(m²·dim) flops and an (m, dim) basis in memory.
    """
    values, vectors = lanczos_ritz(matvec, dim, k, iters, key, dtype)
    residuals = certify(matvec, values, vectors, jnp.dtype(dtype))  # (k,): k HVPs, one at a time
    steps = min(iters, dim)
    return EigResult(
        values=values,
        vectors=vectors,
        residuals=residuals,
        iterations=jnp.asarray(steps),
        hvps=jnp.asarray(steps + k),
    )
