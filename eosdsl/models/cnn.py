"""Convolutional networks: a small CNN and a VGG-style network with configurable widths.

Inputs are ``(N, H, W, C)`` (NHWC) or flattened ``(N, H·W·C)``, reshaped to ``input_shape``. A conv layer
computes ``z = m_W · (x ⋆ K) + m_b · b`` with a ``k×k`` kernel ``K`` of shape ``(k, k, C_in, C_out)``,
stride 1 and symmetric zero padding ⌊k/2⌋ ("same" size, PyTorch's ``padding=k//2``), fan_in = k²·C_in;
then optional batch norm (training mode, full-batch or ghost statistics; see :mod:`eosdsl.models.mlp`),
then σ. Pooling is 2×2 with stride 2 (``max`` or ``avg``; odd sizes are floored).

Small CNN (``kind: cnn``; a CPU stand-in for paper 001's ResNet18, §3.2):

    [conv_i → (BN) → σ → pool]_{i < len(channels)} → flatten → [dense → (BN) → σ]* → dense(out)

VGG-style (``kind: vgg``; paper 004's VGG10, App. F: 3 stages × 3 convs, widths 8/16/32,
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

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.configs import (  # noqa: F401  (re-exported: the configs live there, jax-free)
    CNNConfig,
    ConvNetCommon,
    LayerInit,
    NormSpec,
    VGGConfig,
    _PooledConvNet,
)
from eosdsl.models.mlp import ACTIVATIONS, PRECISION, DenseLayer, scale_bias_norm

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
