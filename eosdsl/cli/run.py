"""Commands that run and validate specs: run, validate, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from eosdsl.cli.common import (
    Progress,
    RegistryOption,
    app,
    err,
    fail,
    open_registry,
    out,
    print_check,
    spec_error,
)
from eosdsl.spec.errors import SpecError

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
    reuse: Annotated[
        str,
        typer.Option(
            "--reuse",
            help="exact: a stored run with the same run key (default); compatible: also one of the same "
            "spec computed in another environment (flagged as not bit-exact).",
        ),
    ] = "exact",
    force: Annotated[
        bool,
        typer.Option("--force", help="Recompute even if stored, and report whether it is bit-identical."),
    ] = False,
    registry: RegistryOption = None,
) -> None:
    """Run a spec (every point of its sweep); reuse stored runs with the same identity.

    An interrupted run resumes from its last checkpoint when the same command is run again.
    """
    if reuse not in ("exact", "compatible"):
        fail(f"--reuse must be 'exact' or 'compatible', got {reuse!r}")
    from eosdsl.data import DatasetNotFoundError, IDXFormatError, UnsafePickleError
    from eosdsl.spec.load import load

    try:
        loaded = load(spec, overrides or [], multirun or [])
    except SpecError as error:
        spec_error(error)
    reg = open_registry(registry)
    try:
        outcomes, sweep_checks, sweep = _run_points(loaded, reg, "never" if force else reuse)
    except (DatasetNotFoundError, IDXFormatError, UnsafePickleError) as error:
        fail(f"{loaded.filename}: problem.data: {error}")
    _report(outcomes, sweep_checks, sweep, reg)


def _run_points(loaded, reg, reuse: str):
    from eosdsl.runs import run_points

    with Progress() as progress:
        outcomes, sweep_checks, sweep = run_points(
            loaded.spec,
            loaded.points,
            reg,
            lambda p: progress.for_point(p.label or loaded.spec.name),
            reuse=reuse,  # type: ignore[arg-type]
        )
    return outcomes, sweep_checks, sweep


def _report(outcomes, sweep_checks, sweep, reg) -> None:
    """Print each run, its checks and where it is stored; exit 1 if a check failed."""
    failed = False
    for o in outcomes:
        run_ = o.run
        tag = "reused" if o.reused else f"{run_.info.get('timings', {}).get('total_s', 0):.1f}s"
        label = f"[{o.label}] " if o.label else ""
        out.print(
            f"{label}run {run_.short_id}  {run_.status} at step {run_.info.get('end_step')}  ({tag})",
            markup=False,
        )
        if o.notice:
            out.print(f"  note: {o.notice}", markup=False)
        for c in run_.checks:
            failed |= print_check(c)
    for c in sweep_checks:
        failed |= print_check(c.to_dict())
    if sweep:
        out.print(f"sweep {sweep[:12]}: {len(outcomes)} runs", markup=False)
    where = outcomes[0].run.path if len(outcomes) == 1 else reg.root
    out.print(f"stored in {where}", markup=False)
    raise typer.Exit(1 if failed else 0)


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
