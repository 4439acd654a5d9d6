"""Tests for ``eosdsl.models``: parameter counts, Hessians vs finite differences, init statistics, BN, dtypes.

Oracles:

- parameter counts by hand arithmetic from the papers (paper 004 App. F: MLP 784-32-32-32-32-10
  without biases = 28,480; paper 000 App. E: locuslab fc-relu 3072-200-200-10 = 656,810; paper 001 §4:
  two-layer linear d = 50, m = 400, k = 1: 20,400; He et al.'s CIFAR ResNet-20: 269,722 with option-A
  shortcuts, 272,474 with option-B projections, BN affine params included), against both
  ``count_formula`` and the number of parameters ``init`` actually creates (via ``jax.eval_shape``);
- the Hessian of the training loss (``eosdsl.curvature.dense.hessian_matrix``, i.e. ``jax.hessian`` over
  the flattened params) against a central finite difference of ``jax.grad``, and their top eigenvalues;
- init distributions against their defining bounds / variances (sampling tolerances stated per test);
- batch-norm statistics against their definition (mean 0, variance σ²/(σ² + ε) per channel and chunk).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.dense import hessian_matrix
from eosdsl.models import KINDS, OUTPUT_GROUP, batch_norm, build_model
from eosdsl.models.build import ModelFns
from eosdsl.problems.losses import cross_entropy, mse

pytestmark = pytest.mark.slow  # compiles JAX programs per model, finite-difference Hessians: seconds per test

jax.config.update("jax_enable_x64", True)

KEY = jax.random.PRNGKey(0)


def n_params(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def input_shape(fns: ModelFns) -> tuple[int, ...]:
    d = fns.description
    if "input_shape" in d:
        return tuple(d["input_shape"])
    return (d["in_dim"],) if "in_dim" in d else (d["d"],)


def leaf_names(tree) -> set[str]:
    return {str(path[-1].key) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def compile_fast(fn, *args):
    """jit-compile ``fn`` at XLA backend optimization level 0 (IEEE semantics are unchanged; compiling
    the Hessians of the conv nets takes about half as long), falling back to a default compile."""
    lowered = jax.jit(fn).lower(*args)
    try:
        return lowered.compile(compiler_options={"xla_backend_optimization_level": 0})
    except Exception:  # an XLA without that option
        return lowered.compile()


# ------------------------------------------------------------------------------------- parameter counts

# fmt: off
COUNT_CASES = [
    # paper 004's fMNIST MLP, no biases: 784·32 + 3·32·32 + 32·10
    ("mlp", dict(in_dim=784, widths=(32, 32, 32, 32), out=10, bias=False), 784 * 32 + 3 * 32 * 32 + 32 * 10),
    # locuslab fc-relu (paper 000): (3072·200 + 200) + (200·200 + 200) + (200·10 + 10)
    ("mlp", dict(in_dim=3072, widths=(200, 200), out=10), 3072 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10),
    # BN (affine) on both hidden layers adds 2·(5 + 6); the output bias is switched off
    ("mlp", dict(in_dim=4, widths=(5, 6), out=3, norm="batch", output_bias=False), 20 + 5 + 30 + 6 + 18 + 22),
    ("mlp", dict(in_dim=4, widths=(5, 6), out=3, norm="batch", norm_affine=False), 20 + 5 + 30 + 6 + 18 + 3),
    # paper 001 §4: m·d + m·k
    ("two_layer_linear", dict(d=50, m=400, k=1), 400 * 50 + 400),
    ("two_layer_linear", dict(d=7, m=5, k=3), 5 * 7 + 5 * 3),
    ("deep_linear", dict(in_dim=20, depth=3, width=7), 20 * 7 + 7 * 7 + 7),
    ("deep_linear", dict(in_dim=20, widths=(4, 5, 6), out=2), 20 * 4 + 4 * 5 + 5 * 6 + 6 * 2),
    # CNN 32×32×3, channels 16, 32 (+bias), 2 pools → 8·8·32 = 2048 features → 10
    ("cnn", dict(), (9 * 3 * 16 + 16) + (9 * 16 * 32 + 32) + 2048 * 10 + 10),
    ("cnn", dict(input_shape=(8, 8, 1), channels=(4,), dense=(6,), norm="ghost", ghost_size=2, bias=False),
     9 * 4 + 2 * 4 + 4 * 4 * 4 * 6 + 2 * 6 + 6 * 10),
    # VGG10-ish (paper 004 widths 8/16/32, 3 convs each, +bias, 3 pools → 4·4·32 = 512 → 10)
    ("vgg", dict(), 9 * (3 * 8 + 2 * 8 * 8) + 9 * (8 * 16 + 2 * 16 * 16) + 9 * (16 * 32 + 2 * 32 * 32)
     + 3 * (8 + 16 + 32) + 512 * 10 + 10),                                    # = 35,466
    ("vgg", dict(norm="ghost", ghost_size=1024), 35_466 + 2 * 3 * (8 + 16 + 32)),      # = 35,802 with GhostBN
    ("vgg", dict(head="gap", bias=False), 30_168 + 32 * 10),
    # ResNet-20 (option A): 268,346 weights + 1,376 BN affine = 269,722; option B adds 2,752
    ("resnet20", dict(), 269_722),
    ("resnet20", dict(shortcut="projection"), 272_474),
    ("resnet20", dict(norm="none"), 268_346),
    ("resnet20", dict(norm="ghost", ghost_size=1024, shortcut="B"), 272_474),
]
# fmt: on


@pytest.mark.parametrize(("kind", "config", "expected"), COUNT_CASES)
def test_parameter_counts(kind, config, expected):
    """count_formula and the leaves ``init`` creates (by ``jax.eval_shape``, no compute) both equal the hand
    formula."""
    fns = build_model(kind, **config)
    shapes = jax.eval_shape(fns.init, KEY)
    assert fns.count_formula == expected
    assert n_params(shapes) == expected
    assert n_params(fns.groups(shapes)) == expected  # the groups partition the parameters


def test_headline_counts_are_the_papers_numbers():
    """The numbers quoted in the papers / issue, spelled out."""
    assert 784 * 32 + 3 * 32 * 32 + 32 * 10 == 28_480
    assert 3072 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10 == 656_810
    assert 400 * 50 + 400 == 20_400
    # ResNet-20 arithmetic (3×3 convs without bias; BN affine 2/channel):
    stem = 3 * 16 * 9 + 2 * 16
    stage0 = 3 * (2 * 16 * 16 * 9 + 2 * 2 * 16)
    stage1 = (16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32) + 2 * (2 * 32 * 32 * 9 + 2 * 2 * 32)
    stage2 = (32 * 64 * 9 + 64 * 64 * 9 + 2 * 2 * 64) + 2 * (2 * 64 * 64 * 9 + 2 * 2 * 64)
    head = 64 * 10 + 10
    option_a = stem + stage0 + stage1 + stage2 + head
    assert option_a == 269_722
    assert option_a + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) == 272_474
    for kind, config, expected in [
        ("mlp", dict(in_dim=784, widths=(32,) * 4, out=10, bias=False), 28_480),
        ("mlp", dict(in_dim=3072, widths=(200, 200), out=10), 656_810),
        ("two_layer_linear", dict(d=50, m=400), 20_400),
        ("resnet20", dict(shortcut="B"), 272_474),
    ]:
        assert build_model(kind, **config).count_formula == expected


def test_groups_are_named_and_ordered():
    """Group names per kind, forward order, output group last; the two-layer linear net has W and A."""
    mlp = build_model("mlp", in_dim=3, widths=(4, 4, 4), out=2)
    assert list(mlp.groups(jax.eval_shape(mlp.init, KEY))) == ["layer0", "layer1", "layer2", "output"]
    tll = build_model("two_layer_linear", d=3, m=4)
    assert list(tll.groups(jax.eval_shape(tll.init, KEY))) == ["W", "A"]
    res = build_model("resnet20", input_shape=(8, 8, 3))
    names = list(res.groups(jax.eval_shape(res.init, KEY)))
    assert names[0] == "stem" and names[-1] == "output" and len(names) == 2 + 9
    assert names[1:4] == ["stage0_block0", "stage0_block1", "stage0_block2"]
    vgg = build_model("vgg", input_shape=(8, 8, 3), widths=(2, 3), convs_per_stage=2, dense=(5,))
    assert list(vgg.groups(jax.eval_shape(vgg.init, KEY))) == [
        "stage0_conv0", "stage0_conv1", "stage1_conv0", "stage1_conv1", "dense0", "output"
    ]  # fmt: skip
    for kind in KINDS:
        assert OUTPUT_GROUP[kind] in ("output", "A")


# ------------------------------------------------------------------------ Hessian vs finite differences

FD_STEP = 1e-5
N_EXAMPLES = 8
LOSS_SLICES = {"both": (0, 2), "mse": (0, 1), "ce": (1, 2)}

# (id, kind, config, losses, tol), at random float64 parameters (``random_params``). Smooth activations: the
# central difference of the gradient has truncation error ~h²·∂³L and round-off ~ε·|∇L|/h ≈ 1e-11, so 1e-6
# is a safe bound (observed ≤ 4e-8 relative with batch/ghost BN, ≤ 2e-10 without). ReLU / max-pool nets are
# piecewise smooth: on each piece the Hessian is well defined (σ'' = 0: Gauss–Newton plus cross-layer
# terms) and the central difference is exact up to round-off *unless a kink is crossed* within ±h, which
# gives an O(1/h) error, not a small one. So ReLU cases need inputs and parameters away from kinks: the MLP
# case checks that every pre-activation is ≥ 100·h from 0; in the conv cases every bias is non-zero (with
# zero biases, as under He init, a conv over an all-zero ReLU patch outputs exactly 0, a kink that
# perturbing the bias crosses), and the looser 1e-5 is a cushion for their longer graphs (observed
# ≤ 5e-10). The MLPs check both losses; each conv-net kind checks both across its cases (compiling two
# Hessians of a conv net doubles the test time). The ResNet instances are ResNet-20's code path at the
# smallest size that exercises all of it: 2 stages of 1 block (stem, identity block, stride-2 block with
# pad/projection shortcut); the full 3 × 3-block net runs in ``test_resnet20_forward_at_8x8``. Ghost BN (a
# reshape into chunks ahead of the same statistics) is checked in the MLP and VGG cases.
FD_CASES = [
    ("mlp-tanh-elu-torch", "mlp",
     dict(in_dim=3, widths=(4, 4), out=2, activation=("tanh", "elu")), "both", 1e-6),
    ("mlp-relu", "mlp", dict(in_dim=3, widths=(5, 5), out=2, activation="relu"), "both", 1e-6),
    ("mlp-gelu-swish-ntk-nobias", "mlp",
     dict(in_dim=3, widths=(4, 3), out=2, activation=("gelu", "swish"), init="ntk", bias=False), "both",
     1e-6),
    ("mlp-softplus-cubic-he-bn", "mlp",
     dict(in_dim=3, widths=(4, 4), out=2, activation=("softplus", "cubic"), init="he", norm="batch"), "both",
     1e-6),
    ("mlp-tanh-ghost-noaffine", "mlp",
     dict(in_dim=3, widths=(5,), out=2, activation="tanh", norm="ghost", ghost_size=4, norm_affine=False),
     "both", 1e-6),
    ("two-layer-linear-k1", "two_layer_linear", dict(d=4, m=6, k=1, a_std=0.5), "both", 1e-6),
    ("deep-linear", "deep_linear", dict(in_dim=3, depth=4, width=3, out=2), "both", 1e-6),
    ("cnn-tanh-avgpool", "cnn",
     dict(input_shape=(4, 4, 2), channels=(2, 3), activation="tanh", pool="avg", out=3), "mse", 1e-6),
    ("cnn-relu-maxpool-bn", "cnn",
     dict(input_shape=(4, 4, 2), channels=(2,), dense=(3,), pool="max", out=3, norm="batch"), "ce", 1e-5),
    ("vgg-elu-ghost", "vgg",
     dict(input_shape=(4, 4, 1), widths=(2, 2), convs_per_stage=1, activation="elu", out=2, norm="ghost",
          ghost_size=4), "both", 1e-6),
    ("resnet-softplus-bn-projection", "resnet20",
     dict(input_shape=(4, 4, 1), widths=(2, 3), blocks_per_stage=1, activation="softplus", out=2,
          shortcut="projection"), "ce", 1e-6),
    ("resnet-relu-nonorm-bias", "resnet20",
     dict(input_shape=(4, 4, 1), widths=(2, 2), blocks_per_stage=1, out=2, norm="none", bias=True), "mse",
     1e-5),
]  # fmt: skip


def random_params(fns: ModelFns, seed: int):
    """float64 parameters with the structure ``init`` creates (via ``jax.eval_shape``: no compile), drawn in
    numpy: kernels N(0, 1/fan_in), vectors (biases, BN scale/shift) N(0, 0.25). The Hessian identity holds
    at any point; the init distributions are tested separately, and skipping the jitted init saves a
    compile per case."""
    rng = np.random.default_rng(seed)

    def draw(leaf):
        shape = leaf.shape
        if len(shape) >= 2:
            return rng.normal(size=shape) / math.sqrt(math.prod(shape[:-1]))
        return 0.5 * rng.normal(size=shape)

    return jax.tree.map(draw, jax.eval_shape(fns.init, KEY))


def tiny_problem(fns: ModelFns, seed: int = 1):
    """Random float64 params, 8 standard-normal inputs, one-hot targets and labels (±1 targets if k = 1)."""
    params = random_params(fns, seed)
    x = np.random.default_rng(seed + 1).normal(size=(N_EXAMPLES, *input_shape(fns)))
    k = jax.eval_shape(fns.apply, params, x).shape[-1]
    labels = np.arange(N_EXAMPLES) % k
    if k == 1:
        y = np.where(labels % 2 == 0, 1.0, -1.0)
        return params, x, y, y
    return params, x, np.eye(k)[labels], labels


SLOW_FD = {"vgg", "resnet20"}  # ≈ 3–4 s each on 2 CPU cores (the project's `slow` marker)


@pytest.mark.parametrize(
    ("name", "kind", "config", "which", "tol"),
    [
        pytest.param(*case, id=case[0], marks=[pytest.mark.slow] if case[1] in SLOW_FD else [])
        for case in FD_CASES
    ],
)
def test_hessian_matches_finite_differences(name, kind, config, which, tol):
    """H = jax.hessian(L)(θ) equals [∇L(θ + h e_j) − ∇L(θ − h e_j)]/(2h) entrywise (relative to max|H|),
    for L = MSE (½Σ/n) and/or L = CE, and λ_max(H) by ``eigvalsh`` equals λ_max of the symmetrized FD
    Hessian to ``tol`` relative."""
    fns = build_model(kind, **config)
    params, x, y, labels = tiny_problem(fns)
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == jnp.float64 and flat.size <= 400
    if kind == "mlp" and config.get("activation") == "relu":
        margin = min(float(np.min(np.abs(z))) for z in jax.jit(fns.hidden)(params, x))
        assert margin > 100 * FD_STEP  # |∂z/∂θ_j| ≲ 10 here, so no kink lies within ±h along any coordinate

    def mse_loss(p):
        return mse(fns.apply(p, x), y)

    def ce_loss(p):
        return cross_entropy(fns.apply(p, x), labels)

    losses = [mse_loss, ce_loss][slice(*LOSS_SLICES[which])]

    def hessians(theta):
        out = []
        for loss in losses:
            h = hessian_matrix(loss, unravel(theta))
            g = jax.grad(lambda t, loss=loss: loss(unravel(t)))
            steps = FD_STEP * jnp.eye(theta.size, dtype=theta.dtype)
            grads = jax.lax.map(g, jnp.concatenate([theta + steps, theta - steps]))  # one grad, 2P times
            out += [h, (grads[: theta.size] - grads[theta.size :]).T / (2 * FD_STEP)]
        return out

    out = [np.asarray(a) for a in compile_fast(hessians, flat)(flat)]
    for h, fd in zip(out[::2], out[1::2], strict=True):
        scale = np.max(np.abs(h))
        assert scale > 0
        assert np.max(np.abs(h - fd)) <= tol * scale
        top, top_fd = np.linalg.eigvalsh(h)[-1], np.linalg.eigvalsh(0.5 * (fd + fd.T))[-1]
        assert abs(top - top_fd) <= tol * max(abs(top), scale)


# ---------------------------------------------------------------------------------------- init statistics
# Assertions do their arithmetic in numpy on arrays returned by jitted model functions: every eager jnp op
# on a new shape is a separate XLA compile, which dominates the run time of small tests on CPU.


def init_fast(fns: ModelFns, key=KEY) -> dict:
    """``fns.init(key)``, compiled by :func:`compile_fast` (the init programs are mostly threefry draws)."""
    return compile_fast(fns.init, key)(key)


def params_np(fns: ModelFns, key=KEY) -> dict:
    return jax.tree.map(np.asarray, init_fast(fns, key))


def test_torch_default_init_bounds_and_variance():
    """PyTorch default: W, b ~ U(−1/√fan_in, 1/√fan_in) — inside the bound, filling it, variance 1/(3 fan_in)
    (2% tolerance: 400k draws give a relative std of the sample variance of ≈ 0.2%); conv fan_in = k²·C_in."""
    fan_in = 800
    p = params_np(build_model("mlp", in_dim=fan_in, widths=(500,), out=1))["layer0"]
    bound = 1 / math.sqrt(fan_in)
    for leaf in (p["kernel"], p["bias"]):
        assert bound * 0.99 < np.max(np.abs(leaf)) <= bound
    assert p["kernel"].var() == pytest.approx(1 / (3 * fan_in), rel=0.02)
    kernel = params_np(build_model("cnn", input_shape=(8, 8, 5), channels=(64,), out=2))["conv0"]["kernel"]
    assert kernel.shape == (3, 3, 5, 64)
    assert 0.95 / math.sqrt(45) < np.max(np.abs(kernel)) <= 1 / math.sqrt(9 * 5)


@pytest.mark.parametrize(
    ("init", "sigma", "variance"),
    [("lecun", None, 1 / 800), ("he", None, 2 / 800), ("normal", 0.3, 0.09), ("ntk", None, 1.0)],
)
def test_gaussian_init_variances(init, sigma, variance):
    """LeCun N(0, 1/fan_in), He N(0, 2/fan_in), normal N(0, σ²), NTK N(0, 1): sample variance within 2% and
    mean within 4 standard errors, on an 800×500 layer; biases are 0 except under NTK (N(0, 1))."""
    p = params_np(build_model("mlp", in_dim=800, widths=(500,), out=1, init=init, sigma=sigma))["layer0"]
    w = p["kernel"]
    assert w.var() == pytest.approx(variance, rel=0.02)
    assert abs(w.mean()) < 4 * math.sqrt(variance / w.size)
    if init == "ntk":
        assert p["bias"].std() == pytest.approx(1.0, rel=0.3)
    else:
        assert np.all(p["bias"] == 0)


def test_ntk_forward_scaling():
    """NTK: each layer computes σ·hW/√fan_in + β·b; with σ = 1 the pre-activations have LeCun scale
    (variance ≈ ‖x‖²/fan_in)."""
    fns = build_model(
        "mlp", in_dim=600, widths=(300,), out=1, init="ntk", sigma=1.5, ntk_beta=0.1, activation="tanh"
    )
    p = init_fast(fns)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (4, 600)))
    z, f = jax.jit(lambda p, x: (fns.hidden(p, x)[0], fns.apply(p, x)))(p, x)
    q = jax.tree.map(np.asarray, p)
    z_expected = 1.5 * x @ q["layer0"]["kernel"] / math.sqrt(600) + 0.1 * q["layer0"]["bias"]
    np.testing.assert_allclose(z, z_expected, rtol=1e-12, atol=1e-12)
    f_expected = (
        np.tanh(z_expected) @ q["output"]["kernel"] * (1.5 / math.sqrt(300)) + 0.1 * q["output"]["bias"]
    )
    np.testing.assert_allclose(f, f_expected, rtol=1e-12, atol=1e-12)
    w = q["layer0"]["kernel"]  # σ = 1, no bias: z = xW/√fan_in with W ~ N(0, 1)
    assert np.var(x @ w / math.sqrt(600)) == pytest.approx(np.mean(x**2), rel=0.1)


def test_bias_off_and_per_layer_init_and_weight_norms():
    """bias=False → no bias leaves; per-layer schemes; weight_norms rescales a kernel's ‖·‖_F."""
    for kind, config in [
        ("mlp", dict(in_dim=3, widths=(4, 4), bias=False)),
        ("cnn", dict(input_shape=(4, 4, 1), channels=(2,), bias=False)),
        ("vgg", dict(input_shape=(4, 4, 1), widths=(2,), bias=False, convs_per_stage=1)),
        ("deep_linear", dict(in_dim=3, depth=3, width=2)),
    ]:
        shapes = jax.eval_shape(build_model(kind, **config).init, KEY)
        assert "bias" not in leaf_names(shapes), kind
    fns = build_model(
        "mlp", in_dim=5, widths=(4,), out=3, init=("he", "zeros"), output_bias=False, weight_norms=(2.0, None)
    )
    p = params_np(fns)
    assert np.linalg.norm(p["layer0"]["kernel"]) == pytest.approx(2.0, rel=1e-12)
    assert np.all(p["output"]["kernel"] == 0) and "bias" not in p["output"]
    assert np.all(p["layer0"]["bias"] == 0)


def test_init_is_deterministic_given_the_key():
    for kind, config in [
        ("mlp", dict(in_dim=3, widths=(4,))),
        ("cnn", dict(input_shape=(4, 4, 1), channels=(2,))),
    ]:
        fns = build_model(kind, **config)
        a, b, c = (ravel_pytree(params_np(fns, key))[0] for key in (KEY, KEY, jax.random.PRNGKey(1)))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


# ------------------------------------------------------------------------------------- model definitions


def test_two_layer_linear_formula_and_init():
    """F = X Wᵀ A/√m (ntk) or X Wᵀ A (standard); W_ij ~ N(0, 1/d), A ~ N(0, a_std²), a_std = 0 → F = 0."""
    d, m = 40, 500
    fns = build_model("two_layer_linear", d=d, m=m, k=2)
    std = build_model("two_layer_linear", d=d, m=m, k=2, scaling="standard")
    p = params_np(fns)
    assert p["W"].shape == (m, d) and p["A"].shape == (m, 2)
    assert p["W"].var() == pytest.approx(1 / d, rel=0.03)
    assert p["A"].std() == pytest.approx(0.01, rel=0.1)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (6, d)))
    f_ntk, f_std = jax.jit(lambda p, x: (fns.apply(p, x), std.apply(p, x)))(p, x)
    np.testing.assert_allclose(f_ntk, x @ p["W"].T @ p["A"] / math.sqrt(m), rtol=1e-12)
    np.testing.assert_allclose(f_std, x @ p["W"].T @ p["A"], rtol=1e-12)
    zero = build_model("two_layer_linear", d=d, m=m, a_std=0.0)
    assert np.all(params_np(zero)["A"] == 0)
    assert fns.hidden is None


def test_output_norm_identity_of_paper_001():
    """Paper 001 eq. (2), discretized (exact for GD): ‖A_{t+1}‖² − ‖A_t‖² = −(4η/n) D_tᵀF_t + η²‖∇_A L_t‖² for
    f = AᵀWx/√m and L = (1/n)Σ(f − y)² (``mse`` convention ``sum_over_n``)."""
    n, d, m, eta = 10, 6, 20, 0.3
    fns = build_model("two_layer_linear", d=d, m=m, a_std=0.5)
    x = jax.random.normal(jax.random.PRNGKey(7), (n, d))
    y = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)

    @jax.jit
    def both_sides(p):
        g = jax.grad(lambda q: mse(fns.apply(q, x), y, convention="sum_over_n"))(p)
        f = fns.apply(p, x)[:, 0]
        lhs = jnp.sum((p["A"] - eta * g["A"]) ** 2) - jnp.sum(p["A"] ** 2)
        return lhs, -(4 * eta / n) * jnp.dot(f - y, f) + eta**2 * jnp.sum(g["A"] ** 2)

    lhs, rhs = both_sides(init_fast(fns))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


def test_deep_linear_is_the_matrix_product():
    fns = build_model("deep_linear", in_dim=4, widths=(3, 5), out=2, init="lecun")
    p = params_np(fns)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (7, 4)))
    prod = p["layer0"]["kernel"] @ p["layer1"]["kernel"] @ p["output"]["kernel"]
    np.testing.assert_allclose(jax.jit(fns.apply)(p, x), x @ prod, rtol=1e-12)
    assert fns.description["depth"] == 3


def test_mlp_hidden_preactivations_and_forward():
    """``hidden`` returns z_l = h_{l−1}W_l + b_l (the activation inputs) and f is σ-composed from them;
    inputs of any trailing shape are flattened."""
    fns = build_model("mlp", in_dim=12, widths=(5, 4), out=3, activation=("tanh", "relu"))
    p = params_np(fns)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (6, 3, 4)))
    (z0, z1), f = jax.jit(lambda p, x: (fns.hidden(p, x), fns.apply(p, x)))(p, x)
    h0 = x.reshape(6, 12)
    np.testing.assert_allclose(z0, h0 @ p["layer0"]["kernel"] + p["layer0"]["bias"], rtol=1e-12)
    np.testing.assert_allclose(z1, np.tanh(z0) @ p["layer1"]["kernel"] + p["layer1"]["bias"], rtol=1e-12)
    np.testing.assert_allclose(f, np.maximum(z1, 0) @ p["output"]["kernel"] + p["output"]["bias"], rtol=1e-12)
    dead = int(np.sum(np.all(np.asarray(z1) <= 0, axis=0)))  # dead-ReLU count, as a measurement would do it
    assert 0 <= dead <= 4


@pytest.mark.slow
def test_resnet20_forward_at_8x8():
    """The full ResNet-20 (16/32/64, 3 blocks per stage, BN) on two 8×8 float32 images: float32 output of
    shape (2, 10), finite; the option-A shortcut has no parameters while option B adds the projections."""
    fns = build_model("resnet20", input_shape=(8, 8, 3), dtype="float32")
    p = init_fast(fns)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3), jnp.float32)
    out = compile_fast(fns.apply, p, x)(p, x)
    assert out.shape == (2, 10) and out.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(out)))
    assert set(p["stage1_block0"]) == {"conv1", "conv2"}
    proj = jax.eval_shape(build_model("resnet20", shortcut="projection").init, KEY)
    assert set(proj["stage1_block0"]) == {"conv1", "conv2", "shortcut"}
    assert proj["stage1_block0"]["shortcut"]["kernel"].shape == (1, 1, 16, 32)


# ------------------------------------------------------------------------------------------------ BN


def test_batch_norm_statistics_full_and_ghost():
    """Per channel over (N, H, W): mean 0 and variance σ²/(σ² + ε); ghost: the same within each chunk of
    ``ghost_size`` consecutive examples, the last short chunk on its own."""
    x = np.asarray(3.0 + 2.0 * jax.random.normal(KEY, (10, 3, 3, 4)))
    eps = 1e-5

    @jax.jit
    def normalized(x):
        chunks = [batch_norm(x[lo:hi], eps=eps) for lo, hi in ((0, 4), (4, 8), (8, 10))]
        return (
            batch_norm(x, eps=eps),
            batch_norm(x, ghost_size=4, eps=eps),
            chunks,
            batch_norm(x, ghost_size=10),
        )

    y, g, chunks, g10 = jax.tree.map(np.asarray, normalized(x))
    var = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), var / (var + eps), rtol=1e-12)
    for (lo, hi), chunk in zip(((0, 4), (4, 8), (8, 10)), chunks, strict=True):
        cvar = x[lo:hi].var(axis=(0, 1, 2))
        np.testing.assert_allclose(g[lo:hi].mean(axis=(0, 1, 2)), 0, atol=1e-12)
        np.testing.assert_allclose(g[lo:hi].var(axis=(0, 1, 2)), cvar / (cvar + eps), rtol=1e-12)
        np.testing.assert_allclose(g[lo:hi], chunk, rtol=1e-12)
    np.testing.assert_allclose(g10, y, rtol=1e-14)


def test_mlp_batch_norm_preactivations():
    """With norm=batch the hidden pre-activations have per-unit mean 0 / variance 1 over the batch (affine
    params at init: scale 1, bias 0; ε = 1e-12); with ghost BN, per chunk. Train mode with full-batch
    statistics: a sub-batch is normalized with its own statistics, so apply(x)[:4] ≠ apply(x[:4]) for
    batch BN, while ghost chunks of 4 make them equal."""
    x = np.asarray(1.0 + jax.random.normal(KEY, (12, 3)))
    eps = 1e-12
    results = {}
    for norm, ghost_size in (("batch", None), ("ghost", 4)):
        fns = build_model(
            "mlp",
            in_dim=3,
            widths=(6, 5),
            out=2,
            activation="tanh",
            norm=norm,
            ghost_size=ghost_size,
            eps=eps,
        )
        run = jax.jit(lambda p, x, fns=fns: (fns.hidden(p, x), fns.apply(p, x), fns.apply(p, x[:4])))
        results[norm] = jax.tree.map(np.asarray, run(init_fast(fns), x))
    hidden, full, sub = results["batch"]
    for z in hidden:
        np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(z.var(axis=0), 1, atol=1e-8)
    assert not np.allclose(full[:4], sub)
    hidden, full, sub = results["ghost"]
    for z in hidden:
        for lo in (0, 4, 8):
            np.testing.assert_allclose(z[lo : lo + 4].mean(axis=0), 0, atol=1e-12)
            np.testing.assert_allclose(z[lo : lo + 4].var(axis=0), 1, atol=1e-8)
    np.testing.assert_allclose(full[:4], sub, rtol=1e-12)


def test_batch_norm_apply_is_pure_jittable_with_finite_gradients():
    """No state: init creates only parameters (the count formula includes BN's affine params only), apply
    is deterministic and jit-able; the gradient through BN is finite, even for a constant input batch
    (zero batch variance, kept finite by ε)."""
    fns = build_model("mlp", in_dim=3, widths=(4, 3), out=2, norm="batch", activation="tanh")
    p = init_fast(fns)
    assert n_params(p) == fns.count_formula and set(p) == {"layer0", "layer1", "output"}
    assert set(p["layer0"]) == {"kernel", "bias", "norm"} and set(p["layer0"]["norm"]) == {"scale", "bias"}
    x = jax.random.normal(KEY, (6, 3))
    y = jnp.arange(6) % 2

    @jax.jit
    def run(p, x):
        grad = jax.grad(lambda q: cross_entropy(fns.apply(q, 0 * x), y))(p)  # constant batch: σ² = 0
        return fns.apply(p, x), fns.apply(p, x), grad

    a, b, grad = run(p, x)
    np.testing.assert_array_equal(a, b)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(grad))


# ---------------------------------------------------------------------------------------------- dtypes

DTYPE_CASES = [
    ("mlp", dict(in_dim=3, widths=(4,), norm="batch")),
    ("two_layer_linear", dict(d=3, m=4)),
    ("deep_linear", dict(in_dim=3, depth=2, width=2)),
    ("cnn", dict(input_shape=(4, 4, 1), channels=(2,), out=2, norm="ghost", ghost_size=2)),
    ("vgg", dict(input_shape=(4, 4, 1), widths=(2,), convs_per_stage=1, out=2)),
    ("resnet20", dict(input_shape=(4, 4, 1), widths=(1, 2, 2), blocks_per_stage=1, out=2)),
]


@pytest.mark.parametrize(("kind", "config"), DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_dtype_follows_params_and_inputs(kind, config):
    """float32 config and inputs → float32 params and outputs; float64 → float64 (by ``jax.eval_shape``,
    which traces the same computation without compiling it; real float32 and float64 runs are in
    ``test_resnet20_forward_at_8x8`` and the Hessian tests)."""
    for dtype in ("float32", "float64"):
        fns = build_model(kind, dtype=dtype, **config)
        p = jax.eval_shape(fns.init, KEY)
        assert {leaf.dtype for leaf in jax.tree.leaves(p)} == {jnp.dtype(dtype)}
        out = jax.eval_shape(fns.apply, p, jax.ShapeDtypeStruct((4, *input_shape(fns)), jnp.dtype(dtype)))
        assert out.dtype == jnp.dtype(dtype) and out.shape[0] == 4


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kind", "config", "match"),
    [
        ("mlp", dict(in_dim=3, widths=(4,), colour="red"), "unknown config keys"),
        ("mlp", dict(in_dim=3, widths=(4,), activation="sigmoidal"), "unknown activation"),
        ("mlp", dict(in_dim=3, widths=(4,), init="normal"), "needs sigma"),
        ("mlp", dict(in_dim=3, widths=(4,), init="glorot"), "unknown init"),
        ("mlp", dict(in_dim=3, widths=(4,), norm="ghost"), "ghost_size"),
        ("mlp", dict(in_dim=3, widths=(4, 4), activation=("tanh",)), "per-layer"),
        ("resnet20", dict(shortcut="C"), "shortcut"),
        ("deep_linear", dict(in_dim=3), "widths"),
        ("transformer", dict(), "unknown model kind"),
    ],
)
def test_config_errors(kind, config, match):
    with pytest.raises(ValueError, match=match):
        build_model(kind, **config)
