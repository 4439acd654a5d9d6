"""Dense Hessian eigen-decomposition: exact top eigenpair for problems up to a few thousand parameters.

Also the oracle the scalable solvers are tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


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


def top_eigenpair(loss: Callable[[Any], jnp.ndarray], params: Any) -> TopEig:
    """Sharpness S = λ_max(∇²L) (largest *algebraic* eigenvalue) by ``eigh`` of the dense Hessian."""
    h = hessian_matrix(loss, params)
    values, vectors = jnp.linalg.eigh(h)
    value, vector = values[-1], vectors[:, -1]
    residual = jnp.linalg.norm(h @ vector - value * vector)
    return TopEig(value, vector, residual)
