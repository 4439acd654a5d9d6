"""``MANIFEST.json``: the sha256 and size of every file of a committed run, written last.

A run directory with a manifest is complete; any file whose bytes differ from its manifest entry is
corrupted. The manifest is what ``eosdsl registry verify`` checks.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"
FORMAT = "eosdsl-manifest/v1"


def utc_timestamp() -> str:
    """Now, as the registry writes times: ISO 8601 in UTC to the second (``2026-12-07T01:02:03+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def run_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` except the manifest, sorted by relative path."""
    files = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def build_manifest(root: Path, run_key: str, created_at: str | None = None) -> dict[str, Any]:
    """The manifest of the files currently under ``root`` (created now, unless ``created_at``)."""
    return {
        "format": FORMAT,
        "run_key": run_key,
        "created_at": created_at or utc_timestamp(),
        "files": {
            p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size}
            for p in run_files(root)
        },
    }


def write_manifest(root: Path, run_key: str, created_at: str | None = None) -> dict[str, Any]:
    """Write ``MANIFEST.json`` under ``root`` (fsynced: the rename that publishes the run comes after)."""
    manifest = build_manifest(root, run_key, created_at)
    path = root / MANIFEST
    with path.open("w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    return manifest


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a run directory, or ``None`` if missing or unreadable."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def manifest_problems(root: Path, deep: bool = False) -> list[str]:
    """What is wrong with a run directory against its manifest (empty if nothing).

    Shallow: the manifest exists, lists exactly the files present, with their sizes. ``deep``: every
    file's sha256 is recomputed too (a flipped byte keeps the size and is only caught here).
    """
    manifest = read_manifest(root)
    if manifest is None:
        return ["missing or unreadable MANIFEST.json"]
    listed: dict[str, dict[str, Any]] = manifest["files"]
    present = {p.relative_to(root).as_posix(): p for p in run_files(root)}
    problems = [f"missing file {name}" for name in sorted(set(listed) - set(present))]
    problems += [f"unlisted file {name}" for name in sorted(set(present) - set(listed))]
    for name in sorted(set(listed) & set(present)):
        entry, path = listed[name], present[name]
        if path.stat().st_size != entry.get("size"):
            problems.append(f"size of {name} is {path.stat().st_size}, manifest says {entry.get('size')}")
        elif deep and file_sha256(path) != entry.get("sha256"):
            problems.append(f"sha256 of {name} differs from the manifest")
    return problems
