"""Branches inside a ``vmap``-packed program: a ``lax.cond`` whose predicate may differ per member.

A pack runs several sweep points as one program, ``jax.vmap``-ped over their hyperparameters and
states with the axis name :data:`PACK_AXIS`. Under ``vmap`` a ``lax.cond`` on a batched predicate
becomes a select that evaluates *both* branches for every member at every step, so a sharpness due
every 100 steps would be solved at every step. :meth:`Lanes.cond` keeps the branch a real
conditional: the expensive branch runs when at least one live member takes it (the predicate reduced
over the pack with ``lax.pmax``), and each member then keeps the result of its own branch. Outside a
pack (``axis is None``) it is exactly ``lax.cond``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

PACK_AXIS = "pack"
"""The ``vmap`` axis name of packed programs."""


@dataclass(frozen=True)
class Lanes:
    """How a step's conditionals are evaluated: alone (``axis=None``) or across the members of a pack.

    ``live`` marks the members still running; members that have ended never force a branch to run.
    """

    axis: str | None = None
    live: Any = True

    def any(self, pred: jax.Array) -> jax.Array:
        """``pred`` for a lone program; whether it holds for some live member of a pack (unbatched)."""
        if self.axis is None:
            return pred
        return lax.pmax((pred & self.live).astype(jnp.int32), self.axis) > 0

    def cond(
        self, pred: jax.Array, true_fn: Callable[..., Any], false_fn: Callable[..., Any], *operands: Any
    ) -> Any:
        """``lax.cond(pred, true_fn, false_fn, *operands)``, evaluated per member of a pack.

        In a pack, ``true_fn`` runs when some live member takes it; every member keeps the output of its
        own branch (``false_fn`` must be cheap: it is evaluated for all members whenever ``true_fn`` is).
        """
        if self.axis is None:
            return lax.cond(pred, true_fn, false_fn, *operands)

        def both(*ops: Any) -> Any:
            taken, other = true_fn(*ops), false_fn(*ops)
            return jax.tree.map(lambda a, b: jnp.where(pred, a, b), taken, other)

        return lax.cond(self.any(pred), both, false_fn, *operands)


    def when(self, pred: jax.Array, fn: Callable[..., Any], *operands: Any, fill: float = jnp.nan) -> Any:
        """``fn(*operands)`` where ``pred`` holds, else the same pytree filled with ``fill`` (NaN: "not
        measured at this step"; integer leaves get 0) — a measurement computed only at its due steps."""
        fn, template = traced_once(fn, *operands)

        def blank(*_: Any) -> Any:
            def leaf(s: Any) -> jax.Array:
                value = fill if jnp.issubdtype(s.dtype, jnp.inexact) else 0
                return jnp.full(s.shape, value, s.dtype)

            return jax.tree.map(leaf, template)

        return self.cond(pred, fn, blank, *operands)


def traced_once(fn: Callable[..., Any], *operands: Any) -> tuple[Callable[..., Any], Any]:
    """(``fn`` as its traced jaxpr, the shapes of its output): ``fn`` traced once, for a conditional
    whose other branch is built from those shapes (``jax.eval_shape`` followed by ``lax.cond`` traces
    ``fn`` twice; replaying the jaxpr binds the same primitives without running ``fn``'s Python)."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*operands)
    tree = jax.tree.structure(shapes)

    def replay(*ops: Any) -> Any:
        flat = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *jax.tree.leaves(ops))
        return jax.tree.unflatten(tree, flat)

    return replay, shapes


ALONE = Lanes()
"""The lanes of a program that is not packed: every conditional is a plain ``lax.cond``."""
