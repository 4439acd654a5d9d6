"""Tests for ``eosdsl.models``: parameter counts, Hessians vs finite differences, init statistics, BN, dtypes.

Oracles:

- parameter counts by hand arithmetic from the papers (digest seed-004 §4.13: MLP 784-32-32-32-32-10
  without biases = 28,480; seed-000 §5.4: locuslab fc-relu 3072-200-200-10 = 656,810; seed-001 §4:
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
from eosdsl.losses import cross_entropy, mse
from eosdsl.models import KINDS, OUTPUT_GROUP, batch_norm, build_model
from eosdsl.models.build import ModelFns

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

# (id, kind, config, tol). Smooth activations: the central difference of the gradient has truncation
# error ~h²·∂³L ≈ 1e-10 relative and round-off ~ε·|∇L|/h ≈ 1e-11, so 1e-6 is a safe bound (observed
# ≤ 2e-7 with ghost BN, ~1e-10 otherwise). ReLU / max-pool nets are piecewise smooth: on the pieces the
# MSE/CE Hessian is well defined (Gauss–Newton + cross-layer terms; σ'' = 0) and the central difference
# is exact up to round-off *unless a kink is crossed* within ±h, which would give an O(1) error, not a
# small one. The MLP ReLU case checks that every pre-activation is ≥ 1e3·h away from 0; the conv ReLU
# cases use the looser 1e-5 as a cushion for their longer graphs (observed ~1e-9).
FD_CASES = [
    ("mlp-tanh-bias", "mlp", dict(in_dim=3, widths=(4, 4), out=2, activation="tanh"), 1e-6),
    ("mlp-relu-nobias", "mlp", dict(in_dim=3, widths=(4, 4), out=2, activation="relu", bias=False), 1e-6),
    ("mlp-gelu-ntk", "mlp", dict(in_dim=3, widths=(5,), out=2, activation="gelu", init="ntk"), 1e-6),
    ("mlp-elu-he", "mlp", dict(in_dim=3, widths=(4, 3), out=2, activation="elu", init="he"), 1e-6),
    ("mlp-softplus-bn", "mlp",
     dict(in_dim=3, widths=(4, 4), out=2, activation="softplus", norm="batch"), 1e-6),
    ("mlp-swish-ghost", "mlp",
     dict(in_dim=3, widths=(5,), out=2, activation="swish", norm="ghost", ghost_size=4), 1e-6),
    ("mlp-cubic-bn-noaffine", "mlp",
     dict(in_dim=3, widths=(4,), out=2, activation="cubic", bias=False, norm="batch", norm_affine=False),
     1e-6),
    ("two-layer-linear-k1", "two_layer_linear", dict(d=4, m=6, k=1, a_std=0.5), 1e-6),
    ("deep-linear", "deep_linear", dict(in_dim=3, depth=4, width=3, out=2), 1e-6),
    ("cnn-tanh-avgpool", "cnn",
     dict(input_shape=(4, 4, 2), channels=(2, 3), activation="tanh", pool="avg", out=3), 1e-6),
    ("cnn-relu-maxpool-bn", "cnn",
     dict(input_shape=(4, 4, 2), channels=(2,), dense=(3,), pool="max", out=3, norm="batch"), 1e-5),
    ("vgg-elu-ghost", "vgg",
     dict(input_shape=(4, 4, 1), widths=(2, 2), convs_per_stage=(1, 2), activation="elu", out=2, norm="ghost",
          ghost_size=4), 1e-6),
    ("resnet-softplus-bn-projection", "resnet20",
     dict(input_shape=(4, 4, 1), widths=(2, 2, 3), blocks_per_stage=1, activation="softplus", out=2,
          shortcut="projection"), 1e-6),
    ("resnet-tanh-ghost-pad", "resnet20",
     dict(input_shape=(4, 4, 1), widths=(1, 2, 2), blocks_per_stage=1, activation="tanh", out=2, norm="ghost",
          ghost_size=4), 1e-6),
    ("resnet-relu-nonorm-bias", "resnet20",
     dict(input_shape=(4, 4, 1), widths=(2, 2, 2), blocks_per_stage=1, out=2, norm="none", bias=True), 1e-5),
]  # fmt: skip


def tiny_problem(fns: ModelFns, seed: int = 1):
    """float64 params, 8 standard-normal inputs, one-hot targets and labels (±1 targets for k = 1)."""
    params = fns.init(jax.random.PRNGKey(seed))
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (N_EXAMPLES, *input_shape(fns)), jnp.float64)
    k = fns.apply(params, x[:2]).shape[-1]
    labels = jnp.arange(N_EXAMPLES) % k
    if k == 1:
        y = jnp.where(labels % 2 == 0, 1.0, -1.0)
        return params, x, y, y
    return params, x, jax.nn.one_hot(labels, k, dtype=jnp.float64), labels


@pytest.mark.parametrize(("name", "kind", "config", "tol"), FD_CASES, ids=[c[0] for c in FD_CASES])
def test_hessian_matches_finite_differences(name, kind, config, tol):
    """H = jax.hessian(L)(θ) equals [∇L(θ + h e_j) − ∇L(θ − h e_j)]/(2h) entrywise (relative to max|H|),
    for L = MSE (½Σ/n) and L = CE, and λ_max(H) by ``eigvalsh`` equals λ_max of the symmetrized FD
    Hessian to ``tol`` relative."""
    fns = build_model(kind, **config)
    params, x, y, labels = tiny_problem(fns)
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == jnp.float64 and flat.size <= 400
    if kind == "mlp" and config.get("activation") == "relu":
        margin = min(float(jnp.min(jnp.abs(z))) for z in fns.hidden(params, x))
        assert margin > 1e3 * FD_STEP  # no kink within ±h of θ along any coordinate

    def mse_loss(p):
        return mse(fns.apply(p, x), y)

    def ce_loss(p):
        return cross_entropy(fns.apply(p, x), labels)

    def hessians(theta):
        out = []
        for loss in (mse_loss, ce_loss):
            h = hessian_matrix(loss, unravel(theta))
            g = jax.grad(lambda t, loss=loss: loss(unravel(t)))
            basis = FD_STEP * jnp.eye(theta.size, dtype=theta.dtype)
            fd = jax.lax.map(lambda e, g=g: (g(theta + e) - g(theta - e)) / (2 * FD_STEP), basis)
            out += [h, fd.T]
        return out

    h_mse, fd_mse, h_ce, fd_ce = (np.asarray(a) for a in compile_fast(hessians, flat)(flat))
    for h, fd in ((h_mse, fd_mse), (h_ce, fd_ce)):
        scale = np.max(np.abs(h))
        assert scale > 0
        assert np.max(np.abs(h - fd)) <= tol * scale
        top, top_fd = np.linalg.eigvalsh(h)[-1], np.linalg.eigvalsh(0.5 * (fd + fd.T))[-1]
        assert abs(top - top_fd) <= tol * max(abs(top), scale)


# ---------------------------------------------------------------------------------------- init statistics


def test_torch_default_init_bounds_and_variance():
    """PyTorch default: W, b ~ U(−1/√fan_in, 1/√fan_in) — inside the bound, filling it, variance 1/(3 fan_in)
    (2% tolerance: 400k draws give a relative std of the sample variance of ≈ 0.2%)."""
    fan_in = 800
    fns = build_model("mlp", in_dim=fan_in, widths=(500,), out=1)
    p = fns.init(KEY)["layer0"]
    bound = 1 / math.sqrt(fan_in)
    for leaf in (p["kernel"], p["bias"]):
        assert float(jnp.max(jnp.abs(leaf))) <= bound
        assert float(jnp.max(jnp.abs(leaf))) > 0.99 * bound
    assert float(jnp.var(p["kernel"])) == pytest.approx(1 / (3 * fan_in), rel=0.02)
    # conv fan_in = k²·C_in
    cnn = build_model("cnn", input_shape=(8, 8, 5), channels=(64,), out=2)
    kernel = cnn.init(KEY)["conv0"]["kernel"]
    assert kernel.shape == (3, 3, 5, 64)
    assert float(jnp.max(jnp.abs(kernel))) <= 1 / math.sqrt(9 * 5)


@pytest.mark.parametrize(
    ("init", "sigma", "variance"),
    [("lecun", None, 1 / 800), ("he", None, 2 / 800), ("normal", 0.3, 0.09), ("ntk", None, 1.0)],
)
def test_gaussian_init_variances(init, sigma, variance):
    """LeCun N(0, 1/fan_in), He N(0, 2/fan_in), normal N(0, σ²), NTK N(0, 1): sample variance within 2% and
    mean within 4 standard errors, on a 800×500 layer; biases are 0 except under NTK (N(0, 1))."""
    fns = build_model("mlp", in_dim=800, widths=(500,), out=1, init=init, sigma=sigma)
    p = fns.init(KEY)["layer0"]
    w = np.asarray(p["kernel"])
    assert w.var() == pytest.approx(variance, rel=0.02)
    assert abs(w.mean()) < 4 * math.sqrt(variance / w.size)
    if init == "ntk":
        assert np.asarray(p["bias"]).std() == pytest.approx(1.0, rel=0.3)
    else:
        assert np.all(np.asarray(p["bias"]) == 0)


def test_ntk_forward_scaling():
    """NTK: the layer computes σ·xW/√fan_in + β·b; with σ = 1 its pre-activations have LeCun scale."""
    fns = build_model(
        "mlp", in_dim=600, widths=(300,), out=1, init="ntk", sigma=1.5, ntk_beta=0.1, activation="tanh"
    )
    p = fns.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 600))
    z = fns.hidden(p, x)[0]
    expected = 1.5 * x @ p["layer0"]["kernel"] / math.sqrt(600) + 0.1 * p["layer0"]["bias"]
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)
    out = jnp.tanh(z) @ p["output"]["kernel"] * (1.5 / math.sqrt(300)) + 0.1 * p["output"]["bias"]
    np.testing.assert_allclose(fns.apply(p, x), out, rtol=1e-12, atol=1e-12)
    unit = build_model("mlp", in_dim=600, widths=(300,), out=1, init="ntk", bias=False)
    z1 = unit.hidden(unit.init(KEY), x)[0]
    assert float(jnp.var(z1)) == pytest.approx(float(jnp.mean(x**2)), rel=0.1)  # ≈ ‖x‖²/fan_in


def test_bias_off_and_per_layer_init_and_weight_norms():
    """bias=False → no bias leaves; per-layer schemes; weight_norms rescales each kernel's ‖·‖_F."""
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
    p = fns.init(KEY)
    assert float(jnp.linalg.norm(p["layer0"]["kernel"])) == pytest.approx(2.0, rel=1e-12)
    assert np.all(np.asarray(p["output"]["kernel"]) == 0) and "bias" not in p["output"]
    assert np.all(np.asarray(p["layer0"]["bias"]) == 0)


def test_init_is_deterministic_given_the_key():
    for kind, config in [
        ("mlp", dict(in_dim=3, widths=(4,))),
        ("two_layer_linear", dict(d=3, m=4)),
        ("cnn", dict(input_shape=(4, 4, 1), channels=(2,))),
    ]:
        fns = build_model(kind, **config)
        a, b, c = fns.init(KEY), fns.init(KEY), fns.init(jax.random.PRNGKey(1))
        assert jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a, b))
        assert not jnp.array_equal(ravel_pytree(a)[0], ravel_pytree(c)[0])


# ------------------------------------------------------------------------------------- model definitions


def test_two_layer_linear_formula_and_init():
    """F = X Wᵀ A/√m (ntk) or X Wᵀ A (standard); W_ij ~ N(0, 1/d), A ~ N(0, a_std²), a_std = 0 → F = 0."""
    d, m = 40, 500
    fns = build_model("two_layer_linear", d=d, m=m, k=2)
    p = fns.init(KEY)
    assert p["W"].shape == (m, d) and p["A"].shape == (m, 2)
    assert float(jnp.var(p["W"])) == pytest.approx(1 / d, rel=0.03)
    assert float(jnp.std(p["A"])) == pytest.approx(0.01, rel=0.1)
    x = jax.random.normal(jax.random.PRNGKey(3), (6, d))
    np.testing.assert_allclose(fns.apply(p, x), x @ p["W"].T @ p["A"] / math.sqrt(m), rtol=1e-12)
    std = build_model("two_layer_linear", d=d, m=m, k=2, scaling="standard")
    np.testing.assert_allclose(std.apply(p, x), x @ p["W"].T @ p["A"], rtol=1e-12)
    zero = build_model("two_layer_linear", d=d, m=m, a_std=0.0)
    assert np.all(np.asarray(zero.apply(zero.init(KEY), x)) == 0)
    assert fns.hidden is None


def test_output_norm_identity_of_paper_001():
    """Digest seed-001 §3.0 (exact for GD): ‖A_{t+1}‖² − ‖A_t‖² = −(4η/n) D_tᵀF_t + η²‖∇_A L_t‖² for
    f = AᵀWx/√m and L = (1/n)Σ(f − y)² (``mse`` convention ``sum_over_n``)."""
    n, d, m, eta = 10, 6, 20, 0.3
    fns = build_model("two_layer_linear", d=d, m=m, a_std=0.5)
    p = fns.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(7), (n, d))
    y = jnp.sign(jax.random.normal(jax.random.PRNGKey(8), (n,)))

    def loss(q):
        return mse(fns.apply(q, x), y, convention="sum_over_n")

    g = jax.grad(loss)(p)
    new = jax.tree.map(lambda a, b: a - eta * b, p, g)
    f = fns.apply(p, x)[:, 0]
    lhs = jnp.sum(new["A"] ** 2) - jnp.sum(p["A"] ** 2)
    rhs = -(4 * eta / n) * jnp.dot(f - y, f) + eta**2 * jnp.sum(g["A"] ** 2)
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


def test_deep_linear_is_the_matrix_product():
    fns = build_model("deep_linear", in_dim=4, widths=(3, 5), out=2, init="lecun")
    p = fns.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(2), (7, 4))
    prod = p["layer0"]["kernel"] @ p["layer1"]["kernel"] @ p["output"]["kernel"]
    np.testing.assert_allclose(fns.apply(p, x), x @ prod, rtol=1e-12)
    assert fns.description["depth"] == 3


def test_mlp_hidden_preactivations_and_forward():
    """``hidden`` returns z_l = h_{l−1}W_l + b_l (the activation inputs) and f is σ-composed from them;
    inputs of any trailing shape are flattened."""
    fns = build_model("mlp", in_dim=12, widths=(5, 4), out=3, activation=("tanh", "relu"))
    p = fns.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(2), (6, 3, 4))
    z0, z1 = fns.hidden(p, x)
    h0 = x.reshape(6, 12)
    np.testing.assert_allclose(z0, h0 @ p["layer0"]["kernel"] + p["layer0"]["bias"], rtol=1e-12)
    np.testing.assert_allclose(z1, jnp.tanh(z0) @ p["layer1"]["kernel"] + p["layer1"]["bias"], rtol=1e-12)
    f = jax.nn.relu(z1) @ p["output"]["kernel"] + p["output"]["bias"]
    np.testing.assert_allclose(fns.apply(p, x), f, rtol=1e-12)
    dead = int(jnp.sum(jnp.all(z1 <= 0, axis=0)))  # dead-ReLU count, as a measurement would do it
    assert 0 <= dead <= 4


def test_resnet20_forward_at_8x8():
    """The full ResNet-20 (16/32/64, 3 blocks per stage, BN) on two 8×8 images: shape, finite, and the
    option-A shortcut has no parameters while option B adds the projections."""
    fns = build_model("resnet20", input_shape=(8, 8, 3), dtype="float32")
    p = fns.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3), jnp.float32)
    out = jax.jit(fns.apply)(p, x)
    assert out.shape == (2, 10) and out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert set(p["stage1_block0"]) == {"conv1", "conv2"}
    proj = jax.eval_shape(build_model("resnet20", shortcut="projection").init, KEY)
    assert set(proj["stage1_block0"]) == {"conv1", "conv2", "shortcut"}
    assert proj["stage1_block0"]["shortcut"]["kernel"].shape == (1, 1, 16, 32)


# ------------------------------------------------------------------------------------------------ BN


def test_batch_norm_statistics_full_and_ghost():
    """Per channel over (N, H, W): mean 0 and variance σ²/(σ² + ε); ghost: the same within each chunk of
    ``ghost_size`` consecutive examples, the last short chunk on its own."""
    x = 3.0 + 2.0 * jax.random.normal(KEY, (10, 3, 3, 4))
    eps = 1e-5
    y = batch_norm(x, eps=eps)
    var = np.asarray(jnp.var(x, axis=(0, 1, 2)))
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(jnp.var(y, axis=(0, 1, 2)), var / (var + eps), rtol=1e-12)
    g = batch_norm(x, ghost_size=4, eps=eps)
    for lo, hi in ((0, 4), (4, 8), (8, 10)):
        chunk = x[lo:hi]
        cvar = np.asarray(jnp.var(chunk, axis=(0, 1, 2)))
        np.testing.assert_allclose(jnp.mean(g[lo:hi], axis=(0, 1, 2)), 0, atol=1e-12)
        np.testing.assert_allclose(jnp.var(g[lo:hi], axis=(0, 1, 2)), cvar / (cvar + eps), rtol=1e-12)
        np.testing.assert_allclose(g[lo:hi], batch_norm(chunk, eps=eps), rtol=1e-12)
    np.testing.assert_allclose(batch_norm(x, ghost_size=10), y, rtol=1e-14)


def test_mlp_batch_norm_preactivations():
    """With norm=batch the hidden pre-activations have per-unit mean 0 / variance ≈ 1 over the batch
    (affine params at init: scale 1, bias 0); with ghost BN, per chunk. Train mode with full-batch
    statistics: a sub-batch is normalized with its own statistics, so apply(x)[:4] ≠ apply(x[:4]) for
    batch BN, while ghost chunks of 4 make them equal."""
    x = 1.0 + jax.random.normal(KEY, (12, 3))
    fns = build_model("mlp", in_dim=3, widths=(6, 5), out=2, activation="tanh", norm="batch")
    p = fns.init(KEY)
    for z in fns.hidden(p, x):
        np.testing.assert_allclose(jnp.mean(z, axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(jnp.var(z, axis=0), 1, atol=1e-3)
    assert not np.allclose(fns.apply(p, x)[:4], fns.apply(p, x[:4]))
    ghost = build_model("mlp", in_dim=3, widths=(6,), out=2, norm="ghost", ghost_size=4)
    pg = ghost.init(KEY)
    for lo in (0, 4, 8):
        z = ghost.hidden(pg, x)[0][lo : lo + 4]
        np.testing.assert_allclose(jnp.mean(z, axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(jnp.var(z, axis=0), 1, atol=1e-3)
    np.testing.assert_allclose(ghost.apply(pg, x)[:4], ghost.apply(pg, x[:4]), rtol=1e-12)


def test_batch_norm_apply_is_pure_jittable_with_finite_gradients():
    """No state: init creates only parameters (the count formula includes BN's affine params only), apply
    is deterministic and equals its jit; the gradient through BN is finite, even for a constant channel
    (zero batch variance, kept finite by ε)."""
    fns = build_model("resnet20", input_shape=(4, 4, 1), widths=(2, 2, 2), blocks_per_stage=1, out=2)
    p = fns.init(KEY)
    assert n_params(p) == fns.count_formula
    x = jax.random.normal(KEY, (6, 4, 4, 1))
    a, b = fns.apply(p, x), fns.apply(p, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(jax.jit(fns.apply)(p, x), a, rtol=1e-12)
    y = jnp.arange(6) % 2
    for inputs in (x, jnp.zeros_like(x)):
        g = jax.grad(lambda q, inputs=inputs: cross_entropy(fns.apply(q, inputs), y))(p)
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


# ---------------------------------------------------------------------------------------------- dtypes

DTYPE_CASES = [
    ("mlp", dict(in_dim=3, widths=(4,), norm="batch")),
    ("two_layer_linear", dict(d=3, m=4)),
    ("deep_linear", dict(in_dim=3, depth=2, width=2)),
    ("cnn", dict(input_shape=(4, 4, 1), channels=(2,), out=2, norm="ghost", ghost_size=2)),
    ("vgg", dict(input_shape=(4, 4, 1), widths=(2,), convs_per_stage=1, out=2)),
    ("resnet20", dict(input_shape=(4, 4, 1), widths=(1, 2, 2), blocks_per_stage=1, out=2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("kind", "config"), DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_dtype_follows_params_and_inputs(kind, config, dtype):
    fns = build_model(kind, dtype=dtype, **config)
    p = fns.init(KEY)
    assert {leaf.dtype for leaf in jax.tree.leaves(p)} == {jnp.dtype(dtype)}
    x = jax.random.normal(KEY, (4, *input_shape(fns)), dtype)
    out = fns.apply(p, x)
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
