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

from eosdsl.canonical import canonical_json, jsonable

__all__ = [
    "NON_SEMANTIC_KEYS",
    "SEMANTICS_VERSION",
    "PLATFORM_KEYS",
    "canonical_json",
    "cpu_target",
    "schedulable_cpus",
    "environment_difference",
    "is_run_key",
    "jsonable",
    "sweep_id",
    "numerics_environment",
    "xla_codegen_flags",
    "provenance",
    "run_key",
    "spec_id",
]

SEMANTICS_VERSION: str = "2"
"""Bump when eosdsl's numerics meaning changes (same spec, different numbers): it enters every run_key."""

NON_SEMANTIC_KEYS = frozenset({"name", "description", "tags", "runtime", "checks"})
"""Top-level spec fields that describe or judge an experiment without changing what it computes.

``checks`` are judgements of a run, stored beside it as verdicts (:mod:`eosdsl.registry.verdicts`):
adding or fixing a check re-evaluates it on the stored run instead of recomputing the run."""

SPEC_PREFIX = b"eosdsl-spec/v2\n"
RUN_PREFIX = b"eosdsl-run/v1\n"
SWEEP_PREFIX = b"eosdsl-sweep/v2\n"

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

RUN_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
"""The shape of a run key (and of a spec id): a sha256 as 64 lowercase hex characters."""
_GIT_TIMEOUT_S = 5.0


def is_run_key(value: object) -> bool:
    """Whether ``value`` has the shape of a run key (or spec id): 64 lowercase hex characters."""
    return isinstance(value, str) and RUN_KEY_PATTERN.fullmatch(value) is not None


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
    if not is_run_key(spec_id):
        raise ValueError(f"spec_id must be 64 lowercase hex characters, got {spec_id!r}")
    payload = {"spec_id": spec_id, "env": dict(env), "data": dict(data_hashes or {})}
    return _sha256_hex(RUN_PREFIX, canonical_json(payload))


# ------------------------------------------------------------------------------------- environment


def sweep_id(spec: Mapping[str, Any], run_keys: Sequence[str]) -> str:
    """Identity of a sweep: its base spec (``sweep`` included) and its points' run keys in expansion order.

    Checks are judgements, not identity: the base spec's ``checks`` and its ``sweep.checks`` (claims
    across points) are left out, so adding a claim re-judges the stored sweep under the same id.
    """
    base = {k: v for k, v in spec.items() if k != "checks"}
    if isinstance(base.get("sweep"), Mapping):
        base["sweep"] = {k: v for k, v in base["sweep"].items() if k != "checks"}
    return _sha256_hex(SWEEP_PREFIX, canonical_json({"spec": base, "runs": list(run_keys)}))


def numerics_environment() -> dict[str, Any]:
    """Everything about the environment that can change the numbers a spec produces.

    Besides the library versions and jax settings, the *numerics platform*: the backend and device
    kind, the backend's platform version (the CUDA/ROCm runtime on GPUs), and on CPU the processor XLA
    compiles for (:func:`cpu_target`: architecture, vendor, family/model, and the instruction-set
    features that decide vector widths and FMA contraction), the number of CPUs XLA's thread pool
    splits reductions over (:func:`schedulable_cpus`), and the ``XLA_FLAGS`` that change code
    generation (:func:`xla_codegen_flags`, e.g. ``--xla_cpu_max_isa``). XLA's CPU code differs
    between processors, so a float32 trajectory computed on an AVX-512 Intel core is not the one an
    AVX2 AMD core computes: the two must never share a run key.

    Imported lazily so that computing spec ids never needs jax. Calling this initializes jax's backend.
    """
    import jax
    import jaxlib

    device = jax.devices()[0]
    backend = jax.default_backend()
    target = cpu_target() if backend == "cpu" else {"cpu": "", "isa": ""}
    target["threads"] = str(schedulable_cpus()) if backend == "cpu" else ""
    return {
        "semantics": SEMANTICS_VERSION,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": backend,
        "device_kind": device.device_kind,
        "platform_version": str(getattr(device.client, "platform_version", "")),
        **target,
        "xla_flags": " ".join(xla_codegen_flags(os.environ.get("XLA_FLAGS", ""))),
        "x64": bool(jax.config.jax_enable_x64),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "prng_impl": str(jax.config.jax_default_prng_impl),
    }


# Instruction-set extensions that LLVM (and so XLA:CPU) may use to generate floating-point code: vector
# widths, fused multiply-add, half/bfloat conversions, matrix tiles. Other /proc/cpuinfo flags
# (virtualization, security mitigations, power management) do not change the generated code.
_X86_CODEGEN_FEATURES = re.compile(
    r"(sse\d?\w*|ssse3|pni|avx\w*|amx\w*|fma\w*|f16c|xop|bmi\d|abm|lzcnt|popcnt|movbe|adx|aes|"
    r"pclmulqdq|vaes|vpclmulqdq|gfni|sha_ni|x86_64|lm)"
)
_XLA_CODEGEN_FLAG = re.compile(r"--(xla_cpu_\w+|xla_gpu_\w+|xla_backend_\w+|xla_llvm_\w+)(=.*)?")


def _read_cpuinfo() -> str:
    """The text of /proc/cpuinfo ('' where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _first_cpu(cpuinfo: str) -> dict[str, str]:
    """``key: value`` lines of the first processor block of a /proc/cpuinfo text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_target(cpuinfo: str | None = None) -> dict[str, str]:
    """The processor XLA:CPU generates code for: ``{"cpu": ..., "isa": ...}`` (both hashed).

    ``cpu`` is ``arch vendor family/model`` (what LLVM's host-CPU detection, and so its instruction
    scheduling and vectorization choices, go by; the stepping and marketing name are left out);
    ``isa`` the sorted, comma-joined code-generation features (x86: SSE/AVX/AVX-512/AMX/FMA/F16C …;
    other architectures: every listed feature). ``cpuinfo`` defaults to this machine's /proc/cpuinfo;
    where that is missing, ``platform.processor()`` stands in and ``isa`` is empty.
    """
    fields = _first_cpu(_read_cpuinfo() if cpuinfo is None else cpuinfo)
    arch = platform.machine() or "unknown"
    if not fields:
        return {"cpu": f"{arch} {platform.processor()}".strip(), "isa": ""}
    vendor = fields.get("vendor_id") or fields.get("CPU implementer", "")
    family = fields.get("cpu family") or fields.get("CPU architecture", "")
    model = fields.get("model") or fields.get("CPU part", "")
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    if "flags" in fields:  # x86: keep what changes generated code
        flags = [f for f in flags if _X86_CODEGEN_FEATURES.fullmatch(f)]
    return {"cpu": f"{arch} {vendor} {family}/{model}", "isa": ",".join(sorted(set(flags)))}


def schedulable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none).

    XLA:CPU sizes its thread pool by this number and splits large reductions between the threads, so
    the same program sums in another order under ``taskset -c 0`` than on two cores (a float32
    ``jnp.sum`` of 1.6·10⁶ numbers differs in its last bits): the count is part of the platform.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def xla_codegen_flags(xla_flags: str) -> list[str]:
    """The ``XLA_FLAGS`` entries that can change generated code (``--xla_cpu_*``, ``--xla_gpu_*``,
    ``--xla_backend_*``, ``--xla_llvm_*``), sorted; dump, log and profile flags are left out."""
    kept = []
    for token in xla_flags.split():
        match = _XLA_CODEGEN_FLAG.fullmatch(token)
        if match and not re.search(r"dump|log|profile|trace", match.group(1)):
            kept.append(token)
    return sorted(kept)


PLATFORM_KEYS = ("backend", "device_kind", "platform_version", "cpu", "isa", "threads", "xla_flags")
"""The environment fields that name the numerics platform (as opposed to library versions and jax
settings): runs that differ only in these computed the same spec with the same software elsewhere."""


def environment_difference(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """A one-line account of how a stored run's environment differs from ``current``.

    Platform fields (:data:`PLATFORM_KEYS`) are summarised as "another numerics platform" with the two
    values; an ISA difference lists the features only one side has. Empty when nothing differs.
    """
    keys = [k for k in dict.fromkeys([*current, *stored]) if stored.get(k) != current.get(k)]
    parts = []
    for key in keys:
        old, new = stored.get(key), current.get(key)
        if key == "isa":
            a, b = set(str(old or "").split(",")) - {""}, set(str(new or "").split(",")) - {""}
            only = [f"+{f}" for f in sorted(a - b)][:6] + [f"-{f}" for f in sorted(b - a)][:6]
            parts.append(f"isa ({' '.join(only)} there)")
        else:
            parts.append(f"{key} {old!r} there, {new!r} here")
    platform_changed = any(k in PLATFORM_KEYS for k in keys)
    head = "another numerics platform" if platform_changed else "another environment"
    return f"{head}: {'; '.join(parts)}" if parts else ""


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
    return _first_cpu(_read_cpuinfo()).get("model name") or platform.processor() or None


def _cpu_features() -> list[str]:
    """Every feature flag /proc/cpuinfo lists for the first processor (provenance: not only the hashed
    code-generation subset of :func:`cpu_target`)."""
    fields = _first_cpu(_read_cpuinfo())
    return sorted((fields.get("flags") or fields.get("Features") or "").split())


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
        "cpu_features": _cpu_features(),
        "packages": _package_versions(),
    }
