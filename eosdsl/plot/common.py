"""What the run and sweep figures share: the off-screen backend, paper-style sizes and fonts, saving (the
format chosen by the file suffix), legends, reference labels, and limits frozen from the data."""

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
    "FORMATS",
    "REFERENCE_COLORS",
    "STYLE",
    "closes_on_error",
    "figure_format",
    "freeze_limits",
    "legend",
    "off_scale",
    "reference_label",
    "save",
]

DPI = 120
FIGSIZE = (6.0, 4.0)  # inches: a figure that fits a paper's column pair at 10 pt
FORMATS = ("png", "pdf", "svg")
STYLE = {  # paper-style defaults, applied while a figure is built (see closes_on_error)
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 10,
    "lines.linewidth": 1.3,
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
}
REFERENCE_COLORS = ("C2", "C4", "C8", "C9", "C5", "C6")  # no red: red marks divergence and the MSS
REFERENCE_LABELS = {"min_l1": "min-ℓ1 interpolator", "min_l2": "min-ℓ2 interpolator"}

P = ParamSpec("P")
R = TypeVar("R")


def closes_on_error(build: Callable[P, R]) -> Callable[P, R]:
    """Build under the paper-style :data:`STYLE`; close the figures ``build`` opened if it raises, so a
    failing figure leaks no pyplot state."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        before = set(plt.get_fignums())
        try:
            with plt.rc_context(STYLE):
                return build(*args, **kwargs)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise

    return wrapper


def figure_format(path: Path) -> str:
    """The format a figure is saved in: its suffix when one of :data:`FORMATS` (``.PDF`` too), else PNG."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "png"


def save(fig: Figure, path: Path) -> Path:
    """Save ``fig`` in the format its suffix names (PNG at :data:`DPI` otherwise) and close it (even if
    saving fails)."""
    try:
        with plt.rc_context(STYLE):
            fig.savefig(path, dpi=DPI, format=figure_format(path))
    finally:
        plt.close(fig)
    return path


def legend(ax: Axes) -> None:
    """A legend if anything is labelled."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="best", fontsize=8, framealpha=0.85)


def freeze_limits(ax: Axes) -> None:
    """Fix the axes' limits to what is drawn so far (the data), so reference lines drawn afterwards never
    stretch them (a min-ℓ1 test loss of 1e-28 on a log axis, a warm-up MSS of 1e5)."""
    ax.relim(visible_only=True)
    ax.autoscale_view()
    if ax.has_data():
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())


def off_scale(ax: Axes, value: float) -> bool:
    """Whether a horizontal line at ``value`` lies outside the (frozen) y-range."""
    low, high = sorted(ax.get_ylim())
    return not low <= value <= high


def reference_label(name: str, value: float) -> str:
    """``test_loss.min_l1`` → ``'test loss of min-ℓ1 interpolator (1.23e-02)'``."""
    series, _, kind = name.partition(".")
    what = REFERENCE_LABELS.get(kind, kind.replace("_", " "))
    return f"{series.replace('_', ' ')} of {what} ({value:.3g})"
