"""Resolve spec scalars (numbers or expressions over constants) to values.

The same code serves the host (concrete numbers) and the compiled program (traced numbers): a
:class:`Scope` holds the named values an expression may use and the dtype results are cast to.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jax.numpy as jnp

from eosdsl.expr import Expr, compile_expr


@lru_cache(maxsize=4096)
def parse(source: str) -> Expr:
    """Compile an expression once per distinct source (compilation is pure, so caching is safe)."""
    return compile_expr(source)


class Scope:
    """Named values (constants, and whatever the context adds) plus the dtype of the run."""

    def __init__(self, values: Mapping[str, Any], dtype: Any) -> None:
        self.values = dict(values)
        self.dtype = dtype

    def child(self, **more: Any) -> Scope:
        """A scope with extra names (e.g. ``mss``, ``lr`` for a threshold)."""
        return Scope({**self.values, **more}, self.dtype)

    def __call__(self, value: float | str | Any) -> jnp.ndarray:
        """A number as an array of the run's dtype; an expression evaluated in this scope."""
        if isinstance(value, str):
            value = parse(value)(self.values)
        return jnp.asarray(value, dtype=self.dtype)

    def eval(self, source: str, **more: Any) -> jnp.ndarray:
        """Evaluate ``source`` with extra names, without casting (booleans stay booleans)."""
        return parse(source)({**self.values, **more})
