"""Looking up an id prefix among stored runs and sweeps, for every command that takes one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eosdsl.cli.common import fail

if TYPE_CHECKING:
    from eosdsl.registry import Registry

__all__ = ["resolve_any"]


def resolve_any(reg: Registry, prefix: str) -> tuple[str, Any]:
    """``("run", StoredRun)`` or ``("sweep", Sweep)`` for an id prefix; exit 2 on unknown or ambiguous.

    A prefix is looked up among runs and sweeps; a sweep record that cannot be read only matters when
    no run matches. A sweep comes with its members' runs looked up
    (:func:`~eosdsl.registry.sweeps.load_sweep`).
    """
    from eosdsl.registry import AmbiguousRun, RegistryError, UnknownRun
    from eosdsl.registry.sweeps import load_sweep

    found: list[tuple[str, Any]] = []
    problems: list[str] = []
    for kind, lookup in (("run", reg.resolve), ("sweep", reg.read_sweep)):
        try:
            found.append((kind, lookup(prefix)))
        except AmbiguousRun as error:
            _ambiguous(reg, kind, error)
        except UnknownRun as error:
            problems.append(str(error))
        except (RegistryError, OSError, ValueError) as error:
            problems.insert(0, f"cannot read the {kind} {prefix!r}: {error}")
    found = [(kind, item) for kind, item in found if kind == "run" or isinstance(item, dict)]
    if not found:
        fail(problems[0] + _stray_hint(reg, prefix) if problems else f"{prefix!r} is damaged")
    if len(found) > 1:
        run, sweep = found[0][1], found[1][1]
        fail(
            f"prefix {prefix!r} is ambiguous; candidates:\n  run   {run.run_key[:12]}  {_run_name(run)}\n"
            f"  sweep {_sweep_id(reg, prefix)[:12]}  {sweep.get('name') or '?'}"
        )
    kind, item = found[0]
    return (kind, item) if kind == "run" else (kind, load_sweep(reg, _sweep_id(reg, prefix), item))


def _run_name(run: Any) -> str:
    """A run's name for messages; ``?`` when its spec cannot be read."""
    try:
        return str(run.name or "?")
    except (OSError, ValueError, AttributeError):
        return "?"


def _stray_hint(reg: Any, prefix: str) -> str:
    """Why an id naming a directory under objects/ is not served (no manifest: damaged or half-written)."""
    norm = prefix.strip().lower()
    if len(norm) < 4 or not all(c in "0123456789abcdef" for c in norm):
        return ""
    matches = [path.name for path, _ in reg.object_entries(norm)]
    if not matches:
        return ""
    return (
        f"; objects/{norm[:2]}/{matches[0][:12]}… exists but is not a committed run (no MANIFEST.json or "
        "missing files: damaged or half-written); `eosdsl registry verify` reports it"
    )


def _sweep_id(reg: Any, prefix: str) -> str:
    """The full id of the (unique) sweep matching ``prefix``."""
    matches = sorted(reg.sweeps_dir.glob(f"{prefix.strip().lower()}*.json"))
    return matches[0].name.removesuffix(".json") if matches else prefix


def _ambiguous(reg: Any, kind: str, error: Any) -> None:
    lines = [f"{kind} prefix {error.prefix!r} is ambiguous; candidates:"]
    for key in error.candidates:
        run = reg.get(key) if kind == "run" else None
        name = _run_name(run) if run is not None else reg.sweep_name(key)
        lines.append(f"  {key[:12]}  {name or '?'}")
    fail("\n".join(lines))

