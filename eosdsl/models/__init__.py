"""Models for edge-of-stability experiments, as pure init/apply functions.

``build_model(kind, **config) -> ModelFns`` builds an MLP, the two-layer linear net of paper 001 §4, a
deep linear net, a small CNN, a VGG-style net or a CIFAR ResNet-20 (batch norm off / on / ghost). Params
are plain nested dicts whose top-level keys are named parameter groups; batch norm is training-mode with
full-batch statistics, so a loss on a fixed batch is a function of the params alone. See
:mod:`eosdsl.models.build` for the API and the group names, :mod:`eosdsl.models.init` for the
initializers and parametrizations.

The package imports nothing eagerly: :mod:`eosdsl.models.configs` (the config dataclasses,
:func:`make_config`) is free of jax and flax, so the spec layer can validate networks without them; the
names below are imported from their modules on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers and editors; at run time __getattr__ imports them
    from eosdsl.models.build import OUTPUT_GROUP, ModelFns, build_model
    from eosdsl.models.configs import (
        INIT_SCHEMES,
        KINDS,
        CNNConfig,
        DeepLinearConfig,
        LayerInit,
        MLPConfig,
        ResNetConfig,
        TwoLayerLinearConfig,
        VGGConfig,
        make_config,
    )
    from eosdsl.models.mlp import ACTIVATIONS, batch_norm

_HOMES = {
    "ACTIVATIONS": "eosdsl.models.mlp",
    "INIT_SCHEMES": "eosdsl.models.configs",
    "KINDS": "eosdsl.models.configs",
    "OUTPUT_GROUP": "eosdsl.models.build",
    "CNNConfig": "eosdsl.models.configs",
    "DeepLinearConfig": "eosdsl.models.configs",
    "LayerInit": "eosdsl.models.configs",
    "MLPConfig": "eosdsl.models.configs",
    "ModelFns": "eosdsl.models.build",
    "ResNetConfig": "eosdsl.models.configs",
    "TwoLayerLinearConfig": "eosdsl.models.configs",
    "VGGConfig": "eosdsl.models.configs",
    "batch_norm": "eosdsl.models.mlp",
    "build_model": "eosdsl.models.build",
    "make_config": "eosdsl.models.configs",
}

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
assert sorted(__all__) == sorted(_HOMES), "every exported name has a home module"


def __getattr__(name: str) -> Any:
    """``from eosdsl.models import build_model`` imports :mod:`eosdsl.models.build` (and flax) only then."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
