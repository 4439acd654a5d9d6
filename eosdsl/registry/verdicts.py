"""Verdicts: check results stored beside a committed run, outside its identity.

A run's identity is what it computed (:mod:`eosdsl.registry.identity` leaves ``checks`` out of the
spec id); checks are *judgements* of it, made when the run is committed and again whenever a spec with
other checks meets the stored run, or ``eosdsl check`` asks. Judging never touches the committed run's
files. Layout under a registry root::

    verdicts/<ab>/<run_key>/<verdict_id>.json

``verdict_id`` is the sha256 (first 16 hex digits) of the checks' specs and the eosdsl version that
evaluated them, so the same checks judged by the same eosdsl have one record, rewritten in place. A
record holds ``run_key``, ``verdict_id``, ``checks`` (the checks' specs), ``eosdsl`` (the version),
``evaluated_at`` and ``results`` (one :class:`~eosdsl.checks.result.CheckResult` dict per check, with
its numbers). The run's *current* verdict is the record used most recently (newest modification time:
re-judging with checks that already have a record touches it), and is what ``eosdsl show``, ``ls`` and
the index (``eosdsl query 'check.<name>.passed = true'``) see. Runs committed before verdicts existed
keep their checks in ``run.json``, which stands in when a run has no verdict.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eosdsl.atomic import atomic_write
from eosdsl.registry.identity import canonical_json, jsonable
from eosdsl.registry.manifest import utc_timestamp

__all__ = ["VERDICTS", "current_verdict", "find_verdict", "verdict_id", "verdicts_dir", "write_verdict"]

VERDICTS = "verdicts"
VERDICT_PREFIX = b"eosdsl-verdict/v1\n"


@functools.cache
def eosdsl_version() -> str:
    """The installed eosdsl version ('unknown' when run from a bare source tree); read once per process
    (the installed package does not change under a running one)."""
    try:
        return importlib.metadata.version("eosdsl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def verdict_id(checks: Sequence[Mapping[str, Any]], version: str | None = None) -> str:
    """Identity of a judgement: the checks' specs (as validated, in order) and the evaluating version."""
    payload = {"checks": list(checks), "eosdsl": version or eosdsl_version()}
    return hashlib.sha256(VERDICT_PREFIX + canonical_json(payload).encode("utf-8")).hexdigest()[:16]


def verdicts_dir(root: str | os.PathLike, run_key: str) -> Path:
    """The directory holding the verdict records of one run."""
    return Path(root) / VERDICTS / run_key[:2] / run_key


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a damaged or half-written record is no verdict
    return record if isinstance(record, dict) and isinstance(record.get("results"), list) else None


def find_verdict(root: str | os.PathLike, run_key: str, checks: Sequence[Mapping[str, Any]]) -> dict | None:
    """The stored verdict of exactly these checks by this eosdsl version, made current; else None."""
    path = verdicts_dir(root, run_key) / f"{verdict_id(checks)}.json"
    record = _read(path) if path.is_file() else None
    if record is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # the most recently used verdict is the current one
    return record


def write_verdict(
    root: str | os.PathLike,
    run_key: str,
    checks: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
) -> dict:
    """Store (atomically) and return the verdict of ``checks`` on a run; it becomes the current one."""
    version = eosdsl_version()
    record = {
        "run_key": run_key,
        "verdict_id": verdict_id(checks, version),
        "checks": list(checks),
        "eosdsl": version,
        "evaluated_at": utc_timestamp(),
        "results": list(results),
    }
    directory = verdicts_dir(root, run_key)
    with atomic_write(directory / f"{record['verdict_id']}.json", "w", encoding="utf-8") as handle:
        handle.write(json.dumps(jsonable(record), indent=2, sort_keys=True))
    return record


def current_verdict(root: str | os.PathLike, run_key: str) -> dict | None:
    """The run's most recently used verdict record, or None if it has none."""
    directory = verdicts_dir(root, run_key)
    if not directory.is_dir():
        return None
    newest: tuple[float, str, dict] | None = None
    for path in directory.glob("*.json"):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        record = _read(path)
        if record is not None and (newest is None or (mtime, path.name) > newest[:2]):
            newest = (mtime, path.name, record)
    return newest[2] if newest else None
