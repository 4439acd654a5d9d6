"""``eosdsl plot``: figures of a stored run, phase diagrams of a sweep, or several runs overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eosdsl.cli.common import RegistryOption, app, fail, open_registry, out

if TYPE_CHECKING:
    from eosdsl.plot import OverlayOptions, SweepPlotOptions

FILE_SUFFIXES = (".png", ".pdf", ".svg")


@app.command()
def plot(
    ids: Annotated[
        list[str],
        typer.Argument(help="Run or sweep ids (unique prefixes); several runs/sweeps are overlaid."),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Directory (default plots/<id>), or a file: its suffix (.png, .pdf, .svg) is the format.",
        ),
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option(
            "--series", "-s", help="Series to plot (repeat, or comma-separate): one panel each in an overlay."
        ),
    ] = None,
    logy: Annotated[
        bool, typer.Option("--logy", help="Log y-axis: series, overlays, a sweep's curves.")
    ] = False,
    value: Annotated[
        list[str] | None,
        typer.Option(
            "--value",
            help="Sweeps: the summary to plot (default final.loss), or a per-run expression of the claims' "
            "series algebra (`final(u)**2`); repeat to draw several on one axis.",
        ),
    ] = None,
    x: Annotated[str | None, typer.Option("--x", help="Sweeps: the swept axis on x.")] = None,
    x_as: Annotated[
        str | None,
        typer.Option(
            "--x-as",
            help="Sweep curves: place each run on x by LABEL=EXPR of its spec constants "
            "(`η=eta0 * m**i` for a grid over i).",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Sweeps: one curve per value of this axis (or `case`).")
    ] = None,
    heatmap: Annotated[bool, typer.Option("--heatmap", help="Sweeps: an x × y heatmap.")] = False,
    y: Annotated[str | None, typer.Option("--y", help="Sweeps: the swept axis on y (--heatmap).")] = None,
    ref: Annotated[
        list[str] | None,
        typer.Option(
            "--ref",
            help="A reference line (repeat): test_loss.min_l1; runs and overlays also take mss, 2/lr.",
        ),
    ] = None,
    logx: Annotated[
        bool, typer.Option("--logx", help="Log x-axis: steps of runs, a sweep's swept axis.")
    ] = False,
    logy_of: Annotated[
        list[str] | None,
        typer.Option("--logy-of", help="Overlays: log y-axis on this series' panel only (repeat)."),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Overlays: a series on the x-axis instead of the step (phase portraits: -s Y --against X).",
        ),
    ] = None,
    logz: Annotated[bool, typer.Option("--logz", help="Sweeps: log colour scale (--heatmap).")] = False,
    overlay: Annotated[
        bool,
        typer.Option(
            "--overlay", help="Overlay the series of a sweep's member runs (implied by several ids or -s)."
        ),
    ] = False,
    registry: RegistryOption = None,
) -> None:
    """Figures of stored runs (loss, sharpness with the MSS, trajectory), a sweep's phase diagram, or the
    series of several runs and sweeps' members overlaid on shared axes."""
    from eosdsl.cli.lookup import resolve_any
    from eosdsl.plot import OverlayOptions, SweepPlotOptions

    reg = open_registry(registry)
    found = [resolve_any(reg, run_id) for run_id in ids]
    names = [part.strip() for text in series or () for part in text.split(",") if part.strip()]
    if series and not names:
        fail("--series: no series named")
    sweep_only = {
        "--value": value,
        "--x": x,
        "--x-as": x_as,
        "--by": by,
        "--y": y,
        "--heatmap": heatmap,
        "--logz": logz,
    }
    given = [name for name, v in sweep_only.items() if v]
    kind, item = found[0]
    overlaid = len(found) > 1 or overlay or logy_of or against or (kind == "run" and ref)
    if overlaid or (kind == "sweep" and names):
        if given:
            fail(
                f"{', '.join(given)}: for a sweep's phase diagram; "
                "an overlay takes -s, --ref, --logx, --logy, --logy-of, --against"
            )
        options = OverlayOptions(
            tuple(names or ("loss",)),
            tuple(ref or ()),
            logx,
            logy,
            logy_of=tuple(logy_of or ()),
            against=against,
        )
        default = Path("plots") / "+".join(found_item.short_id[:8] for _, found_item in found)
        _plot_overlay(found, _file(out_path, default, options), options)
    elif kind == "run":
        if given:
            fail(f"{', '.join(given)}: for sweeps; {ids[0]!r} is a run")
        _plot_run(item, out_path or Path("plots") / item.short_id, names, logy, logx)
    else:
        options = SweepPlotOptions(
            value[0] if value else "final.loss",
            x,
            by,
            y,
            heatmap,
            tuple(ref or ()),
            logx,
            logy,
            logz,
            also=tuple(value[1:]) if value else (),
            x_as=x_as,
        )
        _plot_sweep(item, out_path or Path("plots") / item.short_id, options)


def _is_file(path: Path | None) -> bool:
    return path is not None and path.suffix.lower() in FILE_SUFFIXES


def _file(out_path: Path | None, default: Path, options: OverlayOptions) -> Path:
    """The overlay's file: ``--out`` itself when it names one, else a name saying what it shows in it."""
    from eosdsl.plot.overlay import overlay_file_name

    if _is_file(out_path):
        return Path(out_path)  # type: ignore[arg-type]
    return (out_path or default) / overlay_file_name(options)


def _plot_overlay(found: list[tuple[str, Any]], path: Path, options: OverlayOptions) -> None:
    """The runs (and sweeps' member runs) overlaid; members without a run or series named in notes."""
    from eosdsl.plot import OverlayError, entries_of, plot_overlay

    entries, notes = entries_of(found)
    try:
        drawn = plot_overlay(entries, options, path)
    except OverlayError as error:
        fail(str(error))
    out.print(str(drawn.path), markup=False)
    for line in [*notes, *drawn.notes]:
        out.print(f"note: {line}", markup=False)


def _plot_run(run: Any, target: Path, names: list[str], logy: bool, logx: bool) -> None:
    """The standard figures of ``run``, or one figure of the named series."""
    from eosdsl.plot import plot_run, plot_series

    if _is_file(target) and not names:
        fail(
            f"--out {target}: a run's standard figures go into a directory; name series with -s for one file"
        )
    path = target if _is_file(target) else target / "series.png"
    try:
        paths = [plot_series(run, names, path, logy=logy, logx=logx)] if names else []
    except KeyError as error:
        fail(str(error.args[0]))
    for written in paths or plot_run(run, target, logx=logx):
        out.print(str(written), markup=False)


def _plot_sweep(sweep: Any, target: Path, options: SweepPlotOptions) -> None:
    """A sweep's phase diagram; each member without a value is named in a note."""
    from eosdsl.plot import plot_sweep

    try:
        drawn = plot_sweep(
            sweep,
            target.parent if _is_file(target) else target,
            options,
            target if _is_file(target) else None,
        )
    except ValueError as error:  # SweepPlotError, SummaryError: bad options, with what is available
        fail(str(error))
    out.print(str(drawn.path), markup=False)
    where = "hatched cell" if options.heatmap else "marked near the top"
    for line in drawn.excluded:
        out.print(f"note: no value ({where}): {line}", markup=False)
