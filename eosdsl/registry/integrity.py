"""Keeping a registry sound: verify committed runs, collect garbage, export a run as a zip.

* :func:`verify` checks every directory under ``objects/`` against its ``MANIFEST.json`` (sizes;
  ``deep``: sha256 of every file and a full read of ``results.zarr``) and against its identity
  (``spec_id`` re-hashed from ``spec.json``, ``run_key`` re-hashed from spec, environment and data).
  A run that fails is moved by one ``os.rename`` to ``quarantine/<run_key>.<UTC time>/`` with a
  ``QUARANTINE.json`` saying why, so it is no longer served and running its spec again recomputes it.
* :func:`gc` lists (and unless ``dry_run`` removes) what nothing needs: abandoned staging work
  directories, quarantined runs, stale claims and the tombs of interrupted claim takeovers. It never
  touches ``objects/``.
* :func:`export_zip` writes one committed run as a deterministic zip.

Nothing here modifies a file under ``objects/``; quarantining removes a whole directory from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosdsl.atomic import atomic_write
from eosdsl.registry import claims, identity, zarr_io
from eosdsl.registry.checkpoints import save_member
from eosdsl.registry.manifest import manifest_problems, read_manifest, write_manifest
from eosdsl.registry.store import (
    CHECKPOINTS,
    PACK_STAGING,
    QUARANTINE,
    QUARANTINE_INFO,
    RESULTS,
    Registry,
    RegistryError,
    StoredRun,
    dump_json,
    is_pack_id,
    pack_members,
    stored_in,
)

__all__ = [
    "QUARANTINE",
    "QUARANTINE_INFO",
    "Finding",
    "export_zip",
    "gc",
    "serve",
    "verify",
    "verify_run",
]

IDENTITY_FILES = ("spec.json", "env.json", "run.json")

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Finding:
    """The verdict on one entry under ``objects/``.

    ``action`` is ``"ok"`` (no problems), ``"quarantined"`` (moved to ``quarantined_to``) or
    ``"reported"`` (left in place: quarantine was off, or the entry is not a directory).
    """

    run_key: str
    path: Path
    problems: list[str]
    action: str
    quarantined_to: Path | None = field(default=None)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------------------------- verify


def _short(value: Any) -> str:
    return value[:12] if isinstance(value, str) else repr(value)


def _load_documents(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The parsed identity files of a run directory and the problems met reading them."""
    docs: dict[str, Any] = {}
    problems = []
    for name in IDENTITY_FILES:
        try:
            doc = json.loads((path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        except (OSError, ValueError) as error:
            problems.append(f"{name} is unreadable: {error}")
            continue
        if isinstance(doc, dict):
            docs[name] = doc
        else:
            problems.append(f"{name} is not a JSON object")
    return docs, problems


def _identity_problems(path: Path) -> list[str]:
    """Whether the directory name, run.json and MANIFEST.json agree with the ids re-hashed from content."""
    docs, problems = _load_documents(path)
    if problems:
        return problems
    spec, env, info = docs["spec.json"], docs["env.json"], docs["run.json"]
    name = path.name
    if not identity.is_run_key(name):
        problems.append(f"directory name {name!r} is not a run key")
    try:
        sid = identity.spec_id(spec)
    except (TypeError, ValueError) as error:
        return [*problems, f"spec.json cannot be hashed: {error}"]
    if info.get("spec_id") != sid:
        problems.append(
            f"spec_id mismatch: run.json says {_short(info.get('spec_id'))}, spec.json hashes to {sid[:12]}"
        )
    data = info.get("data") or {}
    try:
        key = identity.run_key(sid, env, data)
    except (TypeError, ValueError, AttributeError) as error:
        return [*problems, f"run key cannot be computed from spec, env.json and run.json data: {error}"]
    if key != name:
        problems.append(f"run_key mismatch: directory is {name[:12]}, spec/env/data hash to {key[:12]}")
    if info.get("run_key") != name:
        problems.append(f"run.json run_key {_short(info.get('run_key'))} differs from the directory name")
    manifest = read_manifest(path)
    if manifest is not None and manifest.get("run_key") != name:
        problems.append(f"MANIFEST.json run_key {_short(manifest.get('run_key'))} differs from the directory")
    return problems


def _series_problems(results: Path, member: int | None = None) -> list[str]:
    """Read every series of ``results`` back (of ``member``, in a pack unit's stacked group); any failure
    to open or decode is a problem."""
    if not results.exists():
        return []
    try:
        names = zarr_io.series_names(results)
    except Exception as error:  # zarr and its codecs raise many types
        return [f"{RESULTS} cannot be opened: {type(error).__name__}: {error}"]
    problems = []
    for name in names:
        try:
            zarr_io.read_series(results, name, member)
        except Exception as error:  # a chunk that does not decode, metadata that does not parse, ...
            problems.append(f"series {name!r} cannot be read: {type(error).__name__}: {error}")
    return problems


def _stored_in(path: Path, root: Path | None) -> tuple[Path, int] | None:
    """(pack unit directory, member index) of a run directory stored with its pack in the registry at
    ``root`` (None: a committed run's, ``<root>/objects/<ab>/<key>``); None if it holds its own results."""
    info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    try:
        return stored_in(info, path.parents[2] if root is None else Path(root))
    except ValueError as error:
        raise RegistryError(str(error)) from error


def _unit_problems(unit: Path, member: int, run_key: str, deep: bool, seen: dict | None) -> list[str]:
    """What is wrong with the pack unit a run is stored in, as that run sees it: the unit's manifest
    (shallow or deep, checked once per unit when ``seen`` caches it), that it lists the run as that
    member, and (``deep``) the member's series."""
    name = f"pack unit {unit.name[:12]}"
    if not unit.is_dir():
        return [f"its {name} is missing"]
    key = (unit, deep)
    if seen is None or key not in seen:
        problems = [f"{name}: {p}" for p in manifest_problems(unit, deep)]
        try:
            members = pack_members(unit)
        except (OSError, ValueError) as error:
            problems.append(f"{name}: {error}")
            members = []
        if seen is not None:
            seen[key] = (problems, members)
    else:
        problems, members = seen[key]
    problems = list(problems)
    if not (member < len(members) and members[member] == run_key):
        problems.append(f"{name} does not hold this run as member {member}")
    elif deep:
        problems += [f"{name}: {p}" for p in _series_problems(unit / RESULTS, member)]
    return problems


def verify_run(
    run: StoredRun | Path, deep: bool = False, units: dict | None = None, root: Path | None = None
) -> list[str]:
    """Everything wrong with one run directory, committed or staged (empty if nothing).

    Shallow: the manifest lists exactly the files present with their sizes, and the ids agree with the
    content; for a run stored with its pack, its pack unit's manifest too. ``deep`` also re-hashes
    every file and reads every series. ``units``: a cache of the pack units checked so far (one
    :func:`verify` pass checks each unit's files once, not once per run). ``root``: the registry the
    directory belongs to (None: it is a committed run's, ``<root>/objects/<ab>/<key>``).
    """
    path = run.path if isinstance(run, StoredRun) else Path(run)
    if not path.is_dir():
        return ["not a directory"]
    try:
        problems = manifest_problems(path, deep)
        problems += _identity_problems(path)
        packed = _stored_in(path, root) if not problems else None
    except OSError as error:
        return [f"cannot be read: {error}"]
    except RegistryError as error:
        return [str(error)]
    if packed is not None:
        problems += _unit_problems(*packed, path.name, deep, units)
    elif deep:
        problems += _series_problems(path / RESULTS)
    return problems


def _quarantine(registry: Registry, path: Path, problems: list[str], deep: bool) -> Path | None:
    """Move ``path`` out of ``objects/`` (:meth:`Registry.quarantine`); None if it vanished first."""
    return registry.quarantine(path, problems, f"failed {'deep ' if deep else ''}verification")


def serve(registry: Registry, run_key: str, deep: bool = False) -> tuple[StoredRun | None, str | None]:
    """The committed run ``run_key`` if it is sound enough to reuse, with a note on what was done.

    Shallow (every reuse): the manifest lists exactly the files present with their sizes, and the ids
    re-hash to the key — a few ``stat`` calls and three small JSON reads. ``deep``: also every file's
    sha256 and a full read of every series. A run that fails is quarantined (so the caller recomputes
    it) and the note says so; ``(None, None)`` when nothing is stored under the key at all.
    """
    path = registry.object_path(run_key)
    if not path.exists():
        return None, None
    problems = verify_run(path, deep, root=registry.root)
    if not problems:
        run = registry.get(run_key)
        if run is not None:
            return run, None
        problems = ["not a committed run"]
    moved = registry.quarantine(path, problems, "failed verification before reuse")
    where = f" to {moved.relative_to(registry.root)}" if moved is not None else ""
    return None, f"the stored run was damaged ({'; '.join(problems[:3])}): quarantined{where} and recomputed"


def verify(registry: Registry, deep: bool = False, quarantine: bool = True) -> list[Finding]:
    """Check every entry under ``objects/`` (also those ``get``/``runs`` skip); quarantine failures.

    Directories with problems are quarantined when ``quarantine`` is true (else reported); stray files
    are only reported. Entries that vanish meanwhile (a concurrent verify moved them) are left out.
    Returns one :class:`Finding` per entry, in path order.
    """
    findings, units = [], {}
    for path, shape in list(registry.object_entries()):
        is_dir = path.is_dir()
        in_shard = path.parent != registry.objects_dir  # a stray top-level entry is not a run to check
        problems = (shape + verify_run(path, deep, units, registry.root)) if is_dir and in_shard else shape
        if not os.path.lexists(path):
            continue
        action, moved_to = "ok", None
        if problems:
            action = "reported"
            if quarantine and is_dir:
                moved_to = _quarantine(registry, path, problems, deep)
                if moved_to is None:  # moved away meanwhile
                    continue
                action = "quarantined"
        findings.append(Finding(path.name, path, problems, action, moved_to))
    return findings


# --------------------------------------------------------------------------------------------- gc


def _tree_stats(path: Path) -> tuple[int, float]:
    """Total bytes of the regular files at or under ``path`` and the newest mtime seen (no symlinks)."""
    try:
        top = path.lstat()
    except FileNotFoundError:
        return 0, 0.0
    if not path.is_dir() or path.is_symlink():
        return top.st_size, top.st_mtime
    total, newest = 0, top.st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(dirpath, name))
                newest = max(newest, st.st_mtime)
                total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total, newest


def _staging_key(name: str) -> str | None:
    """The run key a staging entry belongs to: ``<key>`` or the older ``<key>.<pid>.<random>``."""
    if identity.is_run_key(name):
        return name
    head, dot, _ = name.partition(".")
    return head if dot and identity.is_run_key(head) else None


def _staging_candidates(registry: Registry, min_age_s: float) -> list[tuple[Path, int, str]]:
    """Staging entries nobody holds a live claim on and nobody has touched for ``min_age_s``."""
    if not registry.staging_dir.is_dir():
        return []
    found = []
    now = time.time()
    for path in sorted(registry.staging_dir.iterdir()):
        key = _staging_key(path.name)
        if key is not None and claims.claim_is_live(registry.root, key):
            continue
        size, newest = _tree_stats(path)
        if now - newest < min_age_s:
            continue
        if key is None:
            why = (
                "unfinished pack unit"
                if path.name.startswith(PACK_STAGING)
                else "unrecognized entry in staging"
            )
        elif registry.get(key) is not None:
            why = "staging of a committed run"
        else:
            why = "abandoned staging (no live claim)"
        found.append((path, size, why))
    return found


def _pack_candidates(
    registry: Registry, min_age_s: float, staged_away: set[Path]
) -> list[tuple[Path, int, str]]:
    """Pack units nothing needs, untouched for ``min_age_s``: no committed run refers to one (its runs
    were quarantined, or never committed), and none of its runs is being committed (a live claim) or is
    staged (a run killed after its manifest is published from its staging directory, with its unit),
    unless that staging directory is itself removed by this gc (``staged_away``)."""
    if not registry.packs_dir.is_dir():
        return []
    referred = set()
    for run in registry.runs():
        with contextlib.suppress(RegistryError):
            if (packed := run.stored_in) is not None:
                referred.add(packed[0].name)

    def needed(unit: Path) -> bool:
        try:
            members = pack_members(unit)
        except (OSError, ValueError):
            return False
        return any(
            claims.claim_is_live(registry.root, key)
            or ((registry.staging_dir / key).exists() and registry.staging_dir / key not in staged_away)
            for key in members
        )

    found, now = [], time.time()
    for shard in sorted(registry.packs_dir.iterdir()):
        for path in sorted(shard.iterdir()) if shard.is_dir() else [shard]:
            if path.name in referred or (is_pack_id(path.name) and needed(path)):
                continue
            size, newest = _tree_stats(path)
            if now - newest >= min_age_s:
                why = "pack unit no run refers to" if is_pack_id(path.name) else "unrecognized entry in packs"
                found.append((path, size, why))
    return found


def _quarantine_candidates(registry: Registry) -> list[tuple[Path, int, str]]:
    qdir = registry.quarantine_dir
    if not qdir.is_dir():
        return []
    return [(p, _tree_stats(p)[0], "quarantined run") for p in sorted(qdir.iterdir())]


def _claim_candidates(registry: Registry) -> list[tuple[Path, int, str]]:
    cdir = claims.claims_dir(registry.root)
    if not cdir.is_dir():
        return []
    found = []
    for path in sorted(cdir.iterdir()):
        if ".stale." in path.name:
            found.append((path, _tree_stats(path)[0], "claim tomb (left by an interrupted takeover)"))
        elif path.name.endswith(".json") and claims.is_stale(path):
            found.append((path, _tree_stats(path)[0], "stale claim"))
    return found


def _sweep_candidates(registry: Registry, min_age_s: float) -> list[tuple[Path, int, str]]:
    """Temp files of sweep records whose writer died before its ``os.replace``."""
    if not registry.sweeps_dir.is_dir():
        return []
    now = time.time()
    found = []
    for path in sorted(registry.sweeps_dir.glob(".*.tmp")):
        size, newest = _tree_stats(path)
        if now - newest >= min_age_s:
            found.append((path, size, "unfinished sweep record"))
    return found


def _remove_stale_claim(path: Path) -> bool:
    """Remove a stale claim the way a takeover does: rename it aside first, so exactly one wins.

    If a live claim replaced the stale one between the check and the rename, it is put back.
    """
    tomb = path.with_name(f"{path.name}.stale.gc-{secrets.token_hex(4)}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return False
    if claims.is_stale(tomb):
        tomb.unlink(missing_ok=True)
        return True
    with contextlib.suppress(OSError):  # FileExistsError: an even newer claim is already in place
        os.link(tomb, path)
    tomb.unlink(missing_ok=True)
    return False


def _remove(registry: Registry, path: Path, why: str) -> bool:
    """Remove one gc candidate; False if it vanished (or came back to life) meanwhile."""
    objects = registry.objects_dir.resolve()
    if path.resolve().is_relative_to(objects):
        raise RegistryError(f"refusing to remove {path}: it is under objects/")
    if why == "stale claim":
        return _remove_stale_claim(path)
    if not path.is_dir() or path.is_symlink():
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    # Rename first: a committer renaming the same directory into objects/ then either wins outright or
    # fails, and never publishes a directory that is being deleted.
    aside = path.with_name(f".gc-{secrets.token_hex(6)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    shutil.rmtree(aside)
    return True


def gc(
    registry: Registry, dry_run: bool = True, min_age_s: float = claims.STALE_AFTER
) -> list[tuple[Path, int, str]]:
    """What nothing needs any more, as ``(path, bytes, why)``; removed unless ``dry_run``.

    Candidates: staging work directories without a live claim (their run committed, or abandoned),
    pack units no run refers to or needs (:func:`_pack_candidates`), quarantined runs, stale claims,
    claim tombs and unfinished sweep-record temp files. Staging entries, units and temp files modified
    within ``min_age_s`` seconds are left alone (a writer may still be at work).
    Never touches ``objects/``. Without ``dry_run``, returns what was actually removed.
    """
    staging = _staging_candidates(registry, min_age_s)
    candidates = [
        *staging,
        *_pack_candidates(registry, min_age_s, {path for path, _, _ in staging}),
        *_quarantine_candidates(registry),
        *_claim_candidates(registry),
        *_sweep_candidates(registry, min_age_s),
    ]
    if dry_run:
        return candidates
    return [item for item in candidates if _remove(registry, item[0], item[2])]


# --------------------------------------------------------------------------------------------- export


def export_zip(run: StoredRun | Path, zip_path: Path, overwrite: bool = False) -> Path:
    """Write the run directory to ``zip_path`` as ``<run_key>/...`` entries (MANIFEST.json included).

    Entries are in sorted path order with fixed timestamps and ZIP_DEFLATED, so the same run always
    gives the same bytes. A run stored with its pack is exported standalone, as if stored alone
    (:func:`_standalone`): its series and final state are cut from its pack unit, so its zip is the same
    every time except for the time stamps Orbax writes into the checkpoint's metadata. The zip is
    written to a temp file and renamed into place. Refuses an existing ``zip_path`` unless ``overwrite``
    (``FileExistsError``) and a run that fails shallow verification (``RegistryError``).
    """
    path = run.path if isinstance(run, StoredRun) else Path(run)
    run_key = run.run_key if isinstance(run, StoredRun) else path.name
    zip_path = Path(zip_path)
    if zip_path.exists() and not overwrite:
        raise FileExistsError(f"{zip_path} exists; pass overwrite to replace it")
    problems = verify_run(path)
    if problems:
        raise RegistryError(f"run {run_key[:12]} fails verification: {'; '.join(problems)}")
    if _stored_in(path, None) is None:
        _zip_directory(path, run_key, zip_path)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            _zip_directory(_standalone(StoredRun(path, run_key), Path(scratch)), run_key, zip_path)
    return zip_path


def _standalone(run: StoredRun, scratch: Path) -> Path:
    """A copy of a run stored with its pack, under ``scratch``, laid out as a run stored alone: its own
    files without ``stored_in``, its series in ``results.zarr`` and its final state under
    ``checkpoints/``, cut from the unit, and a manifest of them (with the original's creation time)."""
    packed = run.stored_in
    if packed is None:
        raise ValueError(f"run {run.short_id} is not stored with a pack")
    unit, member = packed
    target = shutil.copytree(run.path, scratch / run.run_key)
    info = {k: v for k, v in run.info.items() if k != "stored_in"}
    (target / "run.json").write_text(dump_json(info), encoding="utf-8")
    member_attrs = zarr_io.read_attrs(unit / RESULTS).get("member_attrs", [{}])[member]
    zarr_io.write_series(target / RESULTS, {n: run.series(n) for n in run.series_names()}, member_attrs)
    save_member(unit / CHECKPOINTS, member, target / CHECKPOINTS)
    write_manifest(target, run.run_key, (read_manifest(run.path) or {}).get("created_at"))
    return target


def _zip_directory(path: Path, run_key: str, zip_path: Path) -> None:
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    with atomic_write(zip_path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            info = zipfile.ZipInfo(f"{run_key}/{file.relative_to(path).as_posix()}", _ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, file.read_bytes())
