"""The ``eosdsl`` command line: run, validate, schema, plot, ls, show.

Exit status: 0 success; 1 a check failed; 2 bad input (a spec error, an unknown
run id, a bad override) — reported as ``file:line:col key.path: message``, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from eosdsl.spec.errors import SpecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Edge-of-stability experiments as YAML specs: compiled with JAX, stored by content hash.",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry root (default: $EOSDSL_REGISTRY, else registry/ in the repo)."),
]


def _registry(path: Path | None):
    from eosdsl.registry import Registry, default_root

    return Registry(default_root(path))


def _fail(message: str, code: int = 2) -> None:
    err.print(message, markup=False)
    raise typer.Exit(code)


def _spec_error(error: SpecError) -> None:
    _fail(str(error))


# ------------------------------------------------------------------------------------------- progress


def _use_bar() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


class _Progress:
    """A rich progress bar on a terminal; otherwise a log line at most every 10 s."""

    def __init__(self) -> None:
        self.bar = None
        if _use_bar():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.__exit__(*exc)

    def for_point(self, label: str):
        last = [0.0]
        task = self.bar.add_task(label, total=None) if self.bar else None

        def update(done: int, total: int) -> None:
            if self.bar:
                self.bar.update(task, completed=done, total=total)
            elif time.monotonic() - last[0] > 10 or done == total:
                last[0] = time.monotonic()
                err.print(f"{label}: step {done}/{total}", markup=False)

        return update


# ------------------------------------------------------------------------------------------- commands


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="Spec file (YAML).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides `key.path=value`.")] = None,
    multirun: Annotated[
        list[str] | None,
        typer.Option(
            "-m", "--multirun", help="Sweep axis `key.path=v1,v2,…`, `linspace(lo,hi,n)` or `range(…)`."
        ),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Run a spec (every point of its sweep); reuse stored runs with the same identity."""
    from eosdsl.runs import run_points
    from eosdsl.spec.load import load

    try:
        loaded = load(spec, overrides or [], multirun or [])
    except SpecError as error:
        _spec_error(error)
    reg = _registry(registry)
    with _Progress() as progress:
        outcomes, sweep_checks, sweep = run_points(
            loaded.spec, loaded.points, reg, lambda p: progress.for_point(p.label or loaded.spec.name)
        )
    failed = False
    for o in outcomes:
        run_ = o.run
        tag = "reused" if o.reused else f"{run_.info.get('timings', {}).get('total_s', 0):.1f}s"
        label = f"[{o.label}] " if o.label else ""
        out.print(
            f"{label}run {run_.short_id}  {run_.status} at step {run_.info.get('end_step')}  ({tag})",
            markup=False,
        )
        for c in run_.checks:
            failed |= _print_check(c)
    for c in sweep_checks:
        failed |= _print_check(c.to_dict())
    if sweep:
        out.print(f"sweep {sweep[:12]}: {len(outcomes)} runs", markup=False)
    where = outcomes[0].run.path if len(outcomes) == 1 else reg.root
    out.print(f"stored in {where}", markup=False)
    raise typer.Exit(1 if failed else 0)


def _print_check(check: dict) -> bool:
    """Print one check line; True if it failed."""
    applicable = check.get("applicable", True)
    mark = ("✓" if check["passed"] else "✗") if applicable else "n/a"
    out.print(f"  {mark} {check['name']}: {check['detail']}", markup=False)
    return not check["passed"]


@app.command()
def validate(specs: Annotated[list[Path], typer.Argument(help="Spec files.")]) -> None:
    """Validate spec files; report every error as file:line:col key.path: message."""
    from eosdsl.spec.load import load

    bad = 0
    for path in specs:
        try:
            loaded = load(path)
        except SpecError as error:
            err.print(str(error), markup=False)
            bad += 1
            continue
        points = f", {len(loaded.points)} runs" if loaded.is_sweep else ""
        out.print(f"{path}: ok ({loaded.spec.name}{points})", markup=False)
    raise typer.Exit(2 if bad else 0)


@app.command()
def schema(out_file: Annotated[Path | None, typer.Option("--out", help="Write to a file.")] = None) -> None:
    """Print the JSON Schema of specs (for editor autocompletion)."""
    from eosdsl.spec.schema import spec_schema

    text = json.dumps(spec_schema(), indent=2)
    if out_file:
        out_file.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


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

    run_ = _resolve(run_id, registry)
    target = out_dir or Path("plots") / run_.short_id
    try:
        paths = (
            [plot_series(run_, series.split(","), target / "series.png", logy=logy)]
            if series
            else plot_run(run_, target)
        )
    except KeyError as error:
        _fail(str(error.args[0]))
    for p in paths:
        out.print(str(p), markup=False)


def _resolve(run_id: str, registry: Path | None):
    from eosdsl.registry import RegistryError

    try:
        return _registry(registry).resolve(run_id)
    except RegistryError as error:
        _fail(str(error))


@app.command(name="ls")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest N runs.")] = 20,
    registry: RegistryOption = None,
) -> None:
    """List stored runs, newest first."""
    runs = _registry(registry).runs()[:limit]
    table = Table("id", "name", "status", "end step", "checks", "finished")
    for r in runs:
        checks = r.checks
        passed = sum(bool(c.get("passed")) for c in checks)
        table.add_row(
            r.short_id,
            r.name or "",
            r.status,
            str(r.info.get("end_step", "")),
            f"{passed}/{len(checks)}" if checks else "",
            str(r.info.get("finished_at", "")),
        )
    out.print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix).")], registry: RegistryOption = None
):
    """Show a stored run: spec, status, events, checks and final values of its series."""
    run_ = _resolve(run_id, registry)
    info = run_.info
    out.print(
        f"run {run_.run_key}\n  name: {run_.name}\n  path: {run_.path}\n  status: {run_.status} "
        f"at step {info.get('end_step')}",
        markup=False,
    )
    for e in info.get("events", []):
        out.print(f"  event {e['name']}: fired at {e['fired_at']}", markup=False)
    for name, value in info.get("references", {}).items():
        out.print(f"  reference {name} = {value:.6g}", markup=False)
    for name in run_.series_names():
        steps, values = run_.series(name)
        if values.ndim == 1 and values.size:
            out.print(
                f"  {name}: {values.size} values, final {values[-1]:.10g} at step {steps[-1]}", markup=False
            )
    for c in run_.checks:
        _print_check(c)
    out.print("spec:", markup=False)
    out.print(json.dumps(run_.spec, indent=2), markup=False)


def main() -> None:
    """Console-script entry point."""
    app()
