"""Models for edge-of-stability experiments, as pure init/apply functions (issue 4).

``build_model(kind, **config) -> ModelFns`` builds an MLP, the two-layer linear net of paper 001 §4, a
deep linear net, a small CNN, a VGG-style net or a CIFAR ResNet-20 (batch norm off / on / ghost). Params
are plain nested dicts whose top-level keys are named parameter groups; batch norm is training-mode with
full-batch statistics, so a loss on a fixed batch is a function of the params alone. See
:mod:`eosdsl.models.build` for the API and the group names, :mod:`eosdsl.models.init` for the
initializers and parametrizations.
"""

from __future__ import annotations

from eosdsl.models.build import KINDS, OUTPUT_GROUP, ModelFns, build_model, make_config
from eosdsl.models.cnn import CNNConfig, VGGConfig
from eosdsl.models.init import INIT_SCHEMES, LayerInit
from eosdsl.models.linear import DeepLinearConfig, TwoLayerLinearConfig
from eosdsl.models.mlp import ACTIVATIONS, MLPConfig, batch_norm
from eosdsl.models.resnet import ResNetConfig

__all__ = [
    "ACTIVATIONS",
    "INIT_SCHEMES",
    "KINDS",
    "OUTPUT_GROUP",
    "CNNConfig",
    "DeepLinearConfig",
    "LayerInit",
    "MLPConfig",
    "ModelFns",
    "ResNetConfig",
    "TwoLayerLinearConfig",
    "VGGConfig",
    "batch_norm",
    "build_model",
    "make_config",
]
