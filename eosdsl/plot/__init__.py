"""Figures of stored runs and sweeps: :func:`plot_run` writes a run's standard PNGs, :func:`plot_series`
an ad-hoc one, :func:`plot_sweep` a sweep's phase diagram."""

from __future__ import annotations

from eosdsl.plot.run_plots import plot_run, plot_series
from eosdsl.plot.sweep_plots import SweepPlotOptions, plot_sweep

__all__ = ["SweepPlotOptions", "plot_run", "plot_series", "plot_sweep"]
