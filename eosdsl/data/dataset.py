r"""The ``Dataset`` container shared by the synthetic generators, the image loaders and preprocessing.

A :class:`Dataset` holds the *final* numpy arrays a run trains and evaluates on (targets already
encoded), plus a JSON-like ``description`` saying where they came from and which preprocessing steps
produced them. Its ``fingerprint`` is a content hash that enters run identity:

.. math::

    \text{fingerprint} = \operatorname{array\_fingerprint}(x_\text{train}, y_\text{train}, x_\text{test},
    y_\text{test}, \text{meta})

with the four arrays passed by name and ``meta`` the UTF-8 bytes (as a ``uint8`` array) of the canonical
JSON (sorted keys, no whitespace, no NaN/inf) of ``{"description": ..., "input_shape": ..., "n_classes":
...}``. So two datasets share a fingerprint iff their arrays (values, dtypes, shapes) and their recorded
provenance/pipeline agree. Local file-system paths are deliberately *not* part of a description: the same
data read from another directory has the same identity.

``description`` layout (all producers in :mod:`eosdsl.data` follow it)::

    {"source":   {"kind": "rank2", "d": 400, ...},     # generator / loader and its parameters
     "targets":  "labels",                             # encoding of y (see TARGET_ENCODINGS)
     "pipeline": [{"op": "take_first", ...}, ...]}     # steps applied since, in order, fully resolved
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from eosdsl.canonical import canonical_json, jsonable
from eosdsl.data.fingerprint import array_fingerprint

__all__ = ["TARGET_ENCODINGS", "Dataset", "derive", "make_dataset"]

#: How ``y`` is encoded. ``labels``: int64 class indices ``(n,)`` in ``0..n_classes-1``; ``plus_minus_one``:
#: float64 ``(n,)`` in {-1, +1} (binary); ``one_hot``: float64 ``(n, k)`` with ``on``/``off`` values;
#: ``one_hot_zero_mean``: float64 ``(n, k)``, :math:`e_y-\mathbf 1/k`; ``real``: float64 regression
#: targets ``(n,)`` or ``(n, m)``.
TARGET_ENCODINGS = ("labels", "plus_minus_one", "one_hot", "one_hot_zero_mean", "real")


def _frozen(a: Any, name: str) -> np.ndarray:
    if isinstance(a, np.ndarray) and not a.flags.writeable and a.flags.owndata:
        arr = a  # already frozen (e.g. passed through unchanged by a preprocessing step)
    else:
        arr = np.array(a, copy=True)  # own the memory: later changes to the caller's array cannot leak in
    if arr.dtype.hasobject:
        raise TypeError(f"dataset array {name} has object dtype")
    if arr.ndim < 1:
        raise ValueError(f"dataset array {name} must have a leading sample axis, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


def _fingerprint(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int | None,
    input_shape: tuple[int, ...],
    description: dict[str, Any],
) -> str:
    meta = canonical_json(  # numpy scalars in a description become Python numbers first
        jsonable({"description": description, "input_shape": list(input_shape), "n_classes": n_classes})
    )
    return array_fingerprint(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        meta=np.frombuffer(meta.encode("utf-8"), dtype=np.uint8),
    )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test pair of numpy arrays with encoded targets, provenance and a content fingerprint.

    Build one with :func:`make_dataset` (which validates, copies the arrays, marks them read-only and
    computes ``input_shape``); every preprocessing step returns a new ``Dataset``.

    Attributes:
        x_train: ``(n_train, *input_shape)`` inputs (uint8 as loaded from images, float after scaling).
        y_train: ``(n_train,)`` or ``(n_train, k)`` targets, encoded as ``description["targets"]`` says.
        x_test: ``(n_test, *input_shape)``; ``n_test`` may be 0.
        y_test: targets of the test inputs, same encoding as ``y_train``.
        n_classes: number of classes for classification data, ``None`` for regression.
        input_shape: ``x_train.shape[1:]``.
        fingerprint: hex SHA-256 over the four arrays and the canonical description (module docstring),
            computed when first read.
        description: JSON-like ``{"source", "targets", "pipeline"}``; treat it as read-only (it is a
            private deep copy, already normalised to plain JSON types).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    input_shape: tuple[int, ...]
    description: dict[str, Any]

    @cached_property
    def fingerprint(self) -> str:
        """Hex SHA-256 over the four arrays and the canonical description (module docstring); computed
        when first read, so the intermediate datasets of a pipeline are never hashed."""
        return _fingerprint(
            self.x_train,
            self.y_train,
            self.x_test,
            self.y_test,
            self.n_classes,
            self.input_shape,
            self.description,
        )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def targets(self) -> str:
        """The target encoding, one of :data:`TARGET_ENCODINGS`."""
        return str(self.description["targets"])

    @property
    def pipeline(self) -> list[dict[str, Any]]:
        """A copy of the preprocessing steps applied so far (each ``{"op": name, **params}``)."""
        return copy.deepcopy(self.description["pipeline"])

    def __repr__(self) -> str:
        src = self.description.get("source", {}).get("kind", "?")
        ops = [s["op"] for s in self.description.get("pipeline", [])]
        return (
            f"Dataset(source={src!r}, x_train={self.x_train.dtype}{list(self.x_train.shape)}, "
            f"x_test={self.x_test.dtype}{list(self.x_test.shape)}, targets={self.targets!r}, "
            f"n_classes={self.n_classes}, pipeline={ops}, fingerprint={self.fingerprint[:12]}…)"
        )


def _check_targets(y: np.ndarray, n: int, encoding: str, n_classes: int | None, name: str) -> None:
    if y.shape[:1] != (n,):
        raise ValueError(f"{name} has {y.shape[0] if y.ndim else 0} rows but its inputs have {n}")
    if encoding == "labels":
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"{name}: 'labels' targets must be a 1-d integer array, got {y.dtype}{y.shape}")
        if y.size and (y.min() < 0 or y.max() >= (n_classes or 0)):
            raise ValueError(
                f"{name}: labels must lie in [0, n_classes={n_classes}), got [{y.min()}, {y.max()}]"
            )
    elif encoding == "plus_minus_one":
        if y.ndim != 1 or not np.all(np.abs(y) == 1):
            raise ValueError(f"{name}: 'plus_minus_one' targets must be a 1-d array of ±1")
    elif encoding in ("one_hot", "one_hot_zero_mean") and (y.ndim != 2 or y.shape[1] != n_classes):
        raise ValueError(f"{name}: {encoding!r} targets must have shape (n, n_classes={n_classes})")


def make_dataset(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    n_classes: int | None,
    description: Mapping[str, Any],
) -> Dataset:
    """Validate the arrays and freeze them (read-only private copies); the result's ``fingerprint`` is
    computed when first read.

    ``description`` must contain ``source`` (a mapping with a ``kind``) and ``targets`` (one of
    :data:`TARGET_ENCODINGS`); ``pipeline`` defaults to ``[]``. Checks: sample counts of x and y agree,
    train and test inputs have the same per-sample shape, classification targets match their encoding
    (labels in range, ±1 values, one-hot width ``n_classes``), ``n_classes`` is ``None`` iff the targets
    are ``real``.
    """
    desc = jsonable(dict(description))
    desc.setdefault("pipeline", [])
    if not isinstance(desc.get("source"), dict) or "kind" not in desc["source"]:
        raise ValueError("dataset description needs a 'source' mapping with a 'kind'")
    if desc.get("targets") not in TARGET_ENCODINGS:
        raise ValueError(
            f"dataset description 'targets' must be one of {TARGET_ENCODINGS}, got {desc.get('targets')!r}"
        )
    arrays = {
        "x_train": _frozen(x_train, "x_train"),
        "y_train": _frozen(y_train, "y_train"),
        "x_test": _frozen(x_test, "x_test"),
        "y_test": _frozen(y_test, "y_test"),
    }
    xtr, ytr, xte, yte = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(
            f"train and test inputs differ in per-sample shape: {xtr.shape[1:]} vs {xte.shape[1:]}"
        )
    if (n_classes is None) != (desc["targets"] == "real"):
        raise ValueError(f"n_classes={n_classes} is inconsistent with targets={desc['targets']!r}")
    if n_classes is not None and (not isinstance(n_classes, int | np.integer) or n_classes < 1):
        raise ValueError(f"n_classes must be a positive integer or None, got {n_classes!r}")
    n_classes = None if n_classes is None else int(n_classes)
    _check_targets(ytr, xtr.shape[0], desc["targets"], n_classes, "y_train")
    _check_targets(yte, xte.shape[0], desc["targets"], n_classes, "y_test")
    if ytr.shape[1:] != yte.shape[1:]:
        raise ValueError(
            f"train and test targets differ in per-sample shape: {ytr.shape[1:]} vs {yte.shape[1:]}"
        )
    input_shape = tuple(int(s) for s in xtr.shape[1:])
    return Dataset(
        x_train=xtr,
        y_train=ytr,
        x_test=xte,
        y_test=yte,
        n_classes=n_classes,
        input_shape=input_shape,
        description=desc,
    )


def derive(
    ds: Dataset,
    step: Mapping[str, Any],
    *,
    x_train: Any = None,
    y_train: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    n_classes: Any = ...,
    targets: str | None = None,
) -> Dataset:
    """A new dataset from ``ds`` with some arrays replaced and ``step`` appended to its pipeline.

    Used by every preprocessing step. ``step`` is ``{"op": name, **resolved_params}``; ``n_classes=...``
    (the default) keeps the old value, ``targets=None`` keeps the old encoding.
    """
    desc = copy.deepcopy(ds.description)
    desc["pipeline"] = [*desc.get("pipeline", []), dict(step)]
    if targets is not None:
        desc["targets"] = targets
    return make_dataset(
        ds.x_train if x_train is None else x_train,
        ds.y_train if y_train is None else y_train,
        ds.x_test if x_test is None else x_test,
        ds.y_test if y_test is None else y_test,
        n_classes=ds.n_classes if n_classes is ... else n_classes,
        description=desc,
    )
