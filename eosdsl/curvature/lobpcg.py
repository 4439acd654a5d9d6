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

Stopping (relative tolerance, attainable in the working precision). The test uses the carried pairs'
own Rayleigh quotients ρ_i = x_i·hx_i / x_i·x_i and residuals r_i = ‖hx_i − ρ_i x_i‖ / ‖x_i‖ (not the
Rayleigh–Ritz θ_i of the symmetrized M: in float32 a length-P inner product carries a relative round-off
of ~√P·ε, so ‖x_i‖² = 1 only to ~√P·ε and hx_i·x_i ≠ θ_i by as much; a residual formed with θ_i then
stalls at ~√P·ε·θ however well x_i has converged — a float32 stall). The loop stops at the
first of

* converged: max_{i<k} r_i ≤ tol_eff · max_{j<k} |ρ_j| with tol_eff = max(tol, √P·ε), the *floor* √P·ε
  being the typical relative round-off of one length-P inner product (random-walk model of a float sum;
  ≈ 9.7e-5 for P = 656,810 in float32, 1.8e-13 in float64): no residual test can be trusted below it;
* stagnated: for ``STALL_ITERS`` = 8 consecutive iterations the relative residual has stayed within
  ``STALL_ZONE`` = 100 × the floor (≈ 1e-2 at P = 656,810 in float32, ≈ 1e-12 at P = 2000 in float64)
  without the best one seen decreasing by a factor ``STALL_FACTOR`` = 0.9: the residual is at the noise
  level of the operator (e.g. the round-off of a float32 HVP, which is not exactly symmetric), and further
  iterations only add HVPs. Plateaus above the zone (a cluster being resolved) are waited out;
* capped: ``max_iters`` iterations (``EigResult.capped`` is then True).

Certification: after the loop the k returned vectors v_i = x_i/‖x_i‖ get one *fresh* HVP each, and the
returned value is their true Rayleigh quotient θ_i = v_i·Hv_i with the true residual ‖Hv_i − θ_i v_i‖ (the
carried HX drifts from H·X by accumulated round-off, which biased the values low by ~1e-5 relative in
float32 at network scale). The carried HX is only ever updated by orthonormal (3b × b) coefficient
matrices, so after j iterations its rows differ from H·X by at most ~ j·3b·ε·‖H‖ (one 3b-term sum per
iteration). When that bound at the cap, ``max_iters``·3b·ε, is below ``CERTIFY_MARGIN``·tol — in float64
at any tolerance ≥ ~3e-7, never in float32 — the fresh products could change the relative value and
residual by at most 10⁻⁶·tol·‖H‖/λ₁ (a hundredth of the tolerance while ‖H‖/λ₁ ≤ 10⁴), so they are
skipped and the carried pairs are returned (:func:`certifies`). HVPs: m (start block; m ≥ b with a
larger start, ``lobpcg_top_block``'s ``block``) + b per iteration + k when certifying.

Everything is a ``lax.while_loop`` over fixed shapes set by x0's (b, P) and the static k: it traces under
``jax.jit``, ``jax.vmap`` (the loop runs until every batch member has stopped; stopped members are frozen
and report their own iteration and HVP counts), ``lax.scan`` and ``lax.cond``.
"""

from __future__ import annotations

import math
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


STALL_ITERS = 8
"""Iterations without a ``STALL_FACTOR`` improvement of the best residual after which LOBPCG stops."""
STALL_FACTOR = 0.9
STALL_ZONE = 100.0
"""Stagnation is only declared while the residual is ≤ ``STALL_ZONE`` × the floor √P·ε (a plateau far
above round-off, e.g. while a cluster of eigenvalues is resolved, is progress to wait for)."""


def tolerance_floor(dim: int, dtype: jnp.dtype) -> float:
    """√P·ε: the typical relative round-off of a length-P inner product in ``dtype`` (the smallest
    relative residual the stopping test can resolve). ~9.7e-5 for P = 656,810 in float32."""
    return math.sqrt(dim) * float(jnp.finfo(dtype).eps)


CERTIFY_MARGIN = 1e-6
"""Fresh certification products are skipped when the carried products' round-off bound at the iteration
cap, ``max_iters``·3b·ε, is at most this fraction of the relative tolerance (module docstring)."""


def certifies(tol: float | Array, max_iters: int, b: int, dtype: jnp.dtype) -> bool:
    """Whether ``lobpcg_top_block`` spends k fresh HVPs on certifying its pairs: unless ``tol`` is a number
    (not traced) with ``max_iters``·3b·ε ≤ ``CERTIFY_MARGIN``·tol, i.e. the carried HX cannot have drifted
    from H·X by anything the tolerance could notice (float64 with tol ≥ ~3e-7 at b = 4; never float32)."""
    if not isinstance(tol, (int, float)):
        return True
    drift = max_iters * 3 * b * float(jnp.finfo(dtype).eps)
    return drift > CERTIFY_MARGIN * float(tol)


def pair_residuals(x: Array, hx: Array) -> tuple[Array, Array]:
    """(ρ, r) of the rows of x with HX ≈ hx: ρ_i = x_i·hx_i / x_i·x_i and r_i = ‖hx_i − ρ_i x_i‖ / ‖x_i‖.

    ρ_i is the Rayleigh quotient of x_i (the θ minimizing ‖hx_i − θ x_i‖), so r_i is the smallest residual
    the pair has, whatever the normalization of x_i drifted to.
    """
    xx = jnp.sum(x * x, axis=1)  # (b,)
    xx = jnp.where(xx > 0, xx, 1.0)
    rho = jnp.sum(x * hx, axis=1) / xx
    return rho, jnp.linalg.norm(hx - rho[:, None] * x, axis=1) / jnp.sqrt(xx)


def _relative_max(rho: Array, res: Array, k: int) -> Array:
    """max_{i<k} r_i / max_{j<k} |ρ_j| (scale 1 where it is 0); +inf if anything is not finite."""
    scale = jnp.max(jnp.abs(rho[:k]))
    rel = jnp.max(res[:k]) / jnp.where(scale > 0, scale, 1.0)
    return jnp.where(jnp.isfinite(rel), rel, jnp.inf)


def lobpcg_top_block(
    matvec: Callable[[Array], Array],
    x0: Array,
    k: int,
    tol: float | Array,
    max_iters: int,
    block: int | None = None,
) -> tuple[EigResult, Array]:
    """``lobpcg_top`` that also returns the final (b, P) orthonormal block, to warm-start the next call.

    Row i < k of the block is the returned vector i *before* the final reordering by exact Rayleigh
    quotient (the same up to a permutation of near-equal values); rows k..b−1 are the next Ritz vectors.
    ``block``: the iteration's block size b ≤ m = x0's rows (default m). With b < m the start is the
    Rayleigh–Ritz of all m rows (m HVPs), of which the top b are kept: e.g. the blocks of the last two
    measurements, since at the edge of stability H_t is closer to H_{t−2} than to H_{t−1} (period-2
    oscillation). HVPs: m + b·iterations + k.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must be a (b, P) block of start vectors; got shape {x0.shape}")
    m, dim = x0.shape
    b = m if block is None else block
    if not 1 <= k <= b <= m <= dim:
        raise ValueError(f"need 1 ≤ k ≤ b ≤ P, b ≤ rows of x0 ≤ P; got k={k}, block b={b}, rows {m}, P={dim}")
    if max_iters < 0:
        raise ValueError(f"max_iters must be ≥ 0; got {max_iters}")
    dtype = x0.dtype
    floor = tolerance_floor(dim, dtype)
    tol_given, tol = tol, jnp.maximum(jnp.asarray(tol, dtype), floor)

    # Start block: orthonormal; rows lost to dependence are refilled from a fixed pseudo-random block.
    x = orthonormalize_rows(x0)
    alive = jnp.linalg.norm(x, axis=1) > 0.5
    fill = jax.random.normal(jax.random.key(0), (m, dim), dtype)
    x = orthonormalize_rows(jnp.where(alive[:, None], x, fill))
    hx = apply_rows(matvec, x, dtype)  # m HVPs
    _, y = _rayleigh_ritz(x, hx, jnp.ones((m,), bool), b)  # top b of the m-row start: (m, b)
    x, hx = _dot(y.T, x), _dot(y.T, hx)

    # State: it, X, HX, P, HP, rel (current max relative residual), best, since (iterations since best
    # last improved by STALL_FACTOR).
    State = tuple[Array, Array, Array, Array, Array, Array, Array, Array]

    def converged(rel: Array) -> Array:
        # A non-finite residual (a diverged run's Hessian) cannot converge: stop at once (under ``vmap``
        # a lane that never stops would keep every other lane's loop running to ``max_iters``).
        return (rel <= tol) | ~jnp.isfinite(rel)

    def cond(state: State) -> Array:
        it, _, _, _, _, rel, _, since = state
        return (it < max_iters) & ~converged(rel) & (since < STALL_ITERS)

    def body(state: State) -> State:
        it, x, hx, p, hp, _, best, since = state
        rho, _ = pair_residuals(x, hx)
        r = hx - rho[:, None] * x  # (b, P)
        w = orthonormalize_rows(r, jnp.concatenate([x, p]))  # (b, P) ⟂ X, P
        hw = apply_rows(matvec, w, dtype)  # b HVPs
        s = jnp.concatenate([x, p, w])  # S: (3b, P)
        hs = jnp.concatenate([hx, hp, hw])  # HS: (3b, P)
        live = jnp.linalg.norm(s, axis=1) > 0.5  # (3b,)
        _, y = _rayleigh_ritz(s, hs, live, b)  # (3b, b)
        # P: coordinates of span{X_old, X_new} ⟂ X_new, orthonormal, and off the dead rows of S.
        ex = jnp.eye(3 * b, b, dtype=dtype)  # E_X: the old X's coordinates
        z = ex - _dot(y, y[:b].T)  # (I − YYᵀ)E_X: (3b, b)
        dead = jnp.where(live[:, None], 0.0, jnp.eye(3 * b, dtype=dtype))  # unit rows on dead coords
        zc = orthonormalize_rows(z.T, jnp.concatenate([y.T, dead]))  # (b, 3b)
        x, hx = _dot(y.T, s), _dot(y.T, hs)
        p, hp = _dot(zc, s), _dot(zc, hs)
        rel = _relative_max(*pair_residuals(x, hx), k)
        improved = rel < STALL_FACTOR * best
        counts = ~improved & (rel <= STALL_ZONE * floor)  # no progress, and near the round-off floor
        return it + 1, x, hx, p, hp, rel, jnp.where(improved, rel, best), jnp.where(counts, since + 1, 0)

    zeros = jnp.zeros((b, dim), dtype)
    rel0 = _relative_max(*pair_residuals(x, hx), k)
    state = (jnp.asarray(0), x, hx, zeros, zeros, rel0, rel0, jnp.asarray(0))
    it, x, hx, _, _, rel, _, since = lax.while_loop(cond, body, state)
    capped = (it >= max_iters) & ~converged(rel) & (since < STALL_ITERS)

    # Certification: one fresh HVP per returned vector (k HVPs) unless the carried products are exact
    # to far below the tolerance (``certifies``); values are the true Rayleigh quotients either way.
    certify = certifies(tol_given, max_iters, b, dtype)
    norms = jnp.linalg.norm(x[:k], axis=1)
    scale = jnp.where(norms > 0, norms, 1.0)[:, None]
    vectors = x[:k] / scale  # (k, P)
    hv = apply_rows(matvec, vectors, dtype) if certify else hx[:k] / scale  # k HVPs, or the carried H·v
    values = jnp.sum(vectors * hv, axis=1)  # (k,)
    order = jnp.argsort(-values)
    values, vectors, hv = values[order], vectors[order], hv[order]
    residuals = jnp.linalg.norm(hv - values[:, None] * vectors, axis=1)
    result = EigResult(
        values=values,
        vectors=vectors,
        residuals=residuals,
        iterations=it,
        hvps=m + b * it + (k if certify else 0),
        capped=capped,
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
    every top-k residual ≤ max(``tol``, √P·ε) · max_{j<k}|ρ_j| (relative, see ``tolerance_floor``), when the
    residual stagnates (``STALL_ITERS``), or after ``max_iters`` iterations (static int; 0 gives the
    Rayleigh–Ritz of x0; ``capped`` is then True). Returns ``EigResult`` with values the true Rayleigh
    quotients v·Hv of the returned unit vectors and their true residuals ‖Hv − θv‖ (one fresh HVP each, or
    the carried products where those are exact to far below ``tol``: :func:`certifies`), and
    ``hvps`` = b + b·iterations (+ k when certifying), the exact count of ``matvec`` calls (vectorized in
    batches, ``apply_rows``). The block's dtype is the working dtype and must be what ``matvec`` accepts.

    Convergence of pair i is linear with a rate set by (λ_i − λ_{b+1}) relative to the spread of the
    spectrum (like Lanczos, but restarted every step, so slower from a cold start; its strength is the warm
    start: a block from a nearby operator needs a few iterations). See the module docstring.
    """
    return lobpcg_top_block(matvec, x0, k, tol, max_iters)[0]
