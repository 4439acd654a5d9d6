"""Where expressions evaluate: ``jax.numpy`` (the default; traceable under ``jit``, ``grad``,
``hessian`` and ``vmap``) or NumPy, inside :func:`numpy_evaluation`.

Spec validation evaluates constant expressions (a learning rate ``(2 + eps) / u0**2``) only to check
that they give one finite number; it does so with NumPy, so that ``eosdsl validate`` never imports JAX.
Both follow IEEE float64 arithmetic; the values a run uses always come from JAX (``spec.scope``).

:data:`jnp` is the array namespace expressions call (``jnp.add``, ``jnp.where``…): attributes are
looked up on every use, in ``jax.numpy`` unless NumPy evaluation is on (``jax.numpy`` is imported on
first use, not when this module is).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

from eosdsl.lazy import lazy_module

__all__ = ["array_op", "is_weak", "jnp", "nn", "numpy_evaluation"]

_NUMPY = contextvars.ContextVar("eosdsl_expr_numpy", default=False)
_jax = lazy_module("jax")
_jax_numpy = lazy_module("jax.numpy")
_jax_nn = lazy_module("jax.nn")


@contextlib.contextmanager
def numpy_evaluation() -> Iterator[None]:
    """Evaluate expressions with NumPy in this block (floating-point warnings silenced: an overflow or
    a division by zero gives the inf or NaN that JAX would give)."""
    token = _NUMPY.set(True)
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        _NUMPY.reset(token)


class _ArrayNamespace:
    def __getattr__(self, name: str) -> Any:
        if _NUMPY.get():
            return getattr(np, name)
        return getattr(_jax_numpy, name)

    def __repr__(self) -> str:
        return "<jax.numpy, or numpy under numpy_evaluation()>"


jnp: Any = _ArrayNamespace()


def array_op(name: str) -> Any:
    """The function ``jnp.<name>``, looked up at each call (so it follows :func:`numpy_evaluation`)."""

    def op(*args: Any) -> Any:
        return getattr(jnp, name)(*args)

    op.__name__ = name
    return op


def _softplus(x: Any) -> Any:
    return np.logaddexp(x, 0.0)


def _sigmoid(x: Any) -> Any:
    return 0.5 * (np.tanh(0.5 * np.asarray(x)) + 1.0)


_NUMPY_NN = {"relu": lambda x: np.maximum(x, 0), "sigmoid": _sigmoid, "softplus": _softplus}


def nn(name: str) -> Any:
    """The activation ``name`` of ``jax.nn`` (relu, sigmoid, softplus), or its NumPy equal."""
    if _NUMPY.get():
        return _NUMPY_NN[name]
    return getattr(_jax_nn, name)


def is_weak(x: Any) -> bool:
    """Whether ``x`` is weakly typed: a Python scalar, or a JAX value marked weak (NumPy has none)."""
    if isinstance(x, bool | int | float | complex):
        return True
    if _NUMPY.get() or isinstance(x, np.ndarray | np.generic):
        return False
    typeof = getattr(_jax, "typeof", None) or _jax.core.get_aval  # jax.typeof is new in jax 0.4.36+
    try:
        return bool(getattr(typeof(x), "weak_type", False))
    except TypeError:
        return False
