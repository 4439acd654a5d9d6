"""CIFAR ResNet-20 (He et al. 2016, §4.2), with batch norm off / on / ghost.

Architecture (``kind: resnet20``; paper 000 App. E.3.2, paper 004 §4.3):

    stem:   conv3×3(C → w_0) → (BN) → σ
    stages: s = 0, 1, 2 with widths w = (16, 32, 64), each ``blocks_per_stage`` = 3 basic blocks;
            the first block of stages 1 and 2 has stride 2
    block:  y = σ( (BN)(conv3×3(σ((BN)(conv3×3_stride(x))))) + shortcut(x) )
    head:   global average pool → dense(out) with bias

6·3 + 2 = 20 weight layers. Convolutions have no bias by default (the standard choice, since BN follows
them; ``bias=True`` adds them). With ``norm="none"`` there is no normalization and nothing else changes
(no Fixup-style rescaling: the residual branches add variance, so the output scale at He init grows with
depth; rescale the init if that matters).

Shortcuts where the shape changes (stride 2 and C_in ≠ C_out):

- ``shortcut="pad"`` (option A, the CIFAR ResNets of He et al.): ``x[:, ::2, ::2, :]`` with the new channels
  zero-padded equally on both sides; no parameters.
- ``shortcut="projection"`` (option B): conv1×1 with stride 2 → (BN).

Parameter count (BN affine: 2 per channel; no conv bias; 3-channel input, 10 classes):

    stem                         3·16·9 = 432             + BN 32
    stage 0, 3 blocks            3 · 2 · 16·16·9 = 13,824 + BN 3·64 = 192
    stage 1, block 0             16·32·9 + 32·32·9 = 13,824 + BN 128
    stage 1, blocks 1–2          2 · 2 · 32·32·9 = 36,864 + BN 256
    stage 2, block 0             32·64·9 + 64·64·9 = 55,296 + BN 256
    stage 2, blocks 1–2          2 · 2 · 64·64·9 = 147,456 + BN 512
    head                         64·10 + 10 = 650
    option A total               268,346 + 1,376 (BN) = 269,722   ("0.27M" of He et al., Table 6)
    option B adds                16·32 + BN 64 + 32·64 + BN 128 = 2,752   → 272,474

Without BN, option A has 268,346 parameters. Batch norm is training-mode with full-batch (or ghost)
statistics and no running averages (:mod:`eosdsl.models.mlp`): the output is a function of the
parameters and the batch only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.cnn import ConvLayer, as_images
from eosdsl.models.configs import ResNetConfig
from eosdsl.models.mlp import ACTIVATIONS, DenseLayer

Array = jax.Array


def _stride(stage: int, block: int) -> int:
    return 2 if stage > 0 and block == 0 else 1


class BasicBlock(nn.Module):
    """``σ(BN(conv(σ(BN(conv_stride(x))))) + shortcut(x))``; subgroups ``conv1``, ``conv2``, ``shortcut``."""

    config: ResNetConfig
    features: int
    stride: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        act = ACTIVATIONS[cfg.activation]
        args = (cfg.layer_init, cfg.bias, cfg.norm_spec)
        y = ConvLayer(self.features, 3, *args, self.stride, cfg.param_dtype, name="conv1")(x)
        y = ConvLayer(self.features, 3, *args, 1, cfg.param_dtype, name="conv2")(act(y))
        cin = x.shape[-1]
        if self.stride == 1 and cin == self.features:
            sc = x
        elif cfg.shortcut == "projection":
            sc = ConvLayer(self.features, 1, *args, self.stride, cfg.param_dtype, name="shortcut")(x)
        else:
            sc = x[:, :: self.stride, :: self.stride, :]
            extra = self.features - cin
            sc = jnp.pad(sc, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return act(y + sc)


class ResNet20(nn.Module):
    """CIFAR ResNet of :class:`ResNetConfig`; groups ``stem``, ``stage{s}_block{b}``, ``output``."""

    config: ResNetConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        x = as_images(x, cfg.input_shape)
        x = ConvLayer(
            cfg.widths[0], 3, cfg.layer_init, cfg.bias, cfg.norm_spec, 1, cfg.param_dtype, name="stem"
        )(x)
        x = ACTIVATIONS[cfg.activation](x)
        for s, width in enumerate(cfg.widths):
            for b in range(cfg.blocks_per_stage):
                x = BasicBlock(cfg, width, _stride(s, b), name=f"stage{s}_block{b}")(x)
        x = jnp.mean(x, axis=(1, 2))
        return DenseLayer(cfg.out, cfg.layer_init, True, None, cfg.param_dtype, name="output")(x)


def resnet_param_count(cfg: ResNetConfig) -> int:
    """The module docstring's formula: Σ convs (k²·C_in·C_out + [bias]·C_out + [BN affine]·2·C_out)
    + (projection shortcuts) + head w_last·out + out."""

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + (cout if cfg.bias else 0) + cfg._norm_params(cout)

    cin = cfg.input_shape[2]
    total = conv(3, cin, cfg.widths[0])
    cin = cfg.widths[0]
    for s, width in enumerate(cfg.widths):
        for b in range(cfg.blocks_per_stage):
            total += conv(3, cin, width) + conv(3, width, width)
            if cfg.shortcut == "projection" and (_stride(s, b) != 1 or cin != width):
                total += conv(1, cin, width)
            cin = width
    return total + cin * cfg.out + cfg.out
