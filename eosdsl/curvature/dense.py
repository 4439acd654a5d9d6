"""Dense Hessian eigen-decomposition: exact top eigenpair for problems up to a few thousand parameters.

Also the oracle the scalable solvers are tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.eig import HIGHEST, EigResult

Array = jax.Array


class TopEig(NamedTuple):
    """The largest algebraic eigenvalue θ of H, its unit eigenvector v and the residual ‖Hv − θv‖."""

    value: jnp.ndarray
    vector: jnp.ndarray
    residual: jnp.ndarray


def hessian_matrix(loss: Callable[[Any], jnp.ndarray], params: Any) -> jnp.ndarray:
    """The symmetrized Hessian (H + Hᵀ)/2 of ``loss`` at ``params`` over the flattened parameters."""
    flat, unravel = ravel_pytree(params)
    h = jax.hessian(lambda x: loss(unravel(x)))(flat)
    return 0.5 * (h + h.T)


def matrix_top(h: Array, k: int) -> tuple[Array, Array, Array]:
    """Top-k algebraic eigenpairs of a dense symmetric (P, P) ``h`` by ``eigh``: values (k,) descending,
    unit vectors (k, P) as rows, residuals ‖h v − θ v‖ (k,) against ``h`` itself."""
    values, vectors = jnp.linalg.eigh(h)  # ascending; vectors: (P, P), columns
    values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k].T  # (k,), (k, P)
    residuals = jnp.linalg.norm(jnp.dot(vectors, h, precision=HIGHEST) - values[:, None] * vectors, axis=1)
    return values, vectors, residuals


def dense_top(matvec: Callable[[Array], Array], dim: int, k: int, dtype: jnp.dtype | type) -> EigResult:
    """Top-k algebraic eigenpairs of the operator ``matvec`` on ℝ^dim from its dense matrix: dim HVPs.

    Builds M = vmap(matvec)(I) (row i is H e_i, so M = Hᵀ), symmetrizes H_s = (M + Mᵀ)/2, and takes
    ``eigh``'s top k, descending. Residuals ‖H_s v − θ v‖ are computed against the symmetrized matrix,
    which equals H up to the round-off asymmetry of the HVPs (exactly H for a symmetric operator), so no
    extra HVP is needed: ``hvps`` = dim, ``iterations`` = 0. Memory: the (dim, dim) matrix, and the
    ``vmap`` evaluates all dim HVPs as one batch; meant for dim up to a few thousand. ``dim``, ``k``,
    ``dtype`` static; works under ``jax.jit``, ``jax.vmap``, ``lax.scan`` and ``lax.cond``.
    """
    if not 1 <= k <= dim:
        raise ValueError(f"need 1 ≤ k ≤ dim; got k={k}, dim={dim}")
    dtype = jnp.dtype(dtype)
    m = jax.vmap(lambda e: matvec(e).astype(dtype))(jnp.eye(dim, dtype=dtype))  # (P, P) = Hᵀ
    values, vectors, residuals = matrix_top(0.5 * (m + m.T), k)
    return EigResult(values, vectors, residuals, iterations=jnp.asarray(0), hvps=jnp.asarray(dim))


def top_eigenpair(loss: Callable[[Any], jnp.ndarray], params: Any) -> TopEig:
    """Sharpness S = λ_max(∇²L) (largest *algebraic* eigenvalue) by ``eigh`` of the dense Hessian."""
    values, vectors, residuals = matrix_top(hessian_matrix(loss, params), 1)
    return TopEig(values[0], vectors[0], residuals[0])
