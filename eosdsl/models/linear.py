"""Linear networks: the two-layer linear net of paper 001 §4 and deep linear nets.

Two-layer linear (``kind: two_layer_linear``; paper 001 §4.1):

    f(x) = Aᵀ W x / √m   (``scaling="ntk"``)   or   f(x) = Aᵀ W x   (``scaling="standard"``),

with ``W ∈ R^{m×d}`` (group ``W``) and ``A ∈ R^{m×k}`` (group ``A``, the output layer; k = 1 in the paper).
On a batch ``X ∈ R^{N×d}`` the outputs are ``F = X Wᵀ A / √m ∈ R^{N×k}``. Parameter count m·d + m·k
(d = 50, m = 400, k = 1: 20,400).

Initialization (paper 001 §4.2, the proof of Theorem 1): ``W_ij ~ N(0, 1/d)`` (so ``WᵀW ≈ (m/d) I``;
``w_std`` overrides 1/√d) and a *small* output layer ``A_qj ~ N(0, a_std²)`` so that F(0) ≈ 0 (Lemma 3.1's
hypothesis; with ‖x‖² ≈ d each output has std ≈ ``a_std``). The paper's value of the A scale is in its
missing appendices; ``a_std = 0.01`` is this module's default [suggestion] and ``a_std = 0`` gives
F(0) = 0 exactly.

Loss convention implied by paper 001: the identity
‖A_{t+1}‖² − ‖A_t‖² = −(4η/n) D_tᵀF_t + η²‖∇_A L_t‖² (D = F − Y, scalar output, no bias in A) holds for
L = (1/n) Σ_i (f_i − y_i)², i.e. :func:`eosdsl.problems.losses.mse` with ``convention="sum_over_n"`` (equal to
``"mean"`` for k = 1), *not* the ½ convention: ∇_A L = (2/(n√m)) W X D, so that
2η Aᵀ∇_A L = (4η/n) Fᵀ D.

Deep linear (``kind: deep_linear``): f(x) = W_out ⋯ W_1 x, the product of ``depth`` matrices, e.g. paper
001's "two-hidden-layer linear network" f = aᵀ W₂ W₁ x (depth 3). It is an :class:`~eosdsl.models.mlp.MLP`
with identity activation and no biases, so its groups are ``layer0 … layer{depth−2}, output``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.configs import DeepLinearConfig, TwoLayerLinearConfig
from eosdsl.models.init import normal
from eosdsl.models.mlp import PRECISION

Array = jax.Array


class TwoLayerLinear(nn.Module):
    """f(x) = Aᵀ W x / √m on a batch: ``F = X Wᵀ A / √m`` of shape (N, k)."""

    config: TwoLayerLinearConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.config
        dt = jnp.dtype(cfg.dtype)
        x = x.reshape((x.shape[0], -1))
        if x.shape[-1] != cfg.d:
            raise ValueError(f"two_layer_linear expects {cfg.d} input features, got {x.shape[-1]}")
        W = self.param("W", normal(cfg.weight_std), (cfg.m, cfg.d), dt)
        A = self.param("A", normal(cfg.a_std), (cfg.m, cfg.k), dt)
        f = jnp.matmul(jnp.matmul(x, W.T, precision=PRECISION), A, precision=PRECISION)
        return f / math.sqrt(cfg.m) if cfg.scaling == "ntk" else f


def two_layer_linear_param_count(cfg: TwoLayerLinearConfig) -> int:
    """P = m·d + m·k."""
    return cfg.m * cfg.d + cfg.m * cfg.k


def deep_linear_param_count(cfg: DeepLinearConfig) -> int:
    """P = Σ_l d_{l−1}·d_l with d_0 = in_dim, d_depth = out."""
    dims: tuple[Any, ...] = (cfg.in_dim, *cfg.widths, cfg.out)  # type: ignore[misc]
    return sum(int(a) * int(b) for a, b in zip(dims[:-1], dims[1:], strict=True))
