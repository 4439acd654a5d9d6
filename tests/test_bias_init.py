"""``bias_init`` / ``bias_scale``: biases drawn independently of the weight scheme.

Oracles (float64, drawn through :func:`eosdsl.models.build.build_model`, i.e. the path a spec takes):

* ``normal`` (σ): the sample mean and variance of N = 200,000 draws against 0 and σ². The standard
  error of the mean is σ/√N and that of the sample variance is σ²·√(2/N) (Gaussian fourth moment 3σ⁴);
  asserted at 5 standard errors (a false failure has probability < 1e-6 per assertion).
* ``uniform`` (c): every draw in [−c, c]; mean 0 and variance c²/3 with standard errors c/√(3N) and
  c²·√(4/(45N)) (Var of U² is c⁴(1/5 − 1/9)); 5 standard errors. The extremes approach ±c: the largest
  of N draws lies below c(1 − 20/N) with probability (1 − 10/N)^N ≈ e⁻¹⁰ (likewise the smallest).
* ``constant`` (c) and ``zeros``: exact.
* ``scheme`` (the default): bitwise the parameters the network had before ``bias_init`` existed, i.e. the
  weight scheme's own bias law (PyTorch's U(±1/√fan_in) here); the kernels do not depend on bias_init
  at all (the same key draws the same kernels).
* Identity: a spec that does not set ``bias_init`` dumps without it and keeps the spec id it had
  before the field existed (goldens computed with the code of that time).
* Errors: one check (:func:`eosdsl.models.configs.check_bias_laws`) for the MLP and the conv nets, in
  the config and in a spec; through the loader, each error is placed at the key it is about
  (``file:line:col problem.model.bias_init`` / ``.bias_scale``) and names the layer of a per-layer list.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.models.build import build_model
from eosdsl.registry.identity import spec_id
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

N_HIDDEN = 200_000  # biases of the first layer: one draw per unit
Z = 5.0  # standard errors allowed


def _params(**config) -> dict:
    model = build_model("mlp", in_dim=3, widths=(N_HIDDEN, 4), out=2, dtype="float64", **config)
    return jax.tree.map(np.asarray, model.init(jax.random.PRNGKey(7)))


def test_normal_bias_statistics() -> None:
    sigma = 0.3
    b = _params(bias_init="normal", bias_scale=sigma)["layer0"]["bias"]
    n = b.size
    assert abs(b.mean()) < Z * sigma / math.sqrt(n)
    assert abs(b.var() - sigma**2) < Z * sigma**2 * math.sqrt(2 / n)
    # the tails are Gaussian, not clipped: some draws beyond 4σ (expected count n·6.3e-5 ≈ 12.7)
    assert np.sum(np.abs(b) > 4 * sigma) >= 1


def test_uniform_bias_statistics() -> None:
    c = 2.5
    b = _params(bias_init="uniform", bias_scale=c)["layer0"]["bias"]
    n = b.size
    assert np.all(np.abs(b) <= c)
    assert abs(b.mean()) < Z * c / math.sqrt(3 * n)
    assert abs(b.var() - c**2 / 3) < Z * c**2 * math.sqrt(4 / (45 * n))
    assert b.max() > c * (1 - 20 / n) and b.min() < -c * (1 - 20 / n)


@pytest.mark.parametrize(("law", "scale", "value"), [("constant", -0.75, -0.75), ("zeros", None, 0.0)])
def test_constant_and_zero_biases_are_exact(law: str, scale: float | None, value: float) -> None:
    params = build_model(
        "mlp", in_dim=3, widths=(5, 4), out=2, dtype="float64", bias_init=law, bias_scale=scale
    ).init(jax.random.PRNGKey(0))
    for group in ("layer0", "layer1", "output"):
        assert np.all(np.asarray(params[group]["bias"]) == value)


def test_per_layer_laws_and_kernels_untouched() -> None:
    """One law per layer (hidden, hidden, output); the kernels are those of the default draw."""
    cfg = {"in_dim": 3, "widths": (6, 5), "out": 2, "dtype": "float64"}
    key = jax.random.PRNGKey(1)
    default = build_model("mlp", **cfg).init(key)
    mixed = build_model(
        "mlp", **cfg, bias_init=["constant", "scheme", "zeros"], bias_scale=[0.5, None, None]
    ).init(key)
    assert np.all(np.asarray(mixed["layer0"]["bias"]) == 0.5)
    np.testing.assert_array_equal(mixed["layer1"]["bias"], default["layer1"]["bias"])
    assert np.all(np.asarray(mixed["output"]["bias"]) == 0.0)
    for group in default:
        np.testing.assert_array_equal(mixed[group]["kernel"], default[group]["kernel"])


def test_only_the_output_bias() -> None:
    """``bias: false, output_bias: true``: the law reaches the one bias there is."""
    params = build_model(
        "mlp",
        in_dim=3,
        widths=(4,),
        out=2,
        bias=False,
        output_bias=True,
        bias_init="constant",
        bias_scale=2.0,
    ).init(jax.random.PRNGKey(0))
    assert "bias" not in params["layer0"]
    assert np.all(np.asarray(params["output"]["bias"]) == 2.0)


def test_scheme_is_the_weight_schemes_bias_law() -> None:
    """``scheme`` = no bias_init: torch_default biases in U(±1/√fan_in) (fan_in 3 here), lecun's zero."""
    key = jax.random.PRNGKey(2)
    torch = build_model("mlp", in_dim=3, widths=(4000,), out=1, dtype="float64").init(key)
    explicit = build_model("mlp", in_dim=3, widths=(4000,), out=1, dtype="float64", bias_init="scheme").init(
        key
    )
    jax.tree.map(np.testing.assert_array_equal, torch, explicit)
    b = np.asarray(torch["layer0"]["bias"])
    # drawn with the code before bias_init existed (same key, x64): bitwise the same biases
    assert b[:3].tolist() == [-0.4878044700407364, 0.46150475846732336, -0.17418223265032517]
    assert float(b.sum()) == -2.410414720529479
    assert float(np.asarray(torch["output"]["bias"])[0]) == 4.379839389715488e-05
    assert np.all(np.abs(b) <= 1 / math.sqrt(3)) and b.max() > 0.99 / math.sqrt(3)
    lecun = build_model("mlp", in_dim=3, widths=(7,), out=1, dtype="float64", init="lecun").init(key)
    assert np.all(np.asarray(lecun["layer0"]["bias"]) == 0)


def test_conv_nets_take_a_bias_law() -> None:
    params = build_model(
        "cnn", input_shape=(8, 8, 1), channels=(3,), out=2, bias_init="constant", bias_scale=0.25
    ).init(jax.random.PRNGKey(0))
    assert np.all(np.asarray(params["conv0"]["bias"]) == 0.25)
    assert np.all(np.asarray(params["output"]["bias"]) == 0.25)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bias_init": "normal"}, "needs bias_scale"),
        ({"bias_init": "uniform", "bias_scale": -1.0}, "must be ≥ 0"),
        ({"bias_init": "zeros", "bias_scale": 1.0}, "only meaningful"),
        ({"bias_init": "gaussian", "bias_scale": 1.0}, "unknown bias_init"),
        (
            {"bias_init": ["zeros", "zeros"]},
            r"expected one bias_init or one per layer \(3: layer0, layer1, output\), got 2",
        ),
        ({"bias_scale": [1.0, None, 2.0, 3.0]}, r"one bias_scale or one per layer \(3: .*\), got 4"),
        ({"bias": False, "bias_init": "constant", "bias_scale": 1.0}, "the network has none"),
        (
            {"bias_init": ["normal", "zeros", "zeros"], "bias_scale": [0.1, 0.2, None]},
            r"^layer 1 \(layer1\): bias_scale is only meaningful with bias_init constant, normal or uniform, "
            r"not 'zeros'$",
        ),
        (
            {"bias_init": ["scheme", "uniform", "normal"], "bias_scale": [None, -1.0, None]},
            r"^layer 1 \(layer1\): bias_scale of bias_init 'uniform' must be ≥ 0, got -1.0; "
            r"layer 2 \(output\): bias_init 'normal' needs bias_scale \(the standard deviation\)$",
        ),
        (
            {"bias": False, "output_bias": True, "bias_init": ["zeros", "scheme", "zeros"]},
            r"^layer 0 \(layer0\) has no bias, so its bias_init must be 'scheme', not 'zeros'$",
        ),
    ],
)
def test_invalid_bias_laws_are_refused(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model("mlp", in_dim=3, widths=(4, 4), out=1, **config)


CONV = {
    "cnn": {"input_shape": (8, 8, 1), "channels": (2,), "out": 2},
    "vgg": {"input_shape": (8, 8, 1), "widths": (2,), "convs_per_stage": 1, "out": 2},
}


@pytest.mark.parametrize("kind", ["cnn", "vgg"])
def test_conv_nets_without_biases_refuse_a_bias_law(kind: str) -> None:
    """As for the MLP: ``bias: false`` leaves no bias for a law to act on (``scheme`` stays allowed)."""
    with pytest.raises(
        ValueError, match=r"^bias_init 'zeros' sets the law of the biases, but the network has none"
    ):
        build_model(kind, **CONV[kind], bias=False, bias_init="zeros")
    params = build_model(kind, **CONV[kind], bias=False, bias_init="scheme").init(jax.random.PRNGKey(0))
    assert all("bias" not in group for group in params.values())


def test_resnet_head_takes_the_law_without_conv_biases() -> None:
    """ResNet-20's head has a bias whatever ``bias`` says, so ``bias: false`` (its default) with a law is
    valid: the head's bias follows it, the convolutions have none, the batch-norm shift starts at 0."""
    params = build_model(
        "resnet20",
        input_shape=(8, 8, 1),
        widths=(2,),
        blocks_per_stage=1,
        out=2,
        bias_init="constant",
        bias_scale=0.5,
    ).init(jax.random.PRNGKey(0))
    assert np.all(np.asarray(params["output"]["bias"]) == 0.5)
    assert "bias" not in params["stem"] and np.all(np.asarray(params["stem"]["norm"]["bias"]) == 0)
    assert "bias" not in params["stage0_block0"]["conv1"]


SPEC = """
name: bias-identity
precision: float64
problem:
  kind: supervised
  data: {source: rank2, d: 4, n: 8}
  model: {kind: mlp, widths: [5, 3], activation: tanh, bias: true, init: torch_default}
  loss: {kind: mse}
optimizer: {kind: gd, lr: 0.05}
train: {steps: 3}
"""
GOLDEN = "45c943e752e32af42a4be666e182ece9a609bd513da986fafa7d053e24067376"  # id before bias_init existed


def test_a_spec_without_bias_init_keeps_its_identity() -> None:
    spec = load("s.yaml", text=SPEC).spec
    dump = spec.model_dump(mode="json")
    assert "bias_init" not in dump["problem"]["model"] and "bias_scale" not in dump["problem"]["model"]
    assert spec_id(dump) == GOLDEN
    # the same network with the default written out hashes the same; a law hashes differently
    explicit = load(
        "s.yaml", text=SPEC.replace("init: torch_default}", "init: torch_default, bias_init: scheme}")
    )
    assert spec_id(explicit.spec.model_dump(mode="json")) == GOLDEN
    normal = SPEC.replace("init: torch_default}", "init: torch_default, bias_init: normal, bias_scale: 0.1}")
    changed = load("s.yaml", text=normal).spec.model_dump(mode="json")
    assert changed["problem"]["model"]["bias_init"] == "normal" and spec_id(changed) != GOLDEN


def test_library_spec_keeps_its_identity() -> None:
    """specs/catapults-nn/paper002-loss-activation.yaml: its id before bias_init existed."""
    spec = load("specs/catapults-nn/paper002-loss-activation.yaml").spec
    assert spec_id(spec.model_dump(mode="json")) == (
        "8f92004d7c28176abcd3d9734d21077b1a210546a02db9586af48bcb3bc9aaa6"
    )


def test_schema_describes_bias_init() -> None:
    from eosdsl.spec.networks import NETWORKS

    props = NETWORKS["mlp"].model_json_schema()["properties"]
    assert "independently of the weight scheme" in props["bias_init"]["description"]
    assert set(props["bias_init"]["anyOf"][0]["enum"]) == {"scheme", "zeros", "constant", "normal", "uniform"}
    assert "standard deviation" in props["bias_scale"]["description"]
    for kind in ("cnn", "vgg", "resnet20"):
        assert "bias_init" in NETWORKS[kind].model_json_schema()["properties"]
    # a spec-level error is placed at the key it is about; bias_scale is absent, so its position is the
    # network's (line 7, `  model: {…}`), its path the missing key's
    with pytest.raises(SpecError) as info:
        load("s.yaml", text=SPEC.replace("init: torch_default}", "init: torch_default, bias_init: normal}"))
    assert str(info.value) == (
        "s.yaml:7:3 problem.model.bias_scale: bias_init 'normal' needs bias_scale (the standard deviation)"
    )
    assert [e.path for e in info.value.errors] == [("problem", "model", "bias_scale")]


BLOCK = """\
name: bias-errors
precision: float64
problem:
  kind: supervised
  data: {source: rank2, d: 4, n: 8}
  model:
    kind: KIND
"""
TAIL = """\
  loss: {kind: mse}
optimizer: {kind: gd, lr: 0.05}
train: {steps: 3}
"""


def _spec_error(kind: str, *lines: str) -> str:
    """The error of a spec whose network (``kind``, block style from line 7) has the keys ``lines``
    (lines 8, 9, …, column 5)."""
    text = BLOCK.replace("KIND", kind) + "".join(f"    {line}\n" for line in lines) + TAIL
    with pytest.raises(SpecError) as info:
        load("s.yaml", text=text)
    return str(info.value)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (  # the reviewer's example: layer 1's scale under 'zeros', at bias_scale's line
            ["widths: [5, 3]", "bias_init: [normal, zeros, zeros]", "bias_scale: [0.1, 0.2, null]"],
            "s.yaml:10:5 problem.model.bias_scale: layer 1 (layer1): bias_scale is only meaningful with "
            "bias_init constant, normal or uniform, not 'zeros'",
        ),
        (  # two layers wrong: both named
            ["widths: [5, 3]", "bias_init: [zeros, normal, zeros]", "bias_scale: [0.3, 0.1, 1.0]"],
            "s.yaml:10:5 problem.model.bias_scale: layer 0 (layer0): bias_scale is only meaningful with "
            "bias_init constant, normal or uniform, not 'zeros'; layer 2 (output): bias_scale is only "
            "meaningful with bias_init constant, normal or uniform, not 'zeros'",
        ),
        (  # bias_scale left out: its path, at the network's position
            ["widths: [5, 3]", "bias_init: [scheme, scheme, uniform]"],
            "s.yaml:6:3 problem.model.bias_scale: layer 2 (output): bias_init 'uniform' needs bias_scale "
            "(the bound)",
        ),
        (
            ["widths: [5, 3]", "bias_init: [normal, zeros]"],
            "s.yaml:9:5 problem.model.bias_init: expected one bias_init or one per layer "
            "(3: layer0, layer1, output), got 2",
        ),
        (
            ["widths: [5]", "bias_init: normal", "bias_scale: [0.1, 0.2, 0.3]"],
            "s.yaml:10:5 problem.model.bias_scale: expected one bias_scale or one per layer "
            "(2: layer0, output), got 3",
        ),
        (
            [
                "widths: [5]",
                "bias: false",
                "output_bias: true",
                "bias_init: [constant, zeros]",
                "bias_scale: [1.0, null]",
            ],
            "s.yaml:11:5 problem.model.bias_init: layer 0 (layer0) has no bias, so its bias_init must be "
            "'scheme', not 'constant'",
        ),
        (  # one law for every layer: no layer named
            ["widths: [5]", "bias_init: uniform", "bias_scale: -1.0"],
            "s.yaml:10:5 problem.model.bias_scale: bias_scale of bias_init 'uniform' must be ≥ 0, got -1.0",
        ),
    ],
)
def test_spec_errors_are_placed_at_the_key(lines: list[str], error: str) -> None:
    assert _spec_error("mlp", *lines) == error


@pytest.mark.parametrize(
    ("kind", "size"), [("cnn", "channels: [2]"), ("vgg", "widths: [2]"), ("mlp", "widths: [2]")]
)
def test_spec_refuses_a_bias_law_without_biases(kind: str, size: str) -> None:
    """The same check for every network kind, at ``bias_init``'s key."""
    assert _spec_error(kind, size, "bias: false", "bias_init: zeros") == (
        "s.yaml:10:5 problem.model.bias_init: bias_init 'zeros' sets the law of the biases, but the network "
        "has none (bias: false)"
    )


def test_spec_resnet_without_conv_biases_takes_a_law() -> None:
    text = BLOCK.replace("KIND", "resnet20") + "    widths: [2]\n    blocks_per_stage: 1\n"
    text += "    bias: false\n    bias_init: zeros\n" + TAIL
    assert load("s.yaml", text=text).spec.problem.model.bias_init == "zeros"


def test_float32_draws_have_the_dtype() -> None:
    params = build_model(
        "mlp", in_dim=3, widths=(4,), out=1, dtype="float32", bias_init="normal", bias_scale=1.0
    ).init(jax.random.PRNGKey(0))
    assert params["layer0"]["bias"].dtype == jnp.float32
