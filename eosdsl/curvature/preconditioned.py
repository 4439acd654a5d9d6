"""Effective sharpness of adaptive methods: λ_max of the preconditioned Hessian (Cohen et al. 2022).

Adam and RMSProp with a frozen diagonal preconditioner P = diag(p), p > 0, run gradient descent (with
momentum, for Adam) on the quadratic model in the geometry of P: the update is −η P⁻¹ m. The relevant
curvature is therefore the spectrum of P⁻¹H, which is similar to the symmetric P^{-1/2} H P^{-1/2}
(P^{-1/2}(P^{-1/2}HP^{-1/2})P^{1/2} = P⁻¹H), so "preconditioned sharpness" is

    λ_max(P^{-1/2} H P^{-1/2}),

computed matrix-free with ``preconditioned_matvec`` v ↦ p^{-1/2} ⊙ H(p^{-1/2} ⊙ v) and a symmetric
eigensolver (``eosdsl.curvature.lanczos.lanczos_top``). Cohen, Ghorbani, Krishnan, Agarwal, Medapati,
Badura, Suo, Cardoze, Nado, Dahl, Gilmer, "Adaptive gradient methods at the edge of stability" (2022).

The preconditioners of ``eosdsl.optim.optimizers`` (optax transforms, see ``adam_preconditioner`` and
``rmsprop_preconditioner``):

- Adam (``optax.scale_by_adam``, eps_root = 0): update −η m̂/(√v̂ + ε), v̂ = ν/(1 − β₂ᵗ), so
  P = diag(√v̂ + ε) (ε *outside* the root);
- RMSProp (``optax.scale_by_rms``, defaults eps_in_sqrt=True, no bias correction): update −η g/√(ν + ε), so
  P = diag(√(ν + ε)) (ε *inside* the root).

Stability thresholds (``adaptive_threshold``) of these updates on a quadratic with P frozen: RMSProp is
preconditioned GD, stable iff λ_max(P⁻¹H) < 2/η. Adam's m ← β₁m + (1 − β₁)g, θ ← θ − ηP⁻¹m is heavy ball
with step (1 − β₁)η and momentum β₁ in P's geometry, stable iff λ_max(P⁻¹H) < 2(1 + β₁)/((1 − β₁)η) =
(2 + 2β₁)/((1 − β₁)η) — 38/η at β₁ = 0.9; β₁ = 0 gives RMSProp's 2/η. These are the MSS values of
``eosdsl.optim.optimizers.adam`` / ``rmsprop``.

Which P goes with which H: at step t the update uses ν_t (already including g_t²) and the Hessian at the
pre-update parameters θ_t, so pair H(θ_t) with the optimizer state *after* step t's update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

Array = jax.Array
Params = Any


def preconditioned_matvec(hvp: Callable[[Array], Array], p: Array) -> Callable[[Array], Array]:
    """v ↦ P^{-1/2} H P^{-1/2} v = p^{-1/2} ⊙ hvp(p^{-1/2} ⊙ v), for a flat preconditioner p (P,) > 0.

    ``hvp`` is v ↦ Hv over the flat parameters (e.g. ``eosdsl.curvature.hvp.hvp_fn(loss, params)``), ``p``
    the diagonal of P in the same flattening order (``ravel_pytree``). The operator is symmetric with the
    eigenvalues of P⁻¹H; its top eigenvalue is the preconditioned sharpness, compared with
    ``adaptive_threshold``. Its eigenvectors w map to those of P⁻¹H as P^{-1/2}w.
    """
    inv_sqrt = jax.lax.rsqrt(jnp.asarray(p))  # (P,)
    return lambda v: inv_sqrt * hvp(inv_sqrt * v)


def adaptive_threshold(lr: Array | float, b1: Array | float = 0.0) -> Array:
    """The stability threshold (2 + 2β₁)/((1 − β₁)η) of λ_max(P⁻¹H) (Cohen et al. 2022).

    Adam with first-moment decay β₁ = ``b1`` and learning rate η = ``lr``; ``b1 = 0`` gives RMSProp's 2/η
    (and plain GD's, with P = I). Derivation in the module docstring.
    """
    lr, b1 = jnp.asarray(lr), jnp.asarray(b1)
    return (2.0 + 2.0 * b1) / ((1.0 - b1) * lr)


def adam_preconditioner(
    nu: Params, count: Array, b2: Array | float, eps: Array | float, eps_root: Array | float = 0.0
) -> Array:
    """Adam's flat preconditioner p = √(ν/(1 − β₂^count) + eps_root) + ε (P,), ``optax.scale_by_adam``'s.

    ``nu`` and ``count`` are the ``ScaleByAdamState`` fields after the update whose step it preconditions
    (``count`` = t, ν = ν_t). Flattened in ``ravel_pytree`` order, like ``hvp_fn``'s vectors.
    """
    flat_nu, _ = ravel_pytree(nu)  # (P,)
    nu_hat = flat_nu / (1.0 - jnp.asarray(b2, flat_nu.dtype) ** jnp.asarray(count, flat_nu.dtype))
    return jnp.sqrt(nu_hat + eps_root) + eps


def rmsprop_preconditioner(nu: Params, eps: Array | float) -> Array:
    """RMSProp's flat preconditioner p = √(ν + ε) (P,), ``optax.scale_by_rms`` with its defaults
    (``eps_in_sqrt=True``, no bias correction), ν from ``ScaleByRmsState`` after the step's update."""
    flat_nu, _ = ravel_pytree(nu)  # (P,)
    return jnp.sqrt(flat_nu + eps)
