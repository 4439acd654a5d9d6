"""Commands that run and validate specs: run, validate, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from eosdsl.cli.common import (
    RegistryOption,
    SweepProgress,
    app,
    err,
    event_lines,
    fail,
    open_registry,
    out,
    print_checks,
    spec_error,
)
from eosdsl.cli.solver_note import solver_notes
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
    pack: Annotated[
        int | None,
        typer.Option(
            "--pack",
            min=1,
            help="Sweep points per vmap-packed program (default: as many as fit in memory; 1: no packing).",
        ),
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop launching points after the first failure.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List the points, their run ids and packs, and what is stored; run nothing."
        ),
    ] = False,
    executor: Annotated[
        str, typer.Option("--executor", help="Where packs run: local (this process) or ray.")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster address (default: start a local Ray instance)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Parallel Ray tasks of a local Ray instance.")
    ] = None,
    verify_deep: Annotated[
        bool,
        typer.Option(
            "--verify-deep",
            help="Before reusing a stored run, re-hash its files and read every series (default: check "
            "its manifest and file sizes). A damaged run is quarantined and recomputed either way.",
        ),
    ] = False,
    registry: RegistryOption = None,
) -> None:
    """Run a spec (every point of its sweep); reuse stored runs with the same identity.

    Points of one program shape run together as one vmap-packed program. Re-running the same command
    reuses the stored points and resumes interrupted ones from their checkpoints; a failed point does
    not stop the others (unless --fail-fast), and a sweep ends with a summary table.
    """
    if reuse not in ("exact", "compatible"):
        fail(f"--reuse must be 'exact' or 'compatible', got {reuse!r}")
    from eosdsl.data import DataFormatError, DatasetNotFoundError, UnsafePickleError
    from eosdsl.orchestration.stages import StageError
    from eosdsl.spec.load import load

    try:
        loaded = load(spec, overrides or [], multirun or [])
    except SpecError as error:
        spec_error(error)
    reg = open_registry(registry)
    try:
        if dry_run:
            _dry_run(loaded, reg, reuse, pack)
            return
        with _executor(executor, address, workers) as ex:
            outcomes, sweep_checks, sweep = _run_points(
                loaded,
                reg,
                "never" if force else reuse,
                pack,
                fail_fast,
                None if executor == "local" else ex,
                verify_deep,
            )
    except (DatasetNotFoundError, DataFormatError, UnsafePickleError) as error:
        fail(f"{loaded.filename}: problem.data: {error}")
    except StageError as error:
        fail(f"{loaded.filename}: start: {error}")
    _report(outcomes, sweep_checks, sweep, reg)


def _executor(name: str, address: str | None, workers: int | None):
    from eosdsl.executors import ExecutorError, ExecutorUnavailable, make_executor

    try:
        return make_executor(name, address, workers)
    except (ExecutorUnavailable, ExecutorError) as error:
        fail(str(error))


def _run_points(loaded, reg, reuse: str, pack: int | None, fail_fast: bool, executor, deep: bool):
    from eosdsl.orchestration import run_points

    with SweepProgress(loaded.spec.name) as progress:
        return run_points(
            loaded.spec,
            loaded.points,
            reg,
            progress,
            reuse=reuse,  # type: ignore[arg-type]
            pack=pack,
            fail_fast=fail_fast,
            executor=executor,
            deep=deep,
        )


def _dry_run(loaded, reg, reuse: str, pack: int | None) -> None:
    """Print every point with its run id, pack and whether it is stored (or has a checkpoint); a point
    whose upstream run (a stage, or another spec file's run) is not stored yet has no id before that run
    (eosdsl.spec.stages)."""
    from dataclasses import replace

    from rich.table import Table

    from eosdsl.orchestration import plan_points, start_from_upstream
    from eosdsl.registry.claims import claim_is_live

    done: dict = {}  # points sharing an upstream run look it up once
    points = [
        replace(p, spec=start_from_upstream(p.spec, reg, loaded.spec.name, reuse, done=done, compute=False))  # type: ignore[arg-type]
        for p in loaded.points
    ]
    waiting, ready = [], []
    for point in points:
        unresolved = point.spec.start is not None and point.spec.start.run is None
        (waiting if unresolved else ready).append(point)
    plan = plan_points(ready, reg, reuse, pack)  # type: ignore[arg-type]
    pack_of = {i: n for n, members in enumerate(plan.packs) for i in members}
    table = Table("point", "run id", "pack", "state", box=None)
    for point in waiting:
        start = point.spec.start
        after = f"after its stage '{start.stage}'" if start.stage else f"after its upstream spec {start.spec}"
        table.add_row(point.label or loaded.spec.name, "", "", after)
    for i, (job, point) in enumerate(zip(plan.jobs, ready, strict=True)):
        if i in plan.reused:
            state = "stored" + (f" ({plan.reused[i].notice})" if plan.reused[i].notice else "")
        elif claim_is_live(reg.root, job.key):
            state = "running elsewhere"
        else:
            steps = reg.checkpoint_positions(job.key)
            state = f"checkpoint at scan position {steps[-1]}" if steps else "to run"
        pack_cell = f"{pack_of[i] + 1}/{len(plan.packs)}" if i in pack_of else ""
        table.add_row(point.label or loaded.spec.name, job.key[:12], pack_cell, state)
    out.print(table)
    todo = len(plan.jobs) - len(plan.reused)
    out.print(
        f"{len(plan.jobs)} points: {len(plan.reused)} stored, {todo} to run in {len(plan.packs)} packs",
        markup=False,
    )
    if waiting:
        out.print(f"{len(waiting)} points start from an upstream run that is not stored yet", markup=False)
    for note in plan.notes:
        out.print(f"note: {note}", markup=False)


def _report(outcomes, sweep_checks, sweep, reg) -> None:
    """Print each run, its checks and where it is stored, and a sweep's summary; exit 1 if a check or a
    point failed."""
    failed = False
    for o in outcomes:
        label = f"[{o.label}] " if o.label else ""
        if o.run is None:
            out.print(f"{label}failed: {o.error}", markup=False)
            failed = True
            continue
        run_ = o.run
        tag = "reused" if o.reused else f"{run_.info.get('timings', {}).get('total_s', 0):.1f}s"
        out.print(
            f"{label}run {run_.short_id}  {run_.status} at step {run_.info.get('end_step')}  ({tag})",
            markup=False,
        )
        if o.notice:
            out.print(f"  note: {o.notice}", markup=False)
        for note in solver_notes(run_):  # eigensolver cap hits
            out.print(f"  note: {note}", markup=False)
        for line in event_lines(run_.info):  # fired (or not) events
            out.print(f"  {line}", markup=False)
        failed |= print_checks(run_.checks)
    failed |= print_checks([c.to_dict() for c in sweep_checks])
    if sweep:
        _summary(outcomes)
        out.print(f"sweep {sweep[:12]}: {len(outcomes)} runs", markup=False)
    stored = [o.run for o in outcomes if o.run is not None]
    where = stored[0].path if len(outcomes) == 1 and stored else reg.root
    out.print(f"stored in {where}", markup=False)
    raise typer.Exit(1 if failed else 0)


def _summary(outcomes) -> None:
    """done / reused / diverged / failed counts of a sweep."""
    from rich.table import Table

    counts = {"done": 0, "reused": 0, "diverged": 0, "failed": 0}
    for o in outcomes:
        if o.run is None:
            counts["failed"] += 1
        elif o.reused:
            counts["reused"] += 1
        elif o.status == "diverged":
            counts["diverged"] += 1
        else:
            counts["done"] += 1
    table = Table(*counts, "total", box=None, title="sweep summary", title_justify="left")
    table.add_row(*(str(v) for v in counts.values()), str(len(outcomes)))
    out.print(table)


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
def schema(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to a file (its directory is created if needed).")
    ] = None,
) -> None:
    """Print the JSON Schema of specs (for editor autocompletion)."""
    from eosdsl.spec.schema import spec_schema

    text = json.dumps(spec_schema(), indent=2)
    if out_file:
        try:
            out_file.parent.mkdir(parents=True, exist_ok=True)
            out_file.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            fail(f"cannot write {out_file}: {error}")
    else:
        sys.stdout.write(text + "\n")
