"""The model config dataclasses, the kind table and :func:`make_config`, without jax or flax.

Each ``kind`` of :func:`eosdsl.models.build.build_model` has a frozen config dataclass here, which
validates and completes its fields (activation and init-scheme names, widths, batch norm, dtype). The
spec layer (:mod:`eosdsl.spec.networks`) generates its network models from these classes and validates a
network at spec time with :func:`make_config`, so importing it must not pull in jax or flax: the flax
modules (:mod:`eosdsl.models.mlp`, ``cnn``, ``linear``, ``resnet``) import the classes from here, and
the initializers and activation functions themselves are looked up only when a network is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from eosdsl.models.init import Initializer

# ------------------------------------------------------------------------------------------ init schemes

INIT_SCHEMES: tuple[str, ...] = ("torch_default", "lecun", "he", "normal", "uniform", "ntk", "zeros")

BIAS_INITS: tuple[str, ...] = ("scheme", "zeros", "constant", "normal", "uniform")
"""Bias initializations independent of the weight scheme (``bias_init``): ``scheme`` draws the biases as
the weight scheme does (the table of :mod:`eosdsl.models.init`); ``zeros``; ``constant`` (every bias =
``bias_scale``); ``normal`` (N(0, bias_scale²)); ``uniform`` (U(−bias_scale, bias_scale))."""

BIAS_INIT_DESCRIPTION = (
    "How the biases are drawn, independently of the weight scheme `init`: `scheme` (default) as `init` "
    "draws them (U(−1/√fan_in, 1/√fan_in) under torch_default, N(0, 1) under ntk, else 0); `zeros`; "
    "`constant` (every bias = bias_scale); `normal` (i.i.d. N(0, bias_scale²)); `uniform` (i.i.d. "
    "U(−bias_scale, bias_scale)). Under ntk the forward multiplier ntk_beta still applies."
)
BIAS_SCALE_DESCRIPTION = (
    "The number of bias_init: the constant of `constant`, the standard deviation of `normal`, the bound "
    "of `uniform` (required there; ≥ 0 for normal and uniform; omit it otherwise)."
)
_PER_LAYER = " One value, or one per layer (hidden layers then the output layer)."

_ALIASES = {
    "pytorch": "torch_default",
    "torch": "torch_default",
    "pytorch_default": "torch_default",
    "lecun_normal": "lecun",
    "he_normal": "he",
    "kaiming_normal": "he",
    "gaussian": "normal",
}


def canonical_scheme(name: str) -> str:
    """The canonical name of an init scheme (aliases resolved); ``ValueError`` if unknown."""
    scheme = _ALIASES.get(name, name)
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {name!r}; expected one of {INIT_SCHEMES} (or an alias)")
    return scheme


@dataclass(frozen=True)
class LayerInit:
    """How one linear/conv layer is initialized and parametrized (see the module docstring's table).

    ``sigma`` is the weight std of ``normal`` (required there) and the forward multiplier σ of ``ntk``
    (default 1); the other schemes ignore it. ``ntk_beta`` is the NTK bias multiplier β.
    """

    scheme: str = "torch_default"
    sigma: float | None = None
    ntk_beta: float = 1.0
    bias_init: str = "scheme"
    bias_scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", canonical_scheme(self.scheme))
        if self.scheme == "normal" and self.sigma is None:
            raise ValueError("init 'normal' needs sigma (the weight standard deviation)")
        if self.scheme == "uniform" and self.sigma is None:
            raise ValueError("init 'uniform' needs sigma (the weights are drawn from U(−sigma, sigma))")
        if self.sigma is not None and not self.sigma >= 0:
            raise ValueError(f"sigma must be ≥ 0, got {self.sigma}")
        check_bias_law(self.bias_init, self.bias_scale)

    def kernel(self, fan_in: int) -> Initializer:
        """The weight initializer for a layer with ``fan_in`` inputs per output."""
        from eosdsl.models.init import normal, uniform, zeros

        s = self.scheme
        if s == "torch_default":
            return uniform(1.0 / math.sqrt(fan_in))
        if s == "lecun":
            return normal(1.0 / math.sqrt(fan_in))
        if s == "he":
            return normal(math.sqrt(2.0 / fan_in))
        if s == "normal":
            return normal(float(self.sigma))  # type: ignore[arg-type]
        if s == "uniform":
            return uniform(float(self.sigma))  # type: ignore[arg-type]
        if s == "ntk":
            return normal(1.0)
        return zeros

    def bias(self, fan_in: int) -> Initializer:
        """The bias initializer for a layer with ``fan_in`` inputs per output: ``bias_init`` if it is not
        ``scheme``, else the weight scheme's (U(±1/√fan_in) for torch_default, N(0, 1) for ntk, else 0)."""
        from eosdsl.models.init import constant, normal, uniform, zeros

        if self.bias_init == "zeros":
            return zeros
        if self.bias_init == "constant":
            return constant(float(self.bias_scale))  # type: ignore[arg-type]
        if self.bias_init == "normal":
            return normal(float(self.bias_scale))  # type: ignore[arg-type]
        if self.bias_init == "uniform":
            return uniform(float(self.bias_scale))  # type: ignore[arg-type]
        if self.scheme == "torch_default":
            return uniform(1.0 / math.sqrt(fan_in))
        if self.scheme == "ntk":
            return normal(1.0)
        return zeros

    def weight_multiplier(self, fan_in: int) -> float:
        """m_W: σ/√fan_in under ``ntk`` (σ = ``sigma`` or 1), else 1."""
        if self.scheme == "ntk":
            return (1.0 if self.sigma is None else float(self.sigma)) / math.sqrt(fan_in)
        return 1.0

    @property
    def bias_multiplier(self) -> float:
        """m_b: β under ``ntk``, else 1."""
        return float(self.ntk_beta) if self.scheme == "ntk" else 1.0


def check_bias_law(bias_init: str, bias_scale: float | None) -> None:
    """Validate one layer's ``(bias_init, bias_scale)``: a known name; a scale where the law needs one
    (finite; ≥ 0 for normal and uniform) and none where it does not."""
    if bias_init not in BIAS_INITS:
        raise ValueError(f"unknown bias_init {bias_init!r}; expected one of {BIAS_INITS}")
    if bias_init in ("constant", "normal", "uniform"):
        if bias_scale is None:
            what = {"constant": "the value", "normal": "the standard deviation", "uniform": "the bound"}
            raise ValueError(f"bias_init {bias_init!r} needs bias_scale ({what[bias_init]})")
        if not math.isfinite(bias_scale):
            raise ValueError(f"bias_scale must be finite, got {bias_scale}")
        if bias_init != "constant" and not bias_scale >= 0:
            raise ValueError(f"bias_scale of bias_init {bias_init!r} must be ≥ 0, got {bias_scale}")
    elif bias_scale is not None:
        raise ValueError(
            f"bias_scale is only meaningful with bias_init constant, normal or uniform, not {bias_init!r}"
        )


def layer_name(layer: int, n_hidden: int) -> str:
    """Group name of an MLP's weight layer ``layer``: ``layer0 … layer{L−1}`` then ``output``."""
    return "output" if layer == n_hidden else f"layer{layer}"


@dataclass(frozen=True)
class BiasLayers:
    """The weight layers a network's ``bias_init`` / ``bias_scale`` speak of.

    ``names``: one per layer, in the order of a per-layer list (``None``: the network takes one value for
    every layer); ``biased``: whether each of them has a bias (with ``names`` ``None``, one entry: whether
    any layer has one)."""

    names: tuple[str, ...] | None
    biased: tuple[bool, ...]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _layer(i: int, layers: BiasLayers | None) -> str:
    name = layers.names[i] if layers is not None and layers.names is not None else None
    return f"layer {i} ({name})" if name else f"layer {i}"


def _raise_all(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


def check_bias_init(bias_init: str | Sequence[str], layers: BiasLayers | None) -> None:
    """Validate ``bias_init`` against the network's layers (``layers``; ``None`` when unknown, e.g. its
    widths are themselves invalid): known names; one per layer if a list; no law other than ``scheme``
    for a network without biases, nor, in a list, for a layer without one. The errors of a list name
    the layer (index and group)."""
    names = None if layers is None else layers.names
    if not _is_list(bias_init):
        if bias_init not in BIAS_INITS:
            raise ValueError(f"unknown bias_init {bias_init!r}; expected one of {BIAS_INITS}")
        if layers is not None and bias_init != "scheme" and not any(layers.biased):
            raise ValueError(
                f"bias_init {bias_init!r} sets the law of the biases, but the network has none (bias: false)"
            )
        return
    laws = tuple(bias_init)
    if layers is not None and names is None:
        raise ValueError(f"bias_init: one law for every layer of this network, got a list of {len(laws)}")
    if names is not None and len(laws) != len(names):
        raise ValueError(
            f"expected one bias_init or one per layer ({len(names)}: {', '.join(names)}), got {len(laws)}"
        )
    problems = []
    for i, law in enumerate(laws):
        if law not in BIAS_INITS:
            problems.append(f"{_layer(i, layers)}: unknown bias_init {law!r}; expected one of {BIAS_INITS}")
        elif layers is not None and law != "scheme" and not layers.biased[i]:
            problems.append(
                f"{_layer(i, layers)} has no bias, so its bias_init must be 'scheme', not {law!r}"
            )
    _raise_all(problems)


def check_bias_scale(
    bias_init: str | Sequence[str],
    bias_scale: float | None | Sequence[float | None],
    layers: BiasLayers | None,
) -> None:
    """Validate ``bias_scale`` against a valid ``bias_init`` (:func:`check_bias_init`) layer by layer
    (:func:`check_bias_law`): one per layer if a list; where either is a list, each error names the layer
    (index and group)."""
    if not (_is_list(bias_init) or _is_list(bias_scale)):
        check_bias_law(bias_init, bias_scale)  # type: ignore[arg-type]
        return
    names = None if layers is None else layers.names
    laws = tuple(bias_init) if _is_list(bias_init) else None
    scales = tuple(bias_scale) if _is_list(bias_scale) else None  # type: ignore[arg-type]
    if scales is not None and layers is not None and names is None:
        raise ValueError(
            f"bias_scale: one value for every layer of this network, got a list of {len(scales)}"
        )
    n = len(names) if names is not None else len(laws if laws is not None else scales)  # type: ignore[arg-type]
    if scales is not None and len(scales) != n:
        listed = f": {', '.join(names)}" if names is not None else ""
        raise ValueError(f"expected one bias_scale or one per layer ({n}{listed}), got {len(scales)}")
    if laws is not None and len(laws) != n:
        return  # bias_init's own error (check_bias_init)
    problems = []
    for i in range(n):
        law = laws[i] if laws is not None else bias_init
        scale = scales[i] if scales is not None else bias_scale
        try:
            check_bias_law(law, scale)  # type: ignore[arg-type]
        except ValueError as err:
            problems.append(f"{_layer(i, layers)}: {err}")
    _raise_all(problems)


def check_bias_laws(
    bias_init: str | Sequence[str],
    bias_scale: float | None | Sequence[float | None],
    layers: BiasLayers | None,
) -> None:
    """The one check of a network's ``bias_init`` / ``bias_scale`` (config and spec alike):
    :func:`check_bias_init`, then :func:`check_bias_scale`."""
    check_bias_init(bias_init, layers)
    check_bias_scale(bias_init, bias_scale, layers)


# ------------------------------------------------------------------------------------------ activations

ACTIVATION_NAMES: tuple[str, ...] = ("relu", "tanh", "elu", "gelu", "softplus", "swish", "identity", "cubic")
"""The activation names, in the order of :data:`eosdsl.models.mlp.ACTIVATIONS` (their functions)."""

_ACTIVATION_ALIASES = {"silu": "swish", "linear": "identity", "none": "identity"}


def canonical_activation(name: str) -> str:
    """Canonical activation name (aliases ``silu``, ``linear``, ``none``); ``ValueError`` if unknown."""
    act = _ACTIVATION_ALIASES.get(name, name)
    if act not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATION_NAMES}")
    return act


# ------------------------------------------------------------------------------------------ batch norm

NormKind = Literal["none", "batch", "ghost"]


@dataclass(frozen=True)
class NormSpec:
    """Batch-norm settings: ``kind`` ∈ {batch, ghost}, the ghost chunk size, affine params, ε."""

    kind: Literal["batch", "ghost"]
    ghost_size: int | None = None
    affine: bool = True
    eps: float = 1e-5


def check_norm(norm: str, ghost_size: int | None, eps: float) -> None:
    """Validate a model config's ``norm`` / ``ghost_size`` / ``eps`` triple."""
    if norm not in ("none", "batch", "ghost"):
        raise ValueError(f"norm must be 'none', 'batch' or 'ghost', got {norm!r}")
    if norm == "ghost" and (ghost_size is None or int(ghost_size) < 1):
        raise ValueError("norm 'ghost' needs ghost_size ≥ 1")
    if norm != "ghost" and ghost_size is not None:
        raise ValueError("ghost_size is only meaningful with norm 'ghost'")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")


# ------------------------------------------------------------------------------------------ MLP


def _per_layer(value: Any, n: int, what: str) -> tuple[Any, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(f"{what}: expected one value or {n} per-layer values, got {len(value)}")
        return tuple(value)
    return (value,) * n


@dataclass(frozen=True)
class MLPConfig:
    """Config of ``kind: mlp``.

    - ``in_dim``: input dimension (inputs of any shape ``(N, ...)`` are flattened to ``(N, in_dim)``).
    - ``widths``: hidden widths (``()`` gives a linear model); ``out``: output dimension.
    - ``activation``: one name or one per hidden layer (:data:`ACTIVATIONS`).
    - ``bias``: biases in every layer; ``output_bias`` overrides it for the output layer (``None``: same).
    - ``init``: one scheme or one per layer (hidden layers then the output layer); ``sigma`` likewise
      (weight std for ``normal``, σ for ``ntk``); ``ntk_beta``: the NTK bias multiplier.
    - ``bias_init`` / ``bias_scale``: the law of the biases, independent of ``init`` (:data:`BIAS_INITS`;
      default ``scheme``: as the weight scheme draws them); one value or one per layer. A law other than
      ``scheme`` needs a bias to act on: refused on a network without biases and, in a per-layer list, on
      a layer without one (:func:`check_bias_laws`).
    - ``weight_norms``: optional Frobenius norms (one per layer, ``None`` = keep) to which each drawn
      kernel is rescaled at init (paper 002: PyTorch default init, then rescaled to prescribed ‖W_l‖_F).
    - ``norm`` ∈ {none, batch, ghost} after the linear map and before σ, in the hidden layers listed in
      ``norm_layers`` (``None`` = all hidden layers); ``ghost_size``; ``norm_affine``; ``eps``.
    - ``dtype``: parameter dtype (``float32`` or ``float64``).
    """

    in_dim: int
    widths: tuple[int, ...]
    out: int = 1
    activation: str | tuple[str, ...] = "relu"
    bias: bool = True
    output_bias: bool | None = None
    init: str | tuple[str, ...] = "torch_default"
    sigma: float | None | tuple[float | None, ...] = None
    ntk_beta: float = 1.0
    bias_init: str | tuple[str, ...] = field(
        default="scheme", metadata={"description": BIAS_INIT_DESCRIPTION + _PER_LAYER}
    )
    bias_scale: float | None | tuple[float | None, ...] = field(
        default=None, metadata={"description": BIAS_SCALE_DESCRIPTION + _PER_LAYER}
    )
    weight_norms: tuple[float | None, ...] | None = None
    norm: NormKind = "none"
    norm_layers: tuple[int, ...] | None = None
    ghost_size: int | None = None
    norm_affine: bool = True
    eps: float = 1e-5
    dtype: Literal["float32", "float64"] = "float64"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "in_dim", int(self.in_dim))
        s(self, "widths", tuple(int(w) for w in self.widths))
        s(self, "out", int(self.out))
        if self.in_dim < 1 or self.out < 1 or any(w < 1 for w in self.widths):
            raise ValueError("in_dim, out and every width must be ≥ 1")
        nh, nl = len(self.widths), len(self.widths) + 1
        act = self.activation
        if isinstance(act, str):
            s(self, "activation", canonical_activation(act))
        else:
            s(self, "activation", tuple(canonical_activation(a) for a in _per_layer(act, nh, "activation")))
        init = self.init
        if isinstance(init, str):
            s(self, "init", canonical_scheme(init))
        else:
            s(self, "init", tuple(canonical_scheme(i) for i in _per_layer(init, nl, "init")))
        if not isinstance(self.sigma, float | int | None):
            s(self, "sigma", _per_layer(self.sigma, nl, "sigma"))
        check_bias_laws(self.bias_init, self.bias_scale, self.bias_layers_of(vars(self)))
        if _is_list(self.bias_init):
            s(self, "bias_init", tuple(self.bias_init))
        if _is_list(self.bias_scale):
            s(self, "bias_scale", tuple(self.bias_scale))  # type: ignore[arg-type]
        if self.weight_norms is not None:
            s(self, "weight_norms", _per_layer(self.weight_norms, nl, "weight_norms"))
        check_norm(self.norm, self.ghost_size, self.eps)
        if self.norm_layers is not None:
            s(self, "norm_layers", tuple(int(i) for i in self.norm_layers))
            if any(not 0 <= i < nh for i in self.norm_layers):
                raise ValueError(f"norm_layers must index hidden layers 0..{nh - 1}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for layer in range(nl):
            self.layer_init(layer)  # validates sigma for 'normal'

    @classmethod
    def bias_layers_of(cls, fields: Mapping[str, Any]) -> BiasLayers | None:
        """The layers ``bias_init`` / ``bias_scale`` speak of, from the config's fields (a spec's, before
        the config exists): ``layer0 … layer{L−1}, output``, biased as ``bias`` / ``output_bias`` say;
        ``None`` if ``widths`` or ``bias`` is missing (invalid)."""
        widths, bias = fields.get("widths"), fields.get("bias")
        if widths is None or bias is None:
            return None
        output_bias = fields.get("output_bias")
        n_hidden = len(widths)
        names = tuple(layer_name(i, n_hidden) for i in range(n_hidden + 1))
        biased = (bool(bias),) * n_hidden + (bool(bias if output_bias is None else output_bias),)
        return BiasLayers(names, biased)

    @property
    def n_layers(self) -> int:
        """Number of weight layers L + 1 (hidden layers plus the output layer)."""
        return len(self.widths) + 1

    def layer_init(self, layer: int) -> LayerInit:
        """Init/parametrization of weight layer ``layer`` (0-based; ``len(widths)`` is the output)."""
        n = self.n_layers
        return LayerInit(
            _per_layer(self.init, n, "init")[layer],
            _per_layer(self.sigma, n, "sigma")[layer],
            self.ntk_beta,
            _per_layer(self.bias_init, n, "bias_init")[layer],
            _per_layer(self.bias_scale, n, "bias_scale")[layer],
        )

    def activation_of(self, layer: int) -> str:
        """Activation name of hidden layer ``layer``."""
        return _per_layer(self.activation, len(self.widths), "activation")[layer]

    def norm_of(self, layer: int) -> NormSpec | None:
        """Batch-norm spec of hidden layer ``layer`` (``None``: no normalization there)."""
        if self.norm == "none" or (self.norm_layers is not None and layer not in self.norm_layers):
            return None
        return NormSpec(self.norm, self.ghost_size, self.norm_affine, self.eps)  # type: ignore[arg-type]

    @property
    def has_output_bias(self) -> bool:
        """Whether the output layer has a bias."""
        return self.bias if self.output_bias is None else self.output_bias

    @property
    def param_dtype(self) -> Any:
        """The jnp dtype of the parameters."""
        import jax.numpy as jnp

        return jnp.dtype(self.dtype)


# ------------------------------------------------------------------------------------------ linear


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


# ------------------------------------------------------------------------------------------ conv nets


@dataclass(frozen=True)
class ConvNetCommon:
    """Settings shared by the conv nets (``cnn``, ``vgg``, ``resnet20``).

    ``input_shape`` (H, W, C); ``out``; ``activation``; ``bias`` (conv and hidden dense biases; the output
    layer of the CNN/VGG follows it, ResNet's head always has one); ``init`` (one scheme for every layer),
    ``sigma``, ``ntk_beta``, ``bias_init``, ``bias_scale`` (:mod:`eosdsl.models.init`, one law for every
    layer; the batch-norm shift is not a bias here and starts at 0; a law other than ``scheme`` is refused
    where there is no bias, i.e. a CNN/VGG with ``bias: false``); ``norm`` ∈ {none, batch, ghost} after
    every hidden conv/dense layer, ``ghost_size``, ``norm_affine``, ``eps``; ``dtype``.
    """

    input_shape: tuple[int, int, int] = (32, 32, 3)
    out: int = 10
    activation: str = "relu"
    bias: bool = True
    init: str = "torch_default"
    sigma: float | None = None
    ntk_beta: float = 1.0
    bias_init: str = field(default="scheme", metadata={"description": BIAS_INIT_DESCRIPTION})
    bias_scale: float | None = field(default=None, metadata={"description": BIAS_SCALE_DESCRIPTION})
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
        check_bias_laws(self.bias_init, self.bias_scale, self.bias_layers_of(vars(self)))
        self.layer_init  # noqa: B018  (validates sigma for 'normal')

    @classmethod
    def bias_layers_of(cls, fields: Mapping[str, Any]) -> BiasLayers | None:
        """One ``bias_init`` for every layer; the layers have biases if ``bias`` (``None`` if missing)."""
        bias = fields.get("bias")
        return None if bias is None else BiasLayers(None, (bool(bias),))

    @property
    def layer_init(self) -> LayerInit:
        """Init/parametrization of every weight layer."""
        return LayerInit(self.init, self.sigma, self.ntk_beta, self.bias_init, self.bias_scale)

    @property
    def norm_spec(self) -> NormSpec | None:
        """Batch-norm spec of the hidden layers (``None``: no normalization)."""
        if self.norm == "none":
            return None
        return NormSpec(self.norm, self.ghost_size, self.norm_affine, self.eps)  # type: ignore[arg-type]

    @property
    def param_dtype(self) -> Any:
        """The jnp dtype of the parameters."""
        import jax.numpy as jnp

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


_SHORTCUT_ALIASES = {"A": "pad", "a": "pad", "B": "projection", "b": "projection"}


@dataclass(frozen=True)
class ResNetConfig(ConvNetCommon):
    """Config of ``kind: resnet20``: ``widths`` per stage (16, 32, 64), ``blocks_per_stage`` (3 for
    ResNet-20; fewer for tiny test instances), ``shortcut`` ∈ {pad (A), projection (B)}, plus
    :class:`~eosdsl.models.cnn.ConvNetCommon` with the ResNet defaults ``norm="batch"``, ``init="he"``
    (Kaiming normal, fan_in), ``bias=False``."""

    bias: bool = False
    init: str = "he"
    norm: NormKind = "batch"
    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 3
    shortcut: Literal["pad", "projection"] = "pad"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")
        object.__setattr__(self, "blocks_per_stage", int(self.blocks_per_stage))
        if self.blocks_per_stage < 1:
            raise ValueError("blocks_per_stage must be ≥ 1")
        object.__setattr__(self, "shortcut", _SHORTCUT_ALIASES.get(self.shortcut, self.shortcut))
        if self.shortcut not in ("pad", "projection"):
            raise ValueError(f"shortcut must be 'pad' (A) or 'projection' (B), got {self.shortcut!r}")
        if self.shortcut == "pad" and any(b < a for a, b in zip(self.widths, self.widths[1:], strict=False)):
            raise ValueError("shortcut 'pad' needs non-decreasing widths")

    @classmethod
    def bias_layers_of(cls, fields: Mapping[str, Any]) -> BiasLayers | None:
        """One ``bias_init`` for every layer; the head always has a bias, whatever ``bias`` says."""
        return BiasLayers(None, (True,))

    @property
    def depth(self) -> int:
        """Number of weight layers 6·blocks + 2 (20 for the standard config)."""
        return 2 * len(self.widths) * self.blocks_per_stage + 2


# ------------------------------------------------------------------------------------------ kinds

KINDS: tuple[str, ...] = ("mlp", "two_layer_linear", "deep_linear", "cnn", "vgg", "resnet20")

CONFIGS: dict[str, type] = {
    "mlp": MLPConfig,
    "two_layer_linear": TwoLayerLinearConfig,
    "deep_linear": DeepLinearConfig,
    "cnn": CNNConfig,
    "vgg": VGGConfig,
    "resnet20": ResNetConfig,
}
"""The config dataclass of each model kind."""


def make_config(kind: str, **config: Any) -> Any:
    """The validated config dataclass of ``kind`` (``ValueError`` on an unknown kind or key)."""
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
    cls = CONFIGS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ValueError(f"{kind}: unknown config keys {unknown}; expected a subset of {sorted(names)}")
    return cls(**config)
