"""User-defined dynamics: ``optimizer: {kind: ode}`` and ``{kind: map}`` on closed-form problems.

Oracles (float64):

* RK4 on the harmonic oscillator x' = y, y' = −x from (1, 0): x(τ) = cos τ, y(τ) = −sin τ, to the
  method's global error C·h⁴ (h = 0.01 over τ = 2π: ~1e-9 measured, asserted ≤ 1e-8), and x² + y²
  conserved to the same order;
* explicit Euler on it: |z_n|² = (1 + h²)ⁿ exactly (its one-step matrix [[1, h], [−h, 1]] has
  determinant 1 + h²), to round-off;
* ``substeps``: one engine step of n RK4 substeps equals n engine steps at h (to round-off);
* paper 003 eq. (3) as a ``map`` equals GD on the toy loss of its §2.10,
  L = (1/η + √β/2·y)x² − α/√β·y − z, with Y = √β·y, step by step (to round-off, 1e-12);
* packed and resumed runs equal lone, uninterrupted runs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

OSCILLATOR = """
name: oscillator
precision: float64
problem: {kind: toy, params: {x: 1.0, y: 0.0}, objective: "0.5 * (x**2 + y**2)"}
optimizer: {kind: ode, lr: H, method: METHOD, substeps: SUB, rhs: {x: y, y: -x}}
train: {steps: STEPS}
measure: [{kind: params}, {kind: loss}]
"""


def _oscillator(method: str = "rk4", h: float = 0.01, steps: int = 628, substeps: int = 1) -> str:
    return (
        OSCILLATOR.replace("METHOD", method)
        .replace("H,", f"{h},")
        .replace("SUB", str(substeps))
        .replace("STEPS", str(steps))
    )


def _xy(text: str, overrides: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    from eosdsl.engine.execute import execute

    out = execute(load("o.yaml", list(overrides), text=text).spec)
    return out.series["params.x"][1], out.series["params.y"][1]


@pytest.mark.slow
def test_rk4_matches_the_closed_form_and_conserves_energy() -> None:
    x, y = _xy(_oscillator())
    tau = 0.01 * np.arange(len(x))
    assert np.max(np.abs(x - np.cos(tau))) <= 1e-8 and np.max(np.abs(y + np.sin(tau))) <= 1e-8
    assert np.max(np.abs(x**2 + y**2 - 1)) <= 1e-8


@pytest.mark.slow
def test_euler_grows_the_energy_by_exactly_one_plus_h_squared() -> None:
    x, y = _xy(_oscillator("euler", 0.05, 200))
    np.testing.assert_allclose(x**2 + y**2, (1 + 0.05**2) ** np.arange(len(x)), rtol=1e-12)


@pytest.mark.slow
def test_substeps_equal_smaller_engine_steps() -> None:
    x4, y4 = _xy(_oscillator(h=0.04, steps=50, substeps=4))
    x1, y1 = _xy(_oscillator(h=0.01, steps=200))
    np.testing.assert_allclose(x4, x1[::4], rtol=0, atol=1e-13)
    np.testing.assert_allclose(y4, y1[::4], rtol=0, atol=1e-13)


EQ3 = """
name: eq3
precision: float64
constants: {eta: 0.01, alpha: 1.0, beta: 4.0}
problem: {kind: toy, params: {x: 0.3, Y: 0.0}, objective: "0 * x"}
optimizer:
  kind: map
  lr: eta
  update: {x: -(1 + lr * Y) * x, Y: Y + lr * (alpha - beta * x**2 / 2)}
train: {steps: 300}
measure: [{kind: params}]
"""

TOY_GD = """
name: eq3-as-gd
precision: float64
constants: {eta: 0.01, alpha: 1.0, beta: 4.0}
problem:
  kind: toy
  params: {x: 0.3, y: 0.0, z: 0.0}
  objective: "(1 / eta + sqrt(beta) / 2 * y) * x**2 - alpha / sqrt(beta) * y - z"
optimizer: {kind: gd, lr: eta}
train: {steps: 300}
measure: [{kind: params}]
"""


@pytest.mark.slow
def test_map_of_eq3_equals_gd_on_the_toy_loss() -> None:
    """Paper 003 §2.10: GD on L(x, y, z) is eq. (3) in (x, Y = √β·y)."""
    from eosdsl.engine.execute import execute

    mapped = execute(load("m.yaml", text=EQ3).spec).series
    gd = execute(load("g.yaml", text=TOY_GD).spec).series
    np.testing.assert_allclose(mapped["params.x"][1], gd["params.x"][1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mapped["params.Y"][1], 2.0 * gd["params.y"][1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("rhs: {x: y, y: -x}", "rhs: {x: y, w: -x}", "optimizer.rhs.w: no parameter 'w' (parameters: x, y)"),
        ("rhs: {x: y, y: -x}", "rhs: {x: y, y: -q}", "optimizer.rhs.y: unknown name 'q'"),
        ("rhs: {x: y, y: -x}", "rhs: {x: y, y: -lr}", "optimizer.rhs.y: unknown name 'lr'"),
        ("method: rk4", "method: rk5", "optimizer.method"),
    ],
)
def test_validation_errors_name_the_key(old: str, new: str, message: str) -> None:
    text = _oscillator().replace(old, new)
    with pytest.raises(SpecError) as err:
        load("o.yaml", text=text)
    assert message in str(err.value)


def test_dynamics_need_named_parameters() -> None:
    from conftest import spec_text

    text = spec_text("supervised_min").replace(
        "optimizer: {kind: gd, lr: 0.02}", "optimizer: {kind: map, update: {w: w}}"
    )
    with pytest.raises(SpecError, match="optimizer.kind: `map` dynamics act on named parameters"):
        load("s.yaml", text=text)


@pytest.mark.slow
def test_packed_orbits_equal_lone_runs_bitwise() -> None:
    from conftest import assert_pack_is_bitwise

    text = _oscillator(steps=100).replace("{x: 1.0, y: 0.0}", "{x: x0, y: 0.0}") + "constants: {x0: 1.0}\n"
    points = load("p.yaml", text=text, multirun=["constants.x0=0.5,1,2"]).points
    packed = assert_pack_is_bitwise([p.spec for p in points])
    assert [float(p.series["params.x"][1][0]) for p in packed] == [0.5, 1.0, 2.0]


@pytest.mark.slow
def test_resumed_map_is_bit_identical(tmp_path: Path) -> None:
    from conftest import assert_resume_is_bitwise

    runtime = "runtime: {chunk: 50, checkpoint_every: 100, checkpoint_min_seconds: 0}\n"
    assert_resume_is_bitwise(load("r.yaml", text=EQ3 + runtime).points[0].spec, at=100, store=tmp_path)
