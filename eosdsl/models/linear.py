"""Linear networks: the two-layer linear net of paper 001 §4 and deep linear nets.

Two-layer linear (``kind: two_layer_linear``; digest seed-001 §3.4, §4):

    f(x) = Aᵀ W x / √m   (``scaling="ntk"``)   or   f(x) = Aᵀ W x   (``scaling="standard"``),

with ``W ∈ R^{m×d}`` (group ``W``) and ``A ∈ R^{m×k}`` (group ``A``, the output layer; k = 1 in the paper).
On a batch ``X ∈ R^{N×d}`` the outputs are ``F = X Wᵀ A / √m ∈ R^{N×k}``. Parameter count m·d + m·k
(d = 50, m = 400, k = 1: 20,400).

Initialization (digest seed-001 §2.0, §3.4 Theorem 1, E6): ``W_ij ~ N(0, 1/d)`` (so ``WᵀW ≈ (m/d) I``;
``w_std`` overrides 1/√d) and a *small* output layer ``A_qj ~ N(0, a_std²)`` so that F(0) ≈ 0 (Lemma 3.1's
hypothesis; with ‖x‖² ≈ d each output has std ≈ ``a_std``). The paper's value of the A scale is in its
missing appendices; ``a_std = 0.01`` is this module's default [suggestion] and ``a_std = 0`` gives
F(0) = 0 exactly.

Loss convention implied by paper 001: the identity
‖A_{t+1}‖² − ‖A_t‖² = −(4η/n) D_tᵀF_t + η²‖∇_A L_t‖² (D = F − Y, scalar output, no bias in A) holds for
L = (1/n) Σ_i (f_i − y_i)², i.e. :func:`eosdsl.losses.mse` with ``convention="sum_over_n"`` (equal to
``"mean"`` for k = 1), *not* the ½ convention: ∇_A L = (2/(n√m)) W X D, so that
2η Aᵀ∇_A L = (4η/n) Fᵀ D.

Deep linear (``kind: deep_linear``): f(x) = W_out ⋯ W_1 x, the product of ``depth`` matrices, e.g. paper
001's "two-hidden-layer linear network" f = aᵀ W₂ W₁ x (depth 3). It is an :class:`~eosdsl.models.mlp.MLP`
with identity activation and no biases, so its groups are ``layer0 … layer{depth−2}, output``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.init import canonical_scheme, normal
from eosdsl.models.mlp import PRECISION, MLPConfig

Array = jax.Array


@dataclass(frozen=True)
class TwoLayerLinearConfig:
    """Config of ``kind: two_layer_linear``: input dim ``d``, width ``m``, outputs ``k``; ``scaling`` ∈
    {ntk (1/√m), standard}; ``w_std`` (default 1/√d) and ``a_std`` (default 0.01) are the init stds."""

    d: int
    m: int
    k: int = 1
    scaling: Literal["ntk", "standard"] = "ntk"
    w_std: float | None = None
    a_std: float = 0.01
    dtype: Literal["float32", "float64"] = "float64"

    def __post_init__(self) -> None:
        for name in ("d", "m", "k"):
            object.__setattr__(self, name, int(getattr(self, name)))
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1")
        if self.scaling not in ("ntk", "standard"):
            raise ValueError(f"scaling must be 'ntk' or 'standard', got {self.scaling!r}")
        if self.w_std is not None and not self.w_std >= 0:
            raise ValueError("w_std must be ≥ 0")
        if not self.a_std >= 0:
            raise ValueError("a_std must be ≥ 0")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def weight_std(self) -> float:
        """Std of the entries of W: ``w_std`` or 1/√d."""
        return 1.0 / math.sqrt(self.d) if self.w_std is None else float(self.w_std)


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


@dataclass(frozen=True)
class DeepLinearConfig:
    """Config of ``kind: deep_linear``: f(x) = W_out ⋯ W_1 x.

    Give the hidden ``widths`` (``depth = len(widths) + 1`` matrices), or ``depth`` and one ``width``.
    ``init``/``sigma`` as for the MLP (one scheme, or one per matrix); default PyTorch's.
    """

    in_dim: int
    widths: tuple[int, ...] | None = None
    out: int = 1
    depth: int | None = None
    width: int | None = None
    init: str | tuple[str, ...] = "torch_default"
    sigma: float | None | tuple[float | None, ...] = None
    dtype: Literal["float32", "float64"] = "float64"

    def __post_init__(self) -> None:
        if self.widths is None:
            if self.depth is None or self.width is None:
                raise ValueError("deep_linear needs widths, or depth and width")
            if int(self.depth) < 1:
                raise ValueError("depth must be ≥ 1")
            object.__setattr__(self, "widths", (int(self.width),) * (int(self.depth) - 1))
        else:
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
            if self.depth is not None and int(self.depth) != len(self.widths) + 1:
                raise ValueError(f"depth {self.depth} disagrees with {len(self.widths)} hidden widths")
            if self.width is not None:
                raise ValueError("give either widths or (depth, width), not both")
        object.__setattr__(self, "depth", len(self.widths) + 1)
        object.__setattr__(self, "width", None)
        if not isinstance(self.init, str):
            object.__setattr__(self, "init", tuple(canonical_scheme(i) for i in self.init))
        else:
            object.__setattr__(self, "init", canonical_scheme(self.init))
        self.as_mlp()  # validates the rest

    def as_mlp(self) -> MLPConfig:
        """The equivalent MLP config: identity activation, no biases."""
        return MLPConfig(
            in_dim=self.in_dim,
            widths=self.widths,  # type: ignore[arg-type]
            out=self.out,
            activation="identity",
            bias=False,
            init=self.init,
            sigma=self.sigma,
            dtype=self.dtype,
        )


def deep_linear_param_count(cfg: DeepLinearConfig) -> int:
    """P = Σ_l d_{l−1}·d_l with d_0 = in_dim, d_depth = out."""
    dims: tuple[Any, ...] = (cfg.in_dim, *cfg.widths, cfg.out)  # type: ignore[misc]
    return sum(int(a) * int(b) for a, b in zip(dims[:-1], dims[1:], strict=True))
