"""Paper 001's auxiliary recursion R′ (Lemma 3.5): ``gram_sharpness`` with ``recursion: true``.

Definitions. D(t) = F(t) − Y over the n·k outputs, M(t) = (c/n) J Jᵀ (c = 2 for ``sum_over_n``), v₁(t) the
top unit eigenvector of M(t), R(t) = (I − v₁v₁ᵀ)D(t); R′(t₀) = R(t₀) at the measure's first step t₀ and
R′(t+1) = (I − η M(t)(I − v₁(t)v₁(t)ᵀ)) R′(t). The engine records ‖R − R′‖, ‖R‖, ‖R′‖, R′ᵀ(R′ + Y) and
Rᵀ(R + Y) from t₀ on.

Oracle. A plain loop in float64: the network's flat outputs F(θ), J = ``jax.jacfwd`` of them over the flat
parameters, M = (2/n) J Jᵀ, v₁ from ``numpy.linalg.eigh``, the recursion in numpy, and the GD step
θ ← θ − η∇L with ∇L from ``jax.grad`` of L = ‖F − Y‖²/n. For the two-layer linear net the forward pass is
written out here, f(x) = Aᵀ W x/√m (paper 001 §4); for the tanh MLP it is the network's own ``apply``
(the model is not what is tested: M, v₁, R, R′ and their carriage across steps are).

Tolerance. The oracle and the engine run the same float64 GD with different operation orders (the
engine linearizes ∇L, builds M per parameter group by reverse mode), so they differ by rounding
(~1e-16 relative per step), which the dynamics amplify, roughly by (ηΛ − 1) per step along the
top direction at the edge of stability. Over these 30 steps (ηΛ up to 3.5) the observed differences
are ≤ 2e-14 of each series' scale (its largest value, or max ‖R‖ for the gap, which starts at exactly
0) and ≤ 3e-13 relative on the loss: the tolerance, 1e-11 of the scale (the loss: relative 1e-11),
leaves a margin of ~500 for other CPUs' rounding. The recursion at the window's first step equals R
exactly (gap 0.0).

The engine tests also run the spec packed (each member equal to its lone run to relative 1e-9: a
vmapped network rounds differently, so not bitwise) and killed and resumed from a checkpoint
mid-window (bit-identical to the uninterrupted run): R′ is carried in the scan state, so both check
that it travels with the state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.gram import residual_recursion
from eosdsl.spec.measures import RECURSION_SERIES

jax.config.update("jax_enable_x64", True)

SPEC = """
name: gram-recursion
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
train: {steps: 30}
measure:
  - {kind: loss}
  - {kind: gram_sharpness, method: dense, recursion: true, start: 3}
runtime: {chunk: 8}
"""

TWO_LAYER = "model: {kind: two_layer_linear, m: 20, scaling: ntk, a_std: 0.01}"
TANH = "model: {kind: mlp, widths: [10], activation: tanh, bias: false, init: lecun}"


def _spec(text: str = SPEC, overrides: list[str] | None = None):
    from eosdsl.spec.load import load

    return load("gram-recursion.yaml", text=text, overrides=overrides or []).spec


def oracle(outputs, theta: np.ndarray, y: np.ndarray, eta: float, steps: int, start: int) -> dict:
    """The recorded series by a plain loop: {series: values at steps start … steps} and the losses."""
    n = y.size
    f = jax.jit(outputs)
    jac = jax.jit(jax.jacfwd(outputs))
    grad = jax.jit(jax.grad(lambda th: jnp.sum((outputs(th) - y) ** 2) / n))
    out: dict[str, list] = {name: [] for name in RECURSION_SERIES}
    losses, r_prime = [], None
    for t in range(steps + 1):
        d = np.asarray(f(theta)) - y
        losses.append(d @ d / n)
        if t >= start:
            j = np.asarray(jac(theta))  # (n·k, P)
            gram = (2.0 / n) * j @ j.T
            v1 = np.linalg.eigh(gram)[1][:, -1]
            r = d - v1 * (v1 @ d)
            r_prime = r if t == start else r_prime
            out["gap"].append(np.linalg.norm(r - r_prime))
            out["r"].append(np.linalg.norm(r))
            out["r_prime"].append(np.linalg.norm(r_prime))
            out["r_prime_dot"].append(r_prime @ (r_prime + y))
            out["r_dot"].append(r @ (r + y))
            r_prime = r_prime - eta * gram @ (r_prime - v1 * (v1 @ r_prime))
        theta = theta - eta * np.asarray(grad(theta))
    return {**{k: np.array(v) for k, v in out.items()}, "loss": np.array(losses)}


def _two_layer_outputs(params: dict, x: np.ndarray):
    """f(x) = Aᵀ W x/√m over the n examples, flat (paper 001 §4), as a function of the flat parameters."""
    flat, unravel = ravel_pytree(params)
    m = params["A"].shape[0]

    def outputs(theta: jax.Array) -> jax.Array:
        p = unravel(theta)
        return jnp.ravel(x @ p["W"].T @ p["A"]) / np.sqrt(m)

    return outputs, np.asarray(flat)


def _network_outputs(host, x: np.ndarray):
    from eosdsl.problems.supervised import network

    net = network(dict(host.network))
    flat, unravel = ravel_pytree(host.params)
    return (lambda theta: jnp.ravel(net.apply(unravel(theta), x))), np.asarray(flat)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["two_layer_linear", "tanh_mlp"])
def test_recorded_recursion_matches_a_plain_loop(model: str) -> None:
    from eosdsl.engine.execute import execute, prepare

    text = SPEC if model == "two_layer_linear" else SPEC.replace(TWO_LAYER, TANH)
    eta = 1.0 if model == "two_layer_linear" else 0.5  # both pass 2/η (Λ up to 3.5 and 6.5)
    spec = _spec(text, [f"optimizer.lr={eta}"])
    host = prepare(spec)
    x, y = np.asarray(host.data["x"]), np.ravel(np.asarray(host.data["y"])).astype(np.float64)
    if model == "two_layer_linear":
        outputs, theta = _two_layer_outputs(host.params, x)
        np.testing.assert_allclose(  # the written-out forward pass is the network's
            outputs(theta), _network_outputs(host, x)[0](theta), rtol=1e-13, atol=1e-15
        )
    else:
        outputs, theta = _network_outputs(host, x)
    expected = oracle(outputs, theta, y, eta, 30, 3)
    got = execute(spec, host).series
    np.testing.assert_allclose(got["loss"][1], expected["loss"], rtol=1e-11)
    for name in RECURSION_SERIES:
        steps, values = got[f"gram_recursion.{name}"]
        np.testing.assert_array_equal(steps, np.arange(3, 31))  # the window from t₀ = 3, every step
        scale = max(np.abs(expected[name]).max(), expected["r"].max())
        np.testing.assert_allclose(values, expected[name], rtol=0, atol=1e-11 * scale, err_msg=name)
    assert got["gram_recursion.gap"][1][0] == 0.0  # R′(t₀) = R(t₀)
    # The recursion separates from R: the check is not vacuous.
    assert got["gram_recursion.gap"][1].max() > 1e-3 * got["gram_recursion.r"][1].max()
    assert eta * got["gram_sharpness"][1].max() > 2.0  # the run reaches the edge of stability


def test_one_step_of_the_recursion_against_numpy() -> None:
    """``residual_recursion`` on a random PSD matrix: R, R′(t+1) and the scalars, to round-off (1e-13)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 9))
    gram = a @ a.T / 9
    v1 = np.linalg.eigh(gram)[1][:, -1]
    d, y, rp = rng.normal(size=7), np.sign(rng.normal(size=7)), rng.normal(size=7)
    eta = 0.3
    r = (np.eye(7) - np.outer(v1, v1)) @ d
    for first, start in ((False, rp), (True, r)):
        out = residual_recursion(*map(jnp.asarray, (gram, -v1, d, y, rp)), eta, jnp.asarray(first))
        nxt = (np.eye(7) - eta * gram @ (np.eye(7) - np.outer(v1, v1))) @ start
        np.testing.assert_allclose(out.next, nxt, rtol=0, atol=1e-13)
        assert float(out.gap) == pytest.approx(np.linalg.norm(r - start), abs=1e-13)
        assert float(out.r) == pytest.approx(np.linalg.norm(r), rel=1e-13)
        assert float(out.r_prime) == pytest.approx(np.linalg.norm(start), rel=1e-13)
        assert float(out.r_prime_dot) == pytest.approx(start @ (start + y), rel=1e-13)
        assert float(out.r_dot) == pytest.approx(r @ (r + y), rel=1e-13)


def test_series_names_identity_and_validation() -> None:
    from eosdsl.registry.identity import spec_id
    from eosdsl.spec.errors import SpecError
    from eosdsl.spec.measures import GramSharpnessMeasure

    plain = GramSharpnessMeasure(kind="gram_sharpness")
    assert "recursion" not in plain.model_dump(mode="json")  # old specs keep their identity
    rec = GramSharpnessMeasure(kind="gram_sharpness", recursion=True)
    assert rec.dense and rec.series()[2:] == [
        "gram_recursion.gap",
        "gram_recursion.r",
        "gram_recursion.r_prime",
        "gram_recursion.r_prime_dot",
        "gram_recursion.r_dot",
    ]
    assert spec_id({"m": rec.model_dump(mode="json")}) != spec_id({"m": plain.model_dump(mode="json")})
    assert GramSharpnessMeasure.model_validate(rec.model_dump(mode="json")) == rec

    with pytest.raises(SpecError, match="needs every: 1 and no densify \\(got every: 2\\)"):
        _spec(overrides=["measure.1.every=2"])
    with pytest.raises(SpecError, match="got every: 1, densify"):
        _spec(SPEC.replace("start: 3}", "start: 3, densify: {above: 1.5}}"))
    with pytest.raises(SpecError, match="follows plain GD"):
        _spec(SPEC.replace("{kind: gd, lr: 1.0}", "{kind: heavy_ball, lr: 1.0, beta: 0.5}"))
    claim = "checks: [{kind: claim, that: window_max(gram_recursion_gap) < 1}]\nruntime:"
    with pytest.raises(SpecError, match="gram_sharpness. measure with recursion: true"):
        _spec(SPEC.replace("runtime:", claim).replace(", recursion: true", ""))


@pytest.mark.slow
def test_packed_members_equal_their_lone_runs() -> None:
    """η = 0.5 and 1.0 in one pack (``execute_pack``): the same recorded steps, and values equal to the
    lone runs' to relative 1e-9 (≤ 3e-12 observed) — not bitwise: a vmapped network's matmuls round
    differently from a lone one's (the loss itself differs in its last bit from step 7 on), and the
    edge-of-stability dynamics amplify that; ``conftest.assert_pack_is_bitwise`` holds for elementwise
    toys only, and gram_sharpness is defined for networks. Each member's R′ starts from its own R(t₀)
    and follows its own η: the two members' gaps differ."""
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack
    from eosdsl.spec.load import load

    specs = [p.spec for p in load("gram-recursion.yaml", text=SPEC, multirun=["optimizer.lr=0.5,1.0"]).points]
    hosts = [prepare(sp) for sp in specs]
    packed = execute_pack(specs, hosts)
    for sp, host, b in zip(specs, hosts, packed, strict=True):
        a = execute(sp, host)
        assert b.execution["mode"] == "packed" and a.series.keys() == b.series.keys()
        for name, (steps, values) in a.series.items():
            np.testing.assert_array_equal(b.series[name][0], steps, err_msg=name)
            if name.endswith(".residual"):  # where the solver stopped: rounding-level
                continue
            np.testing.assert_allclose(b.series[name][1], values, rtol=1e-9, atol=1e-14, err_msg=name)
    gaps = [b.series["gram_recursion.gap"][1] for b in packed]
    assert np.abs(gaps[0] - gaps[1]).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "orbax"])
def test_resumed_run_is_bit_identical(store: str, tmp_path) -> None:  # noqa: ANN001
    """Killed right after the checkpoint at step 16 (mid-window: R′(16) comes from the checkpoint), in
    memory or through real Orbax checkpoints, and resumed."""
    from conftest import assert_resume_is_bitwise

    text = SPEC.replace(
        "runtime: {chunk: 8}", "runtime: {chunk: 8, checkpoint_every: 16, checkpoint_min_seconds: 0}"
    )
    spec = _spec(text)
    whole = assert_resume_is_bitwise(spec, at=16, store=tmp_path if store == "orbax" else None)
    assert np.isfinite(whole.series["gram_recursion.gap"][1]).all()
