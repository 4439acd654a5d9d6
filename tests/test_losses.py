"""Tests for ``eosdsl.problems.losses``.

Oracles: the defining formulas in numpy (MSE conventions ½Σr²/N, Σr²/(N·k), Σr²/N; −mean log softmax),
optax's reference implementations (``softmax_cross_entropy``, ``..._with_integer_labels``,
``sigmoid_binary_cross_entropy``, ``huber_loss``), and the closed-form Hessian of a linear model
(1/N)·I_k ⊗ XᵀX under the ½Σ/N convention; paper 002's Table 1 for the presets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eosdsl.models import build_model
from eosdsl.problems.losses import (
    MSE_CONVENTIONS,
    PAPER_002_PAIRS,
    accuracy,
    cross_entropy,
    huber,
    make_loss,
    mse,
    one_hot,
    pm1,
)

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(0)
F = RNG.normal(size=(5, 3))
Y = RNG.normal(size=(5, 3))
LABELS = np.array([0, 2, 1, 1, 0])


# ------------------------------------------------------------------------------------------------ MSE


def test_mse_conventions_equal_their_formulas():
    r2 = np.sum((F - Y) ** 2)
    expected = {"half_sum_over_n": 0.5 * r2 / 5, "mean": r2 / 15, "sum_over_n": r2 / 5}
    assert set(expected) == set(MSE_CONVENTIONS)
    for convention, value in expected.items():
        assert float(mse(F, Y, convention)) == pytest.approx(value, rel=1e-14)
        assert float(mse(F, Y, convention, scale=0.3)) == pytest.approx(0.3 * value, rel=1e-14)
    assert float(mse(F, Y)) == pytest.approx(expected["half_sum_over_n"], rel=1e-14)  # the default


def test_mse_target_forms():
    """Integer labels → one-hot 0/1 rows; (N,) targets for (N, 1) outputs; (N,) outputs."""
    oh = np.eye(3)[LABELS]
    assert float(mse(F, LABELS)) == pytest.approx(0.5 * np.sum((F - oh) ** 2) / 5, rel=1e-14)
    f1, y1 = F[:, :1], np.sign(Y[:, 0])
    value = np.sum((f1[:, 0] - y1) ** 2) / 5
    assert float(mse(f1, y1, "sum_over_n")) == pytest.approx(value, rel=1e-14)
    assert float(mse(f1[:, 0], y1, "mean")) == pytest.approx(value, rel=1e-14)
    assert float(mse(f1, y1[:, None], "mean")) == pytest.approx(value, rel=1e-14)
    with pytest.raises(ValueError, match="do not fit"):
        mse(F, Y[:, :2])
    with pytest.raises(ValueError, match="convention"):
        mse(F, Y, "half_mean")


def test_hessian_scales_with_the_convention():
    """Linear model f = XW (W: d×k): under ½Σr²/N the Hessian is (1/N)·I_k ⊗ XᵀX, so its top eigenvalue is
    λ_max(XᵀX)/N; ``sum_over_n`` doubles it and ``mean`` gives 1/k of ``sum_over_n``."""
    n, d, k = 6, 4, 3
    X = RNG.normal(size=(n, d))
    T = RNG.normal(size=(n, k))
    top = np.linalg.eigvalsh(X.T @ X)[-1] / n

    @jax.jit
    def hessians(w):
        return [jax.hessian(lambda w, c=c: mse(X @ w.reshape(d, k), T, c))(w) for c in MSE_CONVENTIONS]

    sharpness = {
        c: np.linalg.eigvalsh(np.asarray(h))[-1]
        for c, h in zip(MSE_CONVENTIONS, hessians(jnp.zeros(d * k)), strict=True)
    }
    assert sharpness["half_sum_over_n"] == pytest.approx(top, rel=1e-12)
    assert sharpness["sum_over_n"] == pytest.approx(2 * top, rel=1e-12)
    assert sharpness["mean"] == pytest.approx(2 * top / k, rel=1e-12)


# ------------------------------------------------------------------------------------------------ Huber


def test_huber_matches_formula_and_optax():
    delta = 0.7
    elementwise = np.asarray(optax.huber_loss(F, Y, delta=delta))
    a = np.abs(F - Y)
    np.testing.assert_allclose(
        elementwise, np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta)), rtol=1e-14
    )
    assert float(huber(F, Y, delta)) == pytest.approx(elementwise.sum() / 5, rel=1e-14)
    assert float(huber(F, Y, delta, "mean")) == pytest.approx(elementwise.mean(), rel=1e-14)
    assert float(huber(F, Y, 1e6)) == pytest.approx(float(mse(F, Y)), rel=1e-14)  # δ → ∞: ½Σr²/N
    with pytest.raises(ValueError, match="delta"):
        huber(F, Y, 0.0)


# --------------------------------------------------------------------------------------- cross-entropy


def test_cross_entropy_equals_mean_negative_log_softmax_and_optax():
    logp = F - np.log(np.sum(np.exp(F), axis=1, keepdims=True))
    expected = -np.mean(logp[np.arange(5), LABELS])
    assert float(cross_entropy(F, LABELS)) == pytest.approx(expected, rel=1e-14)
    assert float(cross_entropy(F, np.eye(3)[LABELS])) == pytest.approx(expected, rel=1e-14)
    optax_oh = float(jnp.mean(optax.softmax_cross_entropy(F, jax.nn.one_hot(LABELS, 3))))
    optax_int = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(F, LABELS)))
    assert float(cross_entropy(F, LABELS)) == pytest.approx(optax_oh, rel=1e-13)
    assert float(cross_entropy(F, LABELS)) == pytest.approx(optax_int, rel=1e-13)
    soft = np.abs(Y) / np.abs(Y).sum(axis=1, keepdims=True)
    assert float(cross_entropy(F, soft)) == pytest.approx(-np.mean(np.sum(soft * logp, axis=1)), rel=1e-14)


def test_cross_entropy_scalar_output_with_pm1_targets_is_logistic():
    f = F[:, 0]
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0])
    expected = np.mean(np.log1p(np.exp(-y * f)))
    assert float(cross_entropy(f, y)) == pytest.approx(expected, rel=1e-14)
    assert float(cross_entropy(f[:, None], y)) == pytest.approx(expected, rel=1e-14)
    ref = float(jnp.mean(optax.sigmoid_binary_cross_entropy(f, (y + 1) / 2)))
    assert float(cross_entropy(f, y)) == pytest.approx(ref, rel=1e-13)
    with pytest.raises(ValueError, match="±1"):
        cross_entropy(f, (y + 1) / 2)


# -------------------------------------------------------------------------------------------- accuracy


def test_accuracy_one_hot_integer_and_sign():
    pred = np.argmax(F, axis=1)
    labels = pred.copy()
    labels[:2] = (labels[:2] + 1) % 3  # two wrong
    assert float(accuracy(F, labels)) == pytest.approx(3 / 5)
    assert float(accuracy(F, np.eye(3)[labels])) == pytest.approx(3 / 5)
    f = np.array([0.5, -0.2, 0.0, 3.0])
    y = np.array([1.0, -1.0, 1.0, -1.0])  # right, right, f = 0 counts wrong, wrong
    assert float(accuracy(f, y)) == pytest.approx(0.5)
    assert float(accuracy(f[:, None], y[:, None])) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------- make_loss, helpers


def test_make_loss_names_options_and_errors():
    assert float(make_loss("mse", convention="mean")(F, Y)) == float(mse(F, Y, "mean"))
    assert float(make_loss("l2")(F, Y)) == float(mse(F, Y))
    assert float(make_loss("ce")(F, LABELS)) == float(cross_entropy(F, LABELS))
    assert float(make_loss("huber", delta=0.5, convention="mean")(F, Y)) == float(huber(F, Y, 0.5, "mean"))
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="unknown options"):
        make_loss("cross_entropy", scale=2.0)
    with pytest.raises(ValueError, match="convention"):
        make_loss("mse", convention="half")


def test_target_helpers():
    np.testing.assert_array_equal(one_hot(jnp.array([1, 0]), 3), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(one_hot(jnp.array([2]), 3, off=-1.0), [[-1, -1, 1]])
    np.testing.assert_array_equal(pm1(jnp.array([0, 1, 1])), [-1, 1, 1])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_loss_dtype_follows_outputs(dtype):
    f, y = jnp.asarray(F, dtype), jnp.asarray(Y, dtype)
    for value in (
        mse(f, y),
        mse(f, LABELS, "mean"),
        huber(f, y),
        cross_entropy(f, LABELS),
        cross_entropy(f, y),
    ):
        assert value.dtype == dtype


# ------------------------------------------------------------------------------------------- paper 002


def test_paper_002_pairs_match_table_1_and_build():
    """Table 1: dor of Huber/ℓ2 × tanh/ReLU/cubic = 0 1 3 / 0 2 6; EoS exactly when dor < 2 except the
    2-layer Huber + cubic net (the paper's exception); BN presets use BatchNorm1d(affine=False) and
    restore EoS; every preset builds a bias-free MLP and a loss."""
    table = {"huber_tanh": 0, "huber_relu": 1, "huber_cubic": 3, "l2_tanh": 0, "l2_relu": 2, "l2_cubic": 6}
    for name, dor in table.items():
        assert PAPER_002_PAIRS[name]["dor"] == dor
        assert PAPER_002_PAIRS[name]["paper_eos"] == (dor < 2 or name == "huber_cubic")
    for name, preset in PAPER_002_PAIRS.items():
        widths = (4,) * preset["hidden_layers"]
        fns = build_model("mlp", in_dim=6, widths=widths, out=10, **preset["mlp"])
        shapes = jax.eval_shape(fns.init, jax.random.PRNGKey(0))
        assert all("bias" not in group for group in shapes.values()), name
        assert set(preset["frozen_groups"]) <= set(shapes)
        loss = make_loss(preset["loss"], **preset["loss_opts"])
        assert float(loss(F[:, :1].repeat(10, axis=1), jnp.asarray(LABELS))) > 0
        if name.endswith("_bn"):
            assert preset["mlp"]["norm"] == "batch" and preset["mlp"]["norm_affine"] is False
            assert preset["paper_eos"] is True and preset["dor"] == 0
