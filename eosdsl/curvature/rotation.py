"""Rotation of top Hessian eigenvectors: per-eigenvector |cos|, matching, principal angles (paper 004).

Every function takes eigenvector *blocks*: arrays of shape (k, P) whose rows are (nearly) unit eigenvectors
v_1 … v_k, e.g. ``EigResult.vectors`` from ``eosdsl.curvature.lanczos.lanczos_top``. Rows are treated as
defined only up to sign (an eigenvector's sign is arbitrary), and the block need not be exactly orthonormal
(Lanczos Ritz vectors are orthogonal only to the accuracy of their residuals): where a measure is about the
*subspace* the rows span, the rows are orthonormalized here first, by a QR factorization.

Measures (paper 004 §3.2, Fig. 2 and App. D):

- per-eigenvector similarity s_i = |⟨v_i(t), v_i(t₀)⟩| ("cosine similarity in one dimension"), by rank
  (``abs_cosines``) or after pairing eigenvectors by overlap, which removes spurious drops when
  near-degenerate eigenvalues swap ranks (``match_by_overlap``, ``abs_cosines_matched``);
- principal angles 0 ≤ φ_1 ≤ … ≤ φ_k ≤ π/2 between span(A) and span(B): with Q_A, Q_B (P, k) orthonormal
  bases, cos φ_i = σ_i(Q_Aᵀ Q_B) (``principal_cosines``);
- subspace similarities (``subspace_similarity``): ∏ cos φ_i = |det Q_AᵀQ_B| (cosine of the Fubini–Study
  distance, the default), mean cos² φ_i = ‖Q_AᵀQ_B‖_F²/k, and the Grassmann distance
  (Σ φ_i²)^½ (Ye & Lim 2016). For k = 1 the first is the per-eigenvector |cos|.

Comparison period (paper 004 App. D): v(t) is compared with v(t − T), T = 2 by default (odd T shows no
smooth rotation in the paper's runs). ``ring_init``/``ring_push``/``ring_lagged`` keep the last T blocks in
an array of shape (T, k, P) that an engine can carry in its ``lax.scan`` state.

All functions are pure, with shapes fixed by k and P, so they trace under ``jax.jit``, ``jax.vmap`` and
``lax.scan``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array

_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on GPUs for inner products
_MAX_ENUMERATED = 6  # 6! = 720 candidate permutations; 8! = 40320 would bloat the compiled program


def _check_block(name: str, x: Array) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be a (k, P) block of row vectors, got shape {x.shape}")
    if x.shape[0] > x.shape[1]:
        raise ValueError(f"{name} has k={x.shape[0]} rows in dimension P={x.shape[1]}: need k ≤ P")


def _check_pair(a: Array, b: Array, a_name: str = "current", b_name: str = "baseline") -> None:
    _check_block(a_name, a)
    _check_block(b_name, b)
    if a.shape != b.shape:
        raise ValueError(f"{a_name} {a.shape} and {b_name} {b.shape} must have the same shape (k, P)")


def _unit_rows(x: Array) -> Array:
    """Rows scaled to unit norm; an all-zero row stays zero (so its cosines are 0, not NaN)."""
    norms = jnp.linalg.norm(x, axis=1, keepdims=True)  # (k, 1)
    return x / jnp.where(norms > 0, norms, 1.0)


def _overlaps(current: Array, baseline: Array) -> Array:
    """C[i, j] = |⟨current_i, baseline_j⟩| for unit-normalized rows. (k, k)."""
    c = jnp.dot(_unit_rows(current), _unit_rows(baseline).T, precision=_HIGHEST)
    return jnp.clip(jnp.abs(c), 0.0, 1.0)


def abs_cosines(current: Array, baseline: Array) -> Array:
    """s_i = |⟨v_i, u_i⟩| / (‖v_i‖‖u_i‖) for the rows v_i of ``current`` and u_i of ``baseline``. (k,).

    Paper 004's per-eigenvector similarity, index by index (rank by eigenvalue). The absolute value makes
    it invariant to the arbitrary sign of each eigenvector; rows are normalized here, so unit rows are
    not required. Values lie in [0, 1]; a zero row (e.g. an unfilled ring slot) gives 0.
    """
    _check_pair(current, baseline)
    dots = jnp.sum(_unit_rows(current) * _unit_rows(baseline), axis=1)  # (k,)
    return jnp.clip(jnp.abs(dots), 0.0, 1.0)


def _permutation_table(k: int) -> np.ndarray:
    return np.asarray(list(itertools.permutations(range(k))), dtype=np.int32)  # (k!, k)


def match_by_overlap(current: Array, baseline: Array) -> Array:
    """The pairing ``perm`` (k,) int32 with ``current[perm[i]]`` matched to ``baseline[i]``.

    Maximizes Σ_i |cos(current[perm[i]], baseline[i])| over permutations (a linear assignment on the
    overlap matrix C[j, i] = |⟨current_j, baseline_i⟩|), so ``current[perm]`` lines up with ``baseline``
    even when near-degenerate eigenvalues swapped ranks between the two times.

    How: for k ≤ 6 exactly, by scoring all k! permutations at once (a static table of at most 720 rows
    built with ``itertools``; jittable, no data-dependent control flow; Hungarian-type algorithms are
    sequential and branchy, and for k ≤ 6 enumeration is both exact and cheap). For k > 6 greedily: k
    times take the largest remaining entry of C and delete its row and column. Greedy is optimal whenever
    an assignment with every |cos| > 1/√2 exists and the rows of each block are orthonormal (then each row
    and column of C has at most one entry above 1/√2, since Σ_j C[j, i]² ≤ 1, and the greedy choices are
    exactly those entries) — the case of ranks swapped between nearby times; when eigenvectors have
    genuinely mixed, no pairing is meaningful and the subspace measures are the ones to read. Ties go to
    the lowest index.
    """
    _check_pair(current, baseline)
    c = _overlaps(current, baseline)  # (k_current, k_baseline)
    k = c.shape[0]
    if k <= _MAX_ENUMERATED:
        table = jnp.asarray(_permutation_table(k))  # (k!, k): row = candidate perm
        scores = jnp.sum(c[table, jnp.arange(k)[None, :]], axis=1)  # (k!,)
        return table[jnp.argmax(scores)]
    perm = jnp.zeros((k,), jnp.int32)
    avail = c
    for _ in range(k):  # static k: unrolled
        flat = jnp.argmax(avail)
        j, i = flat // k, flat % k  # current row j ↔ baseline column i
        perm = perm.at[i].set(j.astype(jnp.int32))
        avail = avail.at[j, :].set(-1.0).at[:, i].set(-1.0)
    return perm


def abs_cosines_matched(current: Array, baseline: Array) -> Array:
    """``abs_cosines(current[perm], baseline)`` with ``perm = match_by_overlap(current, baseline)``. (k,)."""
    perm = match_by_overlap(current, baseline)
    return abs_cosines(current[perm], baseline)


def orthonormal_basis(block: Array) -> Array:
    """An orthonormal basis (P, k) of the span of the rows of ``block`` (k, P), by reduced QR of blockᵀ.

    Assumes the rows are linearly independent (true for distinct eigenvectors); the basis is then the
    Gram–Schmidt orthonormalization of the rows, up to signs.
    """
    _check_block("block", block)
    q, _ = jnp.linalg.qr(block.T)  # (P, k)
    return q


def principal_cosines(a: Array, b: Array) -> Array:
    """cos φ_1 ≥ … ≥ cos φ_k, the principal-angle cosines between the row spans of ``a`` and ``b``. (k,).

    The singular values of Q_Aᵀ Q_B (Björck & Golub 1973), Q from ``orthonormal_basis``, clipped to [0, 1].
    Accurate to ~ε absolutely; the angles near 0 are *not* well determined from these (see
    ``subspace_similarity``), but the cosines themselves, and products and squares of them, are.
    """
    _check_pair(a, b, "a", "b")
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)
    s = jnp.linalg.svd(jnp.dot(qa.T, qb, precision=_HIGHEST), compute_uv=False)  # (k,) descending
    return jnp.clip(s, 0.0, 1.0)


class SubspaceSimilarity(NamedTuple):
    """Similarities of two k-dimensional subspaces from their principal angles φ (ascending).

    ``prod_cos``: ∏ cos φ_i = |det Q_AᵀQ_B| ∈ [0, 1]. ``mean_cos2``: (1/k) Σ cos² φ_i ∈ [0, 1].
    ``grassmann``: (Σ φ_i²)^½ ∈ [0, π√k/2], 0 for equal subspaces. ``angles``: φ (k,), ascending, in
    [0, π/2]. ``cosines``: cos φ_i (k,), descending.
    """

    prod_cos: Array  # ()
    mean_cos2: Array  # ()
    grassmann: Array  # ()
    angles: Array  # (k,)
    cosines: Array  # (k,)


def principal_angles(a: Array, b: Array) -> tuple[Array, Array]:
    """(φ ascending, cos φ descending), both (k,), between the row spans of ``a`` and ``b``.

    arccos is ill-conditioned near 1 (dφ = −dc / sin φ: an absolute error ε in cos φ ≈ 1 becomes an error
    ~√ε ≈ 1e-8 in φ for float64), arcsin near 1 likewise. So both are computed (Björck & Golub 1973): the
    cosines c_i = σ_i(Q_AᵀQ_B) and the sines s_i = σ_i((I − Q_BQ_Bᵀ)Q_A) = σ_i(Q_A − Q_B(Q_BᵀQ_A)), which
    are the sines of the same angles in the reverse order; then φ_i = arcsin(s_i) where c_i² ≥ ½
    (φ ≤ π/4) and arccos(c_i) otherwise, each used where it is well conditioned, so every φ_i is accurate
    to ~ε absolutely (small angles to high relative accuracy). This is ``scipy.linalg.subspace_angles``'s
    recipe, except that scipy (1.17) applies its mask in the reversed order, so it loses this accuracy
    (errors up to √(2ε) ≈ 2e-8) when the angles straddle π/4.
    """
    _check_pair(a, b, "a", "b")
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)  # (P, k) each
    m = jnp.dot(qa.T, qb, precision=_HIGHEST)  # (k, k)
    cos = jnp.clip(jnp.linalg.svd(m, compute_uv=False), 0.0, 1.0)  # descending
    resid = qa - jnp.dot(qb, m.T, precision=_HIGHEST)  # (I − Q_BQ_Bᵀ)Q_A: (P, k)
    sin = jnp.clip(jnp.linalg.svd(resid, compute_uv=False), 0.0, 1.0)[::-1]  # ascending, aligned with cos
    angles = jnp.where(cos * cos >= 0.5, jnp.arcsin(sin), jnp.arccos(cos))  # ascending
    return angles, cos


def subspace_similarity(a: Array, b: Array) -> SubspaceSimilarity:
    """Paper 004's subspace similarity of the top-k eigenvectors, in three variants (§3.2).

    ``prod_cos`` = ∏ cos φ_i (our default reading of its "cosine-Grassmannian"), ``mean_cos2`` =
    mean cos² φ_i, both from the cosines (accurate to ~ε absolutely); ``grassmann`` = (Σ φ_i²)^½ from the
    angles of ``principal_angles`` (accurate also for nearly equal subspaces). Invariant to the signs and
    order of the rows and to any invertible mixing of them (only the spans enter). For k = 1,
    ``prod_cos`` = |cos| of the two vectors.
    """
    angles, cos = principal_angles(a, b)
    return SubspaceSimilarity(
        prod_cos=jnp.prod(cos),
        mean_cos2=jnp.mean(cos * cos),
        grassmann=jnp.sqrt(jnp.sum(angles * angles)),
        angles=angles,
        cosines=cos,
    )


# ------------------------------------------------------------------------------ ring of the last T blocks


def ring_init(period: int, k: int, dim: int, dtype: jnp.dtype | type) -> Array:
    """An empty ring of the last ``period`` = T eigenvector blocks: zeros of shape (T, k, P)."""
    if period < 1:
        raise ValueError(f"period must be ≥ 1, got {period}")
    return jnp.zeros((period, k, dim), dtype)


def ring_push(ring: Array, vectors: Array) -> Array:
    """The ring with ``vectors`` (k, P) pushed as the newest entry and the oldest dropped. (T, k, P).

    Index 0 holds the newest block and index j the block pushed j pushes before it.
    """
    return jnp.concatenate([vectors[None].astype(ring.dtype), ring[:-1]], axis=0)


def ring_lagged(ring: Array, lag: int | None = None) -> tuple[Array, Array]:
    """(block, valid): the block pushed ``lag`` pushes ago, counted *before* the next push. ((k, P), ()).

    ``lag`` defaults to T = ``ring.shape[0]`` (the oldest entry) and must be in 1 … T. Use at step t as
    ``prev, ok = ring_lagged(ring); s = abs_cosines(v_t, prev); ring = ring_push(ring, v_t)`` to compare
    v(t) with v(t − T). ``valid`` is False while that slot was never filled (still all zeros; pushed
    eigenvectors are unit vectors). With eigenvectors measured every c steps, the lag is T·c steps.
    """
    period = ring.shape[0]
    lag = period if lag is None else lag
    if not 1 <= lag <= period:
        raise ValueError(f"lag must be in 1 … {period} (the ring's period), got {lag}")
    block = ring[lag - 1]
    return block, jnp.any(block != 0)
