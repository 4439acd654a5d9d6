"""Standard figures of one stored run: loss, sharpness against the MSS, the parameter plane, the rate.

Everything renders off-screen (Agg) through matplotlib's object API; every figure is closed after it
is saved. The builders (``loss_figure`` ...) return an open :class:`~matplotlib.figure.Figure` or
``None`` when the run lacks the series they need, so tests can inspect the artists; ``plot_run`` and
``plot_series`` save and close.

A run is anything with ``series_names()``, ``series(name)``, ``spec``, ``info`` and ``short_id``
(see :class:`PlottableRun`), e.g. :class:`eosdsl.registry.StoredRun`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eosdsl.plot.common import (
    FIGSIZE,
    REFERENCE_COLORS,
    closes_on_error,
    freeze_limits,
    legend,
    off_scale,
    reference_label,
    save,
)
from eosdsl.plot.labels import series_label, wrap_title
from eosdsl.registry.sweeps import references_of

__all__ = [
    "PlottableRun",
    "loss_figure",
    "lr_figure",
    "params_figure",
    "plot_run",
    "plot_series",
    "series_figure",
    "sharpness_figure",
    "two_parameters",
]

MAX_TRAJECTORY_POINTS = 10_000
MAX_LEGEND_COLUMNS = 8
EVENT_COLOR = "0.45"

Series = tuple[np.ndarray, np.ndarray]


class PlottableRun(Protocol):
    """The part of :class:`eosdsl.registry.StoredRun` the plots use."""

    short_id: str

    @property
    def spec(self) -> dict: ...

    @property
    def info(self) -> dict: ...

    def series_names(self) -> list[str]: ...

    def series(self, name: str) -> Series: ...


# --------------------------------------------------------------------------------------------- public API


def plot_run(run: PlottableRun, out_dir: Path, logx: bool = False, fmt: str = "png") -> list[Path]:
    """Write the standard figures of ``run`` into ``out_dir`` (created) and return the paths written.

    ``loss.png`` (if ``loss`` or ``test_loss`` exists), ``sharpness.png`` (if ``sharpness`` exists),
    ``params.png`` (two-parameter toys only) and ``lr.png`` (if ``lr`` exists); ``fmt`` (``png``,
    ``pdf``, ``svg``) is their format. ``logx`` puts the step axes on a log scale (step 0 is not shown).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = {"loss": loss_figure, "sharpness": sharpness_figure, "lr": lr_figure}
    written = []
    for stem, build in [*builders.items(), ("params", None)]:
        fig = params_figure(run) if build is None else build(run, logx=logx)
        if fig is not None:
            written.append(save(fig, out_dir / f"{stem}.{fmt}"))
    return sorted(written, key=lambda path: ["loss", "sharpness", "params", "lr"].index(path.stem))


def plot_series(
    run: PlottableRun, names: list[str], out: Path, logy: bool = False, logx: bool = False
) -> Path:
    """Plot the named series against step into ``out`` (its suffix picks PNG, PDF or SVG); ``KeyError``
    lists the available names."""
    fig = series_figure(run, names, logy=logy, logx=logx)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out)


# --------------------------------------------------------------------------------------------- figures


@closes_on_error
def loss_figure(run: PlottableRun, logx: bool = False) -> Figure | None:
    """Training (and test) loss on a log axis, test-loss references, and a diverged run's last step.

    The axis range is the losses' own: a reference far below them (a min-ℓ1 test loss of 1e-28) is
    labelled ``off scale`` instead of stretching the axis."""
    available = set(run.series_names())
    present = [name for name in ("loss", "test_loss") if name in available]
    if not present:
        return None
    fig, ax = _new_axes(logx)
    ax.set_yscale("log")
    for name in present:
        steps, values = run.series(name)
        _plot_columns(ax, name, steps, values, logy=True)
    diverged = _diverged_step(run, present)
    if diverged is not None:
        ax.axvline(diverged, color="red", lw=1.2, label=f"diverged at step {diverged}")
    freeze_limits(ax)
    _draw_references(ax, _references(run, "test_loss."))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(wrap_title(_title(run) + (" — diverged" if diverged is not None else "")))
    legend(ax)
    return fig


@closes_on_error
def sharpness_figure(run: PlottableRun, logx: bool = False) -> Figure | None:
    """Sharpness against step with the MSS as a red dotted step line and grey event lines."""
    available = set(run.series_names())
    if "sharpness" not in available:
        return None
    fig, ax = _new_axes(logx)
    steps, values = run.series("sharpness")
    _plot_columns(ax, "sharpness", steps, values, logy=False)
    if "mss" in available:
        mss_steps, mss = run.series("mss")
        mss = _finite_or_nan(np.asarray(mss, dtype=float).reshape(len(mss_steps), -1)[:, 0])
        ax.step(mss_steps, mss, where="post", color="red", ls=":", lw=1.6, label="MSS")
        _limit_y(ax, values, mss)
    diverged = _diverged_step(run, ["sharpness"])
    if diverged is not None:
        ax.axvline(diverged, color="red", lw=1.2, label=f"diverged at step {diverged}")
    _draw_events(ax, run.info.get("events") or [])
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness (λ_max of the Hessian)")
    ax.set_title(wrap_title(_title(run)))
    legend(ax)
    return fig


@closes_on_error
def params_figure(run: PlottableRun) -> Figure | None:
    """The trajectory in the parameter plane of a two-parameter toy, else ``None``."""
    pair = two_parameters(run)
    if pair is None:
        return None
    (x_name, x), (y_name, y) = pair
    keep = _thin(len(x), MAX_TRAJECTORY_POINTS)
    stride = _stride(len(x), MAX_TRAJECTORY_POINTS)
    label = "trajectory" if stride == 1 else f"trajectory (1 point in {stride} shown)"
    fig, ax = _new_axes()
    ax.plot(x[keep], y[keep], "-o", color="C0", lw=0.8, ms=1.5, alpha=0.8, label=label)
    if len(x):
        ax.plot(x[0], y[0], "o", ms=9, mfc="none", mec="C2", mew=2, label="start", ls="none")
        ax.plot(x[-1], y[-1], "x", ms=9, color="C3", mew=2, label="end", ls="none")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(wrap_title(_title(run)))
    legend(ax)
    return fig


@closes_on_error
def lr_figure(run: PlottableRun, logx: bool = False) -> Figure | None:
    """The learning rate against step, and the applied rate where it differs."""
    available = set(run.series_names())
    if "lr" not in available:
        return None
    fig, ax = _new_axes(logx)
    lr_steps, lr = run.series("lr")
    _plot_columns(ax, "lr", lr_steps, lr, logy=False)
    if "lr_applied" in available:
        applied_steps, applied = run.series("lr_applied")
        if not _same_series((lr_steps, lr), (applied_steps, applied)):
            _plot_columns(ax, "lr_applied", applied_steps, applied, logy=False, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(wrap_title(_title(run)))
    legend(ax)
    return fig


@closes_on_error
def series_figure(run: PlottableRun, names: Sequence[str], logy: bool = False, logx: bool = False) -> Figure:
    """Several named series against step.

    Names are stripped of surrounding blanks; ``KeyError`` listing the available names if one is unknown
    or none is named.
    """
    names = [name.strip() for name in names if name.strip()]  # tolerate "--series 'a, b'"
    available = run.series_names()
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        listed = ", ".join(available) or "(none)"
        what = f"unknown series {', '.join(unknown)}" if unknown else "no series named"
        raise KeyError(f"{what} in run {run.short_id}; available: {listed}")
    fig, ax = _new_axes(logx)
    for name in names:
        steps, values = run.series(name)
        _plot_columns(ax, name, steps, values, logy=logy)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(series_label(names[0]) if len(names) == 1 else "value")
    ax.set_title(wrap_title(_title(run)))
    legend(ax)
    return fig


def two_parameters(run: PlottableRun) -> tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]] | None:
    """``((x name, x), (y name, y))`` for a two-parameter toy, else ``None``.

    A two-parameter toy stores exactly two scalar ``params.*`` series (width-1 vectors count as scalars)
    or a single ``params.*`` series of width 2. Two series are aligned on their common steps.
    """
    names = [name for name in run.series_names() if name.startswith("params.")]
    if len(names) == 1:
        _, values = run.series(names[0])
        if _width(values) != 2:
            return None
        flat = _finite_or_nan(np.asarray(values, dtype=float).reshape(len(values), 2))
        return (f"{names[0]}[0]", flat[:, 0]), (f"{names[0]}[1]", flat[:, 1])
    if len(names) != 2:
        return None
    loaded = []
    for name in names:  # one at a time: a wide vector parameter is rejected before the next is read
        steps, values = run.series(name)
        if _width(values) != 1:
            return None
        loaded.append((steps, _finite_or_nan(np.asarray(values, dtype=float).reshape(len(steps)))))
    (x_steps, x), (y_steps, y) = loaded
    _, ix, iy = np.intersect1d(x_steps, y_steps, assume_unique=True, return_indices=True)
    return (names[0], x[ix]), (names[1], y[iy])


# --------------------------------------------------------------------------------------------- drawing


def _new_axes(logx: bool = False) -> tuple[Figure, Axes]:
    """A fresh figure with one gridded axes; ``logx``: a log step axis (step 0 and below masked)."""
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    ax.grid(True, which="major", alpha=0.3)
    if logx:
        ax.set_xscale("log", nonpositive="mask")
    return fig, ax


def _plot_columns(
    ax: Axes, name: str, steps: np.ndarray, values: np.ndarray, logy: bool, ls: str = "-"
) -> None:
    """Plot each column of a series; on a log axis hide non-positive values and say so in the label."""
    columns = list(_columns(name, values))
    many = len(columns) > MAX_LEGEND_COLUMNS  # one colour and one legend entry for all components
    color = None
    for i, (label, column) in enumerate(columns):
        shown, notes = _visible(column, logy)
        if many:
            label = f"{name} ({len(columns)} components)" if i == 0 else "_nolegend_"
        if notes and not label.startswith("_"):
            label = f"{label} ({notes})"
        (line,) = ax.plot(steps, shown, ls=ls, lw=1.0 if many else 1.3, color=color, label=label)
        if many:
            color = line.get_color()


def _columns(name: str, values: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """``(label, 1-D values)`` per column: the series itself if scalar, ``name[i]`` per component."""
    values = np.asarray(values, dtype=float)
    if values.ndim <= 1:
        yield name, values.reshape(-1)
        return
    flat = values.reshape(values.shape[0], -1)
    if flat.shape[1] == 1:
        yield name, flat[:, 0]
        return
    for i in range(flat.shape[1]):
        yield f"{name}[{i}]", flat[:, i]


def _visible(values: np.ndarray, logy: bool) -> tuple[np.ndarray, str]:
    """Values with the unplottable ones set to NaN, and a note counting what was hidden ('' if none).

    Non-finite values are always hidden; on a log axis so are non-positive ones. The note reads e.g.
    ``"masked: 10 non-positive, 3 non-finite"``.
    """
    finite = np.isfinite(values)
    keep = finite & (values > 0) if logy else finite
    counts = {
        "non-positive": int(np.count_nonzero(finite & (values <= 0))) if logy else 0,
        "non-finite": int(np.count_nonzero(~finite)),
    }
    parts = [f"{count} {what}" for what, count in counts.items() if count]
    return np.where(keep, values, np.nan), ("masked: " + ", ".join(parts)) if parts else ""


def _draw_references(ax: Axes, references: Mapping[str, float]) -> None:
    """Horizontal dashed lines at positive reference values, labelled by what they are; one outside the
    (frozen) y-range is labelled ``off scale`` and does not move the limits."""
    for i, (name, value) in enumerate(sorted(references.items())):
        if not (math.isfinite(value) and value > 0):
            continue
        color = REFERENCE_COLORS[i % len(REFERENCE_COLORS)]
        label = reference_label(name, value) + (" — off scale" if off_scale(ax, value) else "")
        ax.axhline(value, ls="--", lw=1.1, color=color, label=label)


def _draw_events(ax: Axes, events: Sequence[Mapping[str, Any]]) -> None:
    """Grey vertical lines at each fired event, named at the top of the axes (same-step events share one).

    A name goes right of its line, or left of it for lines near the right edge so it stays inside.
    """
    by_step: dict[int, list[str]] = {}
    for event in events:
        at = event.get("fired_at")
        if at is None or int(at) < 0:
            continue
        by_step.setdefault(int(at), []).append(str(event.get("name") or event.get("kind") or "event"))
    lines = {at: ax.axvline(at, color=EVENT_COLOR, lw=1.0, ls="-", alpha=0.8, gid="event") for at in by_step}
    to_axes = ax.transData + ax.transAxes.inverted()  # after the lines, so the limits include them
    for at, names in sorted(by_step.items()):
        shown = at > 0 or ax.get_xscale() != "log"
        near_right = shown and bool(to_axes.transform((at, 1.0))[0] > 0.85)
        ax.annotate(
            f"{', '.join(names)} (step {at})",
            xy=(at, 0.98),
            xycoords=lines[at].get_transform(),
            xytext=(-3 if near_right else 3, 0),
            textcoords="offset points",
            rotation=90,
            ha="right" if near_right else "left",
            va="top",
            fontsize=8,
            color="0.25",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75},
            gid="event-label",
        )


def _limit_y(ax: Axes, sharpness: np.ndarray, mss: np.ndarray) -> None:
    """Keep the sharpness readable when the MSS is huge somewhere (tiny rates in a warm-up).

    The y-range covers all of the sharpness and at least the lowest MSS level; the MSS is only cut off
    where it is far above both. Nothing changes when the MSS already fits.
    """
    sharp = np.asarray(sharpness, dtype=float)
    sharp = sharp[np.isfinite(sharp)]
    mss_finite = mss[np.isfinite(mss)]
    if sharp.size == 0 or mss_finite.size == 0:
        return
    low_mss = float(mss_finite.min())
    top = 1.1 * max(float(sharp.max()), low_mss)
    if float(mss_finite.max()) <= top:
        return
    bottom = min(float(sharp.min()), low_mss)
    pad = 0.05 * (top - bottom) if top > bottom else max(abs(top), 1.0) * 0.05
    ax.set_ylim(bottom - pad, top + pad)


# --------------------------------------------------------------------------------------------- runs


def _title(run: PlottableRun) -> str:
    """``"<spec name> (<short id>)"``."""
    spec = run.spec if isinstance(run.spec, Mapping) else {}
    return f"{spec.get('name') or 'unnamed'} ({run.short_id})"


def _diverged_step(run: PlottableRun, names: Sequence[str]) -> int | None:
    """The last step of a diverged run (``info['end_step']``, else the last recorded step), else None."""
    info = run.info if isinstance(run.info, Mapping) else {}
    if info.get("status") != "diverged":
        return None
    if info.get("end_step") is not None:
        return int(info["end_step"])
    ends = [steps[-1] for steps in (run.series(name)[0] for name in names) if len(steps)]
    return int(max(ends)) if ends else None


def _references(run: PlottableRun, prefix: str) -> dict[str, float]:
    """The run's reference values whose name starts with ``prefix``."""
    return {name: value for name, value in references_of(run).items() if name.startswith(prefix)}


# --------------------------------------------------------------------------------------------- arrays


def _width(values: np.ndarray) -> int:
    """Components per step: 1 for a scalar series, n for a ``(T, n)`` one."""
    values = np.asarray(values)
    return 1 if values.ndim <= 1 else int(np.prod(values.shape[1:]))


def _stride(n: int, max_points: int) -> int:
    """The step k of an every-k-th thinning of ``n`` points to at most about ``max_points``."""
    return max(1, math.ceil(n / max_points))


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of every k-th of ``n`` points, always including the last one."""
    keep = np.arange(0, n, _stride(n, max_points))
    if n and keep[-1] != n - 1:
        keep = np.append(keep, n - 1)
    return keep


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _same_series(a: Series, b: Series) -> bool:
    """Whether two series have the same steps and (to rounding) the same values."""
    (sa, va), (sb, vb) = a, b
    va, vb = np.asarray(va, dtype=float), np.asarray(vb, dtype=float)
    if sa.shape != sb.shape or va.shape != vb.shape or not np.array_equal(sa, sb):
        return False
    return bool(np.allclose(va, vb, rtol=1e-12, atol=0.0, equal_nan=True))
