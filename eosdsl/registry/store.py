"""The on-disk, content-addressed run store.

Layout under a registry root::

    objects/<ab>/<run_key>/{spec.json, env.json, run.json, results.zarr/, MANIFEST.json}   committed
    packs/<ab>/<pack_id>/{pack.json, results.zarr/, checkpoints/, MANIFEST.json}    a pack's stored unit
    staging/<run_key>/                                      the work directory of a run being computed
    staging/pack-<pack_id>/                                 a pack unit being written
    sweeps/<sweep_id>.json                                  sweep records
    verdicts/<ab>/<run_key>/<verdict_id>.json               check results (eosdsl.registry.verdicts)

A run is written into a private staging directory and published by ONE atomic ``os.rename`` into
``objects/``, so readers see either no run or a complete one, and two processes racing on the same key
both end up with the same committed run (the loser discards its copy). Nothing under ``objects/`` is
modified after commit (checks are judged into ``verdicts/``, beside it). Ids are defined in
:mod:`eosdsl.registry.identity`, never here.

Runs of one pack that end together are stored as one *pack unit* (:class:`StagedPack`): their series in
one stacked Zarr group and their final states in one Orbax checkpoint of the stacked state, written
once and published by one rename before the runs that refer to it. Each such run's ``run.json`` says
``stored_in: {pack: <pack_id>, member: <i>}`` and its directory holds no ``results.zarr``; everything
else about it (identity, manifest, verdicts, index) is a run's own. A pack unit is as immutable as a
run; ``eosdsl registry gc`` removes one that no committed run refers to. Storing the runs one by one
costs a Zarr group and an Orbax checkpoint per run, ~50 ms of CPU each whatever their size, which is
what limited a packed sweep of small runs (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from eosdsl.atomic import atomic_write
from eosdsl.registry import zarr_io
from eosdsl.registry.identity import is_run_key, jsonable
from eosdsl.registry.manifest import read_manifest, write_manifest
from eosdsl.registry.verdicts import current_verdict

__all__ = [
    "AmbiguousRun",
    "DamagedRun",
    "Registry",
    "RegistryError",
    "StoredRun",
    "StagedPack",
    "StagedRun",
    "UnknownRun",
    "default_root",
]

ENV_VAR = "EOSDSL_REGISTRY"
RESULTS = "results.zarr"
SCRATCH = "scratch"
REQUIRED_FILES = ("spec.json", "env.json", "run.json")
CHECKPOINTS = "checkpoints"
PACKS = "packs"
PACK_INFO = "pack.json"
PACK_STAGING = "pack-"
QUARANTINE = "quarantine"
QUARANTINE_INFO = "QUARANTINE.json"
MIN_PREFIX = 4

_SHARD = re.compile(r"[0-9a-f]{2}")
_HEX_ID = re.compile(r"[0-9a-f]+")
_PACK_ID = re.compile(r"[0-9a-f]{32}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class RegistryError(Exception):
    """Base class of registry failures that a CLI should report rather than crash on."""


class DamagedRun(RegistryError):
    """A committed run whose stored files cannot be read back as written."""

    def __init__(self, run: StoredRun, problem: str) -> None:
        super().__init__(
            f"run {run.short_id} is damaged: {problem}; `eosdsl registry verify` quarantines it, and "
            "running its spec again then recomputes it"
        )
        self.run = run


class UnknownRun(RegistryError):
    """No run (or sweep) matches the given id or prefix."""


class AmbiguousRun(RegistryError):
    """A prefix matches several runs (or sweeps); ``candidates`` holds their full ids, sorted."""

    def __init__(self, prefix: str, candidates: list[str], names: Mapping[str, str | None]) -> None:
        self.prefix = prefix
        self.candidates = sorted(candidates)
        listed = ", ".join(f"{c[:12]} ({names.get(c) or '?'})" for c in self.candidates)
        super().__init__(f"prefix {prefix!r} is ambiguous; {len(self.candidates)} matches: {listed}")


# --------------------------------------------------------------------------------------------- root


def _dev_repo_root(package_dir: Path | None = None) -> Path | None:
    """The source checkout holding the eosdsl package (editable/dev install), else None.

    It is the package's parent directory if that has a pyproject.toml whose ``[project] name`` is
    ``eosdsl``; a site-packages install has no such file and yields None.
    """
    package_dir = package_dir or Path(__file__).resolve().parent.parent
    repo = package_dir.parent
    try:
        with open(repo / "pyproject.toml", "rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return repo if isinstance(project, dict) and project.get("name") == "eosdsl" else None


def default_root(override: str | os.PathLike | None = None) -> Path:
    """Registry root: ``override`` > ``$EOSDSL_REGISTRY`` > ``<repo>/registry`` (dev install) > ./registry."""
    if override is not None and os.fspath(override):
        return Path(override).expanduser().absolute()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env).expanduser().absolute()
    repo = _dev_repo_root()
    if repo is not None:
        return repo / "registry"
    return Path.cwd() / "registry"


# --------------------------------------------------------------------------------------------- helpers


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dump_json(obj: Any) -> str:
    """Pretty, sorted, strict JSON (NaN/Inf raise with their path) of plain or numpy-bearing data."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _load_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _normalize_prefix(prefix: str) -> str:
    """Lower-cased hex prefix of >= MIN_PREFIX characters; anything else can match nothing."""
    norm = str(prefix).strip().lower()
    if len(norm) < MIN_PREFIX or len(norm) > 64 or not _HEX_ID.fullmatch(norm):
        raise UnknownRun(f"{prefix!r} is not an id prefix (need {MIN_PREFIX} to 64 hex characters)")
    return norm


def _check_key(run_key: str) -> str:
    if not is_run_key(run_key):
        raise ValueError(f"run_key must be 64 lowercase hex characters, got {run_key!r}")
    return run_key


def _is_committed_dir(path: Path) -> bool:
    """Shape check of a committed run directory: the core files and a readable ``MANIFEST.json``.

    The manifest is written last, just before the publishing rename, so a directory without one is
    not a committed run (damaged, or left by something else): it is skipped, never served.
    """
    return (
        path.is_dir()
        and all((path / name).is_file() for name in REQUIRED_FILES)
        and read_manifest(path) is not None
    )


def _listdir(path: Path) -> list[Path]:
    """Entries of a directory, sorted; none if it is missing or vanishes meanwhile."""
    try:
        return sorted(path.iterdir())
    except OSError:
        return []


def posix_time(value: Any) -> float | None:
    """POSIX time of an ISO-8601 string (naive means UTC), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# ------------------------------------------------------------------------------------------- StoredRun


class StoredRun:
    """A committed, immutable run. JSON files are read lazily and cached (they never change)."""

    def __init__(self, path: Path, run_key: str) -> None:
        self.path = Path(path)
        self.run_key = run_key

    def __repr__(self) -> str:
        return f"StoredRun({self.short_id}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredRun) and (self.run_key, self.path) == (other.run_key, other.path)

    def __hash__(self) -> int:
        return hash((self.run_key, self.path))

    @property
    def short_id(self) -> str:
        return self.run_key[:12]

    @cached_property
    def spec(self) -> dict:
        return _load_json(self.path / "spec.json")

    @cached_property
    def env(self) -> dict:
        return _load_json(self.path / "env.json")

    @cached_property
    def info(self) -> dict:
        return _load_json(self.path / "run.json")

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def name(self) -> str | None:
        spec = self.spec
        return spec.get("name") if isinstance(spec, dict) else None

    @property
    def root(self) -> Path:
        """The registry root this run is committed in (``objects/<ab>/<run_key>`` below it)."""
        return self.path.parents[2]

    @property
    def verdict(self) -> dict | None:
        """The run's current verdict record (:mod:`eosdsl.registry.verdicts`), or None."""
        return current_verdict(self.root, self.run_key)

    @property
    def checks(self) -> list[dict]:
        """The results of the run's current verdict (before verdicts existed: those in ``run.json``)."""
        verdict = self.verdict
        return list(verdict["results"] if verdict is not None else self.info.get("checks", []))

    @property
    def stored_in(self) -> tuple[Path, int] | None:
        """(directory of the pack unit, member index) of a run stored with its pack (``run.json``'s
        ``stored_in``), or None for a run that holds its own results. :class:`DamagedRun` if the
        reference is malformed."""
        try:
            return stored_in(self.info, self.root)
        except ValueError as error:
            raise DamagedRun(self, str(error)) from error

    @property
    def results_path(self) -> Path:
        """The Zarr group holding the run's series (its pack unit's, for a run stored with its pack)."""
        packed = self.stored_in
        return (packed[0] if packed else self.path) / RESULTS

    def _results(self) -> tuple[Path, int | None] | None:
        """(its Zarr group, its member index in it: None for its own group) of a run's series; None if
        the run stored none. :class:`DamagedRun` if the pack unit it refers to is missing."""
        packed, path = self.stored_in, self.results_path
        if path.is_dir():
            return path, packed[1] if packed else None
        if packed is not None:
            raise DamagedRun(self, f"its pack unit {packed[0].name[:12]} is missing")
        return None

    def series_names(self) -> list[str]:
        """Names of the stored series; empty if the run stored none. :class:`DamagedRun` if unreadable."""
        where = self._results()
        if where is None:
            return []
        try:
            return zarr_io.series_names(where[0])
        except zarr_io.UnreadableSeries as error:
            raise DamagedRun(self, str(error)) from error

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one series; ``KeyError`` listing the available names if missing,
        :class:`DamagedRun` if it cannot be read back as written (never zeros for a lost chunk)."""
        where = self._results()
        if where is None:
            raise KeyError(f"no series {name!r} in run {self.short_id}; it stored no series")
        try:
            return zarr_io.read_series(where[0], name, where[1])
        except zarr_io.UnreadableSeries as error:
            raise DamagedRun(self, str(error)) from error


def stored_in(info: Mapping[str, Any], root: Path) -> tuple[Path, int] | None:
    """(pack unit directory under the registry ``root``, member index) that a run's ``run.json``
    (``info``) refers to in ``stored_in``; None if it has none. ``ValueError`` if it is malformed."""
    ref = info.get("stored_in")
    if ref is None:
        return None
    pack, member = (ref.get("pack"), ref.get("member")) if isinstance(ref, dict) else (None, None)
    if not (isinstance(pack, str) and is_pack_id(pack) and type(member) is int and member >= 0):
        raise ValueError(f"run.json stored_in is malformed: {ref!r}")
    return pack_path(root, pack), member


def pack_path(root: Path, pack_id: str) -> Path:
    """Where the pack unit ``pack_id`` lives under the registry ``root`` (whether or not it exists)."""
    return Path(root) / PACKS / pack_id[:2] / pack_id


def pack_members(unit: Path) -> list[str]:
    """The run keys a pack unit holds, in member order (its ``pack.json``). ``ValueError`` if it is
    unreadable or not a list of run keys; ``OSError`` if it cannot be read."""
    try:
        members = json.loads((Path(unit) / PACK_INFO).read_text(encoding="utf-8")).get("members")
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{PACK_INFO} is not a JSON object: {error}") from error
    if not (isinstance(members, list) and all(isinstance(k, str) and is_run_key(k) for k in members)):
        raise ValueError(f"{PACK_INFO} does not list run keys: {members!r}"[:200])
    return members


def is_pack_id(name: str) -> bool:
    """Whether ``name`` has the shape of a pack unit's id (32 lowercase hex characters)."""
    return bool(_PACK_ID.fullmatch(name))


# --------------------------------------------------------------------------------------------- StagedRun


class StagedRun:
    """A run under construction in ``staging/<run_key>/``; publish with :meth:`commit`.

    The directory is the run's work area: checkpoints and partial results written there survive a
    crash, and a later process holding the run's claim resumes from them. Leaving the context
    manager on an exception therefore keeps the directory; :meth:`abort` removes it explicitly.
    Files under ``scratch/`` are working state and are dropped at commit.
    """

    def __init__(self, registry: Registry, run_key: str, path: Path) -> None:
        self.registry = registry
        self.run_key = run_key
        self.path = path
        self._state = "open"

    def __repr__(self) -> str:
        return f"StagedRun({self.run_key[:12]}, {self._state}, {self.path})"

    def __enter__(self) -> StagedRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    @property
    def scratch(self) -> Path:
        """A directory for working state (partial series, ...) that is removed at commit."""
        path = self.path / SCRATCH
        path.mkdir(exist_ok=True)
        return path

    def _require_open(self) -> None:
        if self._state != "open":
            raise RegistryError(f"staged run {self.run_key[:12]} is already {self._state}")

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as ``<name>`` (``.json`` appended if missing): indent=2, sorted, no NaN/Inf."""
        self._require_open()
        filename = name if name.endswith(".json") else f"{name}.json"
        if not _FILE_NAME.fullmatch(filename):
            raise ValueError(f"not a plain file name: {name!r}")
        text = dump_json(obj)  # serialize first: a failure must not leave a truncated file
        (self.path / filename).write_text(text, encoding="utf-8")

    def write_series(
        self, series: Mapping[str, tuple[np.ndarray, np.ndarray]], attrs: Mapping[str, Any] | None = None
    ) -> None:
        """Write all series into ``results.zarr`` (once per run)."""
        self._require_open()
        zarr_io.write_series(self.path / RESULTS, series, attrs)

    def write_run(
        self,
        spec: Any,
        env: Any,
        info: Any,
        series: Mapping[str, tuple[np.ndarray, np.ndarray]] | None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a finished run's files: ``spec.json``, ``env.json``, ``run.json`` and ``results.zarr``
        (replacing a partial one left by a crash during a previous write); ``series=None`` for a run
        stored with its pack (``info`` then says where: ``stored_in``)."""
        self.write_json("spec.json", spec)
        self.write_json("env.json", env)
        self.write_json("run.json", info)
        shutil.rmtree(self.path / RESULTS, ignore_errors=True)
        if series is not None:
            self.write_series(series, attrs)

    def seal(self) -> None:
        """Drop ``scratch/`` and write ``MANIFEST.json``, the last file: the run is complete and only
        its publishing rename is left (:meth:`commit` seals first if this was not called)."""
        self._require_open()
        missing = [name for name in REQUIRED_FILES if not (self.path / name).is_file()]
        if missing:
            raise RegistryError(f"cannot commit {self.run_key[:12]}: missing {', '.join(missing)}")
        shutil.rmtree(self.path / SCRATCH, ignore_errors=True)
        write_manifest(self.path, self.run_key)
        self._state = "sealed"

    def commit(self) -> StoredRun:
        """Publish by one atomic rename, ``MANIFEST.json`` written last (:meth:`seal`); if another
        process already committed this key, keep theirs."""
        if self._state != "sealed":
            self.seal()
        target = self.registry.object_path(self.run_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not _is_committed_dir(target):  # a damaged run under our key: set aside
            self.registry.quarantine(target, ["not a committed run (files or manifest missing)"], "replaced")
        if not target.exists():
            try:
                os.rename(self.path, target)
            except OSError as err:
                # Lost a race: rename onto a non-empty directory fails with ENOTEMPTY/EEXIST.
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.exists():
                    raise
            else:
                self._state = "committed"
                _fsync_dir(target.parent)
                return StoredRun(target, self.run_key)
        shutil.rmtree(self.path, ignore_errors=True)
        self._state = "committed"
        return StoredRun(target, self.run_key)

    def abort(self) -> None:
        """Discard the staging directory; idempotent, a no-op after commit."""
        if self._state == "committed":
            return
        shutil.rmtree(self.path, ignore_errors=True)
        self._state = "aborted"


# --------------------------------------------------------------------------------------------- StagedPack


class StagedPack:
    """A pack unit being written in ``staging/pack-<pack_id>/`` (see the module docstring): the stacked
    series of runs that ended together and, under ``checkpoints/``, their stacked final state (written
    by :func:`eosdsl.registry.checkpoints.save_stacked`). :meth:`commit` publishes it by one rename into
    ``packs/``, before the runs that refer to it are committed."""

    def __init__(self, registry: Registry, members: list[str]) -> None:
        self.registry = registry
        self.members = members
        self.pack_id = secrets.token_hex(16)
        self.path = registry.staging_dir / f"{PACK_STAGING}{self.pack_id}"
        self.path.mkdir(parents=True)

    def write(
        self,
        series: list[Mapping[str, tuple[np.ndarray, np.ndarray]]],
        attrs: list[Mapping[str, Any]],
    ) -> None:
        """``pack.json`` (the members' run keys, in order) and the stacked ``results.zarr``."""
        (self.path / PACK_INFO).write_text(dump_json({"members": self.members}), encoding="utf-8")
        zarr_io.write_stacked(self.path / RESULTS, series, {"member_attrs": attrs})

    def commit(self) -> Path:
        """Publish by one rename, ``MANIFEST.json`` written last; returns the unit's directory."""
        write_manifest(self.path, self.pack_id)
        target = pack_path(self.registry.root, self.pack_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path, target)
        _fsync_dir(target.parent)
        return target

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------------------------- Registry


class Registry:
    """A registry rooted at ``root``; directories are created lazily on the first write."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def sweeps_dir(self) -> Path:
        return self.root / "sweeps"

    @property
    def packs_dir(self) -> Path:
        return self.root / PACKS

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE

    def quarantine(self, path: Path, problems: list[str], reason: str) -> Path | None:
        """Move a damaged run directory out of ``objects/`` (or ``staging/``) by one rename into
        ``quarantine/<name>.<UTC time>/``, then record why in its ``QUARANTINE.json``.

        Returns where it went, or None if ``path`` vanished before the rename (someone else moved it).
        """
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        stem, n = f"{path.name}.{now.strftime('%Y%m%dT%H%M%SZ')}", 0
        target = self.quarantine_dir / stem
        while target.exists():
            n += 1
            target = self.quarantine_dir / f"{stem}-{n}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            if os.path.lexists(path):
                raise
            return None
        record = {
            "reason": reason,
            "problems": problems,
            "at": now.isoformat(timespec="seconds"),
            "from": path.relative_to(self.root).as_posix(),
        }
        (target / QUARANTINE_INFO).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
        return target

    def object_path(self, run_key: str) -> Path:
        """Where the committed run ``run_key`` lives (whether or not it exists)."""
        _check_key(run_key)
        return self.objects_dir / run_key[:2] / run_key

    # -- runs

    def get(self, run_key: str) -> StoredRun | None:
        """The committed run with this full key, or None."""
        if not is_run_key(run_key):
            return None
        path = self.object_path(run_key)
        return StoredRun(path, run_key) if _is_committed_dir(path) else None

    def object_entries(self, prefix: str = "") -> Iterator[tuple[Path, list[str]]]:
        """Every entry under ``objects/``, in path order, with what is wrong with its name or place.

        Shard directories (two hex characters) are descended into, and each entry in one comes with
        its shape problems: empty when it is named by a run key in the right shard (it may still lack
        files or a manifest: :func:`_is_committed_dir` says whether it is served). Anything else at the
        top level is itself an entry, with the problem that it is not a shard directory. Given a
        ``prefix`` (two or more hex characters), only the entries of its shard whose names start with
        it. Directories that are missing or vanish meanwhile (gc, verify quarantining) yield nothing.
        """
        tops = [self.objects_dir / prefix[:2]] if prefix else _listdir(self.objects_dir)
        for top in tops:
            if not (top.is_dir() and _SHARD.fullmatch(top.name)):
                if not prefix:
                    yield top, ["stray entry in objects/ (not a shard directory)"]
                continue
            for path in _listdir(top):
                if not path.name.startswith(prefix):
                    continue
                if not is_run_key(path.name):
                    yield path, [f"{path.name!r} is not a run key"]
                elif path.name[:2] != top.name:
                    yield path, [f"stored in shard {top.name}/, expected {path.name[:2]}/"]
                else:
                    yield path, []

    def _matching_keys(self, prefix: str) -> list[str]:
        return [p.name for p, shape in self.object_entries(prefix) if not shape and _is_committed_dir(p)]

    def resolve(self, prefix: str) -> StoredRun:
        """The unique committed run whose key starts with ``prefix`` (>= 4 hex chars, or a full key)."""
        norm = _normalize_prefix(prefix)
        keys = self._matching_keys(norm)
        if not keys:
            raise UnknownRun(f"no run matches {prefix!r} in {self.root}")
        if len(keys) > 1:
            runs = [StoredRun(self.object_path(k), k) for k in keys]
            raise AmbiguousRun(prefix, keys, {r.run_key: _safe_name(r) for r in runs})
        return StoredRun(self.object_path(keys[0]), keys[0])

    def runs(self) -> list[StoredRun]:
        """Committed runs, newest first (run.json ``finished_at``, else directory mtime).

        Directories that do not look like committed runs (wrong names, missing or unparsable JSON) are
        skipped: listing must keep working whatever else ends up on disk.
        """
        found: list[tuple[float, str, StoredRun]] = []
        for path, shape in self.object_entries():
            run = None if shape else self._load_listed(path)
            if run is not None:
                when = posix_time(run.info.get("finished_at"))
                if when is None:
                    with contextlib.suppress(OSError):
                        when = path.stat().st_mtime
                found.append((when or 0.0, run.run_key, run))
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [run for _, _, run in found]

    @staticmethod
    def _load_listed(path: Path) -> StoredRun | None:
        """A fully readable StoredRun for a well-placed listed directory, or None if it is malformed."""
        if not _is_committed_dir(path):
            return None
        run = StoredRun(path, path.name)
        try:
            if not isinstance(run.info, dict) or not isinstance(run.spec, dict):
                return None
        except (OSError, ValueError):
            return None
        return run

    def checkpoint_positions(self, run_key: str) -> list[int]:
        """The scan positions of the checkpoints in the staged run ``run_key``'s work directory
        (``staging/<run_key>/checkpoints/<position>/``), ascending; empty if it has none."""
        _check_key(run_key)
        folder = self.staging_dir / run_key / CHECKPOINTS
        return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())

    def stage(self, run_key: str) -> StagedRun:
        """The work directory ``staging/<run_key>/`` (created, or reused to resume after a crash).

        Only the holder of the run's claim (:mod:`eosdsl.registry.claims`) may stage it.
        """
        _check_key(run_key)
        path = self.staging_dir / run_key
        path.mkdir(parents=True, exist_ok=True)
        return StagedRun(self, run_key, path)

    # -- sweeps

    def write_sweep(self, sweep_id: str, record: Mapping[str, Any]) -> Path:
        """Write (or replace) ``sweeps/<sweep_id>.json`` atomically via a temp file and ``os.replace``."""
        if not isinstance(sweep_id, str) or len(sweep_id) < MIN_PREFIX or not _HEX_ID.fullmatch(sweep_id):
            raise ValueError(f"sweep_id must be lowercase hex of >= {MIN_PREFIX} characters: {sweep_id!r}")
        text = dump_json(record)
        target = self.sweeps_dir / f"{sweep_id}.json"
        with atomic_write(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        return target

    def read_sweep(self, prefix: str) -> dict:
        """The sweep record whose id starts with ``prefix`` (same rules as :meth:`resolve`)."""
        norm = _normalize_prefix(prefix)
        if not self.sweeps_dir.is_dir():
            raise UnknownRun(f"no sweep matches {prefix!r} in {self.root}")
        matches = sorted(
            p for p in self.sweeps_dir.glob(f"{norm}*.json") if _HEX_ID.fullmatch(p.name[: -len(".json")])
        )
        if not matches:
            raise UnknownRun(f"no sweep matches {prefix!r} in {self.root}")
        if len(matches) > 1:
            ids = [p.name[: -len(".json")] for p in matches]
            raise AmbiguousRun(prefix, ids, {i: self.sweep_name(i) for i in ids})
        return _load_json(matches[0])

    def sweep_name(self, sweep_id: str) -> str | None:
        """The name in the sweep record ``sweep_id``; None if it has none or cannot be read."""
        try:
            record = _load_json(self.sweeps_dir / f"{sweep_id}.json")
        except (OSError, ValueError):
            return None
        return record.get("name") if isinstance(record, dict) else None


def _safe_name(run: StoredRun) -> str | None:
    """A run's spec name for messages; never raises."""
    try:
        return run.name
    except (OSError, ValueError, AttributeError):
        return None
