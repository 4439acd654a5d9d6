"""The chunked full-batch mean (``problem.batch_chunk``): same numbers up to rounding, bounded memory.

Oracles: the unchunked functions (``batch_chunk: None``) on the same data and parameters, and XLA's own
accounting of a compiled program's temporary buffers (``Compiled.memory_analysis()``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.engine.execute import execute
from eosdsl.problems import supervised as sup
from eosdsl.spec import networks as n
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

ROUNDING = 1e-12
"""Relative tolerance (to the largest entry) for chunked vs unchunked float64 results. Chunking only
regroups sums over examples (and multiplies a chunk's mean back by its size); recursive summation of n
terms errs by at most ≈ n·2⁻⁵³ of the sum of magnitudes (≈ 5e-13 for n = 4096, ≈ 1e-14 for n = 103),
and what we see is ~1e-16. 1e-12 leaves a margin while still failing on any wrong weight (a wrong 1/n or
a dropped remainder chunk is an O(chunk/n) error)."""


def problem(data: dict, loss: dict, chunk: int | None, **model: Any) -> n.SupervisedProblem:
    return n.SupervisedProblem.model_validate(
        {
            "kind": "supervised",
            "data": data,
            "pipeline": model.pop("pipeline", []),
            "model": {"kind": "mlp", **model},
            "loss": loss,
            "batch_chunk": chunk,
        }
    )


def close(a: Any, b: Any, rtol: float = ROUNDING) -> None:
    """``b`` equals ``a`` up to ``rtol`` times the largest entry of ``a`` (all leaves together: a leaf
    that is zero up to rounding, e.g. the gradient of a bias before batch norm, is judged on that scale)."""
    a, b = [np.asarray(x) for x in jax.tree.leaves(a)], [np.asarray(y) for y in jax.tree.leaves(b)]
    scale = max(float(np.max(np.abs(x))) for x in a)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(y, x, rtol=0, atol=rtol * scale)


# ------------------------------------------------------------------------------- memory is bounded

BIG_DATA = {"source": "teacher_student", "n": 4096, "d": 32, "width": 16, "out_dim": 4, "seed": 0}
BIG_MODEL = {"widths": [128, 128], "activation": "tanh"}


def step_hvp(loss: Any, unravel: Any) -> Any:
    """The engine's every-step product: one linearization of ∇L gives L, ∇L and v ↦ Hv."""

    def f(x: jax.Array, v: jax.Array, data: dict) -> Any:
        (value, grad), lin = jax.linearize(jax.value_and_grad(lambda z: loss(unravel(z), data)), x)
        return value, grad, lin(v)[1]

    return f


def jvp_of_grad(loss: Any, unravel: Any) -> Any:
    def f(x: jax.Array, v: jax.Array, data: dict) -> Any:
        return jax.jvp(jax.grad(lambda z: loss(unravel(z), data)), (x,), (v,))

    return f


def gauss_newton(fns: dict, unravel: Any) -> Any:
    def f(x: jax.Array, v: jax.Array, data: dict) -> Any:
        return fns["gauss_newton"](unravel(x), data)(v)

    return f


def test_chunked_hvp_memory_is_bounded_by_the_chunk_and_results_agree():
    """n = 4096, MLP 32 → 128 → 128 → 4 (tanh), MSE, float64. XLA's temporary memory of the compiled
    HVP (both forms), and of the Gauss–Newton product, drops by more than 5× with chunks of 256
    (observed on CPU, jax 0.10.2: 33.7 → 2.6 MB linearize, 42.2 → 3.4 MB jvp-of-grad, 21.0 → 1.6 MB
    Gauss–Newton, i.e. ≈ 13×), and the chunked programs need less than one full-batch hidden layer
    (n·128 float64 = 4.2 MB): no n-sized activation survives. The values agree to rounding."""
    base = problem(BIG_DATA, {"kind": "mse"}, None, **BIG_MODEL)
    params, data, _, config = sup.host_inputs(base, "float64", 0)
    flat, unravel = ravel_pytree(params)
    v = np.random.default_rng(0).standard_normal(flat.size)
    layer = data["x"].shape[0] * 128 * 8
    temp, values = {}, {}
    for chunk in (None, 256):
        fns = sup.traced_fns(problem(BIG_DATA, {"kind": "mse"}, chunk, **BIG_MODEL), config)
        for name, make in (
            ("linearize", step_hvp(fns["loss"], unravel)),
            ("jvp", jvp_of_grad(fns["loss"], unravel)),
            ("gauss_newton", gauss_newton(fns, unravel)),
        ):
            compiled = jax.jit(make).lower(flat, v, data).compile()
            temp[name, chunk] = compiled.memory_analysis().temp_size_in_bytes
            values[name, chunk] = compiled(flat, v, data)
    for name in ("linearize", "jvp", "gauss_newton"):
        full, chunked = temp[name, None], temp[name, 256]
        assert chunked * 5 < full, (name, full, chunked)
        assert chunked < layer, (name, chunked, layer)
        close(values[name, None], values[name, 256])


# ------------------------------------------------------------------ chunk size changes only rounding

MIXTURE = {"source": "gaussian_mixture", "n": 103, "d": 5, "k": 3, "seed": 2, "n_test": 41}
LOSSES = {
    "mse-half_sum_over_n": ({"kind": "mse", "convention": "half_sum_over_n"}, ["one_hot"]),
    "mse-sum_over_n": ({"kind": "mse", "convention": "sum_over_n", "scale": 0.7}, ["one_hot"]),
    "mse-mean": ({"kind": "mse", "convention": "mean"}, ["one_hot"]),
    "huber-mean": ({"kind": "huber", "convention": "mean", "delta": 0.3}, ["one_hot"]),
    "cross_entropy": ({"kind": "cross_entropy"}, []),  # integer labels
}


@cache
def everything(name: str, chunk: int | None) -> dict[str, Any]:
    """Every full-batch function of the problem at the initial parameters and a fixed direction."""
    loss, pipeline = LOSSES[name]
    spec = problem(MIXTURE, loss, chunk, widths=[7, 6], activation="relu", pipeline=pipeline)
    params, data, _, config = sup.host_inputs(spec, "float64", 3)
    fns = sup.traced_fns(spec, config)
    flat, unravel = ravel_pytree(params)
    v = np.random.default_rng(1).standard_normal(flat.size)

    @jax.jit
    def run(flat: jax.Array, v: jax.Array, data: dict) -> dict[str, Any]:
        value, grad, hv = step_hvp(fns["loss"], unravel)(flat, v, data)
        p = unravel(flat)
        out = {"loss": value, "grad": grad, "hvp": hv, "test_loss": fns["test_loss"](p, data)}
        for measure in ("accuracy", "test_accuracy", "group_norms", "dead_units", "residual"):
            out.update(fns[measure](p, data))
        if "gauss_newton" in fns:
            out["gauss_newton"] = fns["gauss_newton"](p, data)(v)
        return out

    return jax.tree.map(np.asarray, run(flat, v, data))


@pytest.mark.parametrize(
    ("name", "chunk"), [(name, 10) for name in LOSSES] + [("mse-half_sum_over_n", 1), ("cross_entropy", 32)]
)
def test_chunk_size_changes_only_rounding(name: str, chunk: int):
    """n = 103 and 41 test examples, not multiples of 10 or 32 (a remainder chunk), and chunks of one
    example, for each MSE convention, Huber and cross-entropy: every function agrees with the unchunked
    one to rounding; the counts (accuracy, dead units) exactly."""
    full, chunked = everything(name, None), everything(name, chunk)
    assert full.keys() == chunked.keys()
    assert ("gauss_newton" in full) == name.startswith("mse")
    for key in full:
        if key.startswith(("accuracy", "test_accuracy", "dead_units")):
            assert chunked[key] == full[key], key
        else:
            close(full[key], chunked[key])
    assert 0 < full["accuracy"] < 1  # a nontrivial count
    assert full["dead_units.layer0"] + full["dead_units.layer1"] > 0  # relu units die on this data


def test_a_chunk_of_at_least_n_is_the_unchunked_program():
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(everything("mse-mean", None)),
            jax.tree.leaves(everything("mse-mean", 103)),
            strict=True,
        )
    )


def test_ghost_batch_norm_chunks_at_multiples_of_the_ghost_size():
    """Each ghost batch lies inside one chunk, the last (shorter) one included, so the loss is unchanged."""
    data = {"source": "gaussian_mixture", "n": 30, "d": 4, "k": 3, "seed": 0}
    model = {"widths": [5], "norm": "ghost", "ghost_size": 4, "pipeline": ["one_hot"]}
    out = {}
    for chunk in (None, 8):
        spec = problem(data, {"kind": "mse"}, chunk, **dict(model))
        params, d, _, config = sup.host_inputs(spec, "float64", 0)
        loss = sup.traced_fns(spec, config)["loss"]
        out[chunk] = jax.jit(jax.value_and_grad(loss))(params, d)
    close(out[None][0], out[8][0])
    close(out[None][1], out[8][1])


SPEC = """
name: chunked
precision: float64
problem:
  kind: supervised
  data: {source: gaussian_mixture, n: 60, d: 4, k: 3, separation: 6.0, seed: 1}
  pipeline: [one_hot]
  model: {kind: mlp, widths: [6], activation: relu%s}
  loss: {kind: mse}
  batch_chunk: %s
optimizer: {kind: gd, lr: 0.1}
train: {steps: 12}
measure:
  - {kind: loss}
  - {kind: sharpness, every: 1}
  - {kind: gram_sharpness, every: 4}
"""


def test_a_run_with_chunks_follows_the_unchunked_run():
    """End to end in the engine (sharpness at every step: the step's shared linearization of ∇L)."""
    series = {c: execute(load("c.yaml", text=SPEC % ("", c)).spec).series for c in ("null", "16")}
    for name in ("loss", "sharpness", "gram_sharpness"):
        np.testing.assert_allclose(series["16"][name][1], series["null"][name][1], rtol=1e-9)


@pytest.mark.parametrize(
    ("norm", "chunk", "message"),
    [
        (", norm: batch", 16, "batch_chunk needs a network without batch norm"),
        (", norm: ghost, ghost_size: 5", 16, "must be a multiple of the network's ghost_size 5"),
        ("", 0, "greater than or equal to 1"),
    ],
)
def test_batch_chunk_is_refused_where_it_would_change_the_loss(norm: str, chunk: int, message: str):
    with pytest.raises(SpecError) as err:
        load("c.yaml", text=SPEC % (norm, chunk))
    assert "c.yaml:10:3 problem.batch_chunk" in str(err.value) and message in str(err.value)
