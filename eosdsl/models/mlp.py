"""Fully connected networks, plus the layer primitives every model in :mod:`eosdsl.models` shares.

MLP (``kind: mlp``), with ``h_0 = flatten(x)``:

    z_l = m_W · h_{l−1} W_l + m_b · b_l,   (optionally z_l ← BN(z_l)),   h_l = σ_l(z_l),   l = 1..L
    f(x) = m_W · h_L W_out + m_b · b_out

``W_l`` has shape ``(fan_in, fan_out)`` (flax's orientation; the papers' ``W_l`` is its transpose). The
multipliers ``m_W, m_b`` are 1 except under the NTK parametrization (:mod:`eosdsl.models.init`).

- Paper 004's fMNIST MLP (App. F) is ``in_dim=784, widths=(32, 32, 32, 32), out=10,
  bias=False, activation="relu"``: 784·32 + 3·32·32 + 32·10 = 28,480 parameters.
- The locuslab ``fc-relu`` of paper 000 (App. E) is ``in_dim=3072, widths=(200, 200),
  out=10, bias=True, init="torch_default"``: 3072·200+200 + 200·200+200 + 200·10+10 = 656,810.
- Paper 002's 2-layer nets (App. F) are ``widths=(m,), bias=False`` with activation tanh /
  relu / cubic and optionally ``norm="batch", norm_affine=False`` (``BatchNorm1d(affine=False)`` between
  the first linear layer and the activation).

Batch norm here is always in *training mode with full-batch statistics*: the mean and the (biased)
variance are taken over the batch passed to ``apply`` (per feature/channel), there are no running
averages and no mutable state, so the network output — and the training loss — is a function of the
parameters and the batch alone. ``ghost`` batch norm takes the statistics over fixed, consecutive chunks
of ``ghost_size`` examples in the order given (paper 004's GhostBatchNorm, §4 and App. F); a
last, shorter chunk is normalized over its own examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.configs import (  # noqa: F401  (re-exported: the configs live there, jax-free)
    ACTIVATION_NAMES,
    LayerInit,
    MLPConfig,
    NormKind,
    NormSpec,
    canonical_activation,
    check_norm,
    layer_name,
)
from eosdsl.models.init import ones, zeros

Array = jax.Array
PRECISION = jax.lax.Precision.HIGHEST
"""Matmuls and convolutions run at full precision (no TF32/bf16 passes on accelerators): sharpness
measurements near 2/η are sensitive to the last digits of float32 Hessian-vector products."""

# ------------------------------------------------------------------------------------------ activations


def _cubic(x: Array) -> Array:
    return x * x * x


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "softplus": jax.nn.softplus,
    "swish": jax.nn.silu,
    "identity": lambda x: x,
    "cubic": _cubic,
}
"""σ by name. ``gelu`` is the exact erf form (PyTorch's default, not flax's tanh approximation);
``swish`` is x·sigmoid(x) (= SiLU); ``cubic`` is x³ (paper 002's degree-3 activation)."""
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES, "eosdsl.models.configs.ACTIVATION_NAMES must list ACTIVATIONS"


def _standardize(x: Array, eps: float, axes: tuple[int, ...]) -> Array:
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def batch_norm(x: Array, *, ghost_size: int | None = None, eps: float = 1e-5) -> Array:
    """Training-mode batch normalization without affine parameters: (x − μ)/√(σ² + ε).

    μ and σ² (biased) are taken per feature (the last axis) over every other axis: the batch, and the
    spatial positions for ``(N, H, W, C)`` inputs. With ``ghost_size = g < N`` the batch is split into the
    fixed consecutive chunks ``[0, g), [g, 2g), …`` and each chunk uses its own statistics; a final chunk
    of ``N mod g`` examples uses its own as well (a chunk of one example normalizes to 0). Pure: the
    result depends on ``x`` only.
    """
    n = x.shape[0]
    batch_axes = tuple(range(x.ndim - 1))
    if ghost_size is None or ghost_size >= n:
        return _standardize(x, eps, batch_axes)
    g = int(ghost_size)
    k = n // g
    # full chunks: reshape (k·g, ...) → (k, g, ...) and reduce over every axis but the chunk and feature axes
    chunked = _standardize(x[: k * g].reshape((k, g) + x.shape[1:]), eps, tuple(range(1, x.ndim)))
    y = chunked.reshape((k * g,) + x.shape[1:])
    if n == k * g:
        return y
    return jnp.concatenate([y, _standardize(x[k * g :], eps, batch_axes)], axis=0)


class BatchNorm(nn.Module):
    """``γ ⊙ batch_norm(x) + β`` (γ = ``scale`` init 1, β = ``bias`` init 0; omitted if not affine).

    Training-mode, full-batch (or ghost-chunk) statistics; no running averages, no mutable collections.
    """

    spec: NormSpec
    param_dtype: Any = jnp.float64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        ghost = self.spec.ghost_size if self.spec.kind == "ghost" else None
        y = batch_norm(x, ghost_size=ghost, eps=self.spec.eps)
        if self.spec.affine:
            c = x.shape[-1]
            y = y * self.param("scale", ones, (c,), self.param_dtype) + self.param(
                "bias", zeros, (c,), self.param_dtype
            )
        return y


# ------------------------------------------------------------------------------------------ dense layer


def scale_bias_norm(layer: nn.Module, y: Array, init: LayerInit, fan_in: int) -> Array:
    """The tail shared by dense and conv layers: y ↦ m_W·y + m_b·b, then optional batch norm.

    Called from ``layer``'s compact ``__call__``, so ``bias`` and ``norm`` are ``layer``'s own parameters
    (``layer`` has ``features``, ``use_bias``, ``norm`` and ``param_dtype``).
    """
    if (mw := init.weight_multiplier(fan_in)) != 1.0:
        y = y * mw
    if layer.use_bias:
        b = layer.param("bias", init.bias(fan_in), (layer.features,), layer.param_dtype)
        y = y + (b * init.bias_multiplier if init.bias_multiplier != 1.0 else b)
    if layer.norm is not None:
        y = BatchNorm(layer.norm, layer.param_dtype, name="norm")(y)
    return y


class DenseLayer(nn.Module):
    """``m_W · x W + m_b · b`` then optional batch norm; params ``kernel`` (fan_in, features), ``bias``
    and ``norm: {scale, bias}`` live together so that the layer is one named parameter group."""

    features: int
    layer_init: LayerInit
    use_bias: bool = True
    norm: NormSpec | None = None
    param_dtype: Any = jnp.float64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        init = self.layer_init
        kernel = self.param("kernel", init.kernel(fan_in), (fan_in, self.features), self.param_dtype)
        y = jnp.matmul(x, kernel, precision=PRECISION)
        return scale_bias_norm(self, y, init, fan_in)


# ------------------------------------------------------------------------------------------ MLP


class MLP(nn.Module):
    """The MLP of :class:`MLPConfig`; ``__call__(x, return_hidden)`` returns ``f`` or ``(f, [z_l])``.

    The hidden values ``z_l`` are the inputs of the activations (after batch norm if any): the
    pre-activations used for dead-ReLU counting.
    """

    config: MLPConfig

    @nn.compact
    def __call__(self, x: Array, return_hidden: bool = False) -> Array | tuple[Array, list[Array]]:
        cfg = self.config
        h = x.reshape((x.shape[0], -1))
        if h.shape[-1] != cfg.in_dim:
            raise ValueError(f"MLP expects {cfg.in_dim} input features, got {h.shape[-1]}")
        hidden = []
        nh = len(cfg.widths)
        for layer, width in enumerate(cfg.widths):
            z = DenseLayer(
                width,
                cfg.layer_init(layer),
                cfg.bias,
                cfg.norm_of(layer),
                cfg.param_dtype,
                name=layer_name(layer, nh),
            )(h)
            hidden.append(z)
            h = ACTIVATIONS[cfg.activation_of(layer)](z)
        f = DenseLayer(
            cfg.out, cfg.layer_init(nh), cfg.has_output_bias, None, cfg.param_dtype, name=layer_name(nh, nh)
        )(h)
        return (f, hidden) if return_hidden else f


def mlp_param_count(cfg: MLPConfig) -> int:
    """P = Σ_l (d_{l−1}·d_l + [bias_l]·d_l) + Σ_{normalized l} [affine]·2·d_l, with d_0 = in_dim,
    d_{L+1} = out (the formula, not a count of leaves)."""
    dims = (cfg.in_dim, *cfg.widths, cfg.out)
    total = 0
    for layer in range(cfg.n_layers):
        fan_in, fan_out = dims[layer], dims[layer + 1]
        has_bias = cfg.has_output_bias if layer == len(cfg.widths) else cfg.bias
        total += fan_in * fan_out + (fan_out if has_bias else 0)
        if layer < len(cfg.widths) and (spec := cfg.norm_of(layer)) is not None and spec.affine:
            total += 2 * fan_out
    return total


def rescale_weight_norms(params: dict[str, Any], cfg: MLPConfig) -> dict[str, Any]:
    """Rescale each kernel to the Frobenius norm in ``cfg.weight_norms`` (``None`` entries untouched)."""
    if cfg.weight_norms is None:
        return params
    out = dict(params)
    nh = len(cfg.widths)
    for layer, target in enumerate(cfg.weight_norms):
        if target is None:
            continue
        name = layer_name(layer, nh)
        kernel = params[name]["kernel"]
        norm = jnp.linalg.norm(kernel)
        out[name] = {**params[name], "kernel": kernel * (target / jnp.where(norm > 0, norm, 1.0))}
    return out
