"""Identity of specs and runs: the only place where registry ids are defined.

Two ids address everything in the registry:

* ``spec_id`` -- what was asked for. The sha256 of a versioned prefix plus the canonical JSON of the
  validated spec (defaults filled), with the non-semantic top-level fields ``name``, ``description`` and
  ``tags`` left out, so renaming or re-tagging an experiment does not change its identity.
* ``run_key`` -- what was computed. The sha256 of the ``spec_id``, the numerics-relevant environment
  (:func:`numerics_environment`) and the content hashes of any datasets, so the same spec under a
  different jax version, backend or precision setting is a different run.

Anything else worth knowing about a run (git commit, host, CPU, package list, timings) is *provenance*
(:func:`provenance`): stored next to the run, never hashed, so it cannot split otherwise identical runs.

The golden tests in ``tests/test_registry_identity.py`` pin concrete ids. Changing the canonical encoding
or the prefixes below breaks every stored id, so do it only together with a prefix version bump.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "NON_SEMANTIC_KEYS",
    "SEMANTICS_VERSION",
    "canonical_json",
    "jsonable",
    "sweep_id",
    "numerics_environment",
    "provenance",
    "run_key",
    "spec_id",
]

SEMANTICS_VERSION: str = "1"
"""Bump when eosdsl's numerics meaning changes (same spec, different numbers): it enters every run_key."""

NON_SEMANTIC_KEYS = frozenset({"name", "description", "tags", "runtime"})
"""Top-level spec fields that describe an experiment without changing what it computes."""

SPEC_PREFIX = b"eosdsl-spec/v1\n"
RUN_PREFIX = b"eosdsl-run/v1\n"
SWEEP_PREFIX = b"eosdsl-sweep/v1\n"

PROVENANCE_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "zarr",
    "numpy",
    "pydantic",
    "eosdsl",
)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GIT_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------------------------- JSON


def _child_path(path: str, key: str) -> str:
    """Readable JSON-path of a mapping child: ``$.a.b`` or ``$['odd key']``."""
    return f"{path}.{key}" if _IDENT.fullmatch(key) else f"{path}[{key!r}]"


def _convert_foreign(obj: Any) -> tuple[bool, Any]:
    """Map numpy/jax scalars and arrays and paths to plain Python; ``(False, None)`` if not handled."""
    if isinstance(obj, os.PathLike):
        return True, os.fspath(obj)
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():
        return True, item()
    if hasattr(obj, "__array__") and hasattr(obj, "shape"):
        import numpy as np

        return True, np.asarray(obj).tolist()
    return False, None


def _normalize(obj: Any, path: str, *, lenient: bool) -> Any:
    """Return ``obj`` as plain JSON types, raising with the JSON-path of the first bad value.

    Strict mode (used for hashing) accepts only dict/list/tuple/str/int/float/bool/None, so that an id
    never depends on how a foreign type happens to convert (``np.float32(0.1)`` is not ``0.1``).
    Lenient mode (used for stored artifacts) also converts numpy/jax scalars and arrays and paths.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite float {obj!r} at {path}: JSON (and ids) require finite numbers")
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"non-string mapping key {key!r} at {path}")
            out[key] = _normalize(value, _child_path(path, key), lenient=lenient)
        return out
    if isinstance(obj, (list, tuple)):
        return [_normalize(v, f"{path}[{i}]", lenient=lenient) for i, v in enumerate(obj)]
    if lenient:
        handled, converted = _convert_foreign(obj)
        if handled:
            return _normalize(converted, path, lenient=lenient)
    raise TypeError(f"unsupported type {type(obj).__name__} at {path}")


def canonical_json(obj: Any) -> str:
    """The canonical JSON text that ids are hashed from.

    Sorted keys, no whitespace, UTF-8 text (no ``\\u`` escapes), tuples as lists. NaN/Inf raise
    ``ValueError`` naming the path (e.g. ``$.optimizer.lr``); non-JSON types and non-string keys raise
    ``TypeError``. Note ``1`` and ``1.0`` encode differently: hash validated specs, whose types are fixed.
    """
    normalized = _normalize(obj, "$", lenient=False)
    return json.dumps(normalized, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj`` for stored artifacts: numpy/jax values become Python, NaN/Inf raise."""
    return _normalize(obj, "$", lenient=True)


# --------------------------------------------------------------------------------------------- ids


def _sha256_hex(prefix: bytes, text: str) -> str:
    return hashlib.sha256(prefix + text.encode("utf-8")).hexdigest()


def spec_id(spec: Mapping[str, Any]) -> str:
    """Hex sha256 identifying a validated spec (defaults filled), ignoring ``NON_SEMANTIC_KEYS``.

    Only top-level ``name``/``description``/``tags`` are dropped; a nested ``name`` (say the optimizer's)
    is semantic and counts.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a mapping, got {type(spec).__name__}")
    semantic = {k: v for k, v in spec.items() if k not in NON_SEMANTIC_KEYS}
    return _sha256_hex(SPEC_PREFIX, canonical_json(semantic))


def run_key(spec_id: str, env: Mapping[str, Any], data_hashes: Mapping[str, str] | None = None) -> str:
    """Hex sha256 identifying one computation: spec, numerics environment and dataset contents.

    ``data_hashes`` of ``None`` and ``{}`` are the same (no data). ``env`` should come from
    :func:`numerics_environment`; provenance must not be passed here.
    """
    if not isinstance(spec_id, str) or not _HEX64.fullmatch(spec_id):
        raise ValueError(f"spec_id must be 64 lowercase hex characters, got {spec_id!r}")
    payload = {"spec_id": spec_id, "env": dict(env), "data": dict(data_hashes or {})}
    return _sha256_hex(RUN_PREFIX, canonical_json(payload))


# ------------------------------------------------------------------------------------- environment


def sweep_id(spec: Mapping[str, Any], run_keys: Sequence[str]) -> str:
    """Identity of a sweep: its base spec (``sweep`` included) and its points' run keys in expansion order."""
    return _sha256_hex(SWEEP_PREFIX, canonical_json({"spec": dict(spec), "runs": list(run_keys)}))


def numerics_environment() -> dict[str, Any]:
    """Everything about the environment that can change the numbers a spec produces.

    Imported lazily so that computing spec ids never needs jax. Calling this initializes jax's backend.
    """
    import jax
    import jaxlib

    return {
        "semantics": SEMANTICS_VERSION,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "x64": bool(jax.config.jax_enable_x64),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "prng_impl": str(jax.config.jax_default_prng_impl),
    }


def _run_git(args: list[str], cwd: Path) -> str | None:
    """stdout of a read-only git command, or None on any failure (no git, not a repo, timeout)."""
    try:
        proc = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _git_info(directory: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git repo holding ``directory`` (default: the eosdsl package)."""
    directory = directory or Path(__file__).resolve().parent.parent
    commit = _run_git(["rev-parse", "HEAD"], directory)
    if commit is None or not commit.strip():
        return None
    status = _run_git(["status", "--porcelain"], directory)
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo, else ``platform.processor()``, else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict[str, Any]:
    """Facts about where and when a run happened: stored with the run, never hashed. Never raises.

    Everything but the timestamp is read once per process (a sweep commits hundreds of runs)."""
    return {**_process_provenance(), "timestamp": datetime.now(UTC).isoformat()}


@functools.cache
def _process_provenance() -> dict[str, Any]:
    return {
        "git": _git_info(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "packages": _package_versions(),
    }
