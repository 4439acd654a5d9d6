"""On-disk caches that let a second run of a spec start in about a second.

The caches live under one directory, :func:`cache_root`:

- ``programs/<platform>/``: the engine's compiled programs, one directory per numerics platform
  (:func:`platform_tag`). A spec's numbers are traced, so a run with another learning rate needs the
  same programs and loads them from here without tracing or compiling (:mod:`eosdsl.engine.compiled`).
- ``datasets/``: datasets read from files (Fashion-MNIST, CIFAR-10) after their preprocessing
  ``pipeline``, as ``.npz`` files (:func:`cached_dataset`).
- ``params/<platform>/``: a network's initial parameters for a seed, as ``.npz`` files
  (:func:`cached_params`): initializing them costs compiling the network's ``init`` (≈0.3–0.7 s here).
- ``measurements/<platform>/``: measurements of this machine, as JSON (:func:`cached_measurement`): a
  sweep's packing trial (``orchestration.packing``), which otherwise compiles and times a lone chunk
  and a trial pack before every sweep.

The directory is ``$EOSDSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/eosdsl``, else ``~/.cache/eosdsl``;
``EOSDSL_CACHE_DIR=off`` turns them all off. Nothing in a cache enters a run's identity: a dataset
served from the cache is checked against the content fingerprint it was stored with, and a run's
fingerprints are those of the arrays it trains on either way.

Safety: a dataset entry is keyed by a hash of the source files' bytes, the source's parameters, the
pipeline, the eosdsl version and the source code of :mod:`eosdsl.data` (so an edited preprocessing step
misses the old entries); it is written to a temporary file and renamed into place (readers never see
half a file); an entry that cannot be read, does not match its key or whose arrays no longer give the
stored fingerprint is ignored, removed and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eosdsl.data.dataset import Dataset

CACHE_ENV = "EOSDSL_CACHE_DIR"
"""Environment variable naming the cache directory; ``off`` (or ``0``, ``false``, ``none``) disables it."""

OFF = ("off", "0", "false", "no", "none")

DATASET_FORMAT = 1
"""Version of the dataset entry layout (part of every key)."""

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def cache_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory (not created here), or None when ``EOSDSL_CACHE_DIR=off``."""
    env = os.environ if environ is None else environ
    chosen = env.get(CACHE_ENV, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "eosdsl"


# ------------------------------------------------------------------------------------------ platform


@lru_cache(maxsize=1)
def platform_tag() -> str:
    """16 hex digits naming the numerics platform compiled code is specific to: a hash of the run
    identity's numerics environment (``registry.identity``: jax versions, backend, and on a CPU the
    processor and instruction set XLA compiles for), so a cache in a home directory shared by different
    machines never serves one machine's code to another."""
    from eosdsl.registry.identity import numerics_environment

    text = json.dumps(numerics_environment(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ datasets


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The eosdsl version and a hash of the source of :mod:`eosdsl.data` (loaders and preprocessing):
    a changed step must not be served from entries the old code wrote."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("eosdsl")
    except PackageNotFoundError:
        release = "unknown"
    h = hashlib.sha256(f"eosdsl {release}\n".encode())
    for source in sorted((Path(__file__).parent / "data").glob("*.py")):
        h.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return h.hexdigest()


def dataset_key(source: Mapping[str, Any], files: Iterable[Path], pipeline: Any) -> str:
    """The cache key of a dataset: its source's parameters, the content of the files it is read from,
    its preprocessing pipeline (JSON), the entry format and :func:`code_digest`."""
    document = {
        "format": DATASET_FORMAT,
        "code": code_digest(),
        "source": dict(source),
        "files": [file_digest(Path(f)) for f in files],
        "pipeline": pipeline,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(root: Path, key: str) -> Path:
    return root / "datasets" / f"{key}.npz"


def read_dataset(path: Path, key: str) -> Dataset | None:
    """The dataset stored at ``path`` under ``key``, or None if the entry is missing or damaged: not a
    readable ``.npz`` of plain arrays, another key, or arrays that no longer give the stored fingerprint."""
    import numpy as np

    from eosdsl.data.dataset import make_dataset

    try:
        with open(path, "rb") as f:
            raw = f.read()
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
            arrays = {name: npz[name] for name in _ARRAYS}
        if meta.get("key") != key:
            return None
        ds = make_dataset(**arrays, n_classes=meta["n_classes"], description=meta["description"])
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 — any damage (truncation, bad zip, bad JSON, bad arrays) is a miss
        return None
    return ds if ds.fingerprint == meta.get("fingerprint") else None


def write_dataset(path: Path, key: str, ds: Dataset) -> None:
    """Store ``ds`` at ``path`` atomically (:func:`eosdsl.atomic.atomic_write`)."""
    import numpy as np

    from eosdsl.atomic import atomic_write

    meta = {
        "key": key,
        "fingerprint": ds.fingerprint,
        "n_classes": ds.n_classes,
        "description": ds.description,
    }
    with atomic_write(path) as f:
        np.savez(
            f,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            **{name: getattr(ds, name) for name in _ARRAYS},
        )


def cached_dataset(
    key: Callable[[], str], build: Callable[[], Dataset], environ: Mapping[str, str] | None = None
) -> Dataset:
    """The dataset of ``key()`` from the cache, else ``build()`` stored there; just ``build()`` when the
    cache is off. A damaged entry is removed and rebuilt; a cache that cannot be written is skipped."""
    root = cache_root(environ)
    if root is None:
        return build()
    name = key()
    path = _entry(root, name)
    found = read_dataset(path, name)
    if found is not None:
        return found
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)  # damaged (or absent): rebuilt below
    ds = build()
    with contextlib.suppress(OSError):
        write_dataset(path, name, ds)
    return ds


# ------------------------------------------------------------------------------ programs and parameters

_TRACED_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy", "ml_dtypes")


@lru_cache(maxsize=1)
def source_digest() -> str:
    """Hex SHA-256 of the source of every eosdsl module and of the versions of the libraries a program
    is traced through: what decides compiled programs and initial parameters besides their inputs and
    :func:`platform_tag` (any edit of eosdsl or upgrade misses every older entry)."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for lib in _TRACED_LIBRARIES:
        try:
            h.update(f"{lib} {version(lib)}\n".encode())
        except PackageNotFoundError:
            h.update(f"{lib} absent\n".encode())
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        h.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes() + b"\0")
    return h.hexdigest()


PARAMS_FORMAT = 1
"""Version of the parameter entry layout (part of every key)."""

MEASUREMENT_FORMAT = 1
"""Version of the measurement entry layout (part of every key)."""


def _platform_entry(
    kind: str, document: Mapping[str, Any], suffix: str, environ: Mapping[str, str] | None
) -> Path | None:
    """``<root>/<kind>/<platform>/<key><suffix>`` with key = sha256 of ``document`` (JSON) and
    :func:`source_digest`: the entry of what ``document`` names on this numerics platform, built by this
    code; None when the cache is off."""
    root = cache_root(environ)
    if root is None:
        return None
    text = json.dumps({"source": source_digest(), **document}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()
    return root / kind / platform_tag() / f"{key}{suffix}"


def cached_measurement(
    document: Mapping[str, Any],
    measure: Callable[[], dict[str, Any]],
    valid: Callable[[dict[str, Any]], bool] = lambda found: True,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """(what ``measure()`` returned, whether it came from the cache): a measurement of this machine (a
    JSON object, e.g. timings) kept in ``measurements/<platform>/`` under a key of ``document`` (what was
    measured) and :func:`source_digest`, so a later process reuses it instead of measuring again. The
    platform tag names the processor, instruction set and thread count; nothing else about the machine
    (its load, say) is in the key. An entry that cannot be read, is not a JSON object or fails ``valid``
    (returns False or raises) is measured again and overwritten; a cache that cannot be written is
    skipped; with the cache off, ``measure()`` runs every time."""
    path = _platform_entry("measurements", {"format": MEASUREMENT_FORMAT, **document}, ".json", environ)
    if path is None:
        return measure(), False
    try:
        found = json.loads(path.read_text())
        if isinstance(found, dict) and valid(found):
            return found, True
    except Exception:  # noqa: BLE001 — absent, damaged, or refused by ``valid``: measured (and stored) below
        pass
    value = measure()
    from eosdsl.atomic import atomic_write

    with contextlib.suppress(OSError, TypeError, ValueError):  # not JSON, or not writable: not kept
        text = json.dumps(value, allow_nan=False)
        with atomic_write(path, "w") as f:
            f.write(text)
    return value, False


def cached_params(
    document: Mapping[str, Any], build: Callable[[], Any], environ: Mapping[str, str] | None = None
) -> Any:
    """The parameters ``build()`` returns (nested dicts of arrays), from ``params/<platform>/`` when an
    entry keyed by ``document`` (JSON: what decides them, e.g. the network config and the seed) with
    :func:`source_digest` exists, else built and stored. Pytrees with other containers are built every
    time. An unreadable or mismatched entry is rebuilt; a cache that cannot be written is skipped."""
    import numpy as np

    path = _platform_entry("params", {"format": PARAMS_FORMAT, **document}, ".npz", environ)
    if path is None:
        return build()
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _nest({name: npz[name] for name in npz.files})
    except Exception:  # noqa: BLE001 — absent or damaged: built (and stored) below
        pass
    params = build()
    flat = _flat(params)
    if flat is not None:
        from eosdsl.atomic import atomic_write

        with contextlib.suppress(OSError), atomic_write(path) as f:
            np.savez(f, **flat)
    return params


def _flat(tree: Any, prefix: str = "") -> dict[str, Any] | None:
    """{"a/b": leaf} of nested dicts with string keys (None for any other container)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix and hasattr(tree, "shape") else None
    out: dict[str, Any] = {}
    for name, sub in tree.items():
        if not isinstance(name, str) or "/" in name or not name:
            return None
        inner = _flat(sub, f"{prefix}/{name}" if prefix else name)
        if inner is None:
            return None
        out.update(inner)
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, leaf in flat.items():
        *parents, last = name.split("/")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = leaf
    return out


__all__ = [
    "CACHE_ENV",
    "cache_root",
    "cached_dataset",
    "cached_measurement",
    "cached_params",
    "code_digest",
    "dataset_key",
    "file_digest",
    "platform_tag",
    "read_dataset",
    "source_digest",
    "write_dataset",
]
