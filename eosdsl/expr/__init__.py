"""A small, safe expression language compiled to JAX closures.

``compile_expr("0.5 * u**2 * v**2 * (u >= 0)", names={"u", "v"})`` returns an :class:`Expr` that
evaluates with ``jax.numpy`` on a mapping of names to arrays and is traceable under ``jit``, ``grad``,
``hessian`` and ``vmap``.  :data:`FUNCTIONS` and :data:`CONSTANTS` list what expressions may use.
"""

from __future__ import annotations

from eosdsl.expr.compiler import Expr, ExprError, compile_expr
from eosdsl.expr.functions import CONSTANTS, FUNCTIONS

__all__ = ["CONSTANTS", "FUNCTIONS", "Expr", "ExprError", "compile_expr"]
