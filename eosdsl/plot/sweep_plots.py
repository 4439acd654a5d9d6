"""Phase diagrams of a sweep: one summary of each member's run (``final.test_loss``) against swept axes.

:func:`sweep_curves` draws the summary against a numeric axis ``x``, one curve per value of a second
axis ``by`` (a grid axis or the case label); :func:`sweep_heatmap` colours an ``x`` × ``y`` grid. Both
draw one panel per case (unless the case is an axis of the plot) and per combination of the remaining
axes, so every member is drawn somewhere. A member without a plottable value — a diverged run, a
missing or failed one, a run without the series, a non-positive value on a log axis — is never drawn as
a value and never dropped silently: curves mark it near the top of its panel (× diverged, □ otherwise),
heatmaps hatch its cell and write the reason in it, and both list it in :attr:`SweepPlot.excluded`.

The builders return the open figure and what they drew (:class:`SweepPlot`, the numbers included), so
tests can check the data; :func:`plot_sweep` saves the PNG and closes the figure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from eosdsl.plot.common import (
    REFERENCE_COLORS,
    closes_on_error,
    freeze_limits,
    legend,
    off_scale,
    reference_label,
    save,
)
from eosdsl.plot.labels import pretty, wrap_title
from eosdsl.registry.sweeps import (
    CASE,
    Member,
    Summary,
    SummaryError,
    Sweep,
    as_number,
    is_number,
    parse_summaries,
    references_of,
    summary_value,
)
from eosdsl.spec.sweep import format_value

__all__ = [
    "Curve",
    "Panel",
    "SweepPlot",
    "SweepPlotError",
    "SweepPlotOptions",
    "plot_sweep",
    "sweep_curves",
    "sweep_heatmap",
]

PANEL_SIZE = (5.6, 4.0)
MAX_COLUMNS = 3
TOP_ROW, ROW_STEP = 0.96, 0.035  # axes heights of the rows of excluded-point markers, one row per curve
DIVERGED = "diverged"
NO_VALUE = "no value"
NOT_POSITIVE = "<= 0 on a log axis"
NO_MEMBER = "no member"
MAX_ANNOTATED_CELLS = 12  # heatmaps with at most this many cells per side write each value in its cell
PANEL_TITLE_WIDTH = 45


class SweepPlotError(ValueError):
    """Options a sweep cannot be plotted with (an unknown axis or reference, a non-numeric x, …)."""


@dataclass(frozen=True)
class SweepPlotOptions:
    """What to draw. Axes left ``None`` take defaults: ``x`` the first numeric swept axis; ``by`` the
    next swept axis, else the case label; ``y`` (heatmaps) the first swept axis other than ``x``."""

    value: str = "final.loss"
    x: str | None = None
    by: str | None = None
    y: str | None = None
    heatmap: bool = False
    refs: tuple[str, ...] = ()
    logx: bool = False
    logy: bool = False
    logz: bool = False
    also: tuple[str, ...] = ()
    """More values drawn as curves on the same axes as ``value`` (curves only, without ``by``)."""
    x_as: str | None = None
    """Curves: where each member sits on x, ``LABEL=EXPR`` of its spec constants, instead of its value
    of the swept axis ``x`` (paper 004 Fig. 5a puts η = ``eta0 * m**i`` on x of a grid over ``i``)."""


@dataclass(frozen=True)
class Point:
    """A member with its summary value (NaN when excluded) and why it is excluded (None if it is not)."""

    member: Member
    value: float
    reason: str | None


@dataclass
class Curve:
    """One curve: x sorted, the summary (NaN where excluded), the reasons, and reference values per x."""

    label: str
    x: np.ndarray
    y: np.ndarray
    reasons: list[str | None]
    references: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Panel:
    """One panel: its title and either curves or a heatmap ``values[i_y, i_x]`` (NaN: no value)."""

    title: str
    curves: list[Curve] = field(default_factory=list)
    x: list[Any] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    values: np.ndarray | None = None
    reasons: list[list[str | None]] = field(default_factory=list)


@dataclass
class SweepPlot:
    """What a figure shows: its axes (``(x, by)`` or ``(x, y)``), panels, and each excluded member as
    ``label: reason``; ``path`` once saved."""

    axes: tuple[str, str | None]
    panels: list[Panel]
    excluded: list[str]
    path: Path | None = None


# --------------------------------------------------------------------------------------------- public API


def plot_sweep(
    sweep: Sweep, out_dir: Path, options: SweepPlotOptions, out_file: Path | None = None
) -> SweepPlot:
    """Write the phase diagram ``options`` asks for into ``out_dir`` (created), or into ``out_file`` (its
    suffix picks PNG, PDF or SVG); return what it shows.

    :class:`SweepPlotError` or :class:`~eosdsl.registry.sweeps.SummaryError` (both ``ValueError``) for
    options the sweep cannot be plotted with; the message names what is available.
    """
    build = sweep_heatmap if options.heatmap else sweep_curves
    fig, drawn = build(sweep, options)
    path = Path(out_file) if out_file is not None else Path(out_dir) / _file_name(options, drawn.axes)
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn.path = save(fig, path)
    return drawn


@closes_on_error
def sweep_curves(sweep: Sweep, options: SweepPlotOptions) -> tuple[Figure, SweepPlot]:
    """The summary against ``x``, one curve per value of ``by``, one panel per remaining coordinate."""
    _check_kind(options)
    texts = (options.value, *options.also)
    summaries = [_summary(sweep, text) for text in texts]
    x, by = _curve_axes(sweep, options)
    if options.also and options.by:
        raise SweepPlotError("several --value: one curve each, so no --by")
    by = None if options.also else by
    refs = _references(sweep, options.refs)
    place, x_label = _placement(x, options.x_as)
    if options.logx and any(place(member) <= 0 for member in sweep.members):
        raise SweepPlotError(f"--logx: the axis {options.x_as or x} has values <= 0")
    used = [x, by] if by else [x]
    grouped = [_panels(sweep, _points(sweep, summary, options.logy), used) for summary in summaries]
    groups = grouped[0]
    fig, axes = _figure(len(groups), sharey=True)
    panels = []
    for k, (ax, (title, _)) in enumerate(zip(axes, groups, strict=True)):
        curves = []
        for text, panel_groups in zip(texts, grouped, strict=True):
            drawn = _curves(panel_groups[k][1], place, by, refs if text == texts[0] else ())
            if len(texts) > 1:
                drawn = [dataclasses.replace(curve, label=_label_of(text)) for curve in drawn]
            curves += drawn
        panels.append(Panel(title, curves=curves))
        _draw_curves(ax, curves)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(wrap_title(_pretty_title(title), PANEL_TITLE_WIDTH), fontsize=9)
        ax.set_xlabel(x_label)
        ax.set_ylabel(_label_of(options.value) if len(texts) == 1 else "value")
        ax.set_xscale("log" if options.logx else "linear")
        ax.set_yscale("log" if options.logy else "linear")
    for ax in axes:
        freeze_limits(ax)  # from the values alone: a min-ℓ1 test loss of 2e-28 never stretches a log axis
    marked = [len(panel.curves) for panel in panels if any(any(curve.reasons) for curve in panel.curves)]
    if marked:
        _headroom(axes[0], 1 - TOP_ROW + ROW_STEP * max(marked))  # the y-axis is shared
    for ax, panel in zip(axes, panels, strict=True):
        for j, name in enumerate(refs):
            _draw_reference(ax, panel.curves, name, REFERENCE_COLORS[j % len(REFERENCE_COLORS)])
        legend(ax)
    fig.suptitle(f"{sweep.name} ({sweep.short_id}): {', '.join(map(_label_of, texts))}", fontsize=10)
    return fig, SweepPlot((x, by), panels, _excluded(groups))


@closes_on_error
def sweep_heatmap(sweep: Sweep, options: SweepPlotOptions) -> tuple[Figure, SweepPlot]:
    """The summary on an ``x`` × ``y`` grid of cells, one panel per remaining coordinate."""
    _check_kind(options)
    summary = _summary(sweep, options.value)
    x, y = _heatmap_axes(sweep, options)
    xs, ys = _distinct(sweep.members, x), _distinct(sweep.members, y)
    groups = _panels(sweep, _points(sweep, summary, options.logz), [x, y])
    panels = [Panel(title, x=xs, y=ys, **_grid(points, x, xs, y, ys)) for title, points in groups]
    fig, axes = _figure(len(groups), sharey=False)
    norm = _norm([panel.values for panel in panels], options.logz)
    for ax, panel in zip(axes, panels, strict=True):
        image = _draw_heatmap(ax, panel, norm)
        ax.set_title(wrap_title(_pretty_title(panel.title), PANEL_TITLE_WIDTH), fontsize=9)
        ax.set_xlabel(pretty(x))
        ax.set_ylabel(pretty(y))
    fig.colorbar(image, ax=axes, label=options.value)
    fig.suptitle(f"{sweep.name} ({sweep.short_id}): {options.value}", fontsize=10)
    return fig, SweepPlot((x, y), panels, _excluded(groups))


# --------------------------------------------------------------------------------------------- options


def _check_kind(options: SweepPlotOptions) -> None:
    """Refuse the options that belong to the other kind of plot (curves or heatmap)."""
    curves = {
        "--by": options.by,
        "--ref": options.refs,
        "--logx": options.logx,
        "--logy": options.logy,
        "--x-as": options.x_as,
    }
    heatmap = {"--y": options.y, "--logz": options.logz}
    if options.heatmap and options.also:
        raise SweepPlotError("several --value: for curves; a heatmap shows one")
    wrong = [name for name, value in (curves if options.heatmap else heatmap).items() if value]
    if wrong and options.heatmap:
        raise SweepPlotError(f"{', '.join(wrong)}: for curves; a heatmap takes --x, --y and --logz")
    if wrong:
        raise SweepPlotError(
            f"{', '.join(wrong)}: for --heatmap; curves take --x, --by, --ref, --logx, --logy"
        )


@dataclass(frozen=True)
class RunQuantity:
    """A per-run number written in the claims' series algebra (docs/expressions.md), e.g. Theorem 2's
    C_u = ``at(u, first(u**2 < (2 - eps) * u0**2 / (2 + eps)))``: evaluated on each member's stored
    series with its constants and reference values. Given as ``NAME=EXPR``, it is labelled ``NAME``, which
    may be any text without ``=``, parentheses or comparison signs (``2/η − λ∞=2 / eta - final(sharpness)``):
    an unnamed expression has an ``=`` only inside a call (``where=``) or in a comparison."""

    text: str
    label: str


_NAMED = re.compile(r"^\s*([^=()<>!]*[^=()<>!\s])\s*=(?!=)\s*(.+)$", re.DOTALL)


def _label_of(text: str) -> str:
    """What a ``--value`` is called in legends and titles: the NAME of ``NAME=EXPR``, else the text."""
    named = _NAMED.match(text)
    return named.group(1) if named else text


def _summary(sweep: Sweep, text: str) -> Summary | RunQuantity:
    """A summary (``final.loss``, ``check.NAME``), or else, when ``text`` is an expression (it has a
    call or an operator), a :class:`RunQuantity`."""
    named = _NAMED.match(text)
    if named:
        return RunQuantity(named.group(2), named.group(1))
    try:
        (summary,) = parse_summaries([text], sweep)
    except SummaryError:
        if re.search(r"[()+\-*/<>]", text):
            return RunQuantity(text, text)
        raise
    return summary


def _value(run: Any, summary: Summary | RunQuantity) -> Any:
    """The value of a summary or run quantity for one member run (None without a run)."""
    if not isinstance(summary, RunQuantity):
        return summary_value(run, summary)
    if run is None:
        return None
    from eosdsl.checks.evaluate import scalars_of
    from eosdsl.checks.series_ops import evaluate
    from eosdsl.expr.compiler import ExprError

    scalars = scalars_of(run.spec, run.info.get("references") or {})
    try:
        value = np.asarray(evaluate(summary.text, {n: run.series(n) for n in run.series_names()}, scalars))
    except ExprError as error:
        raise SweepPlotError(f"--value {summary.text}: {error}") from None
    except (KeyError, ValueError, ArithmeticError, IndexError):  # a run without the series, an empty window
        return None
    return float(value) if value.ndim == 0 else None


def _known_axes(sweep: Sweep) -> list[str]:
    """The axes a plot may use: the swept paths, and :data:`CASE` when there are cases."""
    if not sweep.members:
        raise SweepPlotError(f"sweep {sweep.short_id} has no members")
    if not sweep.axes and not sweep.cases:
        raise SweepPlotError(
            f"sweep {sweep.short_id} records no swept axes (it was written before sweep records listed "
            "them); run the sweep again to plot it"
        )
    return [*sweep.axes, *([CASE] if sweep.cases else [])]


def _axis(sweep: Sweep, option: str, axis: str) -> str:
    known = _known_axes(sweep)
    if axis not in known:
        listed = ", ".join(known)
        raise SweepPlotError(f"{option} {axis}: not a swept axis of sweep {sweep.short_id}; axes: {listed}")
    return axis


def _curve_axes(sweep: Sweep, options: SweepPlotOptions) -> tuple[str, str | None]:
    """``(x, by)`` of a curve plot: the options checked, or their defaults."""
    known, numeric = _known_axes(sweep), sweep.numeric_axes()
    if options.x is None and not numeric:
        raise SweepPlotError(f"no numeric swept axis to put on x; axes: {', '.join(known)} (try --heatmap)")
    x = numeric[0] if options.x is None else _axis(sweep, "--x", options.x)
    if x not in numeric:
        listed = ", ".join(numeric) or "none"
        raise SweepPlotError(f"--x {x}: not a numeric axis; numeric axes: {listed} (try --heatmap)")
    if options.by is None:
        return x, next((axis for axis in known if axis != x), None)
    by = _axis(sweep, "--by", options.by)
    if by == x:
        raise SweepPlotError(f"--by {by} is also --x")
    return x, by


def _heatmap_axes(sweep: Sweep, options: SweepPlotOptions) -> tuple[str, str]:
    """``(x, y)`` of a heatmap: the options checked, or their defaults."""
    known = _known_axes(sweep)
    x = (sweep.numeric_axes() or known)[0] if options.x is None else _axis(sweep, "--x", options.x)
    if options.y is not None:
        y = _axis(sweep, "--y", options.y)
    elif (y := next((axis for axis in known if axis != x), None)) is None:
        raise SweepPlotError(f"a heatmap needs two swept axes; sweep {sweep.short_id} has {x} only")
    if y == x:
        raise SweepPlotError(f"--y {y} is also --x")
    return x, y


def _references(sweep: Sweep, names: Sequence[str]) -> list[str]:
    known = sweep.reference_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(known) or "none"
        raise SweepPlotError(f"--ref {', '.join(unknown)}: no run of the sweep has it; references: {listed}")
    return list(names)


def _file_name(options: SweepPlotOptions, axes: tuple[str, str | None]) -> str:
    """``final.loss-vs-problem.alpha-by-case.png``, or ``final.loss-over-problem.alpha-and-seed.png``."""
    x, second = axes
    if options.heatmap:
        stem = f"{options.value}-over-{x}-and-{second}"
    else:
        values = "+".join(map(_label_of, (options.value, *options.also)))
        stem = f"{values}-vs-{x}" + (f"-by-{second}" if second else "")
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem)[:150] + ".png"


# --------------------------------------------------------------------------------------------- data


def _key(value: Any) -> str:
    """A hashable identity of an axis value (dicts and lists included)."""
    return json.dumps(value, sort_keys=True, default=str)


def _points(sweep: Sweep, summary: Summary | RunQuantity, log: bool) -> list[Point]:
    """Every member with its value of ``summary``, or the reason it has none to plot."""
    points = []
    for member in sweep.members:
        value = as_number(_value(member.run, summary))
        if member.run is None:
            reason: str | None = member.status
        elif member.status == DIVERGED:
            reason = DIVERGED
        elif not math.isfinite(value):
            reason = NO_VALUE
        else:
            reason = NOT_POSITIVE if log and value <= 0 else None
        points.append(Point(member, math.nan if reason else value, reason))
    return points


def _panels(sweep: Sweep, points: list[Point], used: Sequence[str]) -> list[tuple[str, list[Point]]]:
    """Points grouped by every axis not in ``used`` (the case first), in member order, with titles."""
    rest = sorted((axis for axis in _known_axes(sweep) if axis not in used), key=lambda axis: axis != CASE)
    groups: dict[str, tuple[str, list[Point]]] = {}
    for point in points:
        coordinates = [point.member.value(axis) for axis in rest]
        title = ", ".join(_by_label(axis, value) for axis, value in zip(rest, coordinates, strict=True))
        groups.setdefault(_key(coordinates), (title, []))[1].append(point)
    return list(groups.values())


def _pretty_title(text: str) -> str:
    """``problem.alpha=0.5, constants.eta=0.003`` → ``α=0.5, η=0.003`` for display (data keep raw paths)."""
    return re.sub(r"([A-Za-z_][\w.]*)=", lambda match: pretty(match.group(1)) + "=", text)


def _placement(x: str, x_as: str | None) -> tuple[Callable[[Member], float], str]:
    """Where a member sits on x, and the axis label: its value of the swept axis ``x``, or with ``x_as``
    (``LABEL=EXPR``) the number EXPR gives from its run's spec constants (NaN for a member without a run,
    which is then not drawn)."""
    if x_as is None:
        return (lambda member: float(member.value(x))), pretty(x)
    from eosdsl.checks.evaluate import scalars_of
    from eosdsl.checks.series_ops import evaluate
    from eosdsl.expr.compiler import ExprError

    named = _NAMED.match(x_as)
    label, text = (named.group(1), named.group(2)) if named else (x_as, x_as)

    def place(member: Member) -> float:
        if member.run is None:
            return math.nan
        try:
            value = np.asarray(evaluate(text, {}, scalars_of(member.run.spec, {})))
        except (ExprError, KeyError, ValueError) as error:
            raise SweepPlotError(f"--x-as {x_as}: {error}") from None
        if value.ndim:
            raise SweepPlotError(f"--x-as {x_as}: not one number per run (use spec constants)")
        return float(value)

    return place, label


def _by_label(axis: str, value: Any) -> str:
    """``gd`` for a case, ``constants.eta=0.003`` for a swept path."""
    return format_value(value) if axis == CASE else f"{axis}={format_value(value)}"


def _curves(
    points: Sequence[Point], place: Callable[[Member], float], by: str | None, refs: Sequence[str]
) -> list[Curve]:
    """One curve per value of ``by`` (a single one without it), in member order, points sorted by their
    place on x (:func:`_placement`)."""
    groups: dict[str, list[Point]] = {}
    for point in points:
        groups.setdefault(_key(point.member.value(by)) if by else "", []).append(point)
    curves = []
    for group in groups.values():
        group = sorted(group, key=lambda point: place(point.member))
        curves.append(
            Curve(
                label=_by_label(by, group[0].member.value(by)) if by else "",
                x=np.array([place(point.member) for point in group], dtype=float),
                y=np.array([point.value for point in group]),
                reasons=[point.reason for point in group],
                references={name: np.array([_reference(p.member, name) for p in group]) for name in refs},
            )
        )
    return curves


def _reference(member: Member, name: str) -> float:
    return math.nan if member.run is None else references_of(member.run).get(name, math.nan)


def _distinct(members: Sequence[Member], axis: str) -> list[Any]:
    """The distinct values of ``axis``: sorted if they are all numbers, else in member order."""
    values = list({_key(m.value(axis)): m.value(axis) for m in members}.values())
    return sorted(values) if all(is_number(v) for v in values) else values


def _grid(points: Sequence[Point], x: str, xs: list, y: str, ys: list) -> dict[str, Any]:
    """``values[i_y, i_x]`` (NaN where excluded or where no member sits) and each cell's reason."""
    column = {_key(value): j for j, value in enumerate(xs)}
    row = {_key(value): i for i, value in enumerate(ys)}
    values = np.full((len(ys), len(xs)), np.nan)
    reasons: list[list[str | None]] = [[NO_MEMBER] * len(xs) for _ in ys]
    for point in points:
        i, j = row[_key(point.member.value(y))], column[_key(point.member.value(x))]
        values[i, j], reasons[i][j] = point.value, point.reason
    return {"values": values, "reasons": reasons}


def _excluded(groups: Sequence[tuple[str, list[Point]]]) -> list[str]:
    """``label: reason`` of every excluded member, in member order within each panel."""
    return [f"{p.member.label}: {p.reason}" for _, points in groups for p in points if p.reason]


# --------------------------------------------------------------------------------------------- drawing


def _figure(panels: int, sharey: bool) -> tuple[Figure, list[Axes]]:
    """A figure with ``panels`` gridded axes, at most :data:`MAX_COLUMNS` per row."""
    columns = min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    size = (PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows)
    fig, grid = plt.subplots(rows, columns, figsize=size, layout="constrained", squeeze=False, sharey=sharey)
    axes = list(grid.flat)
    for ax in axes[panels:]:
        fig.delaxes(ax)
    return fig, axes[:panels]


def _draw_curves(ax: Axes, curves: Sequence[Curve]) -> None:
    """Each curve's values as a line, and its excluded points near the top (× diverged, □ otherwise; one
    row per curve, so none hides another)."""
    on_top = ax.get_xaxis_transform()  # x in data, y in axes coordinates: 1 is the top edge
    excluded: set[str] = set()
    for i, curve in enumerate(curves):
        color = f"C{i % 10}"
        drawn = ~np.isnan(curve.y)
        label = _pretty_title(curve.label) or None
        ax.plot(curve.x[drawn], curve.y[drawn], "-o", color=color, ms=4, lw=1.3, label=label)
        for reason in dict.fromkeys(r for r in curve.reasons if r):
            at = np.array([r == reason for r in curve.reasons])
            row = np.full(int(at.sum()), TOP_ROW - ROW_STEP * i)
            ax.plot(curve.x[at], row, color=color, transform=on_top, **_marker(reason))
            excluded.add(reason)
    for reason in sorted(excluded):  # legend entries only
        label = reason if reason == NO_VALUE else f"{reason} (no value)"
        ax.plot([], [], color="0.3", label=label, **_marker(reason))


def _headroom(ax: Axes, band: float) -> None:
    """Raise the top of the (frozen) y-range so the values fill the lower ``1 - band`` of the panel and
    the rows of excluded-point markers above them hide none (linear or log axis)."""
    low, high = ax.get_ylim()
    log = ax.get_yscale() == "log"
    a, b = (math.log10(low), math.log10(high)) if log else (low, high)
    top = a + (b - a) / (1 - band)
    ax.set_ylim(low, 10**top if log else top)


def _marker(reason: str) -> dict[str, Any]:
    """How an excluded point is drawn: × for a diverged run, a hollow square otherwise."""
    shape = {"marker": "x"} if reason == DIVERGED else {"marker": "s", "mfc": "none"}
    return {"ls": "none", "ms": 8, "mew": 1.6, **shape}


def _draw_reference(ax: Axes, curves: Sequence[Curve], name: str, color: str) -> None:
    """A reference after the limits are fixed: one dashed line where it is the same for every run
    (``off scale`` in the legend when outside the range), else one dashed curve per curve that has it."""
    curves = [curve for curve in curves if name in curve.references]
    if not curves:
        return
    values = np.concatenate([curve.references[name] for curve in curves])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    if np.allclose(values, values[0], rtol=1e-9, atol=0.0):
        label = reference_label(name, float(values[0])) + (" — off scale" if off_scale(ax, values[0]) else "")
        ax.axhline(values[0], ls="--", lw=1.1, color=color, label=label)
        return
    for i, curve in enumerate(curves):
        label = f"{name} ({_pretty_title(curve.label)})" if curve.label else name
        ax.plot(curve.x, curve.references[name], ls="--", lw=1.0, color=f"C{i % 10}", label=label)


def _norm(grids: Sequence[np.ndarray], log: bool) -> Normalize:
    """One colour scale for every panel: over the finite values (positive ones for ``log``)."""
    values = np.concatenate([grid.ravel() for grid in grids])
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        return LogNorm(1.0, 10.0) if log else Normalize(0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    return LogNorm(low, high) if log else Normalize(low, high)


def _draw_heatmap(ax: Axes, panel: Panel, norm: Normalize) -> AxesImage:
    """Cells coloured by value; cells without one hatched grey and named (× diverged, missing, …)."""
    image = ax.imshow(
        np.ma.masked_invalid(panel.values), origin="lower", aspect="auto", norm=norm, interpolation="nearest"
    )
    ax.set_facecolor("0.88")
    for i, row in enumerate(panel.reasons):
        for j, reason in enumerate(row):
            if reason:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", ec="0.6", lw=0))
                text = "—" if reason == NO_MEMBER else reason
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="0.15")
    if max(len(panel.x), len(panel.y)) <= MAX_ANNOTATED_CELLS:
        _write_values(ax, panel, image)
    ax.set_xticks(range(len(panel.x)), [format_value(v) for v in panel.x])
    ax.set_yticks(range(len(panel.y)), [format_value(v) for v in panel.y])
    return image


def _write_values(ax: Axes, panel: Panel, image: AxesImage) -> None:
    """Each value in its cell (a small grid), dark on light colours and light on dark ones."""
    assert panel.values is not None
    for (i, j), value in np.ndenumerate(panel.values):
        if not math.isfinite(value):
            continue
        red, green, blue, _ = image.cmap(image.norm(value))
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        color = "0.1" if light else "white"
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color=color, gid="cell-value")
