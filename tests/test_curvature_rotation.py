"""Oracle tests for ``eosdsl.curvature.rotation`` against ``scipy.linalg.subspace_angles`` and constructions
with known principal angles.

Tolerances (float64, ε ≈ 2.2e-16):

* Random subspaces (k = 1…5, P = 7, 60, 500; for P = 7 and k ≥ 4 the spans must intersect, φ₁ = 0):
  cosines, ∏cos and mean cos² agree with scipy's angles to 1e-12 absolute, and the angles agree to 1e-12
  with the Björck–Golub recipe written out in numpy (``bjorck_golub_angles``: SVDs of Q_AᵀQ_B and of
  (I − Q_BQ_Bᵀ)Q_A, arcsin where cos² ≥ ½): the same quantities from different QR/SVD codes, each backward
  stable, so they differ by a small multiple of ε·√P (~1e-14 observed). Against scipy's *angles* the
  tolerance is 5e-8: scipy 1.17's ``subspace_angles`` builds its arcsin/arccos mask in cosine order but
  applies it in angle order, so when a pair mixes angles below and above π/4 it takes arccos of a cosine
  ≈ 1 and is itself off by up to √(2ε) ≈ 2.1e-8 (e.g. 2.6e-8 instead of 0 at k = 4, P = 7).
* Nearly identical subspaces (angles 1e-7…1e-9 built in exactly, then both blocks rotated by the same
  random orthogonal matrix, which perturbs the vectors by ~ε): the angles are recovered to 1e-8 *relative*
  (absolute error ~ε·few ⇒ relative ≲ 1e-8 at φ = 1e-8). arccos of the cosines, the naive route, is off by
  ~√ε/φ relative (~1 at φ = 1e-9), which the test shows, so the check has teeth.
* Invariances, k = 1 identities and ring buffer: 1e-12 (pure round-off of O(k²) operations).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from eosdsl.curvature import rotation as rot

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

jax.config.update("jax_enable_x64", True)


# jitted once per shape: one compiled program instead of a dozen per-op eager compilations
subspace_similarity = jax.jit(rot.subspace_similarity)
principal_cosines = jax.jit(rot.principal_cosines)
abs_cosines = jax.jit(rot.abs_cosines)
abs_cosines_matched = jax.jit(rot.abs_cosines_matched)
match_by_overlap = jax.jit(rot.match_by_overlap)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_orthogonal(p: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(p, p)))
    return q * np.sign(np.diag(r))


def blocks_with_angles(angles: np.ndarray, p: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) (k, P) with principal angles exactly ``angles`` (before rounding), in a random orientation.

    A = [e_1 … e_k], B_i = cos φ_i e_i + sin φ_i e_{k+i}, both times a random orthogonal Q (P, P).
    """
    k = len(angles)
    a = np.zeros((k, p))
    b = np.zeros((k, p))
    for i, phi in enumerate(angles):
        a[i, i] = 1.0
        b[i, i] = np.cos(phi)
        b[i, k + i] = np.sin(phi)
    q = random_orthogonal(p, rng)
    return a @ q.T, b @ q.T


def bjorck_golub_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (ascending) between the row spans, Björck & Golub with the mask in angle order."""
    qa, qb = scipy.linalg.orth(a.T), scipy.linalg.orth(b.T)
    m = qa.T @ qb
    cos = np.clip(scipy.linalg.svdvals(m), 0.0, 1.0)  # descending
    sin = np.clip(scipy.linalg.svdvals(qb - qa @ m), 0.0, 1.0)[::-1]  # ascending
    return np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))


CASES = [(k, p) for k in range(1, 6) for p in (7, 60, 500)]


@pytest.mark.parametrize(("k", "p"), CASES)
def test_random_subspaces_match_scipy(k: int, p: int) -> None:
    rng = np.random.default_rng(100 * k + p)
    a = unit_rows(rng.normal(size=(k, p)))  # unit rows, not orthogonal
    b = unit_rows(rng.normal(size=(k, p)))
    ref = np.sort(scipy.linalg.subspace_angles(a.T, b.T))  # ascending
    sim = subspace_similarity(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(sim.angles), ref, rtol=0, atol=5e-8)
    np.testing.assert_allclose(np.asarray(sim.angles), bjorck_golub_angles(a, b), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sim.cosines), np.cos(ref), rtol=0, atol=1e-12)
    np.testing.assert_allclose(float(sim.prod_cos), np.prod(np.cos(ref)), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(float(sim.mean_cos2), np.mean(np.cos(ref) ** 2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(float(sim.grassmann), np.sqrt(np.sum(ref**2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(principal_cosines(jnp.asarray(a), jnp.asarray(b))), np.cos(ref), atol=1e-12
    )


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("scale", [1e-7, 1e-9])
def test_nearly_identical_subspaces(k: int, scale: float) -> None:
    """Tiny angles: recovered to 1e-8 relative (and agree with scipy), where arccos fails."""
    rng = np.random.default_rng(k)
    angles = scale * np.linspace(1.0, 3.0, k)  # ascending, distinct
    a, b = blocks_with_angles(angles, 500, rng)
    sim = subspace_similarity(jnp.asarray(a), jnp.asarray(b))
    got = np.asarray(sim.angles)
    np.testing.assert_allclose(got, angles, rtol=1e-8, atol=0)
    np.testing.assert_allclose(got, np.sort(scipy.linalg.subspace_angles(a.T, b.T)), rtol=1e-7, atol=0)
    np.testing.assert_allclose(float(sim.grassmann), np.sqrt(np.sum(angles**2)), rtol=1e-8)
    np.testing.assert_allclose(float(sim.prod_cos), np.prod(np.cos(angles)), rtol=0, atol=1e-14)
    naive = np.arccos(np.clip(np.asarray(sim.cosines), 0.0, 1.0))
    if scale <= 1e-8:  # the naive route is hopeless here: cos φ rounds to 1 or 1 − ε
        assert np.max(np.abs(naive - angles) / angles) > 1e-2


def test_mixed_small_and_large_angles() -> None:
    """Angles 1e-9, 0.3, 1.2 built in: each recovered to 1e-12 absolute, the tiny one to 1e-6 relative."""
    angles = np.array([1e-9, 0.3, 1.2])
    a, b = blocks_with_angles(angles, 50, np.random.default_rng(9))
    got = np.asarray(subspace_similarity(jnp.asarray(a), jnp.asarray(b)).angles)
    np.testing.assert_allclose(got, angles, rtol=0, atol=1e-12)
    assert abs(got[0] - angles[0]) < 1e-6 * angles[0]


def test_right_angles() -> None:
    """Orthogonal subspaces: all angles π/2, prod_cos = mean_cos2 = 0, grassmann = π√k/2."""
    rng = np.random.default_rng(7)
    a, b = blocks_with_angles(np.full(3, np.pi / 2), 40, rng)
    sim = subspace_similarity(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(sim.angles), np.pi / 2, atol=1e-12)
    assert abs(float(sim.prod_cos)) < 1e-12 and abs(float(sim.mean_cos2)) < 1e-12
    np.testing.assert_allclose(float(sim.grassmann), np.pi * np.sqrt(3) / 2, atol=1e-12)


@pytest.mark.parametrize("p", [5, 500])
def test_k1_prod_cos_is_abs_cos(p: int) -> None:
    rng = np.random.default_rng(p)
    for _ in range(5):
        u, v = unit_rows(rng.normal(size=(2, p)))
        expected = abs(float(u @ v))
        a, b = jnp.asarray(u[None]), jnp.asarray(v[None])
        assert abs(float(subspace_similarity(a, b).prod_cos) - expected) < 1e-12
        assert abs(float(abs_cosines(a, b)[0]) - expected) < 1e-12
        assert abs(float(subspace_similarity(a, b).mean_cos2) - expected**2) < 1e-12


def test_invariance_to_signs_and_mixing() -> None:
    """Sign flips and any invertible mixing of the rows (re-normalized) leave subspace measures unchanged."""
    rng = np.random.default_rng(11)
    k, p = 4, 80
    a = unit_rows(rng.normal(size=(k, p)))
    b = unit_rows(a + 0.3 * rng.normal(size=(k, p)))
    ref = subspace_similarity(jnp.asarray(a), jnp.asarray(b))
    signs = np.array([1.0, -1.0, -1.0, 1.0])[:, None]
    rotation = random_orthogonal(k, rng)
    mixing = rng.normal(size=(k, k)) + 3 * np.eye(k)
    for a2, b2 in [
        (signs * a, -b),
        (rotation @ a, b),
        (a, unit_rows(mixing @ b)),
        (a[::-1], b[[2, 0, 3, 1]]),
    ]:
        sim = subspace_similarity(jnp.asarray(a2), jnp.asarray(b2))
        for name in ("prod_cos", "mean_cos2", "grassmann", "angles", "cosines"):
            np.testing.assert_allclose(
                np.asarray(getattr(sim, name)), np.asarray(getattr(ref, name)), atol=1e-12, err_msg=name
            )
    # symmetric in its arguments
    swapped = subspace_similarity(jnp.asarray(b), jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(swapped.angles), np.asarray(ref.angles), atol=1e-12)


def test_abs_cosines_sign_invariant_and_by_rank() -> None:
    rng = np.random.default_rng(3)
    a = unit_rows(rng.normal(size=(3, 20)))
    b = unit_rows(rng.normal(size=(3, 20)))
    expected = np.abs(np.sum(a * b, axis=1))
    signs = np.array([-1.0, 1.0, -1.0])[:, None]
    for a2, b2 in [(a, b), (signs * a, b), (a, -b), (signs * a, 2.5 * b)]:  # also not unit: normalized
        np.testing.assert_allclose(
            np.asarray(abs_cosines(jnp.asarray(a2), jnp.asarray(b2))), expected, atol=1e-14
        )
    zero = abs_cosines(jnp.zeros((3, 20)), jnp.asarray(b))
    np.testing.assert_array_equal(np.asarray(zero), 0.0)  # an unfilled ring slot: 0, not NaN


@pytest.mark.parametrize("k", [1, 3, 5, 6, 7, 8])
def test_matching_recovers_a_permuted_block(k: int) -> None:
    """current = ±baseline[σ] + noise: perm = σ⁻¹, matched cosines ≈ 1 (exact for k ≤ 6, greedy for 7, 8)."""
    rng = np.random.default_rng(k)
    base = random_orthogonal(30, rng)[:k]  # (k, P) orthonormal rows
    sigma = rng.permutation(k)
    signs = rng.choice([-1.0, 1.0], size=(k, 1))
    current = unit_rows(signs * base[sigma] + 0.05 * rng.normal(size=(k, 30)))
    perm = np.asarray(match_by_overlap(jnp.asarray(current), jnp.asarray(base)))
    np.testing.assert_array_equal(perm, np.argsort(sigma))
    matched = np.asarray(abs_cosines_matched(jnp.asarray(current), jnp.asarray(base)))
    np.testing.assert_allclose(matched, np.abs(np.sum(current[perm] * base, axis=1)), atol=1e-14)
    assert matched.min() > 0.9
    if k > 1 and not np.array_equal(sigma, np.arange(k)):
        assert np.asarray(abs_cosines(jnp.asarray(current), jnp.asarray(base))).min() < 0.5


@pytest.mark.parametrize("k", [2, 4, 6])
def test_matching_is_an_optimal_assignment(k: int) -> None:
    """For k ≤ 6 the enumeration attains scipy's Hungarian optimum of Σ|cos| on arbitrary blocks."""
    rng = np.random.default_rng(20 + k)
    for _ in range(10):
        a = unit_rows(rng.normal(size=(k, 12)))
        b = unit_rows(rng.normal(size=(k, 12)))
        c = np.abs(a @ b.T)  # c[j, i] = |⟨current_j, baseline_i⟩|
        rows, cols = scipy.optimize.linear_sum_assignment(c, maximize=True)
        best = c[rows, cols].sum()
        perm = np.asarray(match_by_overlap(jnp.asarray(a), jnp.asarray(b)))
        assert sorted(perm.tolist()) == list(range(k))
        np.testing.assert_allclose(c[perm, np.arange(k)].sum(), best, rtol=1e-13)


def test_jit_and_vmap() -> None:
    """Everything traces under jit and maps over a batch of block pairs like a Python loop."""
    rng = np.random.default_rng(5)
    a = np.stack([unit_rows(rng.normal(size=(3, 25))) for _ in range(4)])  # (4, 3, 25)
    b = np.stack([unit_rows(x + 0.5 * rng.normal(size=x.shape)) for x in a])

    def all_measures(x, y):
        sim = rot.subspace_similarity(x, y)
        return (
            sim.prod_cos,
            sim.mean_cos2,
            sim.grassmann,
            rot.principal_cosines(x, y),
            rot.abs_cosines(x, y),
            rot.abs_cosines_matched(x, y),
            rot.match_by_overlap(x, y),
        )

    batched = jax.jit(jax.vmap(all_measures))(jnp.asarray(a), jnp.asarray(b))
    for i in range(4):
        single = all_measures(jnp.asarray(a[i]), jnp.asarray(b[i]))
        for got, want in zip(batched, single, strict=True):
            np.testing.assert_allclose(np.asarray(got[i]), np.asarray(want), atol=1e-13)
    greedy = jax.jit(jax.vmap(rot.match_by_overlap))(
        jnp.asarray(np.stack([unit_rows(rng.normal(size=(8, 25))) for _ in range(2)])),
        jnp.asarray(np.stack([unit_rows(rng.normal(size=(8, 25))) for _ in range(2)])),
    )
    assert greedy.shape == (2, 8)
    assert all(sorted(row) == list(range(8)) for row in np.asarray(greedy).tolist())


def test_ring_buffer_period() -> None:
    """With period T, ring_lagged before the push at step t returns the block pushed at step t − T."""
    period, k, p = 2, 2, 6
    blocks = [jnp.full((k, p), float(t + 1)) for t in range(5)]  # block t is filled with t + 1

    def run(blocks_arr):
        def step(ring, v):
            prev, ok = rot.ring_lagged(ring)
            newest, _ = rot.ring_lagged(ring, 1)
            return rot.ring_push(ring, v), (prev[0, 0], ok, newest[0, 0])

        return jax.lax.scan(step, rot.ring_init(period, k, p, jnp.float64), blocks_arr)

    ring, (prev, ok, newest) = jax.jit(run)(jnp.stack(blocks))
    np.testing.assert_array_equal(np.asarray(ok), [False, False, True, True, True])
    np.testing.assert_array_equal(np.asarray(prev)[2:], [1.0, 2.0, 3.0])  # step t sees t − 2
    np.testing.assert_array_equal(np.asarray(newest)[1:], [1.0, 2.0, 3.0, 4.0])
    assert ring.shape == (period, k, p)
    np.testing.assert_array_equal(np.asarray(ring[:, 0, 0]), [5.0, 4.0])
    with pytest.raises(ValueError, match="lag"):
        rot.ring_lagged(ring, 3)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="k ≤ P"):
        rot.subspace_similarity(jnp.ones((3, 2)), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="same shape"):
        rot.abs_cosines(jnp.ones((2, 5)), jnp.ones((3, 5)))


def test_permutation_table_is_complete() -> None:
    for k in range(1, 7):
        table = rot._permutation_table(k)
        assert {tuple(r) for r in table.tolist()} == set(itertools.permutations(range(k)))
