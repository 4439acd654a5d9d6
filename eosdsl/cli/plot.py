"""``eosdsl plot``: figures of a stored run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eosdsl.cli.common import RegistryOption, app, fail, out, resolve_run


@app.command()
def plot(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory (default plots/<id>).")] = None,
    series: Annotated[
        str | None, typer.Option("--series", help="Comma-separated series for one figure.")
    ] = None,
    logy: Annotated[bool, typer.Option("--logy", help="Log y-axis for --series.")] = False,
    registry: RegistryOption = None,
) -> None:
    """Write PNG figures of a stored run: loss, sharpness with the MSS, parameter trajectory."""
    from eosdsl.plot import plot_run, plot_series

    run_ = resolve_run(run_id, registry)
    target = out_dir or Path("plots") / run_.short_id
    try:
        paths = (
            [plot_series(run_, series.split(","), target / "series.png", logy=logy)]
            if series
            else plot_run(run_, target)
        )
    except KeyError as error:
        fail(str(error.args[0]))
    for p in paths:
        out.print(str(p), markup=False)
