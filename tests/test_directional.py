"""Directional learning-rate interventions (paper 004 App. G, Fig. 10): ``optimizer.directional``.

Oracles:

* the rule alone, against the projector P = Σ_{i∈U} v_i v_iᵀ built from a dense ``eigh`` (float64,
  agreement to 1e-12: a few dot products of unit vectors);
* the engine on a quadratic L = ½ Σ_j h_j w_j² with h = (3, 1, 0.5): the Hessian's eigenvectors are the
  coordinate axes, so every variant has a closed-form trajectory (each coordinate is multiplied by
  1 − η_j h_j per step, with η_j the rate its direction gets); agreement to 1e-12;
* validation errors at their key paths, and the spec id of plain GD unchanged;
* packed sweeps and a killed-and-resumed run equal to lone, uninterrupted runs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.optim.optimizers import Eigenpairs, StepInputs, directional_gd
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

H = (3.0, 1.0, 0.5)

TOY = """
name: directional-quadratic
precision: float64
constants: {eta: 0.8, eta_u: 0.0}
problem:
  kind: toy
  params: {a: 1.0, b: 1.0, c: 1.0}
  objective: "0.5 * (3 * a**2 + 1 * b**2 + 0.5 * c**2)"
optimizer: {kind: gd, lr: eta, directional: DIRECTIONAL}
train: {steps: 8}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: sharpness, method: dense, k: 2}
"""


def _spec_text(directional: str = "{k: 2, lr: eta_u}", extra: str = "") -> str:
    return TOY.replace("DIRECTIONAL", directional) + extra


def _rule_step(k: int, select: str, rest: str, lr: float | None, lr_u: float, fresh: bool = True):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    hess = a @ a.T / 2
    values, vectors = np.linalg.eigh(hess)
    values, vectors = values[::-1], vectors[:, ::-1].T  # descending, rows
    g = rng.normal(size=6)
    lr = 4.0 / (values[0] + values[1]) if lr is None else lr  # 2/η between λ₁ and λ₂: U = {1}
    eig = Eigenpairs(jnp.asarray(values[:3]), jnp.asarray(vectors[:3]), jnp.asarray(fresh))
    params = {"w": jnp.zeros(6)}
    inputs = StepInputs(
        params, {"w": jnp.asarray(g)}, None, params, jnp.asarray(lr), jnp.asarray(lr), eig, lr_u
    )
    d, _ = directional_gd(k, select, rest).update(inputs, ())
    return np.asarray(d["w"]), g, values, vectors, lr


@pytest.mark.parametrize("select", ["unstable", "top"])
@pytest.mark.parametrize("rest", ["keep", "drop"])
def test_rule_matches_the_projector(select: str, rest: str) -> None:
    """d = −η(g − Pg) − η_u Pg (keep) or −η_u Pg (drop), P on U = {i ≤ k: λ_i > 2/η} or the top k."""
    lr_u, k = 0.05, 3
    d, g, values, vectors, lr = _rule_step(k, select, rest, None, lr_u)
    chosen = [i for i in range(k) if select == "top" or values[i] > 2 / lr]
    assert select == "top" or 0 < len(chosen) < k  # the instance selects some but not all
    proj = sum((np.outer(vectors[i], vectors[i]) for i in chosen), np.zeros((6, 6)))
    expected = -lr_u * proj @ g - (lr * (g - proj @ g) if rest == "keep" else 0.0)
    np.testing.assert_allclose(d, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rest", ["keep", "drop"])
def test_a_step_without_a_fresh_solve_is_plain_gd(rest: str) -> None:
    d, g, _, _, _ = _rule_step(3, "top", rest, 0.3, 0.0, fresh=False)
    np.testing.assert_allclose(d, -0.3 * g, rtol=1e-15)


def _closed_form(rates: tuple[float, float, float], steps: int = 8) -> np.ndarray:
    """(steps + 1, 3): w_j(t) = (1 − η_j h_j)^t from w = (1, 1, 1)."""
    factors = np.array([1 - r * h for r, h in zip(rates, H, strict=True)])
    return factors[None, :] ** np.arange(steps + 1)[:, None]


CASES = {  # directional field, constants → the rate each axis gets (η = 0.8: 2/η = 2.5, only h = 3 above)
    "suppress": ("{k: 2, lr: eta_u}", {}, (0.0, 0.8, 0.8)),
    "stabilize": ("{k: 2, lr: eta_u}", {"eta_u": 0.25}, (0.25, 0.8, 0.8)),
    "measured": ("{k: 2, lr: {kind: measured, value: 1 / sharpness}}", {}, (1 / 3, 0.8, 0.8)),
    "top-drop": ("{k: 2, select: top, rest: drop, lr: 0.1}", {}, (0.1, 0.1, 0.0)),
    "top-keep": ("{k: 2, select: top, lr: 0.1}", {}, (0.1, 0.1, 0.8)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_engine_matches_the_closed_form(case: str) -> None:
    from eosdsl.engine.execute import execute

    directional, constants, rates = CASES[case]
    overrides = [f"constants.{k}={v}" for k, v in constants.items()]
    out = execute(load("d.yaml", text=_spec_text(directional), overrides=overrides).spec)
    got = np.stack([out.series[f"params.{p}"][1] for p in "abc"], axis=1)
    np.testing.assert_allclose(got, _closed_form(rates), rtol=1e-12, atol=1e-15)


def test_validation_names_the_key_and_plain_gd_keeps_its_id() -> None:
    no_sharpness = _spec_text().replace("  - {kind: sharpness, method: dense, k: 2}\n", "")
    with pytest.raises(SpecError) as err:
        load("d.yaml", text=no_sharpness)
    assert "optimizer.directional" in str(err.value) and "{kind: sharpness, k: 2, every: 1}" in str(err.value)
    with pytest.raises(SpecError) as err:
        load("d.yaml", text=_spec_text("{k: 3, lr: eta_u}"))
    assert "measure.2.k" in str(err.value) and "k ≥ 3" in str(err.value)
    with pytest.raises(SpecError) as err:
        load("d.yaml", text=_spec_text("{k: 2, lr: {kind: measured, value: 1 / sharpnes}}"))
    assert "optimizer.directional.lr.value" in str(err.value)
    plain = load("d.yaml", text=TOY.replace(", directional: DIRECTIONAL", "")).spec
    assert "directional" not in plain.optimizer.model_dump(mode="json")


@pytest.mark.slow
def test_packed_interventions_equal_lone_runs_bitwise() -> None:
    from conftest import assert_pack_is_bitwise

    points = load("p.yaml", text=_spec_text(), multirun=["constants.eta_u=0,0.25,0.5"]).points
    packed = assert_pack_is_bitwise([p.spec for p in points])
    assert len({p.series["params.a"][1][-1] for p in packed}) == 3


@pytest.mark.slow
def test_resumed_intervention_is_bit_identical(tmp_path: Path) -> None:
    """An intervention switched on by an event at step 3, killed after the checkpoint at step 8 and
    resumed: bitwise the uninterrupted run."""
    from conftest import assert_resume_is_bitwise

    switched = TOY.replace(
        "optimizer: {kind: gd, lr: eta, directional: DIRECTIONAL}",
        "optimizer: {kind: gd, lr: eta}\nevents:\n  - when: {step: {at: 3}}\n"
        "    do: {switch_optimizer: {kind: gd, lr: eta, directional: {k: 2, lr: 0.25}}}",
    ).replace("train: {steps: 8}", "train: {steps: 16}")
    runtime = "runtime: {chunk: 4, checkpoint_every: 8, checkpoint_min_seconds: 0}\n"
    whole = assert_resume_is_bitwise(load("r.yaml", text=switched + runtime).points[0].spec, 8, tmp_path)
    a = whole.series["params.a"][1]  # GD at 0.8 on h = 3 for 3 steps (factor −1.4), then 1 − 0.25·3
    np.testing.assert_allclose(a[:4], (-1.4) ** np.arange(4), rtol=1e-12)
    np.testing.assert_allclose(a[4:] / a[3], 0.25 ** np.arange(1, len(a) - 3), rtol=1e-12)


def test_jax_sees_no_python_branch_on_the_selection() -> None:
    """The selection U is traced (λ_i > 2/η is computed inside the program), so a grid over η compiles
    the rule once: jitting the update over two learning rates gives one trace."""
    traces = []

    def step(lr):
        traces.append(1)
        eig = Eigenpairs(jnp.array([3.0, 1.0]), jnp.eye(2), jnp.asarray(True))
        params = {"w": jnp.zeros(2)}
        inputs = StepInputs(params, {"w": jnp.ones(2)}, None, params, lr, lr, eig, jnp.asarray(0.0))
        return directional_gd(2, "unstable", "keep").update(inputs, ())[0]["w"]

    fn = jax.jit(step)
    np.testing.assert_allclose(fn(jnp.asarray(0.8)), [0.0, -0.8])  # 3 > 2.5: suppressed
    np.testing.assert_allclose(fn(jnp.asarray(0.5)), [-0.5, -0.5])  # 3 < 4: plain GD
    assert len(traces) == 1
