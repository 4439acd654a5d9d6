"""Commands that look up stored runs: ls, show."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from eosdsl.cli.common import RegistryOption, app, open_registry, out, print_check, resolve_run


@app.command(name="ls")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest N runs.")] = 20,
    registry: RegistryOption = None,
) -> None:
    """List stored runs, newest first."""
    runs = open_registry(registry).runs()[:limit]
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
    run_ = resolve_run(run_id, registry)
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
        print_check(c)
    out.print("spec:", markup=False)
    out.print(json.dumps(run_.spec, indent=2), markup=False)
