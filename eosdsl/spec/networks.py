"""Spec models of ``problem: {kind: supervised}``: a data source, a preprocessing pipeline, a network, a loss.

The network models are generated from the config dataclasses of :mod:`eosdsl.models.configs` (one source of
truth for their fields and defaults), minus the fields the data decides: input size, output size and
dtype (from ``precision``). Their numbers are baked into the compiled network, so they are *static*
(``__static_floats__``): a grid over a network's numbers compiles once per value.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, create_model, field_validator, model_validator

from eosdsl.models.configs import BIAS_INITS, CONFIGS, check_bias_init, check_bias_scale, make_config
from eosdsl.spec.base import Model

# ---------------------------------------------------------------------------------------------- data


class Rank2Data(Model):
    """y = x₁x₂ with x ~ N(0, I_d) ("Rank2-d-n", paper 000 App. E.3)."""

    source: Literal["rank2"]
    d: int = Field(400, ge=2)
    n: int = Field(200, ge=1)
    n_test: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)


class GaussianSpectrumData(Model):
    """Binary classification, Gaussian inputs with a chosen covariance spectrum, ±1 labels of a linear
    teacher (paper 001 §4). ``spectrum``: an exponent, an explicit list, or ``{power_law: …}`` /
    ``{gap_plus_linear: …}`` (see :func:`eosdsl.data.synthetic.resolve_spectrum`)."""

    source: Literal["gaussian_spectrum"]
    spectrum: float | list[float] | dict[str, Any]
    n: int = Field(200, ge=1)
    d: int = Field(50, ge=1)
    n_test: int = Field(0, ge=0)
    seed: int = Field(0, ge=0)
    teacher_seed: int | None = None
    spectrum_of: Literal["variance", "std"] = "variance"
    center: bool = True
    labels: Literal["linear_teacher_sign", "random_sign"] = "linear_teacher_sign"


class GaussianMixtureData(Model):
    """k Gaussian classes whose means are pairwise ``separation`` apart."""

    source: Literal["gaussian_mixture"]
    n: int = Field(ge=1)
    d: int = Field(ge=1)
    k: int = Field(ge=2)
    separation: float = 4.0
    seed: int = Field(0, ge=0)
    n_test: int = Field(0, ge=0)


class TeacherStudentData(Model):
    """Targets of a random one-hidden-layer teacher network: its outputs, or their sign (``labels``)."""

    source: Literal["teacher_student"]
    n: int = Field(ge=1)
    d: int = Field(ge=1)
    width: int = Field(ge=1)
    activation: str = "relu"
    seed: int = Field(0, ge=0)
    n_test: int = Field(0, ge=0)
    out_dim: int = Field(1, ge=1)
    noise_std: float = 0.0
    labels: Literal["real", "sign"] = Field(
        "real", description="`real`: the teacher's outputs; `sign`: their sign, ±1 (binary classification)."
    )

    OMIT_AT_DEFAULT = ("labels",)  # a spec with real targets hashes as before


class FashionMnistData(Model):
    """Fashion-MNIST from IDX files (default: the Debian package ``dataset-fashion-mnist``)."""

    source: Literal["fashion_mnist"]
    path: str | None = Field(None, description="Directory of the four IDX files (default: Debian's).")


class Cifar10Data(Model):
    """CIFAR-10 from a local ``cifar-10-batches-py`` directory (it cannot be downloaded here)."""

    source: Literal["cifar10"]
    path: str | None = Field(None, description="Directory holding data_batch_1..5 and test_batch (required).")


DataSource = Annotated[
    Rank2Data
    | GaussianSpectrumData
    | GaussianMixtureData
    | TeacherStudentData
    | FashionMnistData
    | Cifar10Data,
    Field(discriminator="source"),
]

# -------------------------------------------------------------------------------------------- networks

DERIVED_FIELDS = frozenset({"in_dim", "d", "input_shape", "out", "k", "dtype"})
"""Config fields eosdsl fills from the data and the spec's precision."""

_PLACEHOLDER_SIZES = {"in_dim": 4, "d": 4, "input_shape": (32, 32, 3), "out": 2, "k": 1}


def _check_config(self: Model) -> Model:
    """The network's own validation (activation names, init schemes, widths, …) at spec time, with
    placeholder sizes for the fields the data decides."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in self.model_dump().items()}
    kind = fields.pop("kind")
    names = {f.name for f in dataclasses.fields(CONFIGS[kind])}
    sizes = {k: v for k, v in _PLACEHOLDER_SIZES.items() if k in names}
    make_config(kind, **fields, **sizes)  # a ValueError becomes a located spec error
    return self


NEW_FIELDS = ("bias_init", "bias_scale")
"""Config fields added after specs were first hashed: left out of a network's dump at their defaults
(``OMIT_AT_DEFAULT``), so that a spec which does not set them keeps its identity."""

BiasLaw = Literal[BIAS_INITS]  # type: ignore[valid-type]


def _field_type(name: str, hint: Any) -> Any:
    """The spec type of a config field: its dataclass hint, with ``bias_init``'s names as a Literal (so
    the JSON schema lists them)."""
    if name != "bias_init":
        return hint
    return BiasLaw if hint is str else BiasLaw | tuple[BiasLaw, ...]


def _bias_validators(config: type) -> dict[str, Any]:
    """Field validators placing the errors of ``bias_init`` / ``bias_scale`` at their keys (the config's
    own check, :func:`~eosdsl.models.configs.check_bias_init` / ``check_bias_scale``, on the fields
    validated before them: the widths and ``bias`` that fix the layers, then ``bias_init``)."""

    def bias_init(cls: type, value: Any, info: ValidationInfo) -> Any:
        check_bias_init(value, config.bias_layers_of(info.data))
        return value

    def bias_scale(cls: type, value: Any, info: ValidationInfo) -> Any:
        if "bias_init" in info.data:  # else bias_init is invalid, and reported
            check_bias_scale(info.data["bias_init"], value, config.bias_layers_of(info.data))
        return value

    return {
        "_check_bias_init": field_validator("bias_init")(bias_init),
        "_check_bias_scale": field_validator("bias_scale")(bias_scale),
    }


def _network_model(kind: str, config: type) -> type[Model]:
    hints = typing.get_type_hints(config)
    fields: dict[str, Any] = {"kind": (Literal[kind], ...)}
    for f in dataclasses.fields(config):
        if f.name in DERIVED_FIELDS:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ...
        description = f.metadata.get("description")
        value = Field(default, description=description) if description else default
        fields[f.name] = (_field_type(f.name, hints[f.name]), value)
    name = "".join(part.title() for part in kind.split("_")) + "Network"
    validators = {"_check_config": model_validator(mode="after")(_check_config)}
    if "bias_init" in fields:
        validators.update(_bias_validators(config))
    model = create_model(name, __base__=Model, __doc__=config.__doc__, __validators__=validators, **fields)
    model.__static_floats__ = True
    model.OMIT_AT_DEFAULT = tuple(n for n in NEW_FIELDS if n in fields)
    return model


NETWORKS: dict[str, type[Model]] = {kind: _network_model(kind, cls) for kind, cls in CONFIGS.items()}
MlpNetwork = NETWORKS["mlp"]
Network = Annotated[
    typing.Union[tuple(NETWORKS.values())],  # noqa: UP007  (a runtime-built union)
    Field(discriminator="kind"),
]

# ----------------------------------------------------------------------------------------------- loss


class MSELoss(Model):
    """Mean squared error with an explicit convention: ``half_sum_over_n`` = ½Σ‖f − y‖²/n (the original
    EoS code), ``mean`` over all entries, ``sum_over_n`` = Σ‖f − y‖²/n; times ``scale``."""

    kind: Literal["mse"]
    convention: Literal["half_sum_over_n", "mean", "sum_over_n"] = "half_sum_over_n"
    scale: float = 1.0


class HuberLoss(Model):
    """Huber loss Σ h_δ(r)/n (``sum_over_n``) or Σ h_δ(r)/(n·k) (``mean``) with h_δ(r) = ½r² for |r| ≤ δ,
    δ(|r| − δ/2) beyond — the Lipschitz ("good regularity") loss of paper 002 §7."""

    kind: Literal["huber"]
    delta: float = 1.0
    convention: Literal["sum_over_n", "mean"] = "sum_over_n"
    scale: float = 1.0


class CrossEntropyLoss(Model):
    """Softmax cross-entropy, mean over examples (integer or one-hot targets)."""

    kind: Literal["cross_entropy"]


MSELoss.__static_floats__ = True  # the numbers of a loss are baked into the compiled loss
HuberLoss.__static_floats__ = True
Loss = Annotated[MSELoss | HuberLoss | CrossEntropyLoss, Field(discriminator="kind")]

# --------------------------------------------------------------------------------------------- pipeline


def _close(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _known_step(step: str | dict[str, Any]) -> str | dict[str, Any]:
    """A pipeline step names a step of :data:`eosdsl.data.preprocess.STEPS` with arguments it takes
    (and every argument it needs), so a misspelling fails validation rather than the run."""
    from eosdsl.data.preprocess import STEPS, parse_step

    try:
        name, params = parse_step(step)
    except ValueError as err:
        raise ValueError(str(err)[:300]) from None
    if name not in STEPS:
        hint = _close(name, list(STEPS))
        raise ValueError(f"unknown pipeline step '{name}'{hint} (known: {', '.join(STEPS)})")
    parameters = list(inspect.signature(STEPS[name]).parameters.values())[1:]  # after the dataset
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return step
    names = [p.name for p in parameters]
    for key in params:
        if key not in names:
            listed, hint = ", ".join(names) or "none", _close(str(key), names)
            raise ValueError(f"pipeline step '{name}' has no argument '{key}'{hint} (arguments: {listed})")
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in params]
    if missing:
        raise ValueError(f"pipeline step '{name}' needs the argument(s) {', '.join(missing)}")
    return step


PipelineStep = Annotated[str | dict[str, Any], AfterValidator(_known_step)]

# ---------------------------------------------------------------------------------------------- problem


class SupervisedProblem(Model):
    """Full-batch training of ``model`` on ``data`` (after ``pipeline``) under ``loss``.

    ``pipeline`` lists preprocessing steps applied in order, e.g. ``[{take_first: {n_train: 1000,
    n_test: 200}}, scale, {standardize: {mode: global}}, flatten, one_hot]`` (steps of
    :data:`eosdsl.data.preprocess.STEPS`). The content hash of the final arrays enters the run identity.
    """

    kind: Literal["supervised"]
    data: DataSource
    pipeline: list[PipelineStep] = Field(default_factory=list)
    model: Network
    loss: Loss
    batch_chunk: int | None = Field(
        None,
        ge=1,
        description="Examples per chunk of the full-batch mean (None: all n at once). The loss, its "
        "gradient, the HVPs, the Gauss–Newton operator and the supervised measures are computed chunk by "
        "chunk (a rematerialized lax.scan), so their activation memory is bounded by the chunk instead "
        "of n. It is still the full-batch objective: the chunk size changes only the rounding. For that "
        "reason it is part of the run identity (and of the compiled structure). Networks with batch norm "
        "(full-batch statistics) cannot be chunked; ghost batch norm can when batch_chunk is a multiple "
        "of ghost_size.",
    )

    frozen: list[str] = Field(
        default_factory=list,
        description="Parameter groups held at their initial values: not trained, and zero rows and "
        "columns of the Hessian (e.g. paper 002's fixed last layer: `[out]`; `eosdsl kinds` and "
        "`group_norms` name a network's groups).",
    )

    OMIT_AT_DEFAULT = ("frozen",)  # a spec without frozen groups hashes as before

    @field_validator("batch_chunk")
    @classmethod
    def _chunk_fits_the_network(cls, chunk: int | None, info: ValidationInfo) -> int | None:
        """Refuse chunking where it would change the loss: batch norm over the whole batch."""
        model = info.data.get("model")  # absent when the network itself failed validation
        if chunk is None or model is None:
            return chunk
        norm = getattr(model, "norm", "none")
        layers = getattr(model, "norm_layers", None)
        if norm == "none" or (layers is not None and len(layers) == 0):
            return chunk
        if norm == "batch":
            raise ValueError(
                f"batch_chunk needs a network without batch norm: {model.kind} has norm 'batch', whose "
                "statistics are over the full batch (chunks would change the loss); remove batch_chunk"
            )
        ghost = model.ghost_size
        if chunk % ghost:
            raise ValueError(
                f"batch_chunk {chunk} must be a multiple of the network's ghost_size {ghost}, so that "
                "every ghost batch lies inside one chunk"
            )
        return chunk
