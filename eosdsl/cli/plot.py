"""``eosdsl plot``: figures of a stored run, or phase diagrams of a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eosdsl.cli.common import RegistryOption, app, fail, open_registry, out

if TYPE_CHECKING:
    from eosdsl.plot import SweepPlotOptions


@app.command()
def plot(
    run_id: Annotated[str, typer.Argument(help="Run or sweep id (a unique prefix).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory (default plots/<id>).")] = None,
    series: Annotated[
        str | None, typer.Option("--series", help="Runs: comma-separated series for one figure.")
    ] = None,
    logy: Annotated[
        bool, typer.Option("--logy", help="Log y-axis: a run's --series, a sweep's curves.")
    ] = False,
    value: Annotated[
        str | None, typer.Option("--value", help="Sweeps: the summary to plot (default final.loss).")
    ] = None,
    x: Annotated[str | None, typer.Option("--x", help="Sweeps: the swept axis on x.")] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Sweeps: one curve per value of this axis (or `case`).")
    ] = None,
    heatmap: Annotated[bool, typer.Option("--heatmap", help="Sweeps: an x × y heatmap.")] = False,
    y: Annotated[str | None, typer.Option("--y", help="Sweeps: the swept axis on y (--heatmap).")] = None,
    ref: Annotated[
        list[str] | None,
        typer.Option(
            "--ref", help="Sweeps: a run reference as a dashed line, e.g. test_loss.min_l1 (repeat)."
        ),
    ] = None,
    logx: Annotated[bool, typer.Option("--logx", help="Sweeps: log x-axis.")] = False,
    logz: Annotated[bool, typer.Option("--logz", help="Sweeps: log colour scale (--heatmap).")] = False,
    registry: RegistryOption = None,
) -> None:
    """Write PNGs of a stored run (loss, sharpness with the MSS, trajectory) or a sweep's phase diagram."""
    from eosdsl.cli.lookup import resolve_any
    from eosdsl.plot import SweepPlotOptions

    kind, found = resolve_any(open_registry(registry), run_id)
    target = out_dir or Path("plots") / found.short_id
    if kind == "run":
        sweep_only = {"--value": value, "--x": x, "--by": by, "--y": y, "--heatmap": heatmap}
        sweep_only |= {"--ref": ref, "--logx": logx, "--logz": logz}
        if given := [name for name, v in sweep_only.items() if v]:
            fail(f"{', '.join(given)}: for sweeps; {run_id!r} is a run")
        _plot_run(found, target, series, logy)
    elif series:
        fail(f"--series is for runs; {run_id!r} is a sweep (plot a summary of its runs with --value)")
    else:
        options = SweepPlotOptions(
            value or "final.loss", x, by, y, heatmap, tuple(ref or ()), logx, logy, logz
        )
        _plot_sweep(found, target, options)


def _plot_run(run: Any, target: Path, series: str | None, logy: bool) -> None:
    """The standard figures of ``run``, or one figure of the named series."""
    from eosdsl.plot import plot_run, plot_series

    try:
        paths = [plot_series(run, series.split(","), target / "series.png", logy=logy)] if series else []
    except KeyError as error:
        fail(str(error.args[0]))
    for path in paths or plot_run(run, target):
        out.print(str(path), markup=False)


def _plot_sweep(sweep: Any, target: Path, options: SweepPlotOptions) -> None:
    """A sweep's phase diagram; each member without a value is named in a note."""
    from eosdsl.plot import plot_sweep

    try:
        drawn = plot_sweep(sweep, target, options)
    except ValueError as error:  # SweepPlotError, SummaryError: bad options, with what is available
        fail(str(error))
    out.print(str(drawn.path), markup=False)
    where = "hatched cell" if options.heatmap else "marked near the top"
    for line in drawn.excluded:
        out.print(f"note: no value ({where}): {line}", markup=False)
