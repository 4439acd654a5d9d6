"""The whitelist of functions and constants available to spec expressions.

Every function here takes positional arguments only, evaluates with ``jax.numpy`` / ``jax.nn`` and is
traceable under ``jit``, ``grad``, ``hessian`` and ``vmap``.  Boolean arguments (the result of a
comparison such as ``u >= 0``) are cast to a floating dtype before any arithmetic, following the rule
implemented by :func:`coerce`: a boolean takes the floating dtype of a strongly typed floating operand
it meets, and otherwise becomes a *weakly typed* array of the default float dtype
(``jnp.result_type(float)``), so that it never widens a float32 computation to float64.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from eosdsl.expr.backend import array_op, is_weak, jnp, nn

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "arity",
    "bool_to_float",
    "coerce",
    "function_signature",
    "is_bool",
    "power",
    "to_inexact",
]

CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e, "inf": math.inf})
"""Builtin constants; they are plain Python floats, hence weakly typed."""

_PYTHON_SCALARS = (bool, int, float, complex)


# --------------------------------------------------------------------------------------------------
# dtype helpers
# --------------------------------------------------------------------------------------------------


def is_bool(x: Any) -> bool:
    """Return whether ``x`` is a boolean scalar or a boolean array (or tracer)."""
    if isinstance(x, bool | np.bool_):
        return True
    dtype = getattr(x, "dtype", None)
    return dtype is not None and np.dtype(dtype) == np.bool_


def _strong_inexact_dtype(x: Any) -> np.dtype | None:
    """Return the dtype of ``x`` if it is a strongly typed floating/complex array, else ``None``."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or isinstance(x, _PYTHON_SCALARS):
        return None
    if not jnp.issubdtype(dtype, jnp.inexact) or is_weak(x):
        return None
    return np.dtype(dtype)


def bool_to_float(x: Any, like: Any = None) -> Any:
    """Cast the boolean ``x`` to float, taking the dtype of ``like`` if that is a strong float array.

    Python/numpy boolean scalars become Python floats; boolean arrays become either ``like``'s floating
    dtype or a weakly typed array of the default float dtype.  The cast has a zero derivative.
    """
    if isinstance(x, bool | np.bool_):
        return float(x)
    dtype = _strong_inexact_dtype(like)
    if dtype is not None:
        return jnp.asarray(x).astype(dtype)
    return jnp.where(x, 1.0, 0.0)


def coerce(*args: Any) -> tuple[Any, ...]:
    """Cast every boolean among ``args`` to float, using a strong floating dtype of another argument."""
    if not any(is_bool(a) for a in args):
        return args
    out = []
    for i, arg in enumerate(args):
        if is_bool(arg):
            others = (o for j, o in enumerate(args) if j != i)
            like = next((o for o in others if _strong_inexact_dtype(o) is not None), None)
            arg = bool_to_float(arg, like)
        out.append(arg)
    return tuple(out)


def _is_integer(x: Any) -> bool:
    """Return whether ``x`` is a (non-boolean) integer scalar or integer array."""
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, int):
        return True
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.integer)


def to_inexact(x: Any) -> Any:
    """Return ``x`` cast to a floating type if it is boolean or integer; otherwise unchanged."""
    if is_bool(x):
        return bool_to_float(x)
    if isinstance(x, int):
        return float(x)
    if _is_integer(x):
        return jnp.asarray(x).astype(jnp.result_type(float))
    return x


def power(x: Any, y: Any) -> Any:
    """``x ** y`` with Python semantics for integers: a negative integer exponent gives a float."""
    x, y = coerce(x, y)
    if _is_integer(x) and _is_integer(y) and not (isinstance(y, int) and y >= 0):
        x = to_inexact(x)
    return jnp.power(x, y)


# --------------------------------------------------------------------------------------------------
# the whitelist
# --------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Any]] = {}


def _register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function in the whitelist under ``name`` (which also becomes its ``__name__``)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__name__ = name
        fn.__qualname__ = name
        _REGISTRY[name] = fn
        return fn

    return decorate


def _elementwise(name: str, op: Callable[[Any], Any], doc: str) -> None:
    """Register a one-argument elementwise function that works on floats."""

    def fn(x: Any, /) -> Any:
        return op(to_inexact(x))

    fn.__doc__ = doc
    _register(name)(fn)


for _name, _op, _doc in [
    ("sqrt", array_op("sqrt"), "Elementwise square root."),
    ("exp", array_op("exp"), "Elementwise exponential."),
    ("log", array_op("log"), "Elementwise natural logarithm."),
    ("log1p", array_op("log1p"), "Elementwise ``log(1 + x)``, accurate for small ``x``."),
    ("expm1", array_op("expm1"), "Elementwise ``exp(x) - 1``, accurate for small ``x``."),
    ("tanh", array_op("tanh"), "Elementwise hyperbolic tangent."),
    ("sinh", array_op("sinh"), "Elementwise hyperbolic sine."),
    ("cosh", array_op("cosh"), "Elementwise hyperbolic cosine."),
    ("sin", array_op("sin"), "Elementwise sine."),
    ("cos", array_op("cos"), "Elementwise cosine."),
    ("arctan", array_op("arctan"), "Elementwise inverse tangent."),
    ("relu", lambda x: nn("relu")(x), "Elementwise ``max(x, 0)``."),
    ("sigmoid", lambda x: nn("sigmoid")(x), "Elementwise logistic sigmoid ``1 / (1 + exp(-x))``."),
    ("softplus", lambda x: nn("softplus")(x), "Elementwise ``log(1 + exp(x))``."),
]:
    _elementwise(_name, _op, _doc)
del _name, _op, _doc


@_register("abs")
def _abs(x: Any, /) -> Any:
    """Elementwise absolute value."""
    return jnp.abs(*coerce(x))


@_register("sign")
def _sign(x: Any, /) -> Any:
    """Elementwise sign: -1, 0 or 1."""
    return jnp.sign(*coerce(x))


@_register("square")
def _square(x: Any, /) -> Any:
    """Elementwise square."""
    return jnp.square(*coerce(x))


@_register("heaviside")
def _heaviside(x: Any, /) -> Any:
    """Heaviside step as a float: 1 where ``x >= 0``, else 0 (zero derivative everywhere)."""
    (x,) = coerce(x)
    return bool_to_float(jnp.greater_equal(x, 0), like=x)


@_register("sum")
def _sum(x: Any, /) -> Any:
    """Sum of all elements."""
    return jnp.sum(*coerce(x))


@_register("prod")
def _prod(x: Any, /) -> Any:
    """Product of all elements."""
    return jnp.prod(*coerce(x))


@_register("mean")
def _mean(x: Any, /) -> Any:
    """Mean of all elements."""
    return jnp.mean(*coerce(x))


@_register("min")
def _min(x: Any, y: Any = None, /) -> Any:
    """With one argument, the smallest element of ``x``; with two, the elementwise minimum."""
    if y is None:
        return jnp.min(*coerce(x))
    return jnp.minimum(*coerce(x, y))


@_register("max")
def _max(x: Any, y: Any = None, /) -> Any:
    """With one argument, the largest element of ``x``; with two, the elementwise maximum."""
    if y is None:
        return jnp.max(*coerce(x))
    return jnp.maximum(*coerce(x, y))


@_register("minimum")
def _minimum(x: Any, y: Any, /) -> Any:
    """Elementwise minimum of ``x`` and ``y``."""
    return jnp.minimum(*coerce(x, y))


@_register("maximum")
def _maximum(x: Any, y: Any, /) -> Any:
    """Elementwise maximum of ``x`` and ``y``."""
    return jnp.maximum(*coerce(x, y))


@_register("where")
def _where(c: Any, a: Any, b: Any, /) -> Any:
    """Elementwise ``a`` where ``c`` is true, else ``b`` (both branches are evaluated)."""
    return jnp.where(c, *coerce(a, b))


@_register("clip")
def _clip(x: Any, lo: Any, hi: Any, /) -> Any:
    """Elementwise ``x`` clipped to the interval ``[lo, hi]``."""
    x, lo, hi = coerce(x, lo, hi)
    return jnp.minimum(jnp.maximum(x, lo), hi)


@_register("norm")
def _norm(x: Any, /) -> Any:
    """Euclidean norm of the flattened ``x``; its gradient at ``x = 0`` is 0 rather than NaN."""
    x = to_inexact(x)
    sq = jnp.sum(jnp.square(x))
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


@_register("dot")
def _dot(a: Any, b: Any, /) -> Any:
    """Inner product of the flattened ``a`` and ``b`` (which must have the same size)."""
    a, b = coerce(a, b)
    return jnp.vdot(a, b)


@_register("cumsum")
def _cumsum(x: Any, /) -> Any:
    """Cumulative sum of the flattened ``x``."""
    return jnp.cumsum(*coerce(x))


@_register("diff")
def _diff(x: Any, /) -> Any:
    """First differences ``x[1:] - x[:-1]`` along the last axis."""
    return jnp.diff(*coerce(x))


FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(dict(sorted(_REGISTRY.items())))
"""The whitelist: function name -> implementation (positional arguments only)."""


def arity(name: str) -> tuple[int, int]:
    """Return ``(minimum, maximum)`` number of positional arguments of the whitelisted ``name``."""
    params = inspect.signature(FUNCTIONS[name]).parameters.values()
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return required, len(params)


def function_signature(name: str) -> str:
    """Return a human-readable signature such as ``clip(x, lo, hi)`` or ``min(x[, y])``."""
    params = inspect.signature(FUNCTIONS[name]).parameters.values()
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    optional = [p.name for p in params if p.default is not inspect.Parameter.empty]
    text = ", ".join(required)
    for opt in optional:
        text += f"[, {opt}]"
    return f"{name}({text})"
