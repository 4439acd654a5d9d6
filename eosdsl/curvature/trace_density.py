"""Hessian trace by Hutchinson's estimator and spectral density by stochastic Lanczos quadrature (SLQ).

Both are randomized estimates built only from products v ↦ Hv with a symmetric operator H of order n
(for a training loss, ``eosdsl.curvature.hvp.hvp_fn`` over the flattened parameters), with Rademacher
probes z ∈ {−1, +1}ⁿ (independent, each entry ±1 with probability ½, so E[zzᵀ] = I and ‖z‖² = n).

**Trace (Hutchinson).** Hutchinson (1990), "A stochastic estimator of the trace of the influence matrix
for Laplacian smoothing splines", Comm. Statist. Simul. Comput. 19(2); Avron & Toledo (2011),
"Randomized algorithms for estimating the trace of an implicit symmetric positive semi-definite
matrix", J. ACM 58(2). For m independent probes z₁ … z_m,

    s_i = z_iᵀ H z_i,      E[s_i] = tr(H),      Var(s_i) = 2 (‖H‖_F² − Σ_j H_jj²)   (Rademacher),

and the estimate is the sample mean t̂ = (1/m) Σ s_i, unbiased with Var(t̂) = Var(s_i)/m. Its *stated*
standard error is the sample standard deviation over √m, se = std(s; ddof = 1)/√m, itself a random
quantity (for m ≳ 30 it is within a few tens of percent of the true √Var(t̂)); by the central limit
theorem t̂ lies within 2 se of tr(H) about 95% of the time. The variance vanishes for diagonal H (every
s_i is exact) and is largest for a dense H. Cost: m HVPs.

**Spectral density (SLQ).** Ubaru, Chen & Saad (2017), "Fast estimation of tr(f(A)) via stochastic
Lanczos quadrature", SIAM J. Matrix Anal. Appl. 38(4); Ghorbani, Krishnan & Xiao (2019), "An
investigation into neural net optimization via Hessian eigenvalue density", ICML (the method of
PyHessian, Yao et al. 2020). The spectral density of H is φ(λ) = (1/n) Σ_i δ(λ − λ_i), so that
∫ f dφ = tr(f(H))/n. For a probe z with unit q = z/√n, E[qᵀ f(H) q] = tr(f(H))/n, and qᵀ f(H) q is a
Riemann–Stieltjes integral against the spectral measure of H seen from q, which k steps of Lanczos from
q approximate by Gauss quadrature: with T = QᵀHQ the k × k tridiagonal Lanczos matrix, its eigenpairs
(θ_j, y_j) and weights τ_j = (e₁ᵀ y_j)² (the squared first components, Σ_j τ_j = 1),

    qᵀ f(H) q ≈ Σ_j τ_j f(θ_j),     exact for polynomials f of degree ≤ 2k − 1.

Averaging over m probes gives the density estimate φ̂(λ) = (1/m) Σ_l Σ_j τ_j^(l) δ(λ − θ_j^(l)): a
probability measure on the real line whose nodes θ are Ritz values of H. Its moments ∫ λ^p dφ̂ for
p ≤ 2k − 1 are *exactly* the Hutchinson estimates of tr(H^p)/n with the same probes (Σ_j τ_j θ_j = qᵀHq =
zᵀHz/n, Σ_j τ_j θ_j² = ‖Hz‖²/n, …), so their Monte-Carlo error is the Hutchinson one above; the
quadrature error for smooth f decays geometrically in k (Ubaru et al., Thm. 4.1). The Lanczos run uses
full re-orthogonalization (as ``eosdsl.curvature.lanczos``), and a breakdown (an invariant subspace
reached, β_j ≈ 0) restarts with a random vector orthogonal to the basis: T becomes block diagonal, the
eigenvectors of the later blocks have first component 0, so their Ritz values enter with weight 0 and the
quadrature is that of the invariant subspace, as it must be. With k = n steps T is similar to H: each
probe's nodes are all n eigenvalues (to round-off), with weights (u_iᵀq)² for the unit eigenvectors u_i.
Cost: m·k HVPs, O(m·k²·n) flops for the re-orthogonalization, a (k, n) basis in memory per probe in
flight.

A smooth density for plots is the Gaussian-smoothed φ̂ (:func:`gaussian_density`): each node replaced by a
normal density of standard deviation σ, φ_σ(λ) = (1/m) Σ_l Σ_j τ_j N(λ; θ_j, σ²). Ghorbani et al. and
PyHessian smooth with a σ chosen relative to the spectrum's width (PyHessian: σ² = 10⁻⁵ after scaling the
spectrum to [−1, 1]); here σ is an explicit argument, in the units of λ.

Every function takes the operator as a closure ``matvec: (n,) → (n,)`` that may close over traced arrays,
static ``dim``, probe and step counts and ``dtype``, and a PRNG key; probes run under ``lax.map`` (one at
a time by default, or ``batch_size`` at once through ``vmap``), the Lanczos steps under ``lax.scan``, so
the functions trace under ``jax.jit``, ``jax.vmap``, ``lax.scan`` and ``lax.cond``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from eosdsl.curvature.eig import HIGHEST
from eosdsl.curvature.lanczos import lanczos_tridiagonal

__all__ = [
    "SpectralDensity",
    "TraceEstimate",
    "gaussian_density",
    "hutchinson_trace",
    "rademacher_probes",
    "slq_density",
    "slq_moment",
]

Array = jax.Array
Matvec = Callable[[Array], Array]


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of tr(H) with its standard error.

    ``trace``: () the sample mean t̂ of the m probe values. ``stderr``: () std(samples, ddof = 1)/√m.
    ``samples``: (m,) the probe values z_iᵀHz_i. ``hvps``: () int, m.
    """

    trace: Array
    stderr: Array
    samples: Array
    hvps: Array


class SpectralDensity(NamedTuple):
    """The SLQ estimate of the spectral density: per probe l, nodes θ_j^(l) and weights τ_j^(l).

    ``nodes``: (m, k) Ritz values of each probe's Lanczos matrix, ascending. ``weights``: (m, k) the
    squared first components of its eigenvectors; each row sums to 1. The density is
    (1/m) Σ_l Σ_j τ_j^(l) δ(λ − θ_j^(l)). ``hvps``: () int, m·k.
    """

    nodes: Array
    weights: Array
    hvps: Array


def rademacher_probes(key: Array, probes: int, dim: int, dtype: jnp.dtype | type) -> Array:
    """(probes, dim) independent Rademacher vectors (entries ±1 with probability ½) drawn from ``key``.

    Probe l is drawn from ``jax.random.split(key, probes)[l]``, so the first l probes do not depend on
    how many are drawn in all."""
    keys = jax.random.split(key, probes)
    return jax.vmap(lambda k: jax.random.rademacher(k, (dim,), jnp.dtype(dtype)))(keys)


def _check(dim: int, probes: int, least: int = 1) -> None:
    if dim < 1 or probes < least:
        raise ValueError(f"need dim ≥ 1 and probes ≥ {least}; got dim={dim}, probes={probes}")


def hutchinson_trace(
    matvec: Matvec,
    dim: int,
    probes: int,
    key: Array,
    dtype: jnp.dtype | type,
    batch_size: int | None = None,
) -> TraceEstimate:
    """tr(H) of the symmetric operator ``matvec`` on ℝ^dim by Hutchinson's estimator: ``probes`` HVPs.

    The probes are :func:`rademacher_probes` ``(key, probes, dim, dtype)``; the samples z_iᵀHz_i are
    computed by ``lax.map`` (``batch_size`` probes at a time through ``vmap``; default one, so peak
    memory is one HVP's). Needs ``probes`` ≥ 2 for the standard error. See the module docstring for the
    variance: the estimate is unbiased, and tr(H) lies within 2 ``stderr`` of it ≈ 95% of the time.
    """
    _check(dim, probes, least=2)
    dtype = jnp.dtype(dtype)
    z = rademacher_probes(key, probes, dim, dtype)  # (m, n)

    def sample(v: Array) -> Array:
        return jnp.dot(v, matvec(v).astype(dtype), precision=HIGHEST)

    samples = lax.map(sample, z, batch_size=batch_size)  # (m,)
    trace = jnp.mean(samples)
    stderr = jnp.std(samples, ddof=1) / jnp.sqrt(jnp.asarray(probes, dtype))
    return TraceEstimate(trace, stderr, samples, jnp.asarray(probes, jnp.int32))


def slq_density(
    matvec: Matvec,
    dim: int,
    probes: int,
    steps: int,
    key: Array,
    dtype: jnp.dtype | type,
    batch_size: int | None = None,
) -> SpectralDensity:
    """The spectral density of the symmetric operator ``matvec`` on ℝ^dim by stochastic Lanczos quadrature.

    For each of ``probes`` Rademacher probes z (:func:`rademacher_probes` of the first half of
    ``jax.random.split(key)``), k = min(``steps``, dim) Lanczos steps from z/√dim, then ``eigh`` of the
    k × k tridiagonal: nodes θ_j (ascending) and weights τ_j = (e₁ᵀy_j)². Probes run under ``lax.map``
    (``batch_size`` at a time; default one, so memory holds one (k, dim) basis). ``probes``·k HVPs.
    """
    _check(dim, probes)
    if steps < 1:
        raise ValueError(f"need steps ≥ 1; got {steps}")
    dtype = jnp.dtype(dtype)
    k = min(steps, dim)
    key_probes, key_restart = jax.random.split(key)
    z = rademacher_probes(key_probes, probes, dim, dtype)  # (m, n)
    restarts = jax.random.split(key_restart, probes)

    def one(args: tuple[Array, Array]) -> tuple[Array, Array]:
        v, rkey = args
        start = v / jnp.sqrt(jnp.asarray(dim, dtype))
        alphas, betas, _ = lanczos_tridiagonal(matvec, start, k, rkey, dtype)
        tri = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)  # (k, k)
        theta, y = jnp.linalg.eigh(tri)  # ascending; y: (k, k), columns
        return theta, y[0] ** 2

    nodes, weights = lax.map(one, (z, restarts), batch_size=batch_size)  # (m, k) each
    return SpectralDensity(nodes, weights, jnp.asarray(probes * k, jnp.int32))


def slq_moment(nodes: Array, weights: Array, power: int) -> tuple[Array, Array]:
    """(estimate, standard error) of tr(H^p)/n from an SLQ density: the mean over probes of
    Σ_j τ_j θ_j^p and its std(ddof = 1)/√m. For p ≤ 2k − 1 each probe's value is exactly the Hutchinson
    sample zᵀH^p z/n of its probe (Gauss quadrature is exact there), so this is Hutchinson's estimate.
    ``nodes``, ``weights``: (m, k) as :class:`SpectralDensity` (or with more leading axes: reduced over
    the second to last)."""
    per_probe = jnp.sum(weights * nodes**power, axis=-1)  # (…, m)
    m = per_probe.shape[-1]
    stderr = (
        jnp.std(per_probe, axis=-1, ddof=1) / jnp.sqrt(m)
        if m > 1
        else jnp.full(per_probe.shape[:-1], jnp.nan)
    )
    return jnp.mean(per_probe, axis=-1), stderr


def gaussian_density(nodes: Array, weights: Array, grid: Array, sigma: float | Array) -> Array:
    """The Gaussian-smoothed SLQ density on ``grid``: φ_σ(λ) = (1/m) Σ_l Σ_j τ_j^(l) N(λ; θ_j^(l), σ²).

    ``nodes``, ``weights``: (m, k); ``grid``: (g,) points λ; ``sigma``: the smoothing standard deviation,
    in the units of λ. It integrates to 1 over ℝ (a Riemann sum on a grid of spacing ≤ σ that covers the
    nodes ± 8σ is 1 to ~1e-12). Returns (g,).
    """
    theta = nodes.reshape(-1)  # (m·k,)
    tau = weights.reshape(-1) / nodes.shape[0]
    z = (grid[:, None] - theta[None, :]) / sigma  # (g, m·k)
    return jnp.sum(tau * jnp.exp(-0.5 * z**2), axis=1) / (sigma * jnp.sqrt(2.0 * jnp.pi))
