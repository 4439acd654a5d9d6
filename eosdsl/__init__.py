"""eosdsl: edge-of-stability experiments as specs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eosdsl.api import open_run

__all__ = ["open_run"]

_LAZY = {"open_run": "eosdsl.api"}
"""Public names imported on first access, so that ``import eosdsl`` stays cheap (no registry, no zarr)."""


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (PEP 562)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
