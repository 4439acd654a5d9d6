"""Training losses with explicit normalization conventions, accuracy, and paper 002's loss/activation pairs.

Outputs are ``(N, k)`` (or ``(N,)`` for scalar models). Targets may be

- an array of the outputs' shape (one-hot 0/1 rows, ±1 values, regression targets), used as is;
- integer class labels ``(N,)`` for ``k > 1``: one-hot 0/1 encoded (MSE, Huber) or indexed (CE);
- values ``(N,)`` for scalar outputs ``(N, 1)`` (e.g. paper 001's y ∈ {±1}).

With residuals r = f − y over all N·k entries, the MSE conventions are

=====================  ===================  =============================================================
``convention``         L                    used by
=====================  ===================  =============================================================
``half_sum_over_n``    ½ Σ r² / N           the locuslab EoS code (``0.5*((f-y)**2).sum()/n``, one-hot
                                            0/1 targets over 10 outputs; paper 000 App. E) — default
``sum_over_n``         Σ r² / N             paper 001 (L = ‖D‖²/n, scalar output; paper 001 §2)
``mean``               Σ r² / (N·k)         ``torch.nn.MSELoss()`` (mean over all entries)
=====================  ===================  =============================================================

times ``scale``. The Hessian — hence the sharpness and the 2/η threshold it is compared with — scales
with the convention: relative to ``half_sum_over_n``, ``sum_over_n`` doubles it and ``mean`` multiplies it
by 2/k. For k = 1, ``sum_over_n`` = ``mean``; that is the convention under which paper 001's exact identity
‖A_{t+1}‖² − ‖A_t‖² = −(4η/n) D_tᵀF_t + η²‖∇_A L_t‖² holds for f = Aᵀ h(W, x).

Cross-entropy is the mean over examples of −log softmax(f_i)[y_i] (for one-hot or soft targets
−Σ_j y_ij log softmax(f_i)_j); the locuslab ``CrossEntropyLoss(reduction='sum')/n`` is the same number.
For a scalar output with ±1 targets it is the logistic loss mean_i log(1 + exp(−y_i f_i)).

The Huber loss (needed by paper 002) is h_δ(r) = ½r² for |r| ≤ δ, δ(|r| − ½δ) otherwise, summed over
entries and divided by N (``sum_over_n``, the δ → ∞ limit of which is ``mse`` with ``half_sum_over_n``) or
by N·k (``mean``, ``torch.nn.HuberLoss()``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
MSEConvention = Literal["half_sum_over_n", "mean", "sum_over_n"]
MSE_CONVENTIONS: tuple[str, ...] = ("half_sum_over_n", "mean", "sum_over_n")


def _concrete(x: Any) -> np.ndarray | None:
    """``x`` as a numpy array when its values are known (not under a trace), else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _is_integer(x: Any) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)


def align_targets(outputs: Array, targets: Array) -> Array:
    """``targets`` as an array of ``outputs``' shape and dtype (see the module docstring's rules)."""
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if targets.shape == outputs.shape:
        return targets.astype(outputs.dtype)
    if outputs.ndim >= 1 and targets.shape == outputs.shape[:-1]:
        if outputs.shape[-1] == 1:
            return targets[..., None].astype(outputs.dtype)
        if _is_integer(targets):
            return jax.nn.one_hot(targets, outputs.shape[-1], dtype=outputs.dtype)
    if targets.shape == (*outputs.shape, 1):
        return targets[..., 0].astype(outputs.dtype)
    raise ValueError(f"targets of shape {targets.shape} do not fit outputs of shape {outputs.shape}")


def mse(
    outputs: Array,
    targets: Array,
    convention: MSEConvention = "half_sum_over_n",
    scale: float = 1.0,
) -> Array:
    """Mean squared error: ``scale`` × {½Σr²/N, Σr²/(N·k), Σr²/N} for ``half_sum_over_n``, ``mean``,
    ``sum_over_n`` (r = f − y over all entries; N = ``outputs.shape[0]``)."""
    if convention not in MSE_CONVENTIONS:
        raise ValueError(f"unknown MSE convention {convention!r}; expected one of {MSE_CONVENTIONS}")
    outputs = jnp.asarray(outputs)
    r = outputs - align_targets(outputs, targets)
    total = jnp.sum(r * r)
    if convention == "half_sum_over_n":
        value = 0.5 * total / outputs.shape[0]
    elif convention == "sum_over_n":
        value = total / outputs.shape[0]
    else:
        value = total / r.size
    return value * scale if scale != 1.0 else value


def huber(
    outputs: Array,
    targets: Array,
    delta: float = 1.0,
    convention: Literal["sum_over_n", "mean"] = "sum_over_n",
    scale: float = 1.0,
) -> Array:
    """Huber loss ``scale`` × Σ h_δ(r)/N (``sum_over_n``) or Σ h_δ(r)/(N·k) (``mean``), with
    h_δ(r) = ½ min(|r|, δ)² + δ·(|r| − min(|r|, δ)) (C¹; its second derivative jumps at |r| = δ)."""
    if convention not in ("sum_over_n", "mean"):
        raise ValueError(f"unknown Huber convention {convention!r}; expected 'sum_over_n' or 'mean'")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    outputs = jnp.asarray(outputs)
    a = jnp.abs(outputs - align_targets(outputs, targets))
    quad = jnp.minimum(a, delta)
    total = jnp.sum(0.5 * quad * quad + delta * (a - quad))
    value = total / (outputs.shape[0] if convention == "sum_over_n" else a.size)
    return value * scale if scale != 1.0 else value


def cross_entropy(logits: Array, labels_or_onehot: Array) -> Array:
    """Mean over examples of −log softmax(f_i)[y_i].

    ``labels_or_onehot``: integer labels ``(N,)``; or one-hot / probability rows ``(N, k)``
    (−Σ_j y_ij log softmax(f_i)_j); or, for scalar logits ``(N,)``/``(N, 1)``, targets y ∈ {±1}, giving the
    logistic loss mean_i log(1 + exp(−y_i f_i)) (binary CE with P(y = +1) = sigmoid(f)). Values outside
    {±1} for scalar logits are rejected when they are concrete.
    """
    logits = jnp.asarray(logits)
    targets = jnp.asarray(labels_or_onehot)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        f = logits.reshape(logits.shape[0])
        y = targets.reshape(targets.shape[0]).astype(f.dtype)
        values = _concrete(labels_or_onehot)
        if values is not None and not np.all(np.isin(values, (-1, 1))):
            raise ValueError("cross_entropy with a scalar output needs ±1 targets")
        return jnp.mean(jax.nn.softplus(-y * f))
    logp = jax.nn.log_softmax(logits, axis=-1)
    if targets.shape == logits.shape[:-1] and _is_integer(targets):
        return -jnp.mean(jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1))
    if targets.shape == logits.shape:
        return -jnp.mean(jnp.sum(targets.astype(logp.dtype) * logp, axis=-1))
    raise ValueError(f"labels of shape {targets.shape} do not fit logits of shape {logits.shape}")


def accuracy(outputs: Array, targets: Array) -> Array:
    """Fraction of correct predictions.

    - ``k > 1`` outputs: ``argmax f_i`` against integer labels, or against ``argmax y_i`` of one-hot rows.
    - scalar outputs ``(N,)``/``(N, 1)``: ``sign(f_i) = y_i`` for y ∈ {±1} (f = 0 counts as wrong).
    """
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        f = outputs.reshape(outputs.shape[0])
        y = targets.reshape(targets.shape[0])
        return jnp.mean((jnp.sign(f) == jnp.sign(y)) & (f != 0))
    pred = jnp.argmax(outputs, axis=-1)
    labels = jnp.argmax(targets, axis=-1) if targets.shape == outputs.shape else targets
    return jnp.mean(pred == labels)


def one_hot(labels: Array, num_classes: int, dtype: Any = jnp.float64, off: float = 0.0) -> Array:
    """One-hot rows (1 at the label, ``off`` elsewhere; ``off = -1`` gives ±1 one-vs-rest codes)."""
    oh = jax.nn.one_hot(jnp.asarray(labels), num_classes, dtype=dtype)
    return oh if off == 0.0 else oh + off * (1 - oh)


def pm1(labels: Array, dtype: Any = jnp.float64) -> Array:
    """Binary labels {0, 1} (or booleans) as ±1 targets: y = 2·label − 1."""
    return 2 * jnp.asarray(labels).astype(dtype) - 1


_LOSSES: dict[str, Callable[..., Array]] = {"mse": mse, "huber": huber, "cross_entropy": cross_entropy}
_LOSS_ALIASES = {"l2": "mse", "ce": "cross_entropy", "xent": "cross_entropy"}


def make_loss(name: str, **opts: Any) -> Callable[[Array, Array], Array]:
    """``(outputs, targets) → scalar`` for ``name`` ∈ {mse (alias l2), huber, cross_entropy (alias ce)}
    with keyword options (``convention``, ``scale``, ``delta``); unknown names/options → ``ValueError``."""
    fn = _LOSSES.get(_LOSS_ALIASES.get(name, name))
    if fn is None:
        raise ValueError(
            f"unknown loss {name!r}; expected one of {sorted(_LOSSES)} (or {sorted(_LOSS_ALIASES)})"
        )
    allowed = list(inspect.signature(fn).parameters)[2:]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(f"loss {name!r}: unknown options {unknown}; allowed: {allowed}")
    if "convention" in opts:  # validate eagerly
        fn(jnp.zeros((1, 1)), jnp.zeros((1, 1)), **opts)
    return functools.partial(fn, **opts) if opts else fn


# ---------------------------------------------------------------------------------------------- paper 002

_L2 = {"loss": "mse", "loss_opts": {"convention": "half_sum_over_n"}}
_HUBER = {"loss": "huber", "loss_opts": {"delta": 1.0, "convention": "sum_over_n"}}
_TWO_LAYER = {"bias": False, "init": "torch_default", "norm": "none"}
_BN = {"norm": "batch", "norm_affine": False}


def _pair(
    loss: dict,
    activation: Any,
    dor: int,
    eos: bool,
    balancing: bool | None,
    figures: str,
    hidden_layers: int = 1,
    frozen_groups: tuple[str, ...] = (),
    **mlp: Any,
) -> dict[str, Any]:
    return {
        **loss,
        "activation": activation,
        "dor": dor,
        "paper_eos": eos,
        "paper_balancing": balancing,
        "figures": figures,
        "hidden_layers": hidden_layers,
        "frozen_groups": frozen_groups,
        "mlp": {**_TWO_LAYER, "activation": activation, **mlp},
    }


PAPER_002_PAIRS: dict[str, dict[str, Any]] = {
    "huber_tanh": _pair(_HUBER, "tanh", 0, True, True, "11(a), 12, 18; MNIST 28"),
    "huber_relu": _pair(_HUBER, "relu", 1, True, True, "11(b), 12, 19; MNIST 29"),
    "huber_cubic": _pair(_HUBER, "cubic", 3, True, True, "11(c), 12, 20; MNIST 30 (the paper's exception)"),
    "l2_tanh": _pair(_L2, "tanh", 0, True, True, "11(d), 12, 21; MNIST 31"),
    "l2_relu": _pair(_L2, "relu", 2, False, True, "11(e), 12, 22; MNIST 32"),
    "l2_cubic": _pair(_L2, "cubic", 6, False, False, "11(f), 12, 23; MNIST 33"),
    "l2_relu_bn": _pair(_L2, "relu", 0, True, None, "13, 25", **_BN),
    "l2_cubic_bn": _pair(_L2, "cubic", 0, True, None, "13, 27", **_BN),
    "huber_cubic_3layer": _pair(
        _HUBER, ("identity", "cubic"), 3, False, False, "24; MNIST 34", 2, ("output",)
    ),
    "huber_cubic_3layer_bn": _pair(
        _HUBER,
        ("identity", "cubic"),
        0,
        True,
        None,
        "26; MNIST 35",
        2,
        ("output",),
        norm_layers=(1,),
        **_BN,
    ),
}
"""Paper 002's loss × activation cases (§7, App. F, Table 1) as presets.

Each entry: ``loss`` and ``loss_opts`` (for :func:`make_loss`), ``activation``, the paper's degree of
regularity ``dor`` (Table 1; 0 with BN), whether the paper reports EoS (``paper_eos``) and balancing
(``paper_balancing``; ``None`` = not stated), its ``figures``, the number of ``hidden_layers``,
``frozen_groups`` (parameter groups the paper holds fixed) and ``mlp``: the MLP config fields, used as
``build_model("mlp", in_dim=..., widths=(m,) * hidden_layers, out=10, **mlp)``.

What the paper states: full-batch GD, constant LR, no momentum / weight decay; 2-layer nets
f(x) = W₂σ(W₁x) **without biases**; CIFAR-10-1k (d = 3072) or an MNIST subset (d = 784), one-hot labels,
10 outputs; loss ℓ2 or Huber; activation tanh, ReLU or cubic (x³); PyTorch default uniform init then
rescaled to prescribed ‖W₁‖_F, ‖W₂‖_F; BN is ``BatchNorm1d(affine=False)`` between the first linear layer
and the activation (3-layer model: between the second linear map and the nonlinearity). EoS is absent
exactly when dor ≥ 2 (except the 2-layer Huber + cubic net, which the paper flags as inconsistent with its
theory), balancing is absent when dor ≥ 3, and BN restores EoS.

What it leaves unspecified (stripped from the source) and what these presets choose:

- the hidden width m and the target norms ‖W_l‖_F: not set here (pass ``widths`` and ``weight_norms``);
- the MSE reduction: ``half_sum_over_n`` [inferred: the locuslab convention of Cohen et al., whose
  sharpness code the paper follows]; the Huber δ: 1.0 (PyTorch's default) [suggestion], reduction
  ``sum_over_n``, consistent with ℓ2 as δ → ∞;
- the 3-layer "toy-structured" net (model (4)): σ₁ linear, σ₂ cubic [recon], and a **fixed** last layer
  with entries U(·,·) (range stripped). ``build_model`` has no frozen layers: ``frozen_groups`` names the
  group the engine must hold fixed (its ``weight_norms``/init must also be set by the caller);
- the Lanczos cadence, learning rates, step counts and sample counts.
"""
