"""``build_model(kind, **config) -> ModelFns``: pure init/apply functions for every model family.

No registry: ``kind`` selects a config dataclass (:mod:`eosdsl.models.configs`, free of jax), which
validates and completes ``config`` (unknown keys are a ``ValueError``), and a flax linen module. The
returned :class:`ModelFns` hides flax: parameters are a plain nested ``dict`` pytree
(``jax.flatten_util.ravel_pytree`` flattens it), ``init`` is deterministic given the key, and ``apply``
is a pure, jit-able function of ``(params, x)``.

Batch norm, where configured, is always in training mode with the statistics of the batch passed to
``apply`` (ghost BN: of fixed consecutive chunks of ``ghost_size`` examples); there are no running
averages and no mutable state, so ``apply(params, X)`` on the full training batch — and hence the
full-batch training loss and its Hessian — is a function of ``params`` alone.

The top-level keys of ``params`` are the named parameter groups and partition the parameters:

==================  ==========================================================  ============
kind                groups                                                      output group
==================  ==========================================================  ============
mlp, deep_linear    ``layer0 … layer{L−1}``, ``output``                          ``output``
two_layer_linear    ``W`` (m×d), ``A`` (m×k)                                     ``A``
cnn                 ``conv0 …``, ``dense0 …``, ``output``                        ``output``
vgg                 ``stage{s}_conv{c} …``, ``dense0 …``, ``output``             ``output``
resnet20            ``stem``, ``stage{s}_block{b} …``, ``output``                ``output``
==================  ==========================================================  ============

Each layer group holds ``kernel`` (and ``bias``, and ``norm: {scale, bias}`` when present); a ResNet block
holds ``conv1``, ``conv2`` (and ``shortcut``) subgroups. :data:`OUTPUT_GROUP` names the output layer of
each kind, e.g. for the ‖A‖² measurements of paper 001.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from eosdsl.models.cnn import CNN, VGG, cnn_param_count, vgg_param_count
from eosdsl.models.configs import KINDS, MLPConfig, make_config  # noqa: F401  (KINDS, make_config re-exported)
from eosdsl.models.linear import TwoLayerLinear, deep_linear_param_count, two_layer_linear_param_count
from eosdsl.models.mlp import MLP, mlp_param_count, rescale_weight_norms
from eosdsl.models.resnet import ResNet20, resnet_param_count

Params = dict[str, Any]
Kind = Literal["mlp", "two_layer_linear", "deep_linear", "cnn", "vgg", "resnet20"]

OUTPUT_GROUP: dict[str, str] = {
    "mlp": "output",
    "two_layer_linear": "A",
    "deep_linear": "output",
    "cnn": "output",
    "vgg": "output",
    "resnet20": "output",
}
"""Name of the output-layer group (the ``A`` of f = Aᵀh(W, x) in paper 001) for each kind."""


@dataclass(frozen=True)
class ModelFns:
    """Pure functions of one model.

    - ``init(key) → params``: a nested dict; deterministic given the key.
    - ``apply(params, x) → (N, out)``: pure and jit-able; batch norm (if any) uses the statistics of
      ``x`` (training mode, no running averages), so the loss on a fixed batch depends on params alone.
    - ``groups(params) → {name: subtree}``: the named parameter groups (they partition the params).
    - ``count_formula``: the parameter count from the config, by formula.
    - ``description``: the completed config, ``{"kind": kind, **fields}``.
    - ``hidden(params, x) → [z_l]``: the activation inputs of each hidden layer (MLP, deep linear);
      ``None`` for the other kinds.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    groups: Callable[[Params], dict[str, Any]]
    count_formula: int
    description: dict
    hidden: Callable[[Params, jax.Array], list[jax.Array]] | None = None


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _groups_fn(output: str) -> Callable[[Params], dict[str, Any]]:
    """``params → {group: subtree}`` in forward order: ``stem``; ``layer``/``conv``/``stage`` groups and
    ``W`` by their indices; ``dense`` groups; the output group last."""

    def rank(name: str) -> tuple[Any, ...]:
        stage = 3 if name == output else 0 if name == "stem" else 2 if name.startswith("dense") else 1
        return (stage, _natural_key(name))

    def groups(params: Params) -> dict[str, Any]:
        return {name: params[name] for name in sorted(params, key=rank)}

    return groups


def build_model(kind: Kind, **config: Any) -> ModelFns:
    """Build the :class:`ModelFns` of model ``kind`` from its config (see each config dataclass).

    Kinds and their configs: ``mlp`` (:class:`~eosdsl.models.mlp.MLPConfig`), ``two_layer_linear``
    (:class:`~eosdsl.models.linear.TwoLayerLinearConfig`), ``deep_linear``
    (:class:`~eosdsl.models.linear.DeepLinearConfig`), ``cnn`` (:class:`~eosdsl.models.cnn.CNNConfig`),
    ``vgg`` (:class:`~eosdsl.models.cnn.VGGConfig`), ``resnet20``
    (:class:`~eosdsl.models.resnet.ResNetConfig`).
    """
    cfg = make_config(kind, **config)
    description = {"kind": kind, **dataclasses.asdict(cfg)}
    mlp_cfg: MLPConfig | None = None
    module: nn.Module
    if kind == "mlp":
        mlp_cfg = cfg
        module, count, in_shape = MLP(cfg), mlp_param_count(cfg), (cfg.in_dim,)
    elif kind == "deep_linear":
        mlp_cfg = cfg.as_mlp()
        module, count, in_shape = MLP(mlp_cfg), deep_linear_param_count(cfg), (cfg.in_dim,)
    elif kind == "two_layer_linear":
        module, count, in_shape = TwoLayerLinear(cfg), two_layer_linear_param_count(cfg), (cfg.d,)
    elif kind == "cnn":
        module, count, in_shape = CNN(cfg), cnn_param_count(cfg), cfg.input_shape
    elif kind == "vgg":
        module, count, in_shape = VGG(cfg), vgg_param_count(cfg), cfg.input_shape
    else:
        module, count, in_shape = ResNet20(cfg), resnet_param_count(cfg), cfg.input_shape
    dtype = jnp.dtype(cfg.dtype)

    def init(key: jax.Array) -> Params:
        # lazy_init draws the parameters without running the forward pass on a dummy batch
        variables = module.lazy_init(key, jax.ShapeDtypeStruct((2, *in_shape), dtype))
        params = flax.core.unfreeze(variables)["params"]
        if mlp_cfg is not None:
            params = rescale_weight_norms(params, mlp_cfg)
        return params

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    hidden = None
    if mlp_cfg is not None:

        def hidden(params: Params, x: jax.Array) -> list[jax.Array]:
            return module.apply({"params": params}, x, return_hidden=True)[1]

    # init is jitted: one compile instead of one per eager op (init of a ResNet-20 compiles ~2x faster)
    return ModelFns(jax.jit(init), apply, _groups_fn(OUTPUT_GROUP[kind]), count, description, hidden)
