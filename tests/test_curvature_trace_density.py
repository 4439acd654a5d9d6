"""Oracle tests for ``eosdsl.curvature.trace_density`` (Hutchinson trace, SLQ spectral density) and the
``hessian_trace`` / ``spectral_density`` measures, against dense ``eigh`` / ``numpy.trace``.

Operators: dense random symmetric matrices (entries N(0, 1), symmetrized) applied as ``v ↦ Hv``, and the
Hessian of small losses by ``hvp_fn``; float64 throughout. Tolerances and why:

* Hutchinson: the estimate is a sample mean, so |t̂ − tr H| ≤ 4·se (se the *stated* standard error) fails
  with probability ≈ 6e-5 per seed for a normal mean (slightly more with an estimated se; m ≥ 50 here).
  The keys are fixed, so a pass is deterministic; the bound is what says they were not cherry-picked.
  The stated se is compared with the exact √(2(‖H‖_F² − Σ H_jj²)/m) and with the empirical spread of t̂
  over 400 seeds (whose own relative error is ≈ 1/√(2·400) ≈ 3.5%): within a factor 2 as the brief asks,
  and within 15% in fact.
* SLQ moments: Σ_j τ_j θ_j and Σ_j τ_j θ_j² of each probe equal zᵀHz/n and ‖Hz‖²/n (Gauss quadrature with
  k ≥ 2 nodes is exact for degree ≤ 3), so they are checked per probe to round-off (1e-10 relative), and
  their probe means against tr(H)/n, tr(H²)/n within 4 of their standard errors (as above).
* SLQ with k = n Lanczos steps: T is similar to H, so every probe's nodes are eig(H) to round-off
  (~1e-14 observed; asserted 1e-8 as stated in the issue), repeated eigenvalues included (the breakdown
  restart; their nodes from the later blocks have weight 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import QUARTIC_OBJECTIVE, quartic

from eosdsl.curvature.dense import hessian_matrix
from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.trace_density import (
    gaussian_density,
    hutchinson_trace,
    rademacher_probes,
    slq_density,
    slq_moment,
)

jax.config.update("jax_enable_x64", True)

F64 = jnp.float64


def random_symmetric(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, n))
    return 0.5 * (a + a.T) + shift * np.eye(n)


def matvec_of(h: np.ndarray):  # noqa: ANN201
    hj = jnp.asarray(h)
    return lambda v: jnp.dot(hj, v, precision=jax.lax.Precision.HIGHEST)


def hutchinson_sd(h: np.ndarray, probes: int) -> float:
    """The exact standard deviation of the Rademacher Hutchinson estimate with ``probes`` probes."""
    return float(np.sqrt(2.0 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)) / probes))


# --------------------------------------------------------------------------------------------- Hutchinson


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_hutchinson_is_within_four_standard_errors_of_the_trace(seed: int) -> None:
    h = random_symmetric(60, seed, shift=0.5)  # tr H ≈ 30 ± 8: not centred on 0
    est = hutchinson_trace(matvec_of(h), 60, 100, jax.random.PRNGKey(seed), F64)
    assert abs(float(est.trace) - np.trace(h)) <= 4.0 * float(est.stderr)
    assert int(est.hvps) == 100
    # the samples are z_iᵀHz_i for the documented probes
    z = np.asarray(rademacher_probes(jax.random.PRNGKey(seed), 100, 60, F64))
    np.testing.assert_allclose(est.samples, np.einsum("mi,ij,mj->m", z, h, z), rtol=1e-12)
    spread = float(np.std(np.asarray(est.samples), ddof=1))  # numpy's, not jax's (pytest.approx)
    assert float(est.stderr) == pytest.approx(spread / 10.0, rel=1e-12)


def test_stated_standard_error_matches_the_spread_over_seeds() -> None:
    n, probes, seeds = 40, 50, 400
    h = random_symmetric(n, 7)
    run = jax.jit(jax.vmap(lambda k: hutchinson_trace(matvec_of(h), n, probes, k, F64)))
    est = run(jax.random.split(jax.random.PRNGKey(11), seeds))
    spread = float(np.std(np.asarray(est.trace), ddof=1))  # empirical sd of t̂
    stated = float(np.sqrt(np.mean(np.asarray(est.stderr) ** 2)))  # rms of the stated se
    exact = hutchinson_sd(h, probes)
    assert 0.5 <= stated / spread <= 2.0  # the brief's factor 2 …
    assert stated == pytest.approx(exact, rel=0.15)  # … and in fact close to the exact sd
    assert spread == pytest.approx(exact, rel=0.15)
    # unbiased: the mean of 400 estimates within 4 of its standard errors
    assert abs(float(np.mean(np.asarray(est.trace))) - np.trace(h)) <= 4.0 * exact / np.sqrt(seeds)


def test_diagonal_operator_has_an_exact_trace_and_zero_error() -> None:
    d = np.linspace(-3.0, 5.0, 30)
    est = hutchinson_trace(lambda v: jnp.asarray(d) * v, 30, 8, jax.random.PRNGKey(0), F64)
    assert float(est.trace) == pytest.approx(d.sum(), rel=1e-13)
    assert float(est.stderr) == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_of_a_loss_hessian_and_batched_probes_agree() -> None:
    """On the Hessian of a small loss (by ``hvp_fn``) against ``hessian_matrix``; ``batch_size`` and jit
    change nothing but rounding."""

    def loss(p: dict) -> jnp.ndarray:
        x = jnp.linspace(-1.0, 1.0, 7)
        hidden = jnp.tanh(jnp.outer(x, p["a"]) + p["b"])
        return jnp.mean((hidden @ p["c"] - jnp.sin(3 * x)) ** 2)

    params = {
        "a": jnp.array([0.3, -1.2, 0.8]),
        "b": jnp.array([0.1, 0.0, -0.4]),
        "c": jnp.array([1.0, -0.5, 2.0]),
    }
    h = np.asarray(hessian_matrix(loss, params))
    key = jax.random.PRNGKey(3)
    est = hutchinson_trace(hvp_fn(loss, params), 9, 200, key, F64)
    assert abs(float(est.trace) - np.trace(h)) <= 4.0 * float(est.stderr)
    batched = jax.jit(lambda k: hutchinson_trace(hvp_fn(loss, params), 9, 200, k, F64, batch_size=16))(key)
    np.testing.assert_allclose(batched.samples, est.samples, rtol=1e-12)


def test_hutchinson_refuses_a_single_probe() -> None:
    with pytest.raises(ValueError, match="probes ≥ 2"):
        hutchinson_trace(lambda v: v, 5, 1, jax.random.PRNGKey(0), F64)


# -------------------------------------------------------------------------------------------------- SLQ


def test_slq_weights_are_a_probability_per_probe_and_moments_are_hutchinson() -> None:
    n, probes, steps = 80, 30, 12
    h = random_symmetric(n, 5, shift=1.0)
    key = jax.random.PRNGKey(2)
    out = jax.jit(lambda k: slq_density(matvec_of(h), n, probes, steps, k, F64))(key)
    nodes, weights = np.asarray(out.nodes), np.asarray(out.weights)
    assert nodes.shape == weights.shape == (probes, steps)
    assert int(out.hvps) == probes * steps
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diff(nodes, axis=1) >= 0)  # ascending
    lam = np.linalg.eigvalsh(h)
    assert np.all(nodes >= lam[0] - 1e-9) and np.all(nodes <= lam[-1] + 1e-9)  # Ritz values interlace

    # per probe, Gauss quadrature is exact for degree ≤ 2k − 1: the moments are the probe's Hutchinson sample
    key_probes, _ = jax.random.split(key)
    z = np.asarray(rademacher_probes(key_probes, probes, n, F64))
    hz = z @ h
    np.testing.assert_allclose((weights * nodes).sum(1), np.einsum("mi,mi->m", z, hz) / n, rtol=1e-10)
    np.testing.assert_allclose((weights * nodes**2).sum(1), np.einsum("mi,mi->m", hz, hz) / n, rtol=1e-10)

    # over probes: tr(H)/n and tr(H²)/n within 4 standard errors (Monte-Carlo error)
    for power, exact in ((1, np.trace(h) / n), (2, np.trace(h @ h) / n)):
        mean, se = slq_moment(out.nodes, out.weights, power)
        assert abs(float(mean) - exact) <= 4.0 * float(se), (power, float(mean), exact, float(se))


@pytest.mark.parametrize("case", ["random", "repeated"])
def test_slq_with_n_steps_recovers_every_eigenvalue(case: str) -> None:
    n = 24
    if case == "random":
        h = random_symmetric(n, 9)
    else:  # three eigenvalues, each 8 times: the Krylov space of a probe has dimension 3 (breakdown)
        q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(n, n)))
        h = q @ np.diag(np.repeat([-1.0, 0.5, 2.0], 8)) @ q.T
        h = 0.5 * (h + h.T)
    lam, vecs = np.linalg.eigh(h)
    out = slq_density(matvec_of(h), n, 4, n, jax.random.PRNGKey(1), F64)
    np.testing.assert_allclose(np.asarray(out.nodes), np.broadcast_to(lam, (4, n)), atol=1e-8)
    np.testing.assert_allclose(np.asarray(out.weights).sum(1), 1.0, atol=1e-12)
    z = np.asarray(rademacher_probes(jax.random.split(jax.random.PRNGKey(1))[0], 4, n, F64)) / np.sqrt(n)
    if case == "random":  # simple eigenvalues: τ_i = (u_iᵀq)²
        np.testing.assert_allclose(np.asarray(out.weights), (z @ vecs) ** 2, atol=1e-8)
    else:  # the weight of each distinct eigenvalue is the squared norm of q's projection on its eigenspace
        for value in (-1.0, 0.5, 2.0):
            at = np.isclose(np.asarray(out.nodes), value, atol=1e-8)
            proj = (z @ vecs[:, np.isclose(lam, value)]) ** 2
            np.testing.assert_allclose((np.asarray(out.weights) * at).sum(1), proj.sum(1), atol=1e-8)


def test_slq_steps_beyond_the_dimension_are_capped_and_vmap_matches_single_calls() -> None:
    n = 10
    h = random_symmetric(n, 3)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    many = jax.vmap(lambda k: slq_density(matvec_of(h), n, 2, 50, k, F64))(keys)
    assert many.nodes.shape == (3, 2, n)
    for i, k in enumerate(keys):
        one = slq_density(matvec_of(h), n, 2, 50, k, F64)
        np.testing.assert_allclose(many.nodes[i], one.nodes, atol=1e-12)
        np.testing.assert_allclose(many.weights[i], one.weights, atol=1e-12)


def test_gaussian_density_is_a_probability_density_around_the_nodes() -> None:
    nodes = jnp.array([[-1.0, 0.0, 2.0], [0.5, 1.0, 3.0]])
    weights = jnp.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    sigma = 0.05
    grid = jnp.linspace(-2.0, 4.0, 6001)  # spacing 1e-3 ≪ σ, covering the nodes ± 20σ
    phi = np.asarray(gaussian_density(nodes, weights, grid, sigma))
    spacing = float(grid[1] - grid[0])
    assert phi.sum() * spacing == pytest.approx(1.0, abs=1e-10)
    assert (phi * np.asarray(grid)).sum() * spacing == pytest.approx(
        float((weights * nodes).sum() / 2), abs=1e-10
    )
    peak = 0.5 * 0.8 / (sigma * np.sqrt(2 * np.pi))  # the node at 3 carries mass 0.4, isolated
    assert phi[np.argmin(np.abs(np.asarray(grid) - 3.0))] == pytest.approx(peak, rel=1e-6)


# ----------------------------------------------------------------------------------- measures in the engine


def toy_spec(measure: list[dict], steps: int = 30, chunk: int = 2000) -> dict:
    return {
        "name": "trace-density-test",
        "problem": {"kind": "toy", "params": {"w": [1.0, 0.5, 0.2, -0.3]}, "objective": QUARTIC_OBJECTIVE},
        "optimizer": {"kind": "gd", "lr": 0.1},
        "train": {"steps": steps},
        "runtime": {"chunk": chunk},
        "measure": [{"kind": "loss"}, {"kind": "params"}, *measure],
    }


NET = """
name: trace-density-net
precision: float64
problem:
  kind: supervised
  data: {source: gaussian_mixture, n: 40, d: 2, k: 2, separation: 3.0, seed: 1}
  pipeline: [one_hot]
  model: {kind: mlp, widths: [3], activation: tanh}
  loss: {kind: mse, convention: half_sum_over_n}
optimizer: {kind: gd, lr: 0.2}
train: {steps: 20}
measure:
  - {kind: loss}
  - {kind: sharpness, method: dense, k: 17, every: 5}
  - {kind: hessian_trace, probes: 200, every: 5}
  - {kind: spectral_density, probes: 3, lanczos_steps: 17, every: 5}
"""


def _execute(spec: dict):  # noqa: ANN202
    from eosdsl.engine.execute import execute
    from eosdsl.spec.models import Spec

    return execute(Spec.model_validate(spec))


@pytest.mark.slow
def test_engine_measures_on_a_toy_match_dense_eigh_along_the_trajectory() -> None:
    out = _execute(
        toy_spec(
            [
                {"kind": "hessian_trace", "probes": 100, "every": 10},
                {"kind": "spectral_density", "probes": 3, "lanczos_steps": 4, "every": 15},
            ]
        )
    )
    steps, ws = out.series["params.w"]
    hess = jax.jit(jax.hessian(quartic))
    t_steps, trace = out.series["hessian_trace"]
    np.testing.assert_array_equal(t_steps, [0, 10, 20, 30])  # every 10, and the last step
    se = out.series["hessian_trace.stderr"][1]
    exact = np.array([np.trace(np.asarray(hess(jnp.asarray(ws[t])))) for t in t_steps])
    assert np.all(np.abs(trace - exact) <= 4.0 * se), (trace, exact, se)
    np.testing.assert_array_equal(out.series["hessian_trace.hvps"][1], 100)

    d_steps, nodes = out.series["spectral_density.nodes"]
    np.testing.assert_array_equal(d_steps, [0, 15, 30])
    weights = out.series["spectral_density.weights"][1]
    assert nodes.shape == weights.shape == (3, 3, 4)  # steps × probes × min(lanczos_steps, P)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, atol=1e-12)
    for t, node in zip(d_steps, nodes, strict=True):  # lanczos_steps = P: every eigenvalue, per probe
        lam = np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(ws[t]))))
        np.testing.assert_allclose(node, np.broadcast_to(lam, node.shape), atol=1e-8)
    np.testing.assert_array_equal(out.series["spectral_density.hvps"][1], 12)


@pytest.mark.slow
def test_engine_measures_on_a_network_match_its_dense_spectrum() -> None:
    """An MLP with P = 17 parameters: the dense sharpness solve with k = P records the whole spectrum
    (``eigs``), the oracle for the trace (its sum) and the SLQ nodes (lanczos_steps = P)."""
    from eosdsl.spec.load import load

    spec = load("net.yaml", text=NET).points[0].spec
    from eosdsl.engine.execute import execute

    out = execute(spec)
    e_steps, eigs = out.series["eigs"]
    t_steps, trace = out.series["hessian_trace"]
    np.testing.assert_array_equal(t_steps, e_steps)
    se = out.series["hessian_trace.stderr"][1]
    assert np.all(np.abs(trace - eigs.sum(axis=1)) <= 4.0 * se), (trace, eigs.sum(axis=1), se)
    assert np.all(se > 0)
    nodes = out.series["spectral_density.nodes"][1]
    np.testing.assert_allclose(
        nodes, np.broadcast_to(np.sort(eigs, axis=1)[:, None, :], nodes.shape), atol=1e-8
    )
    np.testing.assert_allclose(out.series["spectral_density.weights"][1].sum(axis=2), 1.0, atol=1e-12)


@pytest.mark.slow
def test_packed_points_agree_with_lone_runs_and_seeds_draw_other_probes() -> None:
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack
    from eosdsl.engine.program import Structure
    from eosdsl.spec.load import load

    text = NET.replace("k: 17, every: 5", "k: 1, every: 5")
    points = load("net.yaml", text=text, multirun=["optimizer.lr=0.1,0.3", "seed=0,1"]).points
    specs = [p.spec for p in points]
    assert len({Structure.of(s).key for s in specs}) == 1
    hosts = [prepare(s) for s in specs]
    alone = [execute(s, h) for s, h in zip(specs, hosts, strict=True)]
    packed = execute_pack(specs, hosts)
    names = ["hessian_trace", "hessian_trace.stderr", "spectral_density.nodes", "spectral_density.weights"]
    for p, a, b in zip(points, alone, packed, strict=True):
        for name in names:  # vmapped kernels may round differently; the probes are the same
            np.testing.assert_array_equal(a.series[name][0], b.series[name][0])
            np.testing.assert_allclose(
                b.series[name][1], a.series[name][1], rtol=1e-10, atol=1e-12, err_msg=p.label
            )
    by_label = {p.label: o for p, o in zip(points, alone, strict=True)}
    seed0 = by_label["optimizer.lr=0.1,seed=0"].series["hessian_trace"][1][0]
    seed1 = by_label["optimizer.lr=0.1,seed=1"].series["hessian_trace"][1][0]
    assert seed0 != seed1  # the seed is traced and reaches the probes (the initial parameters differ too)


@pytest.mark.slow
def test_resumed_run_is_bit_identical() -> None:
    from conftest import assert_resume_is_bitwise

    from eosdsl.spec.models import Spec

    measure = [
        {"kind": "hessian_trace", "probes": 20, "every": 3},
        {"kind": "spectral_density", "probes": 2, "lanczos_steps": 3, "every": 4},
    ]
    assert_resume_is_bitwise(Spec.model_validate(toy_spec(measure, steps=40, chunk=10)), at=20)


def test_spec_validation_of_the_new_measures() -> None:
    import yaml

    from eosdsl.spec.errors import SpecError
    from eosdsl.spec.load import load
    from eosdsl.spec.recorded import recorded_series

    spec = (
        load(
            "ok.yaml",
            text=yaml.safe_dump(toy_spec([{"kind": "hessian_trace"}, {"kind": "spectral_density"}])),
        )
        .points[0]
        .spec
    )
    names = [r.name for r in recorded_series(spec)]
    assert names[-6:] == [
        "hessian_trace",
        "hessian_trace.stderr",
        "hessian_trace.hvps",
        "spectral_density.nodes",
        "spectral_density.weights",
        "spectral_density.hvps",
    ]
    assert (spec.measure[2].probes, spec.measure[3].probes, spec.measure[3].lanczos_steps) == (100, 10, 80)
    for bad, message in (
        ([{"kind": "hessian_trace", "probes": 1}], "probes"),
        (
            [{"kind": "hessian_trace"}, {"kind": "hessian_trace", "every": 5}],
            "hessian_trace is already measured",
        ),
        ([{"kind": "spectral_density", "start": 10, "stop": 5}], "stop"),
    ):
        with pytest.raises(SpecError, match=message):
            load("bad.yaml", text=yaml.safe_dump(toy_spec(bad)))
