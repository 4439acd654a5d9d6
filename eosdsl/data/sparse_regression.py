r"""Gaussian sparse regression of Nacson et al., as used in paper 000 (§2.1 / App. B, Fig. 1).

Training data: :math:`N` points :math:`x_n\sim\mathcal N(\mu\mathbf 1,\sigma^2I_d)` with noiseless labels
:math:`y_n=\langle w_*,x_n\rangle`, :math:`w_*=(\mathbb 1[i\le k]/\sqrt k)_i` (k-sparse, unit norm). Paper
values: N=50, d=100, mu=5, sigma2=5, k=5. The data seed is unspecified by the paper.

Also the closed-form population risk (a test loss: the paper does not define one) and the two interpolating
baselines of Fig. 1 (min-l1 and min-l2 norm solutions of :math:`Xw=y`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eosdsl.data.fingerprint import array_fingerprint

__all__ = [
    "SparseRegression",
    "make_sparse_regression",
    "min_l1_interpolator",
    "min_l2_interpolator",
    "population_risk",
]


@dataclass(frozen=True, eq=False)
class SparseRegression:
    r"""One draw of the sparse-regression training set (all arrays float64).

    Attributes:
        X: ``(N, d)``; rows are samples :math:`x_n\sim\mathcal N(\mu,\sigma^2 I_d)`.
        y: ``(N,)``; :math:`y_n=\langle w_*,x_n\rangle` (no noise), computed as ``X @ w_star``.
        w_star: ``(d,)``; ``1/sqrt(k)`` on the first k coordinates, 0 elsewhere.
        mu: ``(d,)``; the mean vector ``mu * ones(d)``.
        sigma2: per-coordinate variance :math:`\sigma^2`.
        fingerprint: ``array_fingerprint(X=X, y=y, w_star=w_star, mu=mu, sigma2=float64(sigma2))``.
    """

    X: np.ndarray
    y: np.ndarray
    w_star: np.ndarray
    mu: np.ndarray
    sigma2: float
    fingerprint: str

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])


def _fingerprint(X: np.ndarray, y: np.ndarray, w_star: np.ndarray, mu: np.ndarray, sigma2: float) -> str:
    return array_fingerprint(X=X, y=y, w_star=w_star, mu=mu, sigma2=np.asarray(sigma2, dtype=np.float64))


def make_sparse_regression(
    n: int = 50, d: int = 100, mu: float = 5.0, sigma2: float = 5.0, sparsity: int = 5, seed: int = 0
) -> SparseRegression:
    """Draw the training set of paper App. B (defaults are the paper's values; the seed is ours).

    Randomness (platform-independent): ``rng = np.random.Generator(np.random.PCG64(seed))`` makes exactly one
    draw, ``Z = rng.standard_normal((n, d))`` (filled in C order: sample 0's d coordinates first), and
    ``X = mu + sqrt(sigma2) * Z``. Nothing else is random: ``w_star`` is deterministic and
    ``y = X @ w_star``.
    """
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1, got n={n}, d={d}")
    if not 1 <= sparsity <= d:
        raise ValueError(f"sparsity must lie in [1, d={d}], got {sparsity}")
    if not sigma2 > 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    rng = np.random.Generator(np.random.PCG64(seed))
    Z = rng.standard_normal((n, d))
    X = float(mu) + np.sqrt(float(sigma2)) * Z
    w_star = np.zeros(d)
    w_star[:sparsity] = 1.0 / np.sqrt(sparsity)
    y = X @ w_star
    mu_vec = np.full(d, float(mu))
    for a in (X, y, w_star, mu_vec):
        a.setflags(write=False)
    return SparseRegression(
        X=X,
        y=y,
        w_star=w_star,
        mu=mu_vec,
        sigma2=float(sigma2),
        fingerprint=_fingerprint(X, y, w_star, mu_vec, sigma2),
    )


def population_risk(w: Any, data: SparseRegression, scale: float) -> Any:
    r"""Closed-form population risk ``scale * E_x <w - w_star, x>^2``, :math:`x\sim\mathcal N(\mu,\sigma^2I)`.

    With :math:`e=w-w_*`: :math:`\mathbb E\langle e,x\rangle^2=(\mu^\top e)^2+\sigma^2\|e\|^2` (derived
    here); ``scale`` is the loss normalisation ``c`` of the training MSE. ``w`` may be a numpy or JAX
    array of shape ``(..., d)``; only arithmetic operators, ``@`` and ``.sum`` are used, so the function can
    be traced by ``jax.jit``/``vmap``. Returns a scalar for ``(d,)`` input, else shape ``(...)``.
    """
    if isinstance(w, list | tuple):
        w = np.asarray(w, dtype=np.float64)
    e = w - data.w_star
    m = e @ data.mu
    return scale * (m * m + data.sigma2 * (e * e).sum(axis=-1))


def _check_system(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X of shape (N, d) and y of shape (N,), got {X.shape} and {y.shape}")
    return X, y


def min_l2_interpolator(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Minimum-l2-norm solution of :math:`Xw=y`: :math:`w=X^\top(XX^\top)^{-1}y` (Fig. 1's ℓ2 baseline).

    Computed by the SVD-based least-squares solver (``np.linalg.lstsq``), which returns the minimum-norm
    least-squares solution without forming :math:`XX^\top` (whose condition number is the square of X's).
    For X of full row rank (N <= d) this is the interpolator above.
    """
    X, y = _check_system(X, y)
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    return w


def min_l1_interpolator(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Minimum-l1-norm solution of :math:`Xw=y` (basis pursuit; Fig. 1's ℓ1 baseline).

    LP: with :math:`w=p-q`, :math:`p,q\ge0`, minimise :math:`\mathbf 1^\top(p+q)` subject to
    :math:`[X,\,-X]\,[p;q]=y`, solved by ``scipy.optimize.linprog(method="highs")``. Raises ``RuntimeError``
    if the solver does not report an optimal solution (e.g. infeasible system).
    """
    from scipy.optimize import linprog  # on first use: importing it costs 0.2 s at start-up

    X, y = _check_system(X, y)
    d = X.shape[1]
    res = linprog(
        c=np.ones(2 * d),
        A_eq=np.hstack([X, -X]),
        b_eq=y,
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"min_l1_interpolator: linprog(highs) failed (status {res.status}): {res.message}")
    return res.x[:d] - res.x[d:]
