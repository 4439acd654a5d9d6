"""Commands that keep a registry sound: ``registry verify``, ``registry gc``, ``export``."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

import typer

from eosdsl.cli.common import RegistryOption, app, fail, open_registry, out, registry_app, resolve_run

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 GiB``: binary units, one decimal above bytes."""
    size = float(n)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _where(path: Path, root: Path) -> str:
    """``path`` relative to the registry root when it is inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@registry_app.command(name="verify")
def verify_command(
    deep: Annotated[bool, typer.Option("--deep", help="Also re-hash files and read every series.")] = False,
    quarantine: Annotated[
        bool, typer.Option("--quarantine/--no-quarantine", help="Move corrupted runs to quarantine/.")
    ] = True,
    registry: RegistryOption = None,
) -> None:
    """Check every stored run against its manifest and ids; quarantine the corrupted ones (exit 1)."""
    from eosdsl.registry import RegistryError
    from eosdsl.registry.integrity import verify

    reg = open_registry(registry)
    try:
        findings = verify(reg, deep=deep, quarantine=quarantine)
    except (RegistryError, OSError) as error:
        fail(f"verify failed in {reg.root}: {error}")
    bad = [f for f in findings if f.problems]
    for finding in bad:
        moved = f" -> {_where(finding.quarantined_to, reg.root)}" if finding.quarantined_to else ""
        out.print(f"✗ {finding.run_key[:12]} {finding.action}{moved}", markup=False)
        for problem in finding.problems:
            out.print(f"    {problem}", markup=False)
    summary = f"{len(findings)} runs checked, {len(bad)} corrupted"
    if bad:
        counts = {a: sum(f.action == a for f in bad) for a in ("quarantined", "reported")}
        summary += " (" + ", ".join(f"{n} {a}" for a, n in counts.items() if n) + ")"
    out.print(f"{summary}; {'deep' if deep else 'shallow'} check of {reg.root}", markup=False)
    if bad:
        raise typer.Exit(1)


@registry_app.command(name="gc")
def gc_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run/--no-dry-run", help="Only list what would be removed (default).")
    ] = True,
    registry: RegistryOption = None,
) -> None:
    """Remove abandoned staging, unused pack units, quarantined runs and stale claims; never touches
    committed runs."""
    from eosdsl.registry import RegistryError
    from eosdsl.registry.integrity import gc

    reg = open_registry(registry)
    try:
        items = gc(reg, dry_run=dry_run)
    except (RegistryError, OSError) as error:
        fail(f"gc failed in {reg.root}: {error}")
    for path, size, why in items:
        out.print(f"{human_bytes(size):>10}  {_where(path, reg.root)}  ({why})", markup=False)
    total = human_bytes(sum(size for _, size, _ in items))
    if dry_run:
        hint = "; run with --no-dry-run to remove them" if items else ""
        out.print(f"would remove {len(items)} items, {total}{hint}", markup=False)
    else:
        out.print(f"removed {len(items)} items, {total}", markup=False)


def export_target_problem(target: Path, registry_root: Path) -> str | None:
    """Why ``target`` may not receive an export, or ``None``: it must lie outside the registry (a zip
    written there could replace a committed run's files) and, if it exists, be a regular file (not a
    device, directory, FIFO or symbolic link, which ``--overwrite`` would replace)."""
    root = registry_root.resolve()
    where = target.resolve()
    if where == root or root in where.parents:
        return f"{target} is inside the registry {registry_root}; export to a path outside it"
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot check {target}: {error.strerror or error}"
    if not stat.S_ISREG(mode):
        what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        return f"{target} is {what}; export writes regular files only"
    return None


@app.command(name="export")
def export_command(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix).")],
    zip_path: Annotated[Path, typer.Option("--zip", help="Write the run to this zip file.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing zip file.")] = False,
    registry: RegistryOption = None,
) -> None:
    """Export a stored run (all its files, manifest included) as a zip."""
    from eosdsl.registry import RegistryError
    from eosdsl.registry.integrity import export_zip

    run = resolve_run(run_id, registry)
    problem = export_target_problem(zip_path, open_registry(registry).root)
    if problem is not None:
        fail(f"cannot export {run.short_id}: {problem}")
    try:
        path = export_zip(run, zip_path, overwrite=overwrite)
    except FileExistsError:
        fail(f"{zip_path} exists; pass --overwrite to replace it")
    except (RegistryError, OSError) as error:
        fail(f"cannot export {run.short_id}: {error}")
    out.print(f"exported {run.short_id} to {path} ({human_bytes(path.stat().st_size)})", markup=False)
