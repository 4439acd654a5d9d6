"""Figures of stored runs and sweeps: :func:`plot_run` writes a run's standard figures, :func:`plot_series`
an ad-hoc one, :func:`plot_overlay` several runs' series on shared axes, :func:`plot_sweep` a sweep's
phase diagram. A file's suffix (``.png``, ``.pdf``, ``.svg``) picks its format."""

from __future__ import annotations

from eosdsl.plot.overlay import Entry, OverlayError, OverlayOptions, entries_of, plot_overlay
from eosdsl.plot.run_plots import plot_run, plot_series
from eosdsl.plot.sweep_plots import SweepPlotOptions, plot_sweep

__all__ = [
    "Entry",
    "OverlayError",
    "OverlayOptions",
    "SweepPlotOptions",
    "entries_of",
    "plot_overlay",
    "plot_run",
    "plot_series",
    "plot_sweep",
]
