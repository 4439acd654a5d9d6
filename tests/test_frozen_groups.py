"""Frozen parameter groups (``problem.frozen``) and the ``uniform`` init scheme (paper 002 App. F: a
three-layer network whose last layer is fixed at random U(−σ, σ) values).

Oracles (float64):

* the Hessian of the loss with a frozen group equals, entry for entry, the dense Hessian of the loss
  as a function of the trainable parameters alone, embedded with zero rows and columns for the frozen
  ones (``jax.hessian`` on both; 1e-12, a few hundred parameters);
* through the engine, the frozen group is bitwise its initial value at every step while the others
  move, and the recorded top eigenvalues are those of that trainable block (``eigvalsh``, 1e-10);
* ``uniform`` draws lie in (−σ, σ) with mean 0 and variance σ²/3 (40,000 draws: the standard errors
  are σ²·0.0015 for the variance and σ·0.003 for the mean; asserted at ~5 standard errors).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eosdsl.spec.load import load

SPEC = """
name: frozen
precision: float64
problem:
  kind: supervised
  data: {source: rank2, d: 4, n: 8}
  pipeline: [scale]
  model:
    kind: mlp
    widths: [5, 3]
    activation: [identity, cubic]
    init: [torch_default, torch_default, uniform]
    sigma: [null, null, 1.0]
  loss: {kind: mse}
  frozen: [output]
optimizer: {kind: OPT, lr: 0.05}
train: {steps: 6}
measure:
  - {kind: loss}
  - {kind: group_norms}
  - {kind: sharpness, method: dense, k: 3}
"""


def _spec(opt: str = "gd", text: str = SPEC):
    return load("f.yaml", text=text.replace("OPT", opt)).spec


def test_hessian_is_the_trainable_block_with_zero_rows_and_columns() -> None:
    from eosdsl.engine.execute import prepare
    from eosdsl.problems.build import problem_fns
    from eosdsl.spec.scope import Scope

    spec = _spec()
    host = prepare(spec)
    from eosdsl.engine.execute import layout_of

    fns = problem_fns(spec.problem, Scope({}, jnp.float64), layout_of(spec, host).network)
    params = jax.tree.map(jnp.asarray, host.params)
    data = jax.tree.map(jnp.asarray, host.data)
    flat, unravel = ravel_pytree(params)
    full = jax.hessian(lambda w: fns.loss(unravel(w), data))(flat)

    trainable, rebuild = ravel_pytree({k: v for k, v in params.items() if k != "output"})

    def plain_loss(w):  # the unfrozen network's loss with the output group a constant
        from eosdsl.problems.supervised import loss_function, network

        net = network(dict(layout_of(spec, host).network))
        return loss_function(spec.problem.loss)(
            net.apply({**rebuild(w), "output": params["output"]}, data["x"]), data["y"]
        )

    block = jax.hessian(plain_loss)(trainable)
    mask = ravel_pytree(
        {
            k: jax.tree.map(lambda a, k=k: jnp.full(a.shape, float(k != "output")), v)
            for k, v in params.items()
        }
    )[0]
    mask = np.asarray(mask) > 0.5
    np.testing.assert_allclose(full[np.ix_(mask, mask)], block, rtol=1e-12, atol=1e-14)
    assert np.all(full[~mask] == 0) and np.all(full[:, ~mask] == 0)


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["gd", "heavy_ball"])
def test_frozen_group_stays_bitwise_and_the_spectrum_is_the_trainable_block(opt: str) -> None:
    from eosdsl.engine.execute import execute, prepare

    spec = _spec(opt)
    host = prepare(spec)
    out = execute(spec, host)
    frozen = out.series["norm2.output"][1]
    assert np.all(frozen == frozen[0]) and np.all(out.series["grad_norm2.output"][1] == 0)
    assert np.ptp(out.series["norm2.layer0"][1]) > 0  # the trainable groups move
    # at step 0: the recorded top eigenvalues are the trainable block's
    test = _spec(opt)
    from eosdsl.engine.execute import layout_of
    from eosdsl.problems.build import problem_fns
    from eosdsl.spec.scope import Scope

    fns = problem_fns(test.problem, Scope({}, jnp.float64), layout_of(test, host).network)
    flat, unravel = ravel_pytree(jax.tree.map(jnp.asarray, host.params))
    hess = jax.hessian(lambda w: fns.loss(unravel(w), jax.tree.map(jnp.asarray, host.data)))(flat)
    top = np.sort(np.linalg.eigvalsh(np.asarray(hess)))[::-1][:3]
    np.testing.assert_allclose(out.series["eigs"][1][0], top, rtol=1e-10)


def test_an_unknown_group_names_the_groups() -> None:
    from eosdsl.engine.execute import execute

    with pytest.raises(ValueError, match=r"problem.frozen: no parameter group \['out'\].*'output'"):
        execute(_spec(text=SPEC.replace("frozen: [output]", "frozen: [out]")))


def test_a_spec_without_frozen_groups_dumps_as_before() -> None:
    plain = _spec(text=SPEC.replace("  frozen: [output]\n", ""))
    assert "frozen" not in plain.problem.model_dump(mode="json")
    assert _spec().problem.model_dump(mode="json")["frozen"] == ["output"]


def test_uniform_init_statistics() -> None:
    from eosdsl.models.configs import LayerInit

    sigma = 0.7
    w = np.asarray(LayerInit("uniform", sigma).kernel(200)(jax.random.PRNGKey(3), (200, 200), jnp.float64))
    assert np.all(np.abs(w) < sigma)
    assert abs(w.mean()) < 5 * sigma * 0.003
    assert abs(w.var() - sigma**2 / 3) < 5 * sigma**2 * 0.0015
    with pytest.raises(ValueError, match="init 'uniform' needs sigma"):
        LayerInit("uniform")


@pytest.mark.slow
def test_packed_and_resumed_runs_with_a_frozen_group(tmp_path) -> None:  # noqa: ANN001
    from conftest import assert_resume_is_bitwise

    text = SPEC.replace("OPT", "gd").replace("lr: 0.05", "lr: eta") + "constants: {eta: 0.05}\n"
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack

    specs = [p.spec for p in load("p.yaml", text=text, multirun=["constants.eta=0.02,0.05"]).points]
    hosts = [prepare(s) for s in specs]
    for spec, host, b in zip(specs, hosts, execute_pack(specs, hosts), strict=True):
        a = execute(spec, host)  # a batched matmul/eigh rounds differently: agreement to round-off
        for name, (_, values) in a.series.items():
            np.testing.assert_allclose(b.series[name][1], values, rtol=1e-10, atol=1e-14, err_msg=name)
        assert np.all(b.series["norm2.output"][1] == a.series["norm2.output"][1][0])
    runtime = "runtime: {chunk: 2, checkpoint_every: 4, checkpoint_min_seconds: 0}\n"
    assert_resume_is_bitwise(load("r.yaml", text=text + runtime).points[0].spec, at=4, store=tmp_path)
