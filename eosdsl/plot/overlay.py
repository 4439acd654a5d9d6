"""Several runs in one figure: chosen series overlaid on shared axes, one panel per series.

Runs come loose or as a sweep's members (:func:`entries_of`); each gets one colour in every panel and a
label naming what differs between them (:func:`~eosdsl.plot.labels.difference_labels`: the case and
swept values, else the differing spec paths, with Greek letters). Panels share the step axis.

Reference lines (``--ref``: ``mss``, ``2/lr``, a recorded reference such as ``test_loss.min_l1``, or any
stored series) and event markers (each fired event of ``run.json``, a vertical dotted line in the run's
colour) are drawn *after* the limits are fixed from the data, so they never stretch an axis; a
horizontal reference outside the range says ``off scale`` in the legend.

:func:`overlay_figure` returns the open figure and an :class:`Overlay` (what was drawn) for tests;
:func:`plot_overlay` saves it in the format its suffix names and closes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from eosdsl.plot.common import FIGSIZE, closes_on_error, freeze_limits, off_scale, reference_label, save
from eosdsl.plot.labels import difference_labels, series_label
from eosdsl.registry.sweeps import references_of

__all__ = [
    "Entry",
    "Overlay",
    "OverlayError",
    "OverlayOptions",
    "entries_of",
    "overlay_figure",
    "overlay_file_name",
    "plot_overlay",
]

LR_REFERENCES = ("2/lr", "2/eta", "2/η")
SHARPNESS_REFERENCES = ("mss", *LR_REFERENCES)
MAX_LEGEND_INSIDE = 6  # more runs than this: the legend goes outside, right of the panels
PANEL_HEIGHT = 2.4
EVENT_STYLE = {"ls": ":", "lw": 1.0, "alpha": 0.9}


class OverlayError(ValueError):
    """Runs or options that cannot be overlaid (an unknown series or reference); the message says what is
    available."""


@dataclass(frozen=True)
class OverlayOptions:
    """What to draw: ``series`` (one panel each, default ``loss``), ``refs``, log axes, event markers.
    ``logy`` puts every panel's y-axis on a log scale, ``logy_of`` only the named series' panels (paper
    000 Fig. 1 (c)–(f): a linear sharpness above a log training loss). ``against``: a series drawn on the
    x-axis instead of the step, each panel's values at the steps both recorded (a phase portrait: paper
    003 Fig. 3's (X, Y) orbits); no references or event markers then (they are placed on steps)."""

    series: tuple[str, ...] = ("loss",)
    refs: tuple[str, ...] = ()
    logx: bool = False
    logy: bool = False
    events: bool = True
    logy_of: tuple[str, ...] = ()
    against: str | None = None

    def log_panel(self, name: str) -> bool:
        """Whether the panel of series ``name`` has a log y-axis."""
        return self.logy or name in self.logy_of


@dataclass
class Entry:
    """A run to draw, with its case and swept values when it is a sweep member (``None`` otherwise)."""

    run: Any
    swept: dict[str, Any] | None = None


@dataclass
class Overlay:
    """What was drawn: the run labels (in colour order), per-panel series, notes on what was skipped."""

    labels: list[str]
    series: list[str]
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


# --------------------------------------------------------------------------------------------- inputs


def entries_of(items: Sequence[tuple[str, Any]]) -> tuple[list[Entry], list[str]]:
    """``[(kind, run or sweep)]`` → the runs to draw (a sweep's members in order, duplicates once) and a
    note per member without a run."""
    entries: list[Entry] = []
    notes: list[str] = []
    seen: set[str] = set()
    for kind, item in items:
        if kind == "run":
            members = [(item, None)]
        else:
            members = []
            for member in item.members:
                if member.run is None:
                    notes.append(f"{member.label}: {member.status} (not drawn)")
                    continue
                swept = {"case": member.case} if member.case is not None else {}
                # a sweep of cases only lists no axes: its labels are the cases (not the paths they set)
                axes = (
                    item.axes
                    if item.axes or item.cases
                    else [k for k, v in member.values.items() if not isinstance(v, dict | list)]
                )
                swept |= {axis: member.values[axis] for axis in axes if axis in member.values}
                members.append((member.run, swept))
        for run, swept in members:
            key = str(getattr(run, "run_key", None) or run.short_id)
            if key not in seen:
                seen.add(key)
                entries.append(Entry(run, swept))
    return entries, notes


def overlay_file_name(options: OverlayOptions, suffix: str = ".png") -> str:
    """``sharpness+loss.png``; references and log axes are named, so each variant has its own file:
    ``sharpness+loss-ref-mss-logx.png``."""
    stem = "+".join(options.series)
    if options.refs:
        stem += "-ref-" + "+".join(options.refs)
    stem += "".join(f"-{flag}" for flag in ("logx", "logy") if getattr(options, flag))
    if options.logy_of and not options.logy:
        stem += "-logy-" + "+".join(options.logy_of)
    if options.against:
        stem += "-against-" + options.against
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem) + suffix


# --------------------------------------------------------------------------------------------- public API


def plot_overlay(entries: Sequence[Entry], options: OverlayOptions, out: Path) -> Overlay:
    """Draw ``entries`` into the file ``out`` (PNG, PDF or SVG by its suffix; parents created)."""
    fig, drawn = overlay_figure(entries, options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    drawn.path = save(fig, out)
    return drawn


@closes_on_error
def overlay_figure(entries: Sequence[Entry], options: OverlayOptions) -> tuple[Figure, Overlay]:
    """One panel per series (shared step axis), one colour and label per run, references and events."""
    if not entries:
        raise OverlayError("no runs to draw")
    series = _check_series(entries, options.series)
    _check_refs(entries, options.refs)
    if options.against:
        _check_series(entries, [options.against])
        if options.refs:
            raise OverlayError("--ref lines are placed on steps: not with --against")
    not_drawn = [name for name in options.logy_of if name not in series]
    if not_drawn:
        raise OverlayError(f"--logy-of {', '.join(not_drawn)}: not a panel; panels: {', '.join(series)}")
    labels = difference_labels(
        [entry.swept for entry in entries],
        [entry.run.spec if isinstance(entry.run.spec, Mapping) else {} for entry in entries],
        [_title(entry.run) for entry in entries],
    )
    height = FIGSIZE[1] if len(series) == 1 else PANEL_HEIGHT * len(series) + 0.6
    fig, grid = plt.subplots(
        len(series), 1, figsize=(FIGSIZE[0], height), layout="constrained", sharex=True, squeeze=False
    )
    axes = list(grid.flat)
    drawn = Overlay(labels, series)
    for ax, name in zip(axes, series, strict=True):
        ax.grid(True, which="major", alpha=0.3)
        if options.logx:
            ax.set_xscale("log", nonpositive="mask")
        if options.log_panel(name):
            ax.set_yscale("log", nonpositive="mask")
        ax.set_ylabel(series_label(name))
    # the range comes from the runs that did not diverge (when any has data): a blow-up to 1e300 is
    # drawn afterwards, running off the axes, and says "(diverged)" in the legend
    diverged = [_diverged(entry.run) for entry in entries]
    frozen = [False] * len(axes)
    for later in (False, True):
        for k, (ax, name) in enumerate(zip(axes, series, strict=True)):
            for i, (entry, label) in enumerate(zip(entries, labels, strict=True)):
                if diverged[i] == later:
                    drawn.notes += _draw_series(ax, entry.run, name, label, i, options)
            if not frozen[k] and (later or _has_finite(ax)):
                freeze_limits(ax)  # from the data alone: references and events come after
                frozen[k] = True
    _draw_refs(axes, series, entries, options.refs)
    if options.events and not options.against:
        _draw_events(axes, entries)
    axes[-1].set_xlabel(series_label(options.against) if options.against else "step")
    if len(entries) == 1:
        axes[0].set_title(labels[0])
    _legend(fig, axes, labels)
    return fig, drawn


# --------------------------------------------------------------------------------------------- checks


def _names(entry: Entry) -> list[str]:
    try:
        return list(entry.run.series_names())
    except Exception:  # an unreadable results store: the run has nothing to offer
        return []


def _check_series(entries: Sequence[Entry], names: Sequence[str]) -> list[str]:
    """The series names (blanks stripped, commas split); ``OverlayError`` if one is in no run."""
    wanted = [part.strip() for name in names for part in str(name).split(",") if part.strip()]
    available = sorted({name for entry in entries for name in _names(entry)})
    unknown = [name for name in wanted if name not in available]
    if unknown or not wanted:
        what = f"unknown series {', '.join(unknown)}" if unknown else "no series named"
        raise OverlayError(f"{what} in the runs; available: {', '.join(available) or '(none)'}")
    return list(dict.fromkeys(wanted))


def _check_refs(entries: Sequence[Entry], refs: Sequence[str]) -> None:
    known = set(SHARPNESS_REFERENCES)
    for entry in entries:
        known |= set(references_of(entry.run)) | set(_names(entry))
    unknown = [ref for ref in refs if ref not in known]
    if unknown:
        recorded = sorted({name for entry in entries for name in references_of(entry.run)})
        listed = ", ".join(["mss", "2/lr", *recorded, "any stored series"])
        raise OverlayError(f"--ref {', '.join(unknown)}: unknown reference; references: {listed}")


# --------------------------------------------------------------------------------------------- drawing


def _color(i: int) -> str:
    return f"C{i % 10}"


def _style(i: int) -> str:
    """Solid for the first ten runs, then dashed and dash-dotted: 30 runs stay distinct."""
    return ("-", "--", "-.")[i // 10 % 3]


def _draw_series(ax: Axes, run: Any, name: str, label: str, i: int, options: OverlayOptions) -> list[str]:
    """Run ``i``'s series (every component in its colour); notes for what could not be drawn."""
    color = _color(i)
    if name not in run.series_names():
        ax.plot([], [], color=color, label=label)  # the run keeps its legend entry
        return [f"{label}: no series {name}"]
    steps, values = run.series(name)
    steps = np.asarray(steps, dtype=float)
    flat = np.asarray(values, dtype=float).reshape(len(steps), -1)
    if options.against:  # x: the other series at the steps both recorded (its first component)
        if options.against not in run.series_names():
            ax.plot([], [], color=color, label=label)
            return [f"{label}: no series {options.against}"]
        at, other = run.series(options.against)
        common, mine, theirs = np.intersect1d(steps, np.asarray(at, dtype=float), return_indices=True)
        flat = flat[mine]
        steps = np.asarray(other, dtype=float).reshape(len(at), -1)[theirs, 0]
    keep = np.isfinite(flat) & ((flat > 0) if options.log_panel(name) else True)
    shown = np.where(keep, flat, np.nan)
    if options.logx:
        shown = shown[steps > 0]
        steps = steps[steps > 0]
    text = label + (" (diverged)" if _diverged(run) else "")
    for j in range(shown.shape[1]):
        ax.plot(steps, shown[:, j], color=color, ls=_style(i), lw=1.2, label=text if j == 0 else "_nolegend_")
    return []


def _diverged(run: Any) -> bool:
    info = run.info if isinstance(run.info, Mapping) else {}
    return info.get("status") == "diverged"


def _panel_of(ref: str, series: Sequence[str]) -> int:
    """The panel a reference belongs to: the sharpness panel for ``mss`` and ``2/lr``, the panel of
    ``X`` for a recorded ``X.kind``, else the first."""
    target = "sharpness" if ref in SHARPNESS_REFERENCES else ref.partition(".")[0]
    return series.index(target) if target in series else 0


def _reference_values(run: Any, ref: str) -> tuple[np.ndarray, np.ndarray] | float | None:
    """A run's reference: a step series ``(steps, values)``, a constant, or ``None`` if it has none."""
    names = set(run.series_names())
    if ref == "mss" and "mss" in names or (ref not in SHARPNESS_REFERENCES and ref in names):
        steps, values = run.series(ref)
        return np.asarray(steps, dtype=float), np.asarray(values, dtype=float).reshape(len(steps), -1)[:, 0]
    if ref in LR_REFERENCES:
        if "lr" in names:
            steps, lr = run.series("lr")
            lr = np.asarray(lr, dtype=float).reshape(len(steps), -1)[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(steps, dtype=float), np.where(lr > 0, 2.0 / lr, np.nan)
        lr = _spec_lr(run.spec if isinstance(run.spec, Mapping) else {})
        return 2.0 / lr if lr else None
    value = references_of(run).get(ref)
    return value if value is not None and math.isfinite(value) else None


def _spec_lr(spec: Mapping[str, Any]) -> float | None:
    """``optimizer.lr`` as a number: a literal, or the name of a numeric constant."""
    lr = (spec.get("optimizer") or {}).get("lr") if isinstance(spec.get("optimizer"), Mapping) else None
    if isinstance(lr, str):
        lr = (spec.get("constants") or {}).get(lr.strip())
    return float(lr) if isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0 else None


def _ref_name(ref: str) -> str:
    if ref == "mss":
        return "MSS"
    if ref in LR_REFERENCES:
        return "2/η"
    return ref


def _draw_refs(
    axes: Sequence[Axes], series: Sequence[str], entries: Sequence[Entry], refs: Sequence[str]
) -> None:
    """Each reference in each run's colour (dashed for constants, dotted step lines for series), after
    the limits are fixed; one grey legend entry per reference, ``off scale`` when none is in range."""
    for k, ref in enumerate(refs):
        ax = axes[_panel_of(ref, series)]
        style = ("--", "-.", (0, (1, 1)), (0, (3, 1, 1, 1)))[k % 4]
        constants: list[float] = []
        visible = False
        for i, entry in enumerate(entries):
            found = _reference_values(entry.run, ref)
            if found is None:
                continue
            if isinstance(found, tuple):
                steps, values = found
                ax.step(steps, values, where="post", color=_color(i), ls=style, lw=0.9, gid=f"ref:{ref}")
                finite = values[np.isfinite(values)]
                visible |= bool(finite.size and any(not off_scale(ax, v) for v in finite))
            else:
                ax.axhline(found, color=_color(i), ls=style, lw=0.9, gid=f"ref:{ref}")
                constants.append(found)
                visible |= not off_scale(ax, found)
        same = len(constants) == len(entries) and np.allclose(constants, constants[0], rtol=1e-9, atol=0.0)
        if same and ref not in SHARPNESS_REFERENCES:
            label = reference_label(ref, constants[0])
        elif same:
            label = f"{_ref_name(ref)} ({constants[0]:.3g})"
        else:  # a recorded series (the warm-up MSS): one per run
            label = _ref_name(ref) + (" (per run)" if len(entries) > 1 else "")
        ax.plot([], [], color="0.35", ls=style, lw=0.9, label=label + ("" if visible else " — off scale"))


def _draw_events(axes: Sequence[Axes], entries: Sequence[Entry]) -> None:
    """Each fired event of each run: a vertical dotted line in the run's colour in every panel, named at
    the top of the first panel; events outside the step range are left out (they do not stretch it)."""
    named = False
    for i, entry in enumerate(entries):
        info = entry.run.info if isinstance(entry.run.info, Mapping) else {}
        for event in info.get("events") or []:
            at = event.get("fired_at")
            if at is None or int(at) < 0:
                continue
            low, high = sorted(axes[0].get_xlim())
            if not low <= int(at) <= high:
                continue
            for ax in axes:
                ax.axvline(int(at), color=_color(i), gid="event", **EVENT_STYLE)
            name = str(event.get("name") or event.get("kind") or "event")
            axes[0].annotate(
                name,
                xy=(int(at), 1.0),
                xycoords=axes[0].get_xaxis_transform(),
                xytext=(2, -2),
                textcoords="offset points",
                rotation=90,
                ha="left",
                va="top",
                fontsize=7,
                color=_color(i),
                gid="event-label",
            )
            named = True
    if named:
        axes[0].plot([], [], color="0.35", label="event (step it fired)", **EVENT_STYLE)


def _has_finite(ax: Axes) -> bool:
    return any(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any() for line in ax.get_lines())


def _legend(fig: Figure, axes: Sequence[Axes], runs: Sequence[str]) -> None:
    """Runs (in colour order) then references of every panel in one legend: inside (best) for a few
    runs, else outside, right of the panels."""
    found: dict[str, Line2D] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    if not found:
        return
    rank = {label: i for i, label in enumerate(runs)}
    order = sorted(found, key=lambda text: rank.get(text.removesuffix(" (diverged)"), len(rank)))
    handles = {label: found[label] for label in order}
    if len(runs) <= MAX_LEGEND_INSIDE:
        axes[0].legend(handles.values(), handles.keys(), loc="best", framealpha=0.85)
    else:
        fig.legend(handles.values(), handles.keys(), loc="outside right upper", framealpha=0.85)


def _title(run: Any) -> str:
    spec = run.spec if isinstance(run.spec, Mapping) else {}
    return f"{spec.get('name') or 'unnamed'} ({run.short_id})"
