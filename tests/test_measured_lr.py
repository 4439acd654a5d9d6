"""A learning rate driven by a measurement: ``lr: {kind: measured, value: c / sharpness}``.

Paper 003 App. G.1 (Fig. 6) trains with η_t = 1/S(θ_t), S refreshed every k steps. The oracle is a toy
with a closed-form Hessian, L(x, y) = x⁴/4 + b·y²/2: ∇²L = diag(3x², b), so S = max(3x², b), and GD
at η_t = c/S_k (S_k of the last solve k ≤ t, solved every ``every`` steps from step 0) is the
recurrence x ← x − η x³, y ← y − η b y, computed here in float64 NumPy. While 3x² > b and S is
solved at every step it is the closed form x_t = x₀(1 − c/3)^t.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

TOY = """
name: measured-quartic
precision: float64
constants: {b: 0.3, c: 0.9}
problem: {kind: toy, params: {x: 1.0, y: 1.0}, objective: "0.25 * x**4 + 0.5 * b * y**2"}
optimizer: {kind: gd, lr: {kind: measured, value: c / sharpness}}
train: {steps: STEPS}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: lr}
  - {kind: sharpness, method: dense, every: EVERY}
"""
SHARPNESS = "  - {kind: sharpness, method: dense, every: 1}\n"


def _toy(every: int, steps: int = 12, extra: str = "") -> str:
    return TOY.replace("EVERY", str(every)).replace("STEPS", str(steps)) + extra


def _oracle(every: int, steps: int, b: float = 0.3, c: float = 0.9) -> tuple[np.ndarray, ...]:
    """(x_t, y_t, η_t) for t = 0..steps: η_t = c/max(3x_k², b) at the last solve k = every·⌊t/every⌋."""
    x, y = [1.0], [1.0]
    lr = []
    for t in range(steps + 1):
        if t % every == 0:
            eta = c / max(3 * x[t] ** 2, b)
        lr.append(eta)
        x.append(x[t] - eta * x[t] ** 3)
        y.append(y[t] - eta * b * y[t])
    return np.array(x[:-1]), np.array(y[:-1]), np.array(lr)


def test_validation_errors_name_the_key() -> None:
    """A rate that reads `sharpness` needs a sharpness measure solved from step 0, no measure reading η
    and no stop rule; an unknown name in its expression is refused at its key path."""
    unmeasured = _toy(1).replace(SHARPNESS, "")
    densify = "every: 1, densify: {above: 1.0, every: 1}}"
    cases = [
        (unmeasured, "measure: ", "add a `{kind: sharpness}`"),
        (_toy(1).replace("every: 1}", "every: 1, start: 2}"), "measure.3.start", "must start at 0"),
        (_toy(1).replace("every: 1}", densify), "measure.3.densify", "densify"),
        (
            _toy(1).replace("train: {steps: 12}", "train: {steps: 12, stop: [{loss: {below: 1e-9}}]}"),
            "train.stop.0",
            "stop rules",
        ),
        (_toy(1).replace("c / sharpness", "c / sharpnes"), "optimizer.lr.value", "sharpnes"),
        (_toy(1).replace("c / sharpness", "c / mss"), "optimizer.lr.value", "mss"),
    ]
    for text, where, message in cases:
        with pytest.raises(SpecError) as err:
            load("bad.yaml", text=text)
        line = next((x for x in str(err.value).splitlines() if where in x), None)
        assert line is not None and message in line, (where, str(err.value))


def test_names_besides_sharpness_need_no_measure() -> None:
    """Polyak's step L/‖∇L‖² reads only the step's loss and gradient: no sharpness measure is needed."""
    text = _toy(1).replace("c / sharpness", "loss / grad_norm**2")
    text = text.replace(SHARPNESS, "")
    spec = load("ok.yaml", text=text).points[0].spec
    assert spec.optimizer.lr.value == "loss / grad_norm**2"


@pytest.mark.slow
@pytest.mark.parametrize("every", [1, 3])
def test_engine_matches_the_recurrence(every: int) -> None:
    """The recorded η_t and (x_t, y_t) equal the float64 recurrence to relative 1e-12: the only
    difference is rounding (dense eigh of a diagonal 2×2 Hessian is exact to an ulp; a dozen steps of a
    contracting map do not amplify it). With ``every: 3`` the rate is held between solves (S from the
    last solve at or before t), and S is recorded at 0, 3, 6, … and the last step."""
    from eosdsl.engine.execute import execute

    steps = 12
    out = execute(load("q.yaml", text=_toy(every, steps)).points[0].spec)
    assert out.status == "completed"
    x, y, lr = _oracle(every, steps)
    np.testing.assert_allclose(out.series["lr"][1], lr, rtol=1e-12)
    np.testing.assert_allclose(out.series["params.x"][1], x, rtol=1e-12)
    np.testing.assert_allclose(out.series["params.y"][1], y, rtol=1e-12)
    expected_steps = sorted({*range(0, steps + 1, every), steps})
    np.testing.assert_array_equal(out.series["sharpness"][0], expected_steps)
    if every == 1:  # while 3x² > b (t ≤ 3): x_t = (1 − c/3)^t and η_t = c/(3x_t²)
        np.testing.assert_allclose(out.series["params.x"][1][:4], 0.7 ** np.arange(4), rtol=1e-14)
        np.testing.assert_allclose(lr[:4], 0.9 / (3 * 0.49 ** np.arange(4)), rtol=1e-14)
        assert np.all(out.series["lr"][1] * out.series["sharpness"][1] == pytest.approx(0.9, rel=1e-14))


@pytest.mark.slow
def test_packed_points_equal_lone_runs_bitwise() -> None:
    """Three values of c packed into one vmap-ped program: each member's rate reads its own lane's
    sharpness, and every series equals its lone run bitwise (an elementwise toy vectorizes exactly)."""
    from conftest import assert_pack_is_bitwise

    points = load("p.yaml", text=_toy(3, 12), multirun=["constants.c=0.5,0.9,1.5"]).points
    packed = assert_pack_is_bitwise([p.spec for p in points])
    assert len({p.series["lr"][1][-1] for p in packed}) == 3


@pytest.mark.slow
def test_resumed_run_is_bit_identical(tmp_path: Path) -> None:
    """Killed after the Orbax checkpoint at step 8 — inside an interval where the rate is held from the
    solve at step 6 — the resumed run reads that solve from the checkpointed state and ends bitwise
    equal to an uninterrupted run."""
    from conftest import assert_resume_is_bitwise

    runtime = "runtime: {chunk: 4, checkpoint_every: 8, checkpoint_min_seconds: 0}\n"
    assert_resume_is_bitwise(load("r.yaml", text=_toy(3, 16, runtime)).points[0].spec, at=8, store=tmp_path)
