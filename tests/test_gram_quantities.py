"""Paper 001's Gram quantities: per-layer blocks M_g, λ_min, top-k eigenvalues and residual projections Dᵀv_i.

Oracles. M = (c/n) J Jᵀ with J (n·k, P) the explicit forward-mode Jacobian (``jax.jacfwd`` of the flat
outputs over the flat parameters) and its blocks M_g = (c/n) J_g J_gᵀ from J's columns of each group;
eigenpairs by ``numpy.linalg.eigh``. ``gram_blocks`` (reverse mode, per leaf) and the dense oracle sum
the same products in another order: relative 1e-12 (observed ~1e-15). For the two-layer linear net
f = AᵀWx/√m, paper 001 §4 gives the blocks in closed form, M_W = (2‖A‖²/(mn)) XᵀX and
M_A = (2/(mn)) XᵀWᵀWX (X = [x₁ … x_n] ∈ ℝ^{d×n}), to round-off (1e-12). Eigenvalues of the same
symmetric matrix from two eigh calls agree to ~ε‖M‖: absolute 1e-12·‖M‖. Projections are compared
up to nothing: the orientation Yᵀv_i ≥ 0 fixes each eigenvector's sign, so Dᵀv_i must match the
oriented dense eigenvectors to 1e-10 (eigenvectors of well-separated eigenvalues are accurate to
~ε‖M‖/gap; the gaps here are ≥ 1e-2‖M‖). Lemma 3.3 of paper 001 (‖(I − ηM)u‖ ≤ (1 − ηα)‖u‖ with
α = min(2/η − Λ, λ_min) when ηΛ < 2) is exact linear algebra: checked on random u with the computed
Λ and λ_min, slack 1e-12.

The engine tests run a spec with every new field alone, packed (``execute_pack``: each member equal to
its lone run to relative 1e-9, the catapults amplifying rounding) and killed/resumed from a checkpoint
(bitwise equal to the uninterrupted run on CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.gram import gram_blocks, gram_spectrum
from eosdsl.models.build import build_model

jax.config.update("jax_enable_x64", True)


def explicit_blocks(apply, params: dict, x: jax.Array, c: float) -> dict[str, np.ndarray]:
    """{g: (c/n) J_g J_gᵀ} from the explicit forward-mode Jacobian, groups = top-level keys."""
    flat, unravel = ravel_pytree(params)
    jac = np.asarray(jax.jacfwd(lambda th: jnp.ravel(apply(unravel(th), x)))(flat))  # (n·k, P)
    n = x.shape[0]
    out = {}
    for name in params:
        ones = {k: jax.tree.map(lambda a, on=k == name: jnp.full_like(a, on), v) for k, v in params.items()}
        mask = ravel_pytree(ones)[0]
        cols = np.asarray(mask, bool)
        out[name] = (c / n) * jac[:, cols] @ jac[:, cols].T
    return out


def two_layer(d: int = 6, m: int = 9, k: int = 1, seed: int = 0):
    net = build_model("two_layer_linear", d=d, m=m, k=k, a_std=0.5, dtype="float64")
    params = net.init(jax.random.PRNGKey(seed))
    return net, params


def mlp_net(seed: int = 0):
    net = build_model("mlp", in_dim=4, widths=(5, 3), out=3, activation="tanh", dtype="float64")
    return net, net.init(jax.random.PRNGKey(seed))


@pytest.mark.parametrize("model", ["two_layer", "mlp"])
def test_blocks_match_the_explicit_jacobian_and_sum_to_the_gram_matrix(model: str) -> None:
    net, params = two_layer(k=2) if model == "two_layer" else mlp_net()
    x = jax.random.normal(jax.random.PRNGKey(3), (7, 6 if model == "two_layer" else 4), jnp.float64)
    blocks = gram_blocks(net.apply, params, x, net.groups, c=2.0)
    oracle = explicit_blocks(net.apply, params, x, c=2.0)
    assert list(blocks) == list(net.groups(params)) and set(blocks) == set(oracle)
    scale = max(np.abs(b).max() for b in oracle.values())
    for name, block in blocks.items():
        np.testing.assert_allclose(np.asarray(block), oracle[name], rtol=0, atol=1e-12 * scale, err_msg=name)
        assert np.linalg.eigvalsh(np.asarray(block)).min() >= -1e-12 * scale  # PSD
    whole = sum(oracle.values())
    flat, unravel = ravel_pytree(params)
    jac = np.asarray(jax.jacfwd(lambda th: jnp.ravel(net.apply(unravel(th), x)))(flat))
    np.testing.assert_allclose(np.asarray(sum(blocks.values())), (2 / 7) * jac @ jac.T, atol=1e-12 * scale)
    assert whole.shape == (7 * (2 if model == "two_layer" else 3),) * 2


def test_two_layer_linear_blocks_have_the_closed_forms_of_section_4() -> None:
    d, m, n = 6, 9, 8
    net, params = two_layer(d=d, m=m)
    x = jax.random.normal(jax.random.PRNGKey(5), (n, d), jnp.float64)
    blocks = {k: np.asarray(v) for k, v in gram_blocks(net.apply, params, x, net.groups, c=2.0).items()}
    A, W, X = np.asarray(params["A"]), np.asarray(params["W"]), np.asarray(x).T  # X: d × n (paper)
    m_w = 2 * np.sum(A**2) / (m * n) * X.T @ X
    m_a = 2 / (m * n) * X.T @ W.T @ W @ X
    scale = np.abs(m_w + m_a).max()
    np.testing.assert_allclose(blocks["W"], m_w, atol=1e-12 * scale)
    np.testing.assert_allclose(blocks["A"], m_a, atol=1e-12 * scale)
    # λ_max(M_W) = 2‖A‖² λ₁(XᵀX)/(nm) exactly (paper 001 §4).
    spectrum = gram_spectrum([blocks["W"], blocks["A"]], jnp.zeros(n), jnp.ones(n), 0, [blocks["W"]])
    closed = 2 * np.sum(A**2) * np.linalg.eigvalsh(X.T @ X)[-1] / (n * m)
    assert float(spectrum.block_tops[0]) == pytest.approx(closed, rel=1e-12)


def test_spectrum_projections_and_lambda_min_against_dense_eigh() -> None:
    net, params = two_layer(d=10, m=12, k=1)  # n = 8 < d: M is positive definite
    n = 8
    x = jax.random.normal(jax.random.PRNGKey(7), (n, 10), jnp.float64)
    y = jnp.sign(jax.random.normal(jax.random.PRNGKey(8), (n,), jnp.float64))
    blocks = gram_blocks(net.apply, params, x, net.groups, c=2.0)
    f = jnp.ravel(net.apply(params, x))
    resid = f - y
    p = 3
    out = gram_spectrum(list(blocks.values()), resid, y, p, [blocks["A"], blocks["W"]])

    M = np.asarray(sum(blocks.values()))
    w, V = np.linalg.eigh(M)
    w, V = w[::-1], V[:, ::-1]
    scale = w[0]
    np.testing.assert_allclose(np.asarray(out.values), w, atol=1e-12 * scale)
    assert float(out.values[-1]) > 1e-6 * scale  # λ_min > 0: rank X = n ≤ d
    gaps = -np.diff(w[: p + 1])
    assert gaps.min() > 1e-2 * scale  # the eigenvectors compared are well conditioned
    V = V[:, :p] * np.where(np.asarray(y) @ V[:, :p] < 0, -1.0, 1.0)  # orientation Yᵀv_i ≥ 0
    tol = 1e-10 * np.linalg.norm(resid)
    np.testing.assert_allclose(np.asarray(out.projections), np.asarray(resid) @ V, atol=tol)
    assert np.all(np.asarray(y) @ V >= 0)
    for i, b in enumerate([blocks["A"], blocks["W"]]):
        assert float(out.block_tops[i]) == pytest.approx(np.linalg.eigvalsh(np.asarray(b))[-1], rel=1e-12)

    # All n projections recover ‖D‖² (decomposition (4) of paper 001: L = Σ_i (Dᵀv_i)²/n).
    full = gram_spectrum(list(blocks.values()), resid, y, n).projections
    assert float(jnp.sum(full**2)) == pytest.approx(float(jnp.sum(resid**2)), rel=1e-12)

    # Lemma 3.3 (exact): with ηΛ < 2 and α = min(2/η − Λ, λ_min), ‖(I − ηM)u‖ ≤ (1 − ηα)‖u‖.
    lam, lam_min = w[0], w[-1]
    for eta in (0.5 / lam, 1.0 / lam, 1.9 / lam):
        alpha = min(2 / eta - lam, lam_min)
        for u in np.random.default_rng(0).normal(size=(20, n)):
            lhs = np.linalg.norm(u - eta * M @ u)
            assert lhs <= (1 - eta * alpha) * np.linalg.norm(u) * (1 + 1e-12)


def test_series_names_and_identity_defaults() -> None:
    from eosdsl.registry.identity import spec_id
    from eosdsl.spec.measures import GramSharpnessMeasure

    plain = GramSharpnessMeasure(kind="gram_sharpness")
    assert plain.series() == ["gram_sharpness", "gram_sharpness.residual"]
    assert not plain.dense
    # Unset dense fields leave the dump (and so every existing spec's id) as it was.
    solver_and_cadence = {"method", "k", "block", "tol", "iters", "max_iters", "dense_max"}
    cadence = {"kind", "every", "start", "stop", "densify"}
    assert set(plain.model_dump(mode="json")) == cadence | solver_and_cadence
    full = GramSharpnessMeasure(kind="gram_sharpness", k=2, min=True, projections=2, blocks=["A", "W"])
    assert full.series() == [
        "gram_sharpness",
        "gram_sharpness.residual",
        "gram_eigs",
        "gram_eigs.residual",
        "gram_min",
        "gram_projections",
        "gram_block.A",
        "gram_block.W",
    ]
    assert spec_id({"m": full.model_dump(mode="json")}) != spec_id({"m": plain.model_dump(mode="json")})
    assert GramSharpnessMeasure.model_validate(full.model_dump(mode="json")) == full


# ------------------------------------------------------------------------------------------ engine

SPEC = """
name: gram-quantities
precision: float64
problem:
  kind: supervised
  data:
    source: gaussian_spectrum
    n: 12
    d: 16
    spectrum: {gap_plus_linear: {top: 10.0, lo: 0.5, hi: 1.5}}
    center: false
    seed: 0
  model: {kind: two_layer_linear, m: 20, scaling: ntk, a_std: 0.01}
  loss: {kind: mse, convention: sum_over_n}
optimizer: {kind: gd, lr: 1.0}
train: {steps: 24}
measure:
  - {kind: loss}
  - {kind: group_norms}
  - {kind: residual}
  - {kind: data_covariance, every: 10}
  - {kind: gram_sharpness, method: dense, k: 3, min: true, projections: 2, blocks: [A, W], every: 3}
runtime: {chunk: 8}
"""


def _spec(text: str = SPEC, overrides: list[str] | None = None):
    from eosdsl.spec.load import load

    return load("gram.yaml", text=text, overrides=overrides or []).spec


@pytest.mark.slow
def test_engine_records_consistent_gram_quantities() -> None:
    from eosdsl.engine.execute import execute, prepare

    spec = _spec()
    host = prepare(spec)
    out = execute(spec, host)
    s = out.series
    steps = s["gram_sharpness"][0]
    np.testing.assert_array_equal(steps, np.arange(0, 25, 3))
    for name in ("gram_eigs", "gram_min", "gram_projections", "gram_block.A", "gram_block.W"):
        np.testing.assert_array_equal(s[name][0], steps)
    lam, eigs = s["gram_sharpness"][1], s["gram_eigs"][1]
    assert eigs.shape == (len(steps), 3) and s["gram_projections"][1].shape == (len(steps), 2)
    np.testing.assert_allclose(eigs[:, 0], lam, rtol=1e-12)  # the same dense solve
    a, w = s["gram_block.A"][1], s["gram_block.W"][1]
    assert np.all(np.maximum(a, w) <= lam * (1 + 1e-12)) and np.all(lam <= (a + w) * (1 + 1e-12))  # Weyl
    assert np.all(s["gram_min"][1] > 0) and np.all(s["gram_min"][1] <= eigs[:, 2])
    d_norm = s["residual.norm"][1][steps]
    assert np.all(np.sum(s["gram_projections"][1] ** 2, axis=1) <= d_norm**2 * (1 + 1e-12))

    # data_covariance: the eigenvalues of (1/n) Σ x xᵀ, at steps 0, 10, 20 and the last.
    x = np.asarray(host.data["x"])
    cov_steps, cov = s["data_covariance"]
    np.testing.assert_array_equal(cov_steps, [0, 10, 20, 24])
    expected = np.linalg.eigvalsh(x @ x.T / x.shape[0])[::-1]  # n = 12 < d = 16
    expected_rows = np.broadcast_to(expected, cov.shape)
    np.testing.assert_allclose(cov, expected_rows, rtol=1e-12, atol=1e-12 * expected[0])
    # §4: λ_max(M_W) = 2‖A‖² c₁/m with c₁ the top covariance eigenvalue (m = 20).
    norm2_a = s["norm2.A"][1][steps]
    np.testing.assert_allclose(w, 2 * norm2_a * expected[0] / 20, rtol=1e-10)


@pytest.mark.slow
def test_packed_members_equal_their_lone_runs() -> None:
    """η = 0.5, 1.0, 1.5 in one pack: same recorded steps, values within relative 1e-9. The two larger
    rates catapult (loss spikes), which amplifies the rounding-level differences between vmapped and
    lone matmuls: 1.1e-12 observed over these 24 steps."""
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack
    from eosdsl.spec.load import load

    points = load("gram.yaml", text=SPEC, multirun=["optimizer.lr=0.5,1.0,1.5"]).points
    specs = [p.spec for p in points]
    hosts = [prepare(sp) for sp in specs]
    packed = execute_pack(specs, hosts)
    for sp, host, b in zip(specs, hosts, packed, strict=True):
        a = execute(sp, host)
        assert a.status == b.status and a.series.keys() == b.series.keys()
        for name, (steps, values) in a.series.items():
            np.testing.assert_array_equal(b.series[name][0], steps, err_msg=name)
            if name.endswith(".residual"):  # where the solver stopped: rounding-level
                continue
            np.testing.assert_allclose(b.series[name][1], values, rtol=1e-9, atol=1e-14, err_msg=name)


@pytest.mark.slow
def test_resumed_run_is_bit_identical() -> None:
    from conftest import assert_resume_is_bitwise

    assert_resume_is_bitwise(_spec(), at=16)


def test_validation_of_the_dense_fields() -> None:
    from eosdsl.spec.errors import SpecError

    for bad in ("projections: -1", "projections: 33"):
        with pytest.raises(SpecError, match="projections"):
            _spec(SPEC.replace("projections: 2", bad))
    toy = """
name: toy
problem: {kind: relu_scalar, u0: 1.0, v0: 1.0}
optimizer: {kind: gd, lr: 0.1}
train: {steps: 3}
measure: [{kind: loss}, {kind: data_covariance}]
"""
    with pytest.raises(SpecError, match="data_covariance is measured on supervised problems only"):
        _spec(toy)


@pytest.mark.slow
def test_unknown_block_groups_and_too_many_projections_are_errors() -> None:
    from eosdsl.engine.execute import execute

    with pytest.raises(ValueError, match=r"no parameter group \['B'\] \(groups: \['W', 'A'\]\)"):
        execute(_spec(SPEC.replace("blocks: [A, W]", "blocks: [A, B]")))
    with pytest.raises(ValueError, match=r"projections \(13\) exceeds the n·k = 12 outputs"):
        execute(_spec(SPEC.replace("projections: 2", "projections: 13")))
