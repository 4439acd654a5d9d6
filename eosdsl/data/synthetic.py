r"""Seeded synthetic datasets, each returned as a fingerprinted :class:`Dataset`.

All randomness comes from ``np.random.Generator(np.random.PCG64(...))`` (platform-independent), with the
draw order documented per generator. Where a generator has a separate *teacher* stream, that stream is
``Generator(PCG64([teacher_seed, TAG]))`` with a fixed per-generator tag, so it is statistically independent
of the data stream ``Generator(PCG64(seed))`` even when ``teacher_seed == seed``. Train and test samples
come from one draw of ``n + n_test`` rows, train first, so the training set does not depend on ``n_test``.

Generators:

- :func:`rank2` — rank-2 regression ("Rank2-d-N", paper 000 App. E.3, after Zhu et al.).
- :func:`gaussian_spectrum_binary` — Gaussian inputs with a chosen covariance spectrum and ±1 labels from
  a linear teacher (small-scale data for paper 001 §4's two-layer linear model).
- :func:`gaussian_mixture` — k-class isotropic Gaussian mixture with equidistant means.
- :func:`teacher_student` — regression on the outputs of a random two-layer teacher network.
- :func:`random_labels` — replace the labels of an existing dataset by random ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from eosdsl.data.dataset import Dataset, derive, make_dataset

__all__ = [
    "ACTIVATIONS",
    "gaussian_mixture",
    "gaussian_spectrum_binary",
    "rank2",
    "random_labels",
    "resolve_spectrum",
    "teacher_student",
]

_TAG_SPECTRUM_TEACHER = 0x5EC7001
_TAG_TS_TEACHER = 0x7EAC4E2
_TAG_RANDOM_LABELS = 0x4A4D0B1


def _rng(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _check_counts(**counts: int) -> None:
    for name, v in counts.items():
        if not isinstance(v, int | np.integer) or v < (0 if name == "n_test" else 1):
            raise ValueError(f"{name} must be an integer >= {0 if name == 'n_test' else 1}, got {v!r}")


def rank2(d: int = 400, n: int = 200, n_test: int = 0, seed: int = 0) -> Dataset:
    r"""Rank-2 regression "Rank2-d-N": :math:`x\sim\mathcal N(0,I_d)`, :math:`y=x^{(1)}x^{(2)}`.

    Paper 000 App. E.3 (after Zhu et al.): Rank2-400-200 (Fig. 9), Rank2-400-4000 (Fig. 15)
    and d=3, N=100 (Fig. 8). Draw: ``X = Generator(PCG64(seed)).standard_normal((n + n_test, d))``; rows
    ``[:n]`` are the training set. Targets ``y = X[:, 0] * X[:, 1]`` (float64, shape ``(n,)``, exact
    product, no noise); encoding ``real``, ``n_classes=None``.
    """
    _check_counts(d=d, n=n, n_test=n_test)
    if d < 2:
        raise ValueError(f"rank2 needs d >= 2, got {d}")
    X = _rng(seed).standard_normal((n + n_test, d))
    y = X[:, 0] * X[:, 1]
    return make_dataset(
        X[:n],
        y[:n],
        X[n:],
        y[n:],
        n_classes=None,
        description={
            "source": {"kind": "rank2", "d": d, "n": n, "n_test": n_test, "seed": seed},
            "targets": "real",
        },
    )


SpectrumSpec = float | int | Sequence[float] | Mapping[str, Any]


def resolve_spectrum(spectrum: SpectrumSpec, d: int) -> np.ndarray:
    r"""Turn a spectrum spec into ``d`` positive values :math:`\lambda_1,\dots,\lambda_d` (float64).

    Accepted forms:

    - an explicit list of ``d`` positive numbers;
    - a number ``a`` (shorthand for a power law with exponent ``a`` and scale 1);
    - ``{"power_law": {"exponent": a, "scale": c}}``: :math:`\lambda_i=c\,i^{-a}`, ``i = 1..d``
      (``scale`` defaults to 1);
    - ``{"gap_plus_linear": {"top": t, "lo": lo, "hi": hi}}``: :math:`\lambda_1=t` and
      :math:`\lambda_2..\lambda_d` evenly spaced from ``hi`` down to ``lo`` (``np.linspace(hi, lo, d-1)``).
      A top value separated from the bulk gives the outlier eigenvalue paper 001 needs
      (Assumption 4.1: :math:`\lambda_1\ge2\lambda_2`; Assumption 3.7).
    """
    if isinstance(spectrum, bool):
        raise TypeError("spectrum must be a number, a list or a mapping, not a bool")
    if isinstance(spectrum, int | float | np.integer | np.floating):
        spectrum = {"power_law": {"exponent": float(spectrum)}}
    if isinstance(spectrum, Mapping):
        if len(spectrum) != 1:
            raise ValueError(
                f"spectrum mapping needs exactly one of 'power_law', 'gap_plus_linear'; got {list(spectrum)}"
            )
        ((kind, p),) = spectrum.items()
        p = dict(p)
        if kind == "power_law":
            unknown = set(p) - {"exponent", "scale"}
            if unknown or "exponent" not in p:
                raise ValueError(f"power_law needs 'exponent' (and optional 'scale'); got keys {sorted(p)}")
            lam = float(p.get("scale", 1.0)) * np.arange(1, d + 1, dtype=np.float64) ** (
                -float(p["exponent"])
            )
        elif kind == "gap_plus_linear":
            if set(p) != {"top", "lo", "hi"}:
                raise ValueError(f"gap_plus_linear needs exactly 'top', 'lo', 'hi'; got keys {sorted(p)}")
            lam = np.concatenate([[float(p["top"])], np.linspace(float(p["hi"]), float(p["lo"]), d - 1)])
        else:
            raise ValueError(f"unknown spectrum kind {kind!r}; expected 'power_law' or 'gap_plus_linear'")
    else:
        lam = np.asarray(spectrum, dtype=np.float64)
        if lam.shape != (d,):
            raise ValueError(f"an explicit spectrum needs d={d} values, got shape {lam.shape}")
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"spectrum values must be finite and > 0, got {lam}")
    return lam


def _spectrum_record(spectrum: SpectrumSpec) -> Any:
    if isinstance(spectrum, int | float | np.integer | np.floating) and not isinstance(spectrum, bool):
        return {"power_law": {"exponent": float(spectrum), "scale": 1.0}}
    if isinstance(spectrum, Mapping):
        ((kind, p),) = spectrum.items()
        p = {k: float(v) for k, v in dict(p).items()}
        if kind == "power_law":
            p.setdefault("scale", 1.0)
        return {kind: p}
    return [float(v) for v in spectrum]


def gaussian_spectrum_binary(
    spectrum: SpectrumSpec,
    n: int = 200,
    d: int = 50,
    n_test: int = 0,
    seed: int = 0,
    teacher_seed: int | None = None,
    *,
    spectrum_of: Literal["variance", "std"] = "variance",
    rotate: bool = False,
    center: bool = True,
    labels: Literal["linear_teacher_sign", "random_sign"] = "linear_teacher_sign",
    targets: Literal["plus_minus_one", "labels"] = "plus_minus_one",
) -> Dataset:
    r"""Binary classification with Gaussian inputs of a chosen covariance spectrum and ±1 labels.

    Paper 001 §4 (two-layer linear net :math:`f=A^\top Wx/\sqrt m`), at small scale:
    inputs with a controlled covariance spectrum (a top eigenvalue separated from the rest), mean-centred
    across samples, labels :math:`y=\operatorname{sign}(\beta^\top x)` from a linear teacher. Defaults
    n=200, d=50.

    Model. Covariance :math:`\Sigma=Q\operatorname{diag}(\lambda)Q^\top` with :math:`\lambda` from
    :func:`resolve_spectrum` (``spectrum_of="std"`` squares the values: they are then feature standard
    deviations) and :math:`Q=I` unless ``rotate``; :math:`x=Q(\sqrt\lambda
    \odot z)`, :math:`z\sim\mathcal N(0,I_d)`. With ``center`` the training mean :math:`\bar x` is
    subtracted from train *and* test inputs (training statistics only). Labels are computed from the final
    (centred) inputs, :math:`y=\operatorname{sign}(\beta^\top x)` with :math:`\operatorname{sign}(0):=+1`,
    so they are exactly linearly separable through the origin in the features the model sees; with
    ``labels="random_sign"`` they are i.i.d. uniform ±1 instead (no teacher; random labels on
    isotropic inputs give no outlier Gram eigenvalue, which paper 001's Assumption 3.7 asks for).

    Draws. Data stream ``Generator(PCG64(seed))``: ``Z = standard_normal((n + n_test, d))``, then (only if
    ``rotate``) ``G = standard_normal((d, d))``, :math:`Q` from ``np.linalg.qr(G)`` with column signs
    fixed by ``sign(diag(R))``. Teacher stream ``Generator(PCG64([teacher_seed, 0x5EC7001]))``
    (``teacher_seed`` defaults to ``seed``): ``beta = standard_normal(d)`` or, for ``random_sign``,
    ``u = random(n + n_test)`` and ``y = where(u < 0.5, -1, +1)``.

    Returns float64 ``x`` of shape ``(n, d)`` and ``n_classes=2``; targets are float64 ±1 (encoding
    ``plus_minus_one``) or, with ``targets="labels"``, int64 class indices (-1 -> 0, +1 -> 1) so that
    ``balanced`` can subsample before ``plus_minus_one`` re-encodes them (balanced labels
    matter: a bias-free net on centred inputs cannot fit the label mean).
    """
    _check_counts(n=n, d=d, n_test=n_test)
    if spectrum_of not in ("variance", "std"):
        raise ValueError(f"spectrum_of must be 'variance' or 'std', got {spectrum_of!r}")
    if labels not in ("linear_teacher_sign", "random_sign"):
        raise ValueError(f"labels must be 'linear_teacher_sign' or 'random_sign', got {labels!r}")
    if targets not in ("plus_minus_one", "labels"):
        raise ValueError(f"targets must be 'plus_minus_one' or 'labels', got {targets!r}")
    values = resolve_spectrum(spectrum, d)
    lam = values**2 if spectrum_of == "std" else values
    teacher_seed = seed if teacher_seed is None else teacher_seed
    rng = _rng(seed)
    X = rng.standard_normal((n + n_test, d)) * np.sqrt(lam)
    if rotate:
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)
        X = X @ Q.T
    if center:
        X = X - X[:n].mean(axis=0)
    trng = _rng([teacher_seed, _TAG_SPECTRUM_TEACHER])
    if labels == "linear_teacher_sign":
        beta = trng.standard_normal(d)
        y = np.where(X @ beta < 0, -1.0, 1.0)
    else:
        y = np.where(trng.random(n + n_test) < 0.5, -1.0, 1.0)
    if targets == "labels":
        y = (y > 0).astype(np.int64)
    return make_dataset(
        X[:n],
        y[:n],
        X[n:],
        y[n:],
        n_classes=2,
        description={
            "source": {
                "kind": "gaussian_spectrum_binary",
                "n": n,
                "d": d,
                "n_test": n_test,
                "seed": seed,
                "teacher_seed": teacher_seed,
                "spectrum": _spectrum_record(spectrum),
                "spectrum_of": spectrum_of,
                "rotate": bool(rotate),
                "center": bool(center),
                "labels": labels,
            },
            "targets": targets,
        },
    )


def gaussian_mixture(
    n: int = 1000,
    d: int = 20,
    k: int = 4,
    separation: float = 3.0,
    seed: int = 0,
    n_test: int = 0,
    *,
    noise_std: float = 1.0,
) -> Dataset:
    r"""k-class Gaussian mixture: :math:`x\mid c\sim\mathcal N(\mu_c,\sigma^2I_d)`, equidistant means.

    Means :math:`\mu_c=(s/\sqrt2)\,q_c` with :math:`q_1..q_k` random orthonormal vectors, so
    :math:`\|\mu_a-\mu_b\|=s` (``separation``) for every pair :math:`a\ne b` (requires ``k <= d``); with
    noise :math:`\sigma` (``noise_std``) the signal-to-noise ratio is :math:`s/\sigma`. Classes are
    balanced: ``n`` training labels are a permutation of ``arange(n) % k`` (same for the test set).

    Draws from ``Generator(PCG64(seed))``, in order: ``G = standard_normal((d, k))`` (``q`` = the Q factor
    of ``np.linalg.qr(G)`` with column signs fixed by ``sign(diag(R))``), ``labels_train =
    permutation(arange(n) % k)``, ``labels_test = permutation(arange(n_test) % k)``, ``Z =
    standard_normal((n + n_test, d))``; ``x = mu[labels] + noise_std * Z``.

    Returns float64 ``x`` ``(n, d)``, int64 labels (encoding ``labels``), ``n_classes=k``.
    """
    _check_counts(n=n, d=d, k=k, n_test=n_test)
    if not 2 <= k <= d:
        raise ValueError(f"gaussian_mixture needs 2 <= k <= d, got k={k}, d={d}")
    if not (separation >= 0 and noise_std > 0):
        raise ValueError(f"need separation >= 0 and noise_std > 0, got {separation}, {noise_std}")
    rng = _rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)
    mu = (float(separation) / np.sqrt(2.0)) * Q.T  # (k, d)
    lab_tr = rng.permutation(np.arange(n, dtype=np.int64) % k)
    lab_te = rng.permutation(np.arange(n_test, dtype=np.int64) % k)
    labels = np.concatenate([lab_tr, lab_te])
    X = mu[labels] + float(noise_std) * rng.standard_normal((n + n_test, d))
    return make_dataset(
        X[:n],
        lab_tr,
        X[n:],
        lab_te,
        n_classes=k,
        description={
            "source": {
                "kind": "gaussian_mixture",
                "n": n,
                "d": d,
                "k": k,
                "separation": float(separation),
                "noise_std": float(noise_std),
                "n_test": n_test,
                "seed": seed,
            },
            "targets": "labels",
        },
    )


def _erf(z: np.ndarray) -> np.ndarray:
    """The error function (scipy, imported on first use: it costs 0.2 s at start-up)."""
    from scipy.special import erf

    return erf(z)


#: Teacher activations (numpy): name -> elementwise function.
ACTIVATIONS = {
    "identity": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "erf": _erf,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "square": np.square,
}


def teacher_student(
    n: int = 1000,
    d: int = 20,
    width: int = 100,
    activation: str = "relu",
    seed: int = 0,
    n_test: int = 0,
    *,
    out_dim: int = 1,
    teacher_seed: int | None = None,
    noise_std: float = 0.0,
    labels: Literal["real", "sign"] = "real",
) -> Dataset:
    r"""Regression on a random two-layer teacher: :math:`y=a^\top\sigma(Wx/\sqrt d)/\sqrt m+\epsilon`.

    :math:`x\sim\mathcal N(0,I_d)`; teacher weights :math:`W\in\mathbb R^{m\times d}`, :math:`a\in\mathbb
    R^{m\times o}` with i.i.d. :math:`\mathcal N(0,1)` entries (:math:`m` = ``width``, :math:`o` =
    ``out_dim``), so pre-activations and outputs are :math:`O(1)` (NTK-style scaling); :math:`\sigma` is one
    of :data:`ACTIVATIONS`; optional label noise :math:`\epsilon\sim\mathcal N(0,\sigma_\epsilon^2)` with
    :math:`\sigma_\epsilon` = ``noise_std``.

    Draws: teacher stream ``Generator(PCG64([teacher_seed, 0x7EAC4E2]))`` (``teacher_seed`` defaults to
    ``seed``): ``W = standard_normal((width, d))``, then ``a = standard_normal((width, out_dim))``. Data
    stream ``Generator(PCG64(seed))``: ``X = standard_normal((n + n_test, d))``, then (only if
    ``noise_std > 0``) ``E = standard_normal((n + n_test, out_dim))``.

    Returns float64 ``x`` ``(n, d)`` and targets ``(n,)`` if ``out_dim == 1`` else ``(n, out_dim)``
    (encoding ``real``, ``n_classes=None``). With ``labels="sign"`` (``out_dim`` 1) the targets are the
    sign of the teacher's output, :math:`y=\operatorname{sign}(f(x)+\epsilon)` with sign(0) := +1: ±1
    (encoding ``plus_minus_one``, ``n_classes=2``), a binary classification task of a teacher network
    (paper 002 App. F's teacher labels).
    """
    _check_counts(n=n, d=d, width=width, out_dim=out_dim, n_test=n_test)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    if not noise_std >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if labels not in ("real", "sign"):
        raise ValueError(f"labels must be 'real' or 'sign', got {labels!r}")
    if labels == "sign" and out_dim != 1:
        raise ValueError(f"labels='sign' needs out_dim=1 (one teacher output), got out_dim={out_dim}")
    teacher_seed = seed if teacher_seed is None else teacher_seed
    trng = _rng([teacher_seed, _TAG_TS_TEACHER])
    W = trng.standard_normal((width, d))
    a = trng.standard_normal((width, out_dim))
    rng = _rng(seed)
    X = rng.standard_normal((n + n_test, d))
    Y = ACTIVATIONS[activation](X @ W.T / np.sqrt(d)) @ a / np.sqrt(width)
    if noise_std > 0:
        Y = Y + float(noise_std) * rng.standard_normal((n + n_test, out_dim))
    if out_dim == 1:
        Y = Y[:, 0]
    if labels == "sign":
        Y = np.where(Y >= 0, 1.0, -1.0)
    return make_dataset(
        X[:n],
        Y[:n],
        X[n:],
        Y[n:],
        n_classes=2 if labels == "sign" else None,
        description={
            "source": {
                "kind": "teacher_student",
                "n": n,
                "d": d,
                "width": width,
                "activation": activation,
                "out_dim": out_dim,
                "noise_std": float(noise_std),
                "n_test": n_test,
                "seed": seed,
                "teacher_seed": teacher_seed,
                **({"labels": labels} if labels != "real" else {}),
            },
            "targets": "plus_minus_one" if labels == "sign" else "real",
        },
    )


def random_labels(
    base: Dataset,
    seed: int = 0,
    *,
    mode: Literal["uniform", "permute"] = "uniform",
    apply_to_test: bool = False,
) -> Dataset:
    r"""Replace the training targets of ``base`` by random ones (Zhang et al.-style random labels).

    ``mode="uniform"``: each label is redrawn i.i.d. uniformly from the ``n_classes`` classes; needs
    classification targets encoded as ``labels`` or ``plus_minus_one`` (encode one-hot *after* this
    step). ``mode="permute"``: the targets are shuffled across samples (keeps the label histogram; works
    for every encoding, including regression). Inputs are unchanged; test targets are randomised too only
    if ``apply_to_test``.

    Draws from ``Generator(PCG64([seed, 0x4A4D0B1]))``: uniform — ``integers(0, n_classes, n_train)``
    (then, if ``apply_to_test``, ``integers(0, n_classes, n_test)``); ±1 targets map class 0 -> -1,
    1 -> +1. permute — ``permutation(n_train)`` (then ``permutation(n_test)``). Recorded as pipeline step
    ``{"op": "random_labels", "seed", "mode", "apply_to_test"}``.
    """
    if mode not in ("uniform", "permute"):
        raise ValueError(f"random_labels mode must be 'uniform' or 'permute', got {mode!r}")
    rng = _rng([seed, _TAG_RANDOM_LABELS])

    def redraw(y: np.ndarray) -> np.ndarray:
        if mode == "permute":
            return y[rng.permutation(y.shape[0])]
        if base.targets == "labels":
            return rng.integers(0, base.n_classes, y.shape[0]).astype(np.int64)
        if base.targets == "plus_minus_one":
            return np.where(rng.integers(0, 2, y.shape[0]) == 0, -1.0, 1.0).astype(y.dtype)
        raise ValueError(
            "random_labels(mode='uniform') needs 'labels' or 'plus_minus_one' targets, "
            f"got {base.targets!r}; apply it before one-hot encoding, or use mode='permute'"
        )

    y_train = redraw(base.y_train)
    y_test = redraw(base.y_test) if apply_to_test else None
    step = {"op": "random_labels", "seed": seed, "mode": mode, "apply_to_test": bool(apply_to_test)}
    return derive(base, step, y_train=y_train, y_test=y_test)
