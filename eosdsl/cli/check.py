"""``eosdsl check``: judge stored runs and sweeps again, without recomputing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from eosdsl.cli.common import RegistryOption, app, fail, open_registry, out, print_checks, spec_error
from eosdsl.spec.errors import SpecError


@app.command()
def check(
    target: Annotated[str, typer.Argument(help="A run or sweep id (a prefix of at least 4 hex digits).")],
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="Judge with this spec file's checks (and sweep claims). Its points must be the stored "
            "runs' specs up to their checks; default: the checks the run was last judged with.",
        ),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Evaluate checks on a stored run or sweep and store the verdicts; exit 1 if a check fails.

    Checks are not part of a run's identity: this re-reads the stored series, evaluates the checks
    (a few seconds), and stores the verdict beside the run, where `show`, `ls` and `query` see it.
    """
    from eosdsl.cli.lookup import resolve_any

    reg = open_registry(registry)
    kind, item = resolve_any(reg, target)
    loaded = _load(spec_file) if spec_file is not None else None
    if kind == "run":
        spec = _spec_for(item, loaded, spec_file)
        failed = _judge_and_print(item, spec, reg, label=None)
        raise typer.Exit(1 if failed else 0)
    failed = _check_sweep(item, loaded, spec_file, reg)
    raise typer.Exit(1 if failed else 0)


def _load(path: Path) -> Any:
    from eosdsl.spec.load import load

    try:
        return load(path)
    except SpecError as error:
        spec_error(error)


def _stored_spec(run: Any) -> Any:
    """The run's stored spec with the checks of its current verdict (those it was last judged with)."""
    from eosdsl.spec import models as m

    document = dict(run.spec)
    verdict = run.verdict
    if verdict is not None:
        document["checks"] = verdict["checks"]
    try:
        return m.Spec.model_validate(document)
    except ValueError as error:  # a spec stored by an older eosdsl that this one no longer accepts
        fail(f"run {run.short_id}: its stored spec no longer validates ({error}); pass --spec FILE", code=2)


def _spec_for(run: Any, loaded: Any, spec_file: Path | None) -> Any:
    """The spec to judge ``run`` with: the point of ``loaded`` with the run's spec id, else its own."""
    if loaded is None:
        return _stored_spec(run)
    from eosdsl.registry import spec_id
    from eosdsl.spec.stages import as_stored

    wanted = run.info.get("spec_id")
    for point in loaded.points:
        spec = as_stored(point.spec, run.spec)  # a point that starts from a stage run, as the run did
        if spec_id(spec.model_dump(mode="json")) == wanted:
            return spec
    fail(
        f"{spec_file}: none of its {len(loaded.points)} point(s) is the spec of run {run.short_id} "
        "(they differ in more than their checks)"
    )


def _judge_and_print(run: Any, spec: Any, reg: Any, label: str | None) -> bool:
    from eosdsl.orchestration import judge

    results = judge(run, spec, reg, force=True)
    prefix = f"[{label}] " if label else ""
    out.print(f"{prefix}run {run.short_id}  {run.status}  ({len(results)} checks judged)", markup=False)
    return print_checks([result.to_dict() for result in results])


def _check_sweep(sweep: Any, loaded: Any, spec_file: Path | None, reg: Any) -> bool:
    """Judge every member run, then the sweep-level checks; the sweep record gets the new ones."""
    from eosdsl.orchestration import JobOutcome, rejudge_sweep
    from eosdsl.spec import models as m
    from eosdsl.spec.sweep import Point

    record = reg.read_sweep(sweep.sweep_id)
    base = loaded.spec if loaded is not None else m.Spec.model_validate(record["spec"])
    failed = False
    outcomes = []
    for member in sweep.members:
        if member.run is None:
            out.print(f"[{member.label}] no stored run ({member.status})", markup=False)
            outcomes.append(JobOutcome(None, base, reused=True, label=member.label, key=member.run_key))
            continue
        spec = _spec_for(member.run, loaded, spec_file)
        failed |= _judge_and_print(member.run, spec, reg, member.label)
        point = Point(member.label, spec, dict(member.values), member.case)
        outcomes.append(JobOutcome(member.run, spec, reused=True, label=member.label, point=point))
    failed |= print_checks([r.to_dict() for r in rejudge_sweep(base, outcomes, reg, sweep.sweep_id, record)])
    out.print(f"sweep {sweep.short_id}: {len(outcomes)} runs", markup=False)
    return failed
