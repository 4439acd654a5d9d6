"""eosdsl: edge-of-stability experiments as specs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eosdsl.api import RunView, SweepView, open_run, open_sweep

__all__ = ["RunView", "SweepView", "__version__", "open_run", "open_sweep"]

_LAZY = {name: "eosdsl.api" for name in ("RunView", "SweepView", "open_run", "open_sweep")}
"""Public names imported on first access, so that ``import eosdsl`` stays cheap (no registry, no zarr)."""


def _version() -> str:
    """The installed distribution's version; for a source tree that is not installed, the version in
    its ``pyproject.toml`` (``0+unknown`` if that cannot be read either)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eosdsl")
    except PackageNotFoundError:
        pass
    import re
    from pathlib import Path

    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "0+unknown"
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return found.group(1) if found else "0+unknown"


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (PEP 562); ``__version__`` is read from the package metadata on
    first access."""
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
