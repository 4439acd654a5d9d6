"""Supervised problems end to end: data × network × loss in the engine, their measures and stop rules."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.curvature.dense import top_eigenpair
from eosdsl.engine.execute import execute, prepare
from eosdsl.problems.build import problem_fns
from eosdsl.spec.load import load
from eosdsl.spec.scope import Scope

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

ROOT = Path(__file__).resolve().parents[1]

SMALL = """
name: small-mlp
precision: float64
problem:
  kind: supervised
  data: {source: gaussian_mixture, n: 60, d: 4, k: 3, separation: 6.0, seed: 1, n_test: 30}
  pipeline: [one_hot]
  model: {kind: mlp, widths: [6], activation: relu}
  loss: {kind: mse, convention: half_sum_over_n}
optimizer: {kind: gd, lr: 0.1}
train:
  steps: 3000
  stop:
    - {accuracy: {at_least: 1.0}}
measure:
  - {kind: loss}
  - {kind: accuracy}
  - {kind: test_accuracy, every: 10}
  - {kind: group_norms, every: 10}
  - {kind: dead_units, every: 10}
  - {kind: residual, every: 10}
  - {kind: sharpness, every: 50}
"""


@pytest.fixture(scope="module")
def small():
    spec = load("small.yaml", text=SMALL).spec
    return spec, prepare(spec), execute(spec)


def test_accuracy_stop_rule_fires_at_the_first_perfect_step(small):
    """Oracle: the recorded training accuracy; the run stops at its first step equal to 1."""
    _, _, out = small
    steps, accuracy = out.series["accuracy"]
    assert out.status == "stopped" and out.stop_cause == "stop rule 0"
    first = int(steps[np.argmax(accuracy >= 1.0)])
    assert out.end_step == first and np.all(accuracy[:-1] < 1.0)


def test_group_norms_and_residual_match_the_parameters(small):
    """Oracle: ‖θ_g‖² by numpy and DᵀF by a separate evaluation, on the initial parameters (step 0)."""
    spec, host, out = small
    fns = problem_fns(spec.problem, Scope(spec.constants, np.float64), host.network)
    params = host.params
    norms = {k: float(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(v))) for k, v in params.items()}
    for group, value in norms.items():
        assert out.series[f"norm2.{group}"][1][0] == pytest.approx(value, rel=1e-12)
    f = np.asarray(
        jax.jit(lambda p, x: fns.measures["residual"](p, {"x": x, "y": host.data["y"]}))(
            params, host.data["x"]
        )["residual.dot"]
    )
    assert out.series["residual.dot"][1][0] == pytest.approx(float(f), rel=1e-12)
    dead = out.series["dead_units.layer0"][1]
    assert np.all((dead >= 0) & (dead <= 6))


def test_supervised_sharpness_matches_dense_hessian_at_init(small):
    """Oracle: dense eigh of the autodiff Hessian of the same loss at the initial parameters."""
    spec, host, out = small
    fns = problem_fns(spec.problem, Scope(spec.constants, np.float64), host.network)
    top = top_eigenpair(lambda p: fns.loss(p, host.data), host.params)
    assert out.series["sharpness"][1][0] == pytest.approx(float(top.value), rel=1e-10)


def test_lanczos_sharpness_agrees_with_dense_in_the_engine():
    """`method: lanczos` in a run equals `method: dense` on a problem small enough for both."""
    base = SMALL.replace("  - {kind: sharpness, every: 50}\n", "").replace("steps: 3000", "steps: 20")
    values = {}
    for method in ("dense", "lanczos"):
        text = base + f"  - {{kind: sharpness, every: 5, method: {method}, iters: 40}}\n"
        values[method] = execute(load("m.yaml", text=text).spec).series["sharpness"][1]
    np.testing.assert_allclose(values["lanczos"], values["dense"], rtol=1e-9)


def test_cifar_spec_without_data_is_a_readable_error(tmp_path):
    """CIFAR-10 cannot be downloaded: the library spec fails with a message naming the files, exit 2."""
    result = CliRunner().invoke(
        app, ["run", str(ROOT / "specs/cifar10/fc-relu-gd-vs-phb.yaml"), "--registry", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "problem.data.path" in result.output and "data_batch_1" in result.output
    assert "Traceback" not in result.output


def test_accuracy_trigger_needs_a_supervised_problem():
    text = """
name: x
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.01}
train: {steps: 5, stop: [{accuracy: {at_least: 1.0}}]}
"""
    with pytest.raises(Exception, match="supervised problem"):
        load("x.yaml", text=text)
