"""Weight initializers and the standard / NTK parametrizations of a linear map.

A layer computes ``y = m_W · x W + m_b · b`` (``W`` of shape ``(fan_in, fan_out)``, or ``(kh, kw, c_in,
c_out)`` for a convolution, where ``fan_in = kh·kw·c_in``). The *scheme* fixes how ``W`` and ``b`` are
drawn and the forward multipliers ``m_W`` and ``m_b``:

=================  =====================================  ========================  ================
scheme             W                                      b                         m_W, m_b
=================  =====================================  ========================  ================
``torch_default``  U(−1/√fan_in, 1/√fan_in)               U(−1/√fan_in, 1/√fan_in)  1, 1
``lecun``          N(0, 1/fan_in)                         0                         1, 1
``he``             N(0, 2/fan_in)                         0                         1, 1
``normal``         N(0, σ²)  (``sigma`` required)          0                         1, 1
``uniform``        U(−σ, σ)  (``sigma`` required)         0                         1, 1
``ntk``            N(0, 1)                                N(0, 1)                   σ/√fan_in, β
``zeros``          0                                      0                         1, 1
=================  =====================================  ========================  ================

- ``torch_default`` is PyTorch's ``nn.Linear`` / ``nn.Conv2d`` default (``kaiming_uniform_(a=√5)`` gives
  the bound 1/√fan_in for W; the bias bound is also 1/√fan_in). It is the convention of the locuslab EoS
  code (paper 000 App. E) and of paper 002's networks (App. F).
- ``lecun`` and ``he`` are *untruncated* Gaussians with the stated variances. (Flax's ``lecun_normal``
  draws from a truncated normal rescaled to the same variance; the variance is what matters here, and an
  untruncated draw makes the init statistics exactly those in the table.)
- ``ntk`` is the neural-tangent parametrization (Jacot et al. 2018): the stored parameters are standard
  normal and the layer multiplies by σ/√fan_in in the forward pass (σ = ``sigma``, default 1), so the
  pre-activation scale equals that of ``lecun`` (σ = 1) at init but the gradients, the Hessian and hence
  the sharpness are those of the NTK parametrization. The bias enters as β·b (β = ``ntk_beta``, default 1;
  Jacot et al. used β = 0.1).
- ``zeros`` is for a single layer, e.g. a zero output layer so that F(0) = 0 (paper 001 Lemma 3.1).

The b column is the default, ``bias_init: scheme``. A network's ``bias_init`` (with ``bias_scale`` = c)
draws the biases independently of the weight scheme instead: ``zeros``; ``constant`` (b = c);
``normal`` (N(0, c²)); ``uniform`` (U(−c, c)); the multiplier m_b is unchanged.

Aliases accepted by :func:`canonical_scheme`: ``pytorch``/``torch`` → ``torch_default``,
``lecun_normal`` → ``lecun``, ``he_normal``/``kaiming_normal`` → ``he``, ``gaussian`` → ``normal``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from eosdsl.models.configs import INIT_SCHEMES, LayerInit, canonical_scheme  # noqa: F401  (re-exported)

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]
"""``(key, shape, dtype) → array``, the signature flax's ``Module.param`` calls."""


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(int(s) for s in shape)


def _draw(sample: Callable[[jax.Array, tuple[int, ...]], jax.Array], key: jax.Array, shape: tuple[int, ...]):
    """``sample(key, (m,))[:n].reshape(shape)`` with n = prod(shape) and m the next power of two ≥ n.

    Same i.i.d. distribution as drawing ``shape`` directly. Drawing flat vectors of a few sizes lets jax
    reuse a handful of compiled threefry kernels across all layers and models (on XLA:CPU a kernel for a
    new 4-D conv-kernel shape takes ~2 s to compile, a 1-D one ~0.2 s).
    """
    n = _size(shape)
    m = 1 << max(n - 1, 0).bit_length()
    return sample(key, (m,))[:n].reshape(shape)


def uniform(bound: float) -> Initializer:
    """U(−bound, bound), elementwise i.i.d."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        return _draw(lambda k, s: jax.random.uniform(k, s, dtype, minval=-bound, maxval=bound), key, shape)

    return init


def normal(std: float) -> Initializer:
    """N(0, std²), elementwise i.i.d., untruncated."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        return std * _draw(lambda k, s: jax.random.normal(k, s, dtype), key, shape)

    return init


def zeros(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """All zeros (the key is ignored)."""
    del key
    return jnp.zeros(shape, dtype)


def constant(value: float) -> Initializer:
    """Every entry equal to ``value`` (the key is ignored)."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        del key
        return jnp.full(shape, value, dtype)

    return init


def ones(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """All ones (the key is ignored); the batch-norm scale."""
    del key
    return jnp.ones(shape, dtype)
