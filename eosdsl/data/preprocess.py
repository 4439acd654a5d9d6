r"""Pure preprocessing steps on :class:`Dataset` and a ``pipeline`` that chains them.

Every step is a pure function ``step(ds, **params) -> Dataset``: it never mutates ``ds``, and it appends
``{"op": name, **params}`` — with *all* parameters resolved, defaults included — to
``description["pipeline"]`` of the result. The result's fingerprint therefore covers the final arrays
*and* the steps that made them (``scale(ds)`` and ``scale(ds, factor=1/255)`` are the same dataset;
centring twice differs from centring once even though the arrays barely change).

Statistics (means, standard deviations) are always computed on the *training* inputs and applied to both
train and test inputs. Integer inputs become float64 when a step computes with them; float inputs keep
their dtype. Target encodings follow :data:`eosdsl.data.dataset.TARGET_ENCODINGS`; subset and class steps
need integer ``labels`` targets, so encode (``one_hot``, ``plus_minus_one``) last.

Steps (names as used in :func:`pipeline`): ``take_first``, ``balanced``, ``filter_classes``, ``holdout``,
``scale``, ``center``, ``standardize``, ``flatten``, ``to_channels``, ``pad``, ``one_hot``,
``one_hot_zero_mean``, ``plus_minus_one``, ``random_labels``.

Typical uses:

- paper 004 App. F: Fashion-MNIST, 1,000 train / 200 test, "standard normalization",
  flattened for the 784-32-32-32-32-10 MLP: ``take_first(1000, 200)``, ``scale``,
  ``standardize(global|per_feature)``, ``flatten``, ``one_hot`` (the paper's choice of statistics is
  unspecified).
- paper 001 §4 / §5 ``cifar10_binary``: ``filter_classes([c0, c1])``, ``balanced(500)``, ``scale``,
  ``flatten``, ``center(per_feature)`` (mean-subtracted), ``plus_minus_one``.
- paper 002 App. F: CIFAR-10-1k / MNIST subsets with one-hot labels: ``take_first(1000)``, ``scale``,
  ``flatten``, ``one_hot``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from eosdsl.data.dataset import Dataset, derive
from eosdsl.data.synthetic import random_labels

__all__ = [
    "STEPS",
    "balanced",
    "center",
    "filter_classes",
    "flatten",
    "holdout",
    "one_hot",
    "one_hot_zero_mean",
    "pad",
    "parse_step",
    "pipeline",
    "plus_minus_one",
    "scale",
    "standardize",
    "take_first",
    "take_first_counts",
    "to_channels",
]

Mode = Literal["per_feature", "global", "per_channel"]
_MODE_ALIASES = {
    "per_feature": "per_feature",
    "per_pixel": "per_feature",
    "global": "global",
    "per_channel": "per_channel",
}


def _need_labels(ds: Dataset, op: str) -> None:
    if ds.targets != "labels":
        raise ValueError(
            f"{op} needs integer class labels, but the targets are encoded as {ds.targets!r}; "
            f"apply {op} before one_hot / plus_minus_one"
        )


def _count(v: Any, name: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


# ---------------------------------------------------------------------------------------------- subsets


def take_first(ds: Dataset, n_train: int, n_test: int | None = None) -> Dataset:
    """The first ``n_train`` training samples (and the first ``n_test`` test samples; ``None`` keeps all).

    Paper 004 App. F takes 1,000 / 200 fMNIST samples in default order ("maintaining the default
    ordering", §4). Errors if more samples are requested than exist. (A Fashion-MNIST source whose
    pipeline starts with this step reads only these samples: ``eosdsl.data.images.load_mnist_format``'s
    ``first``, which gives the same dataset.)
    """
    n_train, n_test = take_first_counts(n_train, n_test, ds.n_train, ds.n_test)
    step = {"op": "take_first", "n_train": n_train, "n_test": n_test}
    sl = slice(None) if n_test is None else slice(0, n_test)
    return derive(
        ds,
        step,
        x_train=ds.x_train[:n_train],
        y_train=ds.y_train[:n_train],
        x_test=ds.x_test[sl],
        y_test=ds.y_test[sl],
    )


def take_first_counts(n_train: Any, n_test: Any, have_train: int, have_test: int) -> tuple[int, int | None]:
    """:func:`take_first`'s arguments checked against the ``have_train`` / ``have_test`` samples there
    are: (n_train, n_test) as ints (n_test may stay None: all). Raises ValueError."""
    n_train = _count(n_train, "n_train", 1)
    if n_train > have_train:
        raise ValueError(f"take_first: n_train={n_train} exceeds the {have_train} training samples")
    if n_test is not None:
        n_test = _count(n_test, "n_test")
        if n_test > have_test:
            raise ValueError(f"take_first: n_test={n_test} exceeds the {have_test} test samples")
    return n_train, n_test


def _balanced_index(
    y: np.ndarray, k: int, n_classes: int, rng: np.random.Generator | None, split: str
) -> np.ndarray:
    chosen = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        if idx.size < k:
            raise ValueError(f"balanced: class {c} has only {idx.size} {split} samples, {k} requested")
        chosen.append(idx[:k] if rng is None else rng.permutation(idx)[:k])
    return np.sort(np.concatenate(chosen))


def balanced(
    ds: Dataset, n_per_class: int, n_test_per_class: int | None = None, seed: int | None = None
) -> Dataset:
    """A class-balanced subset: ``n_per_class`` training samples of every class (test likewise if given).

    ``seed=None`` (default, deterministic): the *first* ``n_per_class`` samples of each class in dataset
    order. With a seed: for each class ``c = 0..n_classes-1`` in turn (train, then test),
    ``Generator(PCG64(seed)).permutation(indices_of_c)[:n_per_class]``. Either way the selected samples keep
    their original relative order (classes stay interleaved). Needs ``labels`` targets; errors if a class
    has too few samples.
    """
    _need_labels(ds, "balanced")
    k = _count(n_per_class, "n_per_class", 1)
    kt = None if n_test_per_class is None else _count(n_test_per_class, "n_test_per_class", 0)
    if seed is not None:
        seed = _count(seed, "seed")
    rng = None if seed is None else _rng(seed)
    itr = _balanced_index(ds.y_train, k, ds.n_classes, rng, "training")
    ite = None if kt is None else _balanced_index(ds.y_test, kt, ds.n_classes, rng, "test")
    step = {"op": "balanced", "n_per_class": k, "n_test_per_class": kt, "seed": seed}
    return derive(
        ds,
        step,
        x_train=ds.x_train[itr],
        y_train=ds.y_train[itr],
        x_test=None if ite is None else ds.x_test[ite],
        y_test=None if ite is None else ds.y_test[ite],
    )


def filter_classes(ds: Dataset, classes: Sequence[int]) -> Dataset:
    """Keep only samples of ``classes`` and relabel ``classes[j] -> j`` (so ``n_classes = len(classes)``).

    E.g. ``filter_classes(ds, [3, 5])`` for a binary cat-vs-dog CIFAR task (label 3 -> 0, 5 -> 1); follow
    with ``plus_minus_one`` for ±1 targets. Applies to train and test; needs ``labels`` targets.
    """
    _need_labels(ds, "filter_classes")
    cls = [_count(c, "class", 0) for c in classes]
    if not cls or len(set(cls)) != len(cls) or max(cls) >= ds.n_classes:
        raise ValueError(
            f"filter_classes: need distinct classes in 0..{ds.n_classes - 1}, got {list(classes)}"
        )
    lut = np.full(ds.n_classes, -1, dtype=np.int64)
    lut[cls] = np.arange(len(cls))

    def sel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = lut[y] >= 0
        return x[keep], lut[y[keep]]

    xtr, ytr = sel(ds.x_train, ds.y_train)
    xte, yte = sel(ds.x_test, ds.y_test)
    return derive(
        ds,
        {"op": "filter_classes", "classes": cls},
        x_train=xtr,
        y_train=ytr,
        x_test=xte,
        y_test=yte,
        n_classes=len(cls),
    )


def holdout(ds: Dataset, n_test: int, seed: int | None = None, replace_test: bool = False) -> Dataset:
    """Move ``n_test`` training samples into a held-out test set.

    ``seed=None``: the *last* ``n_test`` training samples. With a seed: ``perm =
    Generator(PCG64(seed)).permutation(n_train)``; ``perm[:n_test]`` (sorted) become the test set, the rest
    (sorted) stay for training. If ``ds`` already has test samples this is an error unless
    ``replace_test=True``, which discards them.
    """
    n_test = _count(n_test, "n_test", 1)
    if n_test >= ds.n_train:
        raise ValueError(f"holdout: n_test={n_test} must be < the {ds.n_train} training samples")
    if ds.n_test and not replace_test:
        raise ValueError(f"holdout: the dataset already has {ds.n_test} test samples; pass replace_test=True")
    if seed is None:
        itr, ite = np.arange(ds.n_train - n_test), np.arange(ds.n_train - n_test, ds.n_train)
    else:
        perm = _rng(_count(seed, "seed")).permutation(ds.n_train)
        itr, ite = np.sort(perm[n_test:]), np.sort(perm[:n_test])
    step = {"op": "holdout", "n_test": n_test, "seed": seed, "replace_test": bool(replace_test)}
    return derive(
        ds,
        step,
        x_train=ds.x_train[itr],
        y_train=ds.y_train[itr],
        x_test=ds.x_train[ite],
        y_test=ds.y_train[ite],
    )


# ------------------------------------------------------------------------------------------------ inputs


def scale(
    ds: Dataset, factor: float = 1.0 / 255.0, dtype: Literal["float64", "float32"] = "float64"
) -> Dataset:
    r"""Multiply inputs by ``factor`` (default :math:`1/255`: uint8 pixels -> :math:`[0,1]`), as ``dtype``.

    Paper 001 §5 ``scale: unit``; the usual first step for image data.

    Computed as ``x.astype(dtype) * dtype(factor)``.
    """
    if dtype not in ("float64", "float32"):
        raise ValueError(f"scale: dtype must be 'float64' or 'float32', got {dtype!r}")
    factor = float(factor)
    if not np.isfinite(factor):
        raise ValueError(f"scale: factor must be finite, got {factor}")
    dt = np.dtype(dtype)
    f = dt.type(factor)
    return derive(
        ds,
        {"op": "scale", "factor": factor, "dtype": dtype},
        x_train=ds.x_train.astype(dt) * f,
        x_test=ds.x_test.astype(dt) * f,
    )


def _mode(mode: str, op: str) -> str:
    if mode not in _MODE_ALIASES:
        raise ValueError(f"{op}: mode must be one of {sorted(_MODE_ALIASES)}, got {mode!r}")
    return _MODE_ALIASES[mode]


def _axes(x: np.ndarray, mode: str, op: str) -> tuple[int, ...]:
    if mode == "per_feature":
        return (0,)
    if mode == "global":
        return tuple(range(x.ndim))
    if x.ndim != 4:
        raise ValueError(
            f"{op}(per_channel) needs channel-last images (N, H, W, C), got shape {x.shape}; "
            "use to_channels first, or mode='global' for grayscale"
        )
    return (0, 1, 2)


def center(ds: Dataset, mode: str = "per_feature") -> Dataset:
    r"""Subtract the training mean: :math:`x\mapsto x-\bar x_\text{train}` (train and test alike).

    ``per_feature`` (alias ``per_pixel``): one mean per input coordinate, :math:`\bar x_j=\frac1n\sum_i
    x_{ij}` — the "mean-subtracted"/"mean-centred across samples" data of paper 001 (§4, Fig. 19
    footnote). ``global``: one scalar mean. ``per_channel``: one mean per channel of ``(N, H, W, C)`` inputs.
    """
    mode = _mode(mode, "center")
    xtr, xte = _float(ds.x_train), _float(ds.x_test)
    mu = xtr.astype(np.float64).mean(axis=_axes(xtr, mode, "center"), keepdims=True)
    return derive(
        ds,
        {"op": "center", "mode": mode},
        x_train=(xtr - mu).astype(xtr.dtype),
        x_test=(xte - mu).astype(xte.dtype),
    )


def standardize(ds: Dataset, mode: str = "per_feature", min_std: float = 1e-12) -> Dataset:
    r"""Standardise with training statistics: :math:`x\mapsto(x-\mu)/s`, :math:`\mu,s` from the train set.

    :math:`\mu` and :math:`s` (population std, ``ddof=0``) are taken over the training samples per input
    coordinate (``per_feature``, alias ``per_pixel``), over everything (``global``) or per channel of
    ``(N, H, W, C)`` inputs (``per_channel``) — readings of paper 004's
    unspecified "standard normalization" (App. F). Coordinates with :math:`s\le` ``min_std`` (e.g. fMNIST
    corner pixels that are 0 in every training image) are only centred (divided by 1). So the standardised
    training inputs have mean 0 and std 1 in every non-constant coordinate; test inputs use the *training*
    :math:`\mu, s` and are not exactly standardised.
    """
    mode = _mode(mode, "standardize")
    min_std = float(min_std)
    if not min_std >= 0:
        raise ValueError(f"standardize: min_std must be >= 0, got {min_std}")
    xtr, xte = _float(ds.x_train), _float(ds.x_test)
    axes = _axes(xtr, mode, "standardize")
    x64 = xtr.astype(np.float64)
    mu = x64.mean(axis=axes, keepdims=True)
    s = x64.std(axis=axes, keepdims=True)
    s = np.where(s > min_std, s, 1.0)
    return derive(
        ds,
        {"op": "standardize", "mode": mode, "min_std": min_std},
        x_train=((xtr - mu) / s).astype(xtr.dtype),
        x_test=((xte - mu) / s).astype(xte.dtype),
    )


def flatten(ds: Dataset) -> Dataset:
    """Reshape inputs ``(N, *input_shape) -> (N, prod(input_shape))`` in C order (NHWC images: HWC order)."""
    width = int(np.prod(ds.x_train.shape[1:]))  # explicit: -1 cannot be inferred for an empty split
    return derive(
        ds,
        {"op": "flatten"},
        x_train=ds.x_train.reshape(ds.n_train, width),
        x_test=ds.x_test.reshape(ds.n_test, width),
    )


def to_channels(ds: Dataset, channels: int = 1, layout: Literal["NHWC", "NCHW"] = "NHWC") -> Dataset:
    """Add a channel axis to grayscale images ``(N, H, W)``: ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)``.

    ``channels > 1`` repeats the gray image (e.g. 3 channels to feed fMNIST to a CIFAR architecture, a
    CPU-sized substitute for paper 004's CIFAR runs).
    """
    channels = _count(channels, "channels", 1)
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"to_channels: layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if ds.x_train.ndim != 3:
        raise ValueError(f"to_channels needs grayscale images (N, H, W), got input shape {ds.input_shape}")
    axis = 3 if layout == "NHWC" else 1

    def conv(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.expand_dims(x, axis), channels, axis=axis)

    step = {"op": "to_channels", "channels": channels, "layout": layout}
    return derive(ds, step, x_train=conv(ds.x_train), x_test=conv(ds.x_test))


def _pad_widths(width: Any) -> list[list[int]]:
    if isinstance(width, int | np.integer) and not isinstance(width, bool):
        w = [[int(width)] * 2] * 2
    else:
        w = np.asarray(width, dtype=object).tolist()
        if len(w) == 2 and all(isinstance(v, int | np.integer) for v in w):
            w = [[int(w[0]), int(w[1])]] * 2
        elif not (len(w) == 2 and all(isinstance(v, list) and len(v) == 2 for v in w)):
            raise ValueError(
                f"pad: width must be n, (before, after) or ((top, bottom), (left, right)), got {width!r}"
            )
        w = [[int(a), int(b)] for a, b in w]
    if any(v < 0 for pair in w for v in pair):
        raise ValueError(f"pad: widths must be >= 0, got {width!r}")
    return w


def pad(ds: Dataset, width: Any = 2, value: float = 0.0, layout: Literal["NHWC", "NCHW"] = "NHWC") -> Dataset:
    """Pad the two spatial axes of images with a constant (default: 28×28 -> 32×32 with ``width=2``).

    ``width``: ``n`` (all sides), ``(before, after)`` (both axes) or ``((top, bottom), (left, right))``.
    Inputs are ``(N, H, W)`` or 4-d in ``layout`` (spatial axes 1, 2 for NHWC; 2, 3 for NCHW). ``value``
    is cast to the input dtype (e.g. 0 for uint8 pixels; pad *before* centring to pad with black, after it
    to pad with the mean).
    """
    w = _pad_widths(width)
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"pad: layout must be 'NHWC' or 'NCHW', got {layout!r}")
    nd = ds.x_train.ndim
    if nd not in (3, 4):
        raise ValueError(
            f"pad needs images (N, H, W) or (N, H, W, C)/(N, C, H, W), got input shape {ds.input_shape}"
        )
    spatial = (1, 2) if nd == 3 or layout == "NHWC" else (2, 3)
    pw = [(0, 0)] * nd
    pw[spatial[0]], pw[spatial[1]] = tuple(w[0]), tuple(w[1])
    value = float(value)

    def p(x: np.ndarray) -> np.ndarray:
        return np.pad(x, pw, mode="constant", constant_values=x.dtype.type(value))

    step = {"op": "pad", "width": w, "value": value, "layout": layout}
    return derive(ds, step, x_train=p(ds.x_train), x_test=p(ds.x_test))


# ----------------------------------------------------------------------------------------------- targets


def one_hot(ds: Dataset, on: float = 1.0, off: float = 0.0) -> Dataset:
    r"""Labels -> float64 ``(N, n_classes)`` rows with ``on`` at the label and ``off`` elsewhere.

    Default :math:`e_y` (0/1, paper 002 App. F "one-hot labels"); ``off=-1`` gives ±1 one-hot rows.
    """
    _need_labels(ds, "one_hot")
    on, off = float(on), float(off)
    eye = np.where(np.eye(ds.n_classes, dtype=bool), on, off)
    return derive(
        ds,
        {"op": "one_hot", "on": on, "off": off},
        y_train=eye[ds.y_train],
        y_test=eye[ds.y_test],
        targets="one_hot",
    )


def one_hot_zero_mean(ds: Dataset) -> Dataset:
    r"""Labels -> zero-mean one-hot rows :math:`e_y-\mathbf 1/k` (each row sums to 0), float64 ``(N, k)``."""
    _need_labels(ds, "one_hot_zero_mean")
    k = ds.n_classes
    eye = np.eye(k) - 1.0 / k
    return derive(
        ds,
        {"op": "one_hot_zero_mean"},
        y_train=eye[ds.y_train],
        y_test=eye[ds.y_test],
        targets="one_hot_zero_mean",
    )


def plus_minus_one(ds: Dataset, positive: int = 1) -> Dataset:
    """Binary labels -> float64 ±1 targets: ``+1`` where ``label == positive``, ``-1`` otherwise.

    Needs ``n_classes == 2`` (use ``filter_classes`` first). Default: class 1 -> +1, class 0 -> -1.
    """
    _need_labels(ds, "plus_minus_one")
    if ds.n_classes != 2:
        raise ValueError(f"plus_minus_one needs 2 classes, got {ds.n_classes}; use filter_classes first")
    positive = _count(positive, "positive")
    if positive not in (0, 1):
        raise ValueError(f"plus_minus_one: positive must be 0 or 1, got {positive}")

    def enc(y: np.ndarray) -> np.ndarray:
        return np.where(y == positive, 1.0, -1.0)

    return derive(
        ds,
        {"op": "plus_minus_one", "positive": positive},
        y_train=enc(ds.y_train),
        y_test=enc(ds.y_test),
        targets="plus_minus_one",
    )


# ---------------------------------------------------------------------------------------------- pipeline

#: Step name -> function, for :func:`pipeline`.
STEPS: dict[str, Callable[..., Dataset]] = {
    "take_first": take_first,
    "balanced": balanced,
    "filter_classes": filter_classes,
    "holdout": holdout,
    "scale": scale,
    "center": center,
    "standardize": standardize,
    "flatten": flatten,
    "to_channels": to_channels,
    "pad": pad,
    "one_hot": one_hot,
    "one_hot_zero_mean": one_hot_zero_mean,
    "plus_minus_one": plus_minus_one,
    "random_labels": random_labels,
}


def parse_step(spec: Any) -> tuple[str, dict[str, Any]]:
    """(name, parameters) of a pipeline step in any of the forms :func:`pipeline` takes."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        if "op" in spec:
            params = dict(spec)
            return str(params.pop("op")), params
        if len(spec) == 1:
            ((name, params),) = spec.items()
            if params is None:
                return str(name), {}
            if not isinstance(params, Mapping):
                raise ValueError(f"pipeline step {name!r}: parameters must be a mapping, got {params!r}")
            return str(name), dict(params)
    if (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    ):
        return spec[0], dict(spec[1])
    raise ValueError(
        f"cannot read pipeline step {spec!r}; use 'name', {{'op': name, **params}}, {{name: params}} "
        "or (name, params)"
    )


def pipeline(ds: Dataset, steps: Sequence[Any]) -> Dataset:
    """Apply named steps in order; each is recorded (fully resolved) in ``description["pipeline"]``.

    A step is ``"flatten"``, ``{"op": "scale", "factor": 0.5}``, ``{"scale": {"factor": 0.5}}`` (the YAML
    one-key form; ``{"flatten": None}`` too) or ``("scale", {"factor": 0.5})``. Names are the keys of
    :data:`STEPS`. Example (paper 004 App. F)::

        pipeline(load_fashion_mnist(), [{"take_first": {"n_train": 1000, "n_test": 200}}, "scale",
                 {"standardize": {"mode": "global"}}, "flatten", "one_hot"])
    """
    if isinstance(steps, str | Mapping):
        raise TypeError("pipeline steps must be a list")
    for i, spec in enumerate(steps):
        name, params = parse_step(spec)
        if name not in STEPS:
            raise ValueError(f"pipeline step {i}: unknown step {name!r}; known: {', '.join(STEPS)}")
        try:
            ds = STEPS[name](ds, **params)
        except TypeError as e:
            raise ValueError(f"pipeline step {i} ({name}): {e}") from e
    return ds
