"""Warm-started block LOBPCG for the top-k algebraic eigenpairs of a symmetric operator.

Algorithm: LOBPCG (Knyazev, SIAM J. Sci. Comput. 23(2), 2001) without preconditioner, in the
orthonormal-basis form of Hetmaniuk & Lehoucq (J. Comput. Phys. 218, 2006) and Duersch et al. (SIAM J. Sci.
Comput. 40(5), 2018). Rows are vectors: X (b, P) holds the current orthonormal block, with
HX = H X kept alongside. Each iteration

    R  = HX − diag(θ) X                          residuals of the current Ritz pairs
    W  = orth(R ⟂ [X; P])                        SVQB with dropping, twice (below)
    HW = H W                                     b HVPs, the only ones in the iteration
    S  = [X; P; W],  HS = [HX; HP; HW]           (3b, P), orthonormal rows (dropped ones are 0)
    M  = S HSᵀ (symmetrized) = Y diag(θ) Yᵀ      Rayleigh–Ritz on span(S), top b kept
    X ← Yᵀ S,  HX ← Yᵀ HS
    P ← Zᵀ S,  HP ← Zᵀ HS,   Z = orth((I − YYᵀ) E_X)   (coordinates, E_X = the old X's rows of S)

so that span{X_new, P_new} = span{X_old, X_new} (the "locally optimal" three-term recurrence) while X and P
stay exactly orthonormal and mutually orthogonal. HX and HP are only ever updated by *orthonormal*
coefficient matrices (Y, Z), so their round-off grows additively, ~ε‖H‖ per iteration, never amplified by
the ill-conditioned combinations that make the textbook P = X_new − X_old·c update unstable in float32.

Orthonormalization (SVQB, Stathopoulos & Wu, SIAM J. Sci. Comput. 23(6), 2002, with dropping): rows are
first projected off the given basis (CGS2), scaled to unit norm, then G = WWᵀ = U diag(d) Uᵀ and
W ← diag(1/√d) Uᵀ W for d > τ·max d, rows with d ≤ τ·max d set to 0 (dropped); done twice, so the result is
orthonormal to working precision even in float32. τ = 30·n·ε. A dropped row of S is a zero row: in
Rayleigh–Ritz its diagonal is replaced by a sentinel below every live eigenvalue, so it is never selected.
Near convergence R and (I − YYᵀ)E_X are round-off; their normalized directions are then arbitrary, which is
harmless: any orthonormal direction with H applied exactly (W) or by orthonormal coefficients (P) is a
valid Rayleigh–Ritz direction.

Stopping (relative tolerance): every one of the top-k residuals ‖HX_i − θ_i X_i‖ ≤ tol·max_{j<k}|θ_j| (the
scale of ``eig.relative_residuals``), or ``max_iters`` iterations. The test and the returned residuals use
the carried HX (equal to H applied to the returned vectors up to O(ε‖H‖) round-off; no extra HVPs, so a warm
start that is already converged costs exactly b HVPs). HVPs: b (initial block) + b per iteration.

Everything is a ``lax.while_loop`` over fixed shapes set by x0's (b, P) and the static k: it traces under
``jax.jit``, ``jax.vmap`` (the loop runs until every batch member has stopped; stopped members are frozen
and report their own iteration and HVP counts), ``lax.scan`` and ``lax.cond``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from eosdsl.curvature.eig import HIGHEST, EigResult, apply_rows

Array = jax.Array


def _dot(a: Array, b: Array) -> Array:
    return jnp.dot(a, b, precision=HIGHEST)


def orthonormalize_rows(w: Array, against: Array | None = None) -> Array:
    """Rows of ``w`` (n, P) made orthonormal and ⟂ the rows of ``against`` (m, P); dropped rows are 0.

    SVQB with dropping, twice (see the module docstring). ``against`` must have orthonormal or zero rows.
    The span of the kept rows is that of the projected input up to the dropped directions, whose relative
    size in the row-normalized Gram matrix is below τ = 30·n·ε.
    """
    n = w.shape[0]
    eps = jnp.finfo(w.dtype).eps
    for _ in range(2):
        if against is not None:
            for _ in range(2):  # CGS2
                w = w - _dot(_dot(w, against.T), against)
        norms = jnp.linalg.norm(w, axis=1, keepdims=True)  # (n, 1)
        w = w / jnp.where(norms > 0, norms, 1.0)
        d, u = jnp.linalg.eigh(_dot(w, w.T))  # G = WWᵀ (n, n), d ascending
        keep = d > 30 * n * eps * jnp.maximum(d[-1], jnp.finfo(w.dtype).tiny)
        scale = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, d, 1.0)), 0.0)  # (n,)
        w = _dot((u * scale).T, w)  # (n, P)
    return w


def _rayleigh_ritz(s: Array, hs: Array, live: Array, b: int) -> tuple[Array, Array]:
    """Top-b eigenpairs (descending) of M = S HSᵀ restricted to the live rows: (θ (b,), Y (m, b)).

    Dead (zero) rows get the diagonal sentinel −(2‖M‖_F + tiny) < every live eigenvalue (|λ| ≤ ‖M‖₂ ≤ ‖M‖_F),
    so they are never among the top b while at least b rows are live (X's always are).
    """
    m = _dot(s, hs.T)
    m = 0.5 * (m + m.T)
    both = live[:, None] & live[None, :]
    m = jnp.where(both, m, 0.0)
    sentinel = -(2.0 * jnp.linalg.norm(m) + jnp.finfo(m.dtype).tiny)
    m = m + jnp.diag(jnp.where(live, 0.0, sentinel))
    theta, y = jnp.linalg.eigh(m)  # ascending
    return theta[::-1][:b], y[:, ::-1][:, :b]


def _converged(theta: Array, res: Array, k: int, tol: Array) -> Array:
    """All top-k residuals ≤ tol · max_{j<k} |θ_j| — or some is not finite: iterating on non-finite values
    (a diverged run's Hessian) cannot converge, so stop at once (under ``vmap`` a lane that never stops
    would keep every other lane's loop running to ``max_iters``)."""
    scale = jnp.max(jnp.abs(theta[:k]))
    finite = jnp.all(jnp.isfinite(res[:k])) & jnp.isfinite(scale)
    return jnp.all(res[:k] <= tol * scale) | ~finite


def lobpcg_top_block(
    matvec: Callable[[Array], Array],
    x0: Array,
    k: int,
    tol: float | Array,
    max_iters: int,
) -> tuple[EigResult, Array]:
    """``lobpcg_top`` that also returns the final (b, P) orthonormal block, to warm-start the next call.

    Row i < k of the block is the returned vector i *before* the final reordering by exact Rayleigh
    quotient (the same up to a permutation of near-equal values); rows k..b−1 are the next Ritz vectors.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must be a (b, P) block of start vectors; got shape {x0.shape}")
    b, dim = x0.shape
    if not 1 <= k <= b <= dim:
        raise ValueError(f"need 1 ≤ k ≤ b ≤ P; got k={k}, block b={b}, P={dim}")
    if max_iters < 0:
        raise ValueError(f"max_iters must be ≥ 0; got {max_iters}")
    dtype = x0.dtype
    tol = jnp.asarray(tol, dtype)

    # Start block: orthonormal; rows lost to dependence are refilled from a fixed pseudo-random block.
    x = orthonormalize_rows(x0)
    alive = jnp.linalg.norm(x, axis=1) > 0.5
    fill = jax.random.normal(jax.random.key(0), (b, dim), dtype)
    x = orthonormalize_rows(jnp.where(alive[:, None], x, fill))
    hx = apply_rows(matvec, x, dtype)  # b HVPs
    theta, y = _rayleigh_ritz(x, hx, jnp.ones((b,), bool), b)
    x, hx = _dot(y.T, x), _dot(y.T, hx)

    def residual_norms(x: Array, hx: Array, theta: Array) -> Array:
        return jnp.linalg.norm(hx - theta[:, None] * x, axis=1)  # (b,)

    State = tuple[Array, Array, Array, Array, Array, Array, Array]

    def cond(state: State) -> Array:
        it, x, hx, theta, _, _, res = state
        return (it < max_iters) & ~_converged(theta, res, k, tol)

    def body(state: State) -> State:
        it, x, hx, theta, p, hp, _ = state
        r = hx - theta[:, None] * x  # (b, P)
        w = orthonormalize_rows(r, jnp.concatenate([x, p]))  # (b, P) ⟂ X, P
        hw = apply_rows(matvec, w, dtype)  # b HVPs
        s = jnp.concatenate([x, p, w])  # S: (3b, P)
        hs = jnp.concatenate([hx, hp, hw])  # HS: (3b, P)
        live = jnp.linalg.norm(s, axis=1) > 0.5  # (3b,)
        theta, y = _rayleigh_ritz(s, hs, live, b)  # (b,), (3b, b)
        # P: coordinates of span{X_old, X_new} ⟂ X_new, orthonormal, and off the dead rows of S.
        ex = jnp.eye(3 * b, b, dtype=dtype)  # E_X: the old X's coordinates
        z = ex - _dot(y, y[:b].T)  # (I − YYᵀ)E_X: (3b, b)
        dead = jnp.where(live[:, None], 0.0, jnp.eye(3 * b, dtype=dtype))  # unit rows on dead coords
        zc = orthonormalize_rows(z.T, jnp.concatenate([y.T, dead]))  # (b, 3b)
        x, hx = _dot(y.T, s), _dot(y.T, hs)
        p, hp = _dot(zc, s), _dot(zc, hs)
        return it + 1, x, hx, theta, p, hp, residual_norms(x, hx, theta)

    zeros = jnp.zeros((b, dim), dtype)
    state = (jnp.asarray(0), x, hx, theta, zeros, zeros, residual_norms(x, hx, theta))
    it, x, hx, theta, _, _, _ = lax.while_loop(cond, body, state)

    # The returned pairs come with the H·X the iteration maintains (no certification HVPs): rows are
    # normalized, values are their Rayleigh quotients x·Hx/x·x, residuals ‖Hx − θx‖ from that Hx. It
    # differs from H applied to the final x only by the round-off of forming the combinations
    # X = YᵀS, HX = YᵀHS, O(ε·‖H‖) with ε the dtype's epsilon, far below any tolerance a caller can ask.
    norms = jnp.linalg.norm(x[:k], axis=1)
    vectors, hv = x[:k] / norms[:, None], hx[:k] / norms[:, None]  # (k, P)
    values = jnp.sum(vectors * hv, axis=1)  # (k,)
    order = jnp.argsort(-values)
    values, vectors, hv = values[order], vectors[order], hv[order]
    residuals = jnp.linalg.norm(hv - values[:, None] * vectors, axis=1)
    result = EigResult(
        values=values,
        vectors=vectors,
        residuals=residuals,
        iterations=it,
        hvps=b + b * it,
    )
    return result, x


def lobpcg_top(
    matvec: Callable[[Array], Array],
    x0: Array,
    k: int,
    tol: float | Array,
    max_iters: int,
) -> EigResult:
    """Top-k algebraic eigenpairs of the symmetric ``matvec`` by block LOBPCG warm-started from ``x0``.

    ``x0``: (b, P) start block, b ≥ k (b > k speeds up the k-th pair: its rate is set by the gap to λ_{b+1});
    any rows, orthonormalized here (dependent rows are refilled from a fixed pseudo-random block). Stops when
    every top-k residual ≤ ``tol`` · max_{j<k}|θ_j| (relative), or after ``max_iters`` iterations (static
    int; 0 gives the Rayleigh–Ritz of x0). Returns ``EigResult`` with the residuals of the returned vectors
    (from the maintained H·X, equal to the true residuals up to O(ε‖H‖) round-off)
    and ``hvps`` = b + b·iterations, the exact count of ``matvec`` calls (one vector at a time,
    ``lax.map``). The block's dtype is the working dtype and must be what ``matvec`` accepts.

    Convergence of pair i is linear with a rate set by (λ_i − λ_{b+1}) relative to the spread of the
    spectrum (like Lanczos, but restarted every step, so slower from a cold start; its strength is the warm
    start: a block from a nearby operator needs a few iterations). See the module docstring.
    """
    return lobpcg_top_block(matvec, x0, k, tol, max_iters)[0]
