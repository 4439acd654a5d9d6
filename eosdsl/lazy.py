"""A module imported on first use, so that code paths that never compute (``eosdsl validate``,
``ls``, ``show``) do not pay for importing JAX.

``jnp = lazy_module("jax.numpy")`` gives an object whose attribute lookups import ``jax.numpy`` the
first time and forward to it. Look attributes up when computing (``jnp.add(a, b)`` inside a
function), not at import time (``OPS = {"add": jnp.add}`` would import JAX right away).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it when one of its attributes is first used."""
    return _LazyModule(name)
