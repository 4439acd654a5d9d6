"""What the run and sweep figures share: the off-screen backend, sizes, saving, legends, reference labels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "DPI",
    "FIGSIZE",
    "REFERENCE_COLORS",
    "closes_on_error",
    "legend",
    "reference_label",
    "save",
]

DPI = 120
FIGSIZE = (7.0, 4.4)
REFERENCE_COLORS = ("C2", "C4", "C8", "C9", "C5", "C6")  # no red: red marks divergence and the MSS
REFERENCE_LABELS = {"min_l1": "min-ℓ1 interpolator", "min_l2": "min-ℓ2 interpolator"}

P = ParamSpec("P")
R = TypeVar("R")


def closes_on_error(build: Callable[P, R]) -> Callable[P, R]:
    """Close the figures ``build`` opened if it raises, so a failing figure leaks no pyplot state."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        before = set(plt.get_fignums())
        try:
            return build(*args, **kwargs)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise

    return wrapper


def save(fig: Figure, path: Path) -> Path:
    """Save ``fig`` as a PNG at :data:`DPI` and close it (even if saving fails)."""
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path


def legend(ax: Axes) -> None:
    """A legend if anything is labelled."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="best", fontsize=8, framealpha=0.85)


def reference_label(name: str, value: float) -> str:
    """``test_loss.min_l1`` → ``'test loss of min-ℓ1 interpolator (1.23e-02)'``."""
    series, _, kind = name.partition(".")
    what = REFERENCE_LABELS.get(kind, kind.replace("_", " "))
    return f"{series.replace('_', ' ')} of {what} ({value:.3g})"
