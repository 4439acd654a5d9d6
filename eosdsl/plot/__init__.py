"""Figures of stored runs: :func:`plot_run` writes the standard PNGs, :func:`plot_series` an ad-hoc one."""

from __future__ import annotations

from eosdsl.plot.run_plots import plot_run, plot_series

__all__ = ["plot_run", "plot_series"]
