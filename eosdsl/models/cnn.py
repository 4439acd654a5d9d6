"""Convolutional networks: a small CNN and a VGG-style network with configurable widths.

Inputs are ``(N, H, W, C)`` (NHWC) or flattened ``(N, H·W·C)``, reshaped to ``input_shape``. A conv layer
computes ``z = m_W · (x ⋆ K) + m_b · b`` with a ``k×k`` kernel ``K`` of shape ``(k, k, C_in, C_out)``,
stride 1 and symmetric zero padding ⌊k/2⌋ ("same" size, PyTorch's ``padding=k//2``), fan_in = k²·C_in;
then optional batch norm (training mode, full-batch or ghost statistics; see :mod:`eosdsl.models.mlp`),
then σ. Pooling is 2×2 with stride 2 (``max`` or ``avg``; odd sizes are floored).

Small CNN (``kind: cnn``; the CPU stand-in for ResNet18 suggested in digest seed-001 §6):

    [conv_i → (BN) → σ → pool]_{i < len(channels)} → flatten → [dense → (BN) → σ]* → dense(out)

VGG-style (``kind: vgg``; paper 004's VGG10, digest seed-004 §4.13: 3 stages × 3 convs, widths 8/16/32,
GhostBN with chunks of 1,024, no dropout):

    [[conv → (BN) → σ]^{convs_per_stage[s]} → pool]_{s < len(widths)}
        → head → [dense → (BN) → σ]* → dense(out)

with ``head`` ∈ {flatten, gap (global average pool)}. Paper 004 reports 47,892 parameters for its VGG10
"including BN" but not its pooling, head or conv bias; no simple choice of those reproduces the number,
so they are configurable and the count is reported by :func:`vgg_param_count`.

Parameter counts (C_0 = input channels, c_i = output channels of conv i, [·] = 1 if enabled):

    conv i:   k²·c_{i−1}·c_i + [bias]·c_i + [norm ∧ affine]·2·c_i
    dense j:  f_{j−1}·f_j + [bias]·f_j + [norm ∧ affine]·2·f_j,   output: f_last·out + [bias]·out

with f_0 = H'·W'·c_last after the pools (``flatten``) or c_last (``gap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.init import LayerInit, canonical_scheme
from eosdsl.models.mlp import (
    ACTIVATIONS,
    PRECISION,
    DenseLayer,
    NormKind,
    NormSpec,
    canonical_activation,
    check_norm,
    scale_bias_norm,
)

Array = jax.Array


class ConvLayer(nn.Module):
    """``m_W·(x ⋆ K) + m_b·b`` (stride ``stride``, padding ⌊k/2⌋) then optional batch norm; params
    ``kernel`` (k, k, C_in, C_out), ``bias`` and ``norm: {scale, bias}`` form one group."""

    features: int
    kernel_size: int
    layer_init: LayerInit
    use_bias: bool = True
    norm: NormSpec | None = None
    stride: int = 1
    param_dtype: Any = jnp.float64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, cin = self.kernel_size, x.shape[-1]
        fan_in = k * k * cin
        init = self.layer_init
        kernel = self.param("kernel", init.kernel(fan_in), (k, k, cin, self.features), self.param_dtype)
        dt = jnp.result_type(x.dtype, kernel.dtype)
        p = k // 2
        y = jax.lax.conv_general_dilated(
            x.astype(dt),
            kernel.astype(dt),
            window_strides=(self.stride, self.stride),
            padding=((p, p), (p, p)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=PRECISION,
        )
        return scale_bias_norm(self, y, init, fan_in)


def pool2x2(x: Array, kind: str) -> Array:
    """2×2 pooling with stride 2 (``max``/``avg``; ``none`` returns x)."""
    if kind == "max":
        return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    if kind == "avg":
        return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    return x


def as_images(x: Array, input_shape: tuple[int, int, int]) -> Array:
    """``x`` as an ``(N, H, W, C)`` batch (flattened inputs reshaped); ``ValueError`` on a size mismatch."""
    if x.shape[1:] == tuple(input_shape):
        return x
    size = input_shape[0] * input_shape[1] * input_shape[2]
    if x.ndim == 2 and x.shape[1] == size:
        return x.reshape((x.shape[0], *input_shape))
    raise ValueError(f"expected inputs of shape (N, {input_shape}) or (N, {size}), got {x.shape}")


@dataclass(frozen=True)
class ConvNetCommon:
    """Settings shared by the conv nets (``cnn``, ``vgg``, ``resnet20``).

    ``input_shape`` (H, W, C); ``out``; ``activation``; ``bias`` (conv and hidden dense biases; the output
    layer of the CNN/VGG follows it, ResNet's head always has one); ``init`` (one scheme for every layer),
    ``sigma``, ``ntk_beta`` (:mod:`eosdsl.models.init`); ``norm`` ∈ {none, batch, ghost} after every
    hidden conv/dense layer, ``ghost_size``, ``norm_affine``, ``eps``; ``dtype``.
    """

    input_shape: tuple[int, int, int] = (32, 32, 3)
    out: int = 10
    activation: str = "relu"
    bias: bool = True
    init: str = "torch_default"
    sigma: float | None = None
    ntk_beta: float = 1.0
    norm: NormKind = "none"
    ghost_size: int | None = None
    norm_affine: bool = True
    eps: float = 1e-5
    dtype: Literal["float32", "float64"] = "float64"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "input_shape", tuple(int(v) for v in self.input_shape))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (H, W, C) with positive entries, got {self.input_shape}")
        s(self, "out", int(self.out))
        if self.out < 1:
            raise ValueError("out must be ≥ 1")
        s(self, "activation", canonical_activation(self.activation))
        s(self, "init", canonical_scheme(self.init))
        check_norm(self.norm, self.ghost_size, self.eps)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        self.layer_init  # noqa: B018  (validates sigma for 'normal')

    @property
    def layer_init(self) -> LayerInit:
        """Init/parametrization of every weight layer."""
        return LayerInit(self.init, self.sigma, self.ntk_beta)

    @property
    def norm_spec(self) -> NormSpec | None:
        """Batch-norm spec of the hidden layers (``None``: no normalization)."""
        if self.norm == "none":
            return None
        return NormSpec(self.norm, self.ghost_size, self.norm_affine, self.eps)  # type: ignore[arg-type]

    @property
    def param_dtype(self) -> Any:
        """The jnp dtype of the parameters."""
        return jnp.dtype(self.dtype)

    def _norm_params(self, c: int) -> int:
        return 2 * c if self.norm != "none" and self.norm_affine else 0


def _positive_ints(values: Any, what: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if any(v < 1 for v in out):
        raise ValueError(f"{what} must be positive integers, got {out}")
    return out


@dataclass(frozen=True)
class _PooledConvNet(ConvNetCommon):
    kernel_size: int = 3
    pool: Literal["max", "avg", "none"] = "max"
    dense: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kernel_size", int(self.kernel_size))
        if self.kernel_size < 1:
            raise ValueError("kernel_size must be ≥ 1")
        if self.pool not in ("max", "avg", "none"):
            raise ValueError(f"pool must be 'max', 'avg' or 'none', got {self.pool!r}")
        object.__setattr__(self, "dense", _positive_ints(self.dense, "dense"))

    def _head_count(self, features: int) -> int:
        total = 0
        for width in self.dense:
            total += features * width + (width if self.bias else 0) + self._norm_params(width)
            features = width
        return total + features * self.out + (self.out if self.bias else 0)


@dataclass(frozen=True)
class CNNConfig(_PooledConvNet):
    """Config of ``kind: cnn``: conv ``channels`` (one conv + pool each), ``kernel_size``, ``pool``,
    hidden ``dense`` widths after the flatten, plus :class:`ConvNetCommon`."""

    channels: tuple[int, ...] = (16, 32)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "channels", _positive_ints(self.channels, "channels"))
        h, w, _ = self.input_shape
        if self.pool != "none" and min(h, w) < 2 ** len(self.channels):
            raise ValueError(f"input {self.input_shape} too small for {len(self.channels)} 2×2 pools")


def _dense_head(x: Array, cfg: _PooledConvNet) -> Array:
    for j, width in enumerate(cfg.dense):
        z = DenseLayer(width, cfg.layer_init, cfg.bias, cfg.norm_spec, cfg.param_dtype, name=f"dense{j}")(x)
        x = ACTIVATIONS[cfg.activation](z)
    return DenseLayer(cfg.out, cfg.layer_init, cfg.bias, None, cfg.param_dtype, name="output")(x)


class CNN(nn.Module):
    """The small CNN of :class:`CNNConfig`; groups ``conv0 …``, ``dense0 …``, ``output``."""

    config: CNNConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        x = as_images(x, cfg.input_shape)
        act = ACTIVATIONS[cfg.activation]
        for i, c in enumerate(cfg.channels):
            z = ConvLayer(
                c,
                cfg.kernel_size,
                cfg.layer_init,
                cfg.bias,
                cfg.norm_spec,
                1,
                cfg.param_dtype,
                name=f"conv{i}",
            )(x)
            x = pool2x2(act(z), cfg.pool)
        return _dense_head(x.reshape((x.shape[0], -1)), cfg)


def cnn_param_count(cfg: CNNConfig) -> int:
    """The module docstring's formula for the small CNN."""
    h, w, cin = cfg.input_shape
    k2, total = cfg.kernel_size**2, 0
    for c in cfg.channels:
        total += k2 * cin * c + (c if cfg.bias else 0) + cfg._norm_params(c)
        cin = c
        if cfg.pool != "none":
            h, w = h // 2, w // 2
    return total + cfg._head_count(h * w * cin)


@dataclass(frozen=True)
class VGGConfig(_PooledConvNet):
    """Config of ``kind: vgg``: per-stage conv ``widths`` (default paper 004's 8/16/32),
    ``convs_per_stage`` (one int or one per stage; default 3, i.e. VGG10 = 9 convs + 1 dense), ``head`` ∈
    {flatten, gap}, plus the pooled-convnet and :class:`ConvNetCommon` settings."""

    widths: tuple[int, ...] = (8, 16, 32)
    convs_per_stage: int | tuple[int, ...] = 3
    head: Literal["flatten", "gap"] = "flatten"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "widths", _positive_ints(self.widths, "widths"))
        cps = self.convs_per_stage
        cps = (
            (int(cps),) * len(self.widths) if isinstance(cps, int) else _positive_ints(cps, "convs_per_stage")
        )
        if len(cps) != len(self.widths) or min(cps, default=1) < 1:
            raise ValueError("convs_per_stage: one positive int, or one per stage")
        object.__setattr__(self, "convs_per_stage", cps)
        if self.head not in ("flatten", "gap"):
            raise ValueError(f"head must be 'flatten' or 'gap', got {self.head!r}")
        h, w, _ = self.input_shape
        if self.pool != "none" and min(h, w) < 2 ** len(self.widths):
            raise ValueError(f"input {self.input_shape} too small for {len(self.widths)} 2×2 pools")


class VGG(nn.Module):
    """The VGG-style net of :class:`VGGConfig`; groups ``stage{s}_conv{c}``, ``dense{j}``, ``output``."""

    config: VGGConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        x = as_images(x, cfg.input_shape)
        act = ACTIVATIONS[cfg.activation]
        for s, (width, n_convs) in enumerate(zip(cfg.widths, cfg.convs_per_stage, strict=True)):  # type: ignore[arg-type]
            for c in range(n_convs):
                z = ConvLayer(
                    width,
                    cfg.kernel_size,
                    cfg.layer_init,
                    cfg.bias,
                    cfg.norm_spec,
                    1,
                    cfg.param_dtype,
                    name=f"stage{s}_conv{c}",
                )(x)
                x = act(z)
            x = pool2x2(x, cfg.pool)
        x = jnp.mean(x, axis=(1, 2)) if cfg.head == "gap" else x.reshape((x.shape[0], -1))
        return _dense_head(x, cfg)


def vgg_param_count(cfg: VGGConfig) -> int:
    """The module docstring's formula for the VGG-style net."""
    h, w, cin = cfg.input_shape
    k2, total = cfg.kernel_size**2, 0
    for width, n_convs in zip(cfg.widths, cfg.convs_per_stage, strict=True):  # type: ignore[arg-type]
        for _ in range(n_convs):
            total += k2 * cin * width + (width if cfg.bias else 0) + cfg._norm_params(width)
            cin = width
        if cfg.pool != "none":
            h, w = h // 2, w // 2
    features = cin if cfg.head == "gap" else h * w * cin
    return total + cfg._head_count(features)
