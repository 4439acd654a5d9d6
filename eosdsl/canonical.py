"""The one canonical JSON encoding that eosdsl hashes: spec ids, run keys and sweep ids
(:mod:`eosdsl.registry.identity`) and dataset fingerprints (:mod:`eosdsl.data.dataset`).

Sorted keys, no whitespace, UTF-8 text, tuples as lists, finite numbers only. It sits below every layer
(no eosdsl imports) so that data and registry share it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "jsonable"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
