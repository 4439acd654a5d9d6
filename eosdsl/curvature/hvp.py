"""Hessian-vector products of a training loss over its flattened parameters.

For a loss L: params ↦ ℝ and the flat parameter vector x = ravel(params) ∈ ℝᴾ, let f(x) = L(unravel(x)).
The Hessian-vector product is the directional derivative of the gradient,

    H v = ∇²f(x) v = d/dt ∇f(x + t v) |_{t=0},

computed by forward-over-reverse: the JVP (forward mode) of ∇f (reverse mode). ``jax.linearize`` runs the
reverse pass once and returns the linear map v ↦ H v, so every further product only replays the stored
linearization (one forward-mode sweep of the gradient computation), the usual cost of ≈ 2–4 gradients
per product without re-tracing or re-evaluating the primal.

Memory: the linearization keeps the residuals of the whole gradient computation (≈ the activations of one
forward + backward pass over everything ``loss`` touches) alive while the returned function is in use, so
for a full-batch loss it scales with the number of examples n. A full-batch loss written as a chunked
mean whose chunk body is under ``jax.checkpoint`` (``eosdsl.problems.supervised.chunked_mean``, used when a
supervised problem sets ``batch_chunk``) bounds this by the chunk: the residuals are then each chunk's
inputs, and every product recomputes one chunk's activations at a time — for this linearization and for
``jax.jvp(jax.grad(f), (x,), (v,))`` alike. Without the checkpoint, a ``lax.scan`` over chunks stacks every
chunk's residuals and saves nothing; with the checkpoint around the network only (the loss reduction
outside it), the linearization of the gradient still kept every chunk's activations (measured with
``Compiled.memory_analysis()``, jax 0.10; see ``tests/test_chunked.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.flatten_util import ravel_pytree

Params = Any
Array = jax.Array


def hvp_fn(loss: Callable[[Params], Array], params: Params) -> Callable[[Array], Array]:
    """The linear map v ↦ ∇²L(params) v over the flattened parameters, by forward-over-reverse.

    ``v`` is a flat vector of shape (P,) with the dtype of ``ravel_pytree(params)[0]`` (the common dtype of
    the leaves); the result has the same shape and dtype. The linearization of ∇f at x is computed once,
    here, and shared by every call of the returned function, so it can be handed to an iterative
    eigensolver (``eosdsl.curvature.lanczos.lanczos_top``) as its ``matvec``. Works under ``jax.jit``,
    ``lax.scan`` and ``lax.cond``; the returned function is vmappable.

    The flattening order is ``ravel_pytree``'s (sorted dict keys), the same as
    ``eosdsl.curvature.dense.hessian_matrix``, so the two agree entry by entry: ``hvp_fn(L, p)(v) ==
    hessian_matrix(L, p) @ v`` up to round-off (the dense one is symmetrized, this one is exact autodiff).
    """
    flat, unravel = ravel_pytree(params)  # flat: (P,)

    def flat_loss(x: Array) -> Array:
        return loss(unravel(x))

    _, hvp = jax.linearize(jax.grad(flat_loss), flat)  # hvp: (P,) -> (P,), linear
    return hvp
