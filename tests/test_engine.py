"""Oracle tests for the compiled engine (``eosdsl.engine``) through :func:`eosdsl.engine.execute.execute`.

Each test builds a spec, runs it, and compares the recorded series with a literal numpy simulation of
the same dynamics written in the test (paper 000 eq. (5) for the ReLU scalar network, textbook GD /
heavy ball on small toys), never with numbers copied from eosdsl output. Toys are chosen so that the
numpy trajectory is either exact in binary floating point (powers of two) or well conditioned.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import pytest

from eosdsl.engine.execute import ExecutionResult, execute
from eosdsl.engine.program import run_chunk
from eosdsl.spec.load import load
from eosdsl.spec.models import Spec

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

# Paper 000 Fig. 3 setting (§3.1): u0 = 10, v0 = 1e-6, ε = 0.01, η = (2 + ε)/u0² (GD lr).
U0, V0, EPS = 10.0, 1e-6, 0.01
ETA = (2 + EPS) / U0**2
MSS = 2 / ETA


def run(spec: dict) -> ExecutionResult:
    return execute(Spec.model_validate({"name": "engine-test", **spec}))


def relu_spec(optimizer: dict, steps: int, measure: list[dict], **more: object) -> dict:
    return {
        "constants": {"eps": EPS, "u0": U0},
        "problem": {"kind": "relu_scalar", "u0": "u0", "v0": V0},
        "optimizer": optimizer,
        "train": {"steps": steps},
        "measure": measure,
        **more,
    }


GD = {"kind": "gd", "lr": "(2 + eps) / u0**2"}
PHB = {"kind": "heavy_ball", "lr": "(2 + eps) / u0**2", "beta": 0.9, "lr_convention": "gd_equivalent"}


def simulate_eq5(
    steps: int, beta_at: Callable[[int], float], reset_at: int | None = None, carried: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Paper 000 eq. (5) in float64: u_{t+1} = u_t + β(u_t − u_{t−1}) − η(1+β)u_t v_t²·1[u_t ≥ 0] (and the
    same for v with u_t² v_t), u_{−1} = u_0. β may change with t (an optimizer switch); ``reset_at``
    zeroes the velocity at that step (u_{t−1} := u_t), for contrast.

    ``carried=False`` is the literal form, which differences iterates. Even in float64 it falls into the
    rounding fixed point (docs/specs.md) once the true displacement decays below a few ulps: on the Fig. 3
    PHB run u_t − u_{t−1} sits at exactly −4 ulp per step from t ≈ 1000 on, so it drifts ~7e-15 per step.
    ``carried=True`` evaluates the same recurrence with the displacement d_{t+1} = β d_t − η(1+β)∇L kept
    as its own variable (algebraically identical, no fixed point)."""
    u, v = np.empty(steps + 1), np.empty(steps + 1)
    u[0], v[0] = U0, V0
    u_prev, v_prev = U0, V0
    du = dv = 0.0
    for t in range(steps):
        beta = beta_at(t)
        if t == reset_at:
            u_prev, v_prev, du, dv = u[t], v[t], 0.0, 0.0
        alive = 1.0 if u[t] >= 0 else 0.0
        lr = ETA * (1 + beta)
        gu, gv = u[t] * v[t] * v[t] * alive, u[t] * u[t] * v[t] * alive
        if carried:
            du, dv = beta * du - lr * gu, beta * dv - lr * gv
            u[t + 1], v[t + 1] = u[t] + du, v[t] + dv
        else:
            u[t + 1] = u[t] + beta * (u[t] - u_prev) - lr * gu
            v[t + 1] = v[t] + beta * (v[t] - v_prev) - lr * gv
        u_prev, v_prev = u[t], v[t]
    return u, v


def relu_lambda_max(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Paper 000 §3.1: λ_max of [[v², 2uv], [2uv, u²]] = ½[(u² + v²) + √((u² − v²)² + 16u²v²)] for u > 0."""
    lam = 0.5 * ((u * u + v * v) + np.sqrt((u * u - v * v) ** 2 + 16 * u * u * v * v))
    return np.where(u > 0, lam, 0.0)


def first_crossing_below(values: np.ndarray, threshold: float) -> int:
    """First t ≥ 1 with values[t] < threshold ≤ values[t−1]."""
    hits = np.flatnonzero((values[1:] < threshold) & (values[:-1] >= threshold))
    return int(hits[0]) + 1


# ----------------------------------------------------------------------------------- ReLU scalar network


@pytest.mark.parametrize(("optimizer", "beta"), [(GD, 0.0), (PHB, 0.9)], ids=["gd", "heavy-ball"])
def test_relu_scalar_trajectory_matches_eq5(optimizer: dict, beta: float) -> None:
    """Oracle: eq. (5) in numpy float64 for 3,000 steps (through the catapult and the decay of v).

    Against the literal form, u agrees to 1e-11 relative: that oracle itself drifts by 4 ulp per step
    once PHB's displacement has decayed (see :func:`simulate_eq5`), ≤ 2e-12 relative after 3,000 steps.
    Against the carried-displacement evaluation of the same recurrence, u agrees to 1e-14 (observed
    1e-15). v oscillates through zero and decays to ~1e-68, so it is compared relative to its peak |v|
    (observed 1.3e-11 literal, 3e-14 carried)."""
    out = run(relu_spec(optimizer, 3000, [{"kind": "params"}]))
    steps_u, got_u = out.series["params.u"]
    steps_v, got_v = out.series["params.v"]
    assert out.status == "completed" and out.end_step == 3000
    np.testing.assert_array_equal(steps_u, np.arange(3001))
    np.testing.assert_array_equal(steps_v, np.arange(3001))
    for carried, rtol_u, rtol_v in ((False, 1e-11, 1e-10), (True, 1e-14, 1e-12)):
        u, v = simulate_eq5(3000, lambda t: beta, carried=carried)
        np.testing.assert_allclose(got_u, u, rtol=rtol_u, atol=0)
        assert np.max(np.abs(got_v - v)) <= rtol_v * np.max(np.abs(v)), carried
    assert np.max(np.abs(v)) > 1e-2  # the run went through the catapult (v grew by > 1e4)


def test_gd_to_heavy_ball_switch_on_sharpness_carries_the_displacement() -> None:
    """Oracles: (1) the first step s where the closed-form 2×2 Hessian λ_max (paper 000 §3.1) of the numpy GD
    trajectory is below 2/η after being ≥ 2/η (margins ≈ 1e-3 on either side, so rounding cannot move it);
    (2) eq. (5) with β = 0 for t < s and β = 0.9 from s on, with u_{s−1} the last GD iterate (the carried
    displacement), tolerances as in the eq. (5) test; the recorded sharpness equals the closed-form λ_max
    along that trajectory. A velocity reset at s is simulated too and must differ by far more."""
    steps = 3000
    spec = relu_spec(
        GD,
        steps,
        [{"kind": "params"}, {"kind": "sharpness"}],
        events=[
            {
                "name": "to PHB",
                "when": {"sharpness": {"crosses": "below", "threshold": "mss"}},
                "do": {
                    "switch_optimizer": {"kind": "heavy_ball", "beta": 0.9, "lr_convention": "gd_equivalent"}
                },
            }
        ],
    )
    out = run(spec)
    gd_u, gd_v = simulate_eq5(steps, lambda t: 0.0)
    s = first_crossing_below(relu_lambda_max(gd_u, gd_v), MSS)
    assert out.events == [{"name": "to PHB", "kind": "event", "fired_at": s}]

    def schedule(t: int) -> float:
        return 0.9 if t >= s else 0.0

    got_u, got_v = out.series["params.u"][1], out.series["params.v"][1]
    for carried, rtol_u, rtol_v in ((False, 1e-11, 1e-10), (True, 1e-14, 1e-12)):
        u, v = simulate_eq5(steps, schedule, carried=carried)
        np.testing.assert_allclose(got_u, u, rtol=rtol_u, atol=0)
        assert np.max(np.abs(got_v - v)) <= rtol_v * np.max(np.abs(v)), carried
    np.testing.assert_allclose(out.series["sharpness"][1], relu_lambda_max(u, v), rtol=1e-13)

    reset_u, _ = simulate_eq5(steps, schedule, reset_at=s, carried=True)
    assert np.max(np.abs(got_u - reset_u)) > 1e-6


def _naive_phb_float32(steps: int) -> np.ndarray:
    """The literal displacement-by-difference PHB, w_next = w − η g + β(w − w_prev), every operation in
    float32 (numpy float32 scalars), applied rate (1+β)η."""
    f = np.float32
    beta, lr = f(0.9), f(1.9) * f(ETA)
    u, v, u_prev, v_prev = f(U0), f(V0), f(U0), f(V0)
    zero = f(0.0)
    us = np.empty(steps + 1, np.float32)
    us[0] = u
    for t in range(steps):
        gu, gv = (u * v * v, u * u * v) if u >= zero else (zero, zero)
        u, u_prev = u - lr * gu + beta * (u - u_prev), u
        v, v_prev = v - lr * gv + beta * (v - v_prev), v
        us[t + 1] = u
    return us


def test_float32_heavy_ball_tracks_float64_where_the_naive_form_drifts() -> None:
    """Fig. 3 PHB (u0 = 10, v0 = 1e-6, ε = 0.01, η = (2+ε)/u0², β = 0.9) for 100,000 steps.

    Oracles: eq. (5) in numpy float64 with the displacement carried (final sharpness = closed-form λ_max
    at (u_T, v_T) ≈ u_T² = 96.1276) and, for contrast, the naive float32 loop, whose rounding fixed point
    (docs/specs.md) lets u drift: it ends at u² ≈ 88.80, 7.3 below. eosdsl's float32 run must end within 0.01
    of its float64 run and of numpy (observed: 2.9e-4 below); eosdsl float64 vs numpy is round-off
    (observed 4e-14, 1e-12 relative allowed)."""
    steps = 100_000
    measure = [{"kind": "sharpness", "every": 1000}]
    out64 = run(relu_spec(PHB, steps, measure, precision="float64"))
    out32 = run(relu_spec(PHB, steps, measure, precision="float32"))
    u, v = simulate_eq5(steps, lambda t: 0.9, carried=True)
    reference = float(relu_lambda_max(u[-1:], v[-1:])[0])

    for out in (out64, out32):
        steps_s, _ = out.series["sharpness"]
        np.testing.assert_array_equal(steps_s, np.arange(0, steps + 1, 1000))
    assert out32.series["sharpness"][1].dtype == np.float32
    s64, s32 = float(out64.series["sharpness"][1][-1]), float(out32.series["sharpness"][1][-1])
    assert s64 == pytest.approx(reference, rel=1e-12)
    assert abs(s32 - s64) < 0.01, (s32, s64)
    assert abs(s32 - reference) < 0.01, (s32, reference)

    naive = _naive_phb_float32(steps)
    assert abs(float(naive[-1]) ** 2 - reference) > 0.01, (float(naive[-1]) ** 2, reference)


# ------------------------------------------------------------------------------------------- compile once

GRID_YAML = """
name: compile-once-grid
problem:
  kind: toy
  params: {x: 1.25, y: -0.75}
  objective: "0.5 * (3 * x**2 + y**2) + 0.125 * x**4 + 0.0625 * y**4 + 0.01 * x * y"
optimizer: {kind: gd, lr: 0.01}
train: {steps: 200}
measure: [{kind: params}, {kind: lr}]
"""


def _grid_gd(lr: float, steps: int = 200) -> tuple[float, float]:
    x, y = 1.25, -0.75
    for _ in range(steps):
        gx = 3 * x + 0.5 * x**3 + 0.01 * y
        gy = y + 0.25 * y**3 + 0.01 * x
        x, y = x - lr * gx, y - lr * gy
    return x, y


def test_learning_rate_grid_compiles_the_step_program_once() -> None:
    """A 16-point lr grid from ``-m optimizer.lr=linspace(0.01, 0.0199, 16)``. Oracles: (a) the jit cache
    of ``run_chunk`` grows by exactly one entry over the grid; (b) a ``jax.monitoring`` listener counts
    zero backend compilations for points 2..16; (c) each point's final (x, y) equals a numpy GD run with
    that point's lr (1e-12), so the 16 trajectories are distinct and the lr is traced, not baked in."""
    assert hasattr(run_chunk.jitted, "_cache_size"), "this jax no longer exposes jit's _cache_size()"
    points = load("grid.yaml", text=GRID_YAML, multirun=["optimizer.lr=linspace(0.01, 0.0199, 16)"]).points
    assert len(points) == 16
    compiles: list[int] = []
    enabled = [True]

    def listener(event: str, duration: float, **_: object) -> None:
        if enabled[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles[-1] += 1

    before = run_chunk.jitted._cache_size()
    jax.monitoring.register_event_duration_secs_listener(listener)
    finals = []
    try:
        for point in points:
            compiles.append(0)
            out = execute(point.spec)
            finals.append((out.series["params.x"][1][-1], out.series["params.y"][1][-1]))
            assert out.series["lr"][1][0] == point.spec.optimizer.lr
    finally:
        enabled[0] = False
        jax.monitoring.unregister_event_duration_listener(listener)
    assert run_chunk.jitted._cache_size() - before == 1
    assert compiles[0] >= 1 and compiles[1:] == [0] * 15, compiles
    lrs = np.linspace(0.01, 0.0199, 16)
    np.testing.assert_allclose(finals, [_grid_gd(lr) for lr in lrs], rtol=1e-12)
    assert len({f for f in finals}) == 16


# ------------------------------------------------------------------------------------------- divergence


def test_divergence_ends_at_the_first_non_finite_loss_and_keeps_earlier_series() -> None:
    """GD on L = 5w² (h = 10) with η = 0.5 (ηh = 5 > 2): w_t = (−4)^t and L_t = 5·16^t exactly in binary
    floating point, so the numpy oracle is exact: the first non-finite loss is the first overflow of
    5·16^t (t = 256; w is still finite there). Chunks of 64 steps check that series recorded in earlier
    chunks are kept."""
    out = run(
        {
            "problem": {"kind": "toy", "params": {"w": 1.0}, "objective": "5 * w**2"},
            "optimizer": {"kind": "gd", "lr": 0.5},
            "train": {"steps": 1000},
            "runtime": {"chunk": 64},
            "measure": [{"kind": "loss"}, {"kind": "params"}],
        }
    )
    w, losses = 1.0, []
    with np.errstate(over="ignore"):
        for _ in range(1001):
            losses.append(np.float64(5.0) * np.float64(w) ** 2)
            w = w - 0.5 * 10 * w
    first_bad = int(np.flatnonzero(~np.isfinite(losses))[0])
    assert first_bad == 256
    assert out.status == "diverged" and out.end_step == first_bad
    steps, loss = out.series["loss"]
    np.testing.assert_array_equal(steps[:first_bad], np.arange(first_bad))
    np.testing.assert_array_equal(loss[:first_bad], losses[:first_bad])
    assert steps[-1] <= first_bad and np.all(np.isfinite(loss[:first_bad]))
    w_steps, w_values = out.series["params.w"]
    np.testing.assert_array_equal(w_values[:first_bad], (-4.0) ** np.arange(first_bad))
    assert w_steps[-1] <= first_bad


# --------------------------------------------------------------------------------------- stops and events

QUAD_1D = {"kind": "toy", "params": {"w": 1.0}, "objective": "0.5 * w**2"}


def test_loss_stop_rule_stops_at_first_step_below() -> None:
    """GD on ½w² with η = 0.1: w_t = 0.9^t, L_t = ½·0.81^t. Oracle: the numpy loop's first t with
    L_t < 1e-8 (t = 85); the recorded loss series must agree (its last value below, the one before not)."""
    out = run(
        {
            "problem": QUAD_1D,
            "optimizer": {"kind": "gd", "lr": 0.1},
            "train": {"steps": 1000, "stop": [{"loss": {"below": 1e-8}}]},
            "measure": [{"kind": "loss"}],
        }
    )
    w, t = 1.0, 0
    while 0.5 * w * w >= 1e-8:
        w, t = w - 0.1 * w, t + 1
    assert out.status == "stopped" and out.end_step == t == 85
    assert out.stop_cause == "stop rule 0"
    assert out.events == [{"name": "stop rule 0", "kind": "stop", "fired_at": t}]
    steps, loss = out.series["loss"]
    np.testing.assert_array_equal(steps, np.arange(t + 1))
    assert int(np.flatnonzero(loss < 1e-8)[0]) == t
    np.testing.assert_allclose(loss, 0.5 * 0.81 ** np.arange(t + 1), rtol=1e-12)


def test_event_with_stop_action_stops_the_run() -> None:
    """Oracle: a ``{step: {at: 37}}`` event with ``do: {stop: true}`` ends the run at step 37 — status
    ``stopped``, the state at 37 measured and not updated (w_37 = 0.9^37)."""
    out = run(
        {
            "problem": QUAD_1D,
            "optimizer": {"kind": "gd", "lr": 0.1},
            "events": [{"name": "halt", "when": {"step": {"at": 37}}, "do": {"stop": True}}],
            "train": {"steps": 100},
            "measure": [{"kind": "params"}],
        }
    )
    assert out.status == "stopped" and out.end_step == 37 and out.stop_cause == "halt"
    assert out.events[0]["fired_at"] == 37
    steps, w = out.series["params.w"]
    np.testing.assert_array_equal(steps, np.arange(38))
    np.testing.assert_allclose(w, 0.9 ** np.arange(38), rtol=1e-13)


QUAD_2D = {
    "kind": "toy",
    "params": {"x": 1.5, "y": -0.7},
    "objective": "0.5 * (3 * x**2 + y**2) + 0.25 * x * y",
}


def _quad2d_grad(x: float, y: float) -> np.ndarray:
    return np.array([3 * x + 0.25 * y, y + 0.25 * x])


def test_step_trigger_fires_at_k_and_switch_carries_displacement() -> None:
    """A ``{step: {at: 25}}`` event switching GD → heavy ball (β = 0.9, raw lr 0.1). Oracles: ``fired_at``
    is 25, and the trajectory is numpy GD for t < 25 followed by eq. (1) with w_24 as w_{t−1} at t = 25
    (displacement carried). Contracting quadratic → 1e-12."""
    out = run(
        {
            "problem": QUAD_2D,
            "optimizer": {"kind": "gd", "lr": 0.1},
            "events": [
                {
                    "when": {"step": {"at": 25}},
                    "do": {"switch_optimizer": {"kind": "heavy_ball", "beta": 0.9, "lr_convention": "raw"}},
                }
            ],
            "train": {"steps": 60},
            "measure": [{"kind": "params"}],
        }
    )
    assert out.events == [{"name": "event 0", "kind": "event", "fired_at": 25}]
    w_prev = w = np.array([1.5, -0.7])
    expected = [w]
    for t in range(60):
        beta = 0.9 if t >= 25 else 0.0
        w, w_prev = w - 0.1 * _quad2d_grad(*w) + beta * (w - w_prev), w
        expected.append(w)
    got = np.stack([out.series["params.x"][1], out.series["params.y"][1]], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_torch_buffer_heavy_ball_under_cosine_warmup_matches_torch_sgd() -> None:
    """Heavy ball in ``form: torch_buffer`` under a cosine schedule with warmup (rate 0 at t = 0).
    Oracle: ``torch.optim.SGD(lr_t, momentum=β)`` simulated literally in numpy — buf = g on the first
    step, then buf = β·buf + g; w −= lr_t·buf, with lr_t = (1+β)·η_t (``gd_equivalent``). Through the
    engine this exercises the rule's own buffer state across chunks (chunk 16). Contracting → 1e-12."""
    sched = {"kind": "cosine", "peak": 0.3, "decay_steps": 40.0, "end": 0.01, "warmup_steps": 10.0}
    out = run(
        {
            "problem": QUAD_2D,
            "optimizer": {"kind": "heavy_ball", "lr": sched, "beta": 0.9, "form": "torch_buffer"},
            "train": {"steps": 60},
            "runtime": {"chunk": 16},
            "measure": [{"kind": "params"}, {"kind": "lr"}],
        }
    )

    def eta(t: int) -> float:
        if t < 10:
            return 0.3 * t / 10
        return 0.01 + (0.3 - 0.01) * 0.5 * (1 + np.cos(np.pi * min((t - 10) / 40, 1.0)))

    np.testing.assert_allclose(out.series["lr"][1], [eta(t) for t in range(61)], rtol=1e-13, atol=1e-16)
    w, buf, expected = np.array([1.5, -0.7]), None, [np.array([1.5, -0.7])]
    for t in range(60):
        g = _quad2d_grad(*w)
        buf = g if buf is None else 0.9 * buf + g
        w = w - 1.9 * eta(t) * buf
        expected.append(w)
    assert out.status == "completed"
    got = np.stack([out.series["params.x"][1], out.series["params.y"][1]], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_freeze_schedule_holds_the_rate_after_firing() -> None:
    """Linear warmup 0.001 → 0.1 over 100 steps, frozen by a step-30 event. Oracle: lr_t = warmup(t) for
    t ≤ 30 and warmup(30) afterwards (the firing step's rate is the one held), and numpy GD with that
    rate sequence reproduces the parameters (1e-12)."""
    out = run(
        {
            "problem": QUAD_2D,
            "optimizer": {
                "kind": "gd",
                "lr": {"kind": "linear_warmup", "start": 0.001, "end": 0.1, "steps": 100},
            },
            "events": [{"when": {"step": {"at": 30}}, "do": {"freeze_schedule": True}}],
            "train": {"steps": 80},
            "measure": [{"kind": "params"}, {"kind": "lr"}],
        }
    )

    def warmup(t: int) -> float:
        return 0.001 + (0.1 - 0.001) * min(t / 100, 1.0)

    lrs = np.array([warmup(min(t, 30)) for t in range(81)])
    np.testing.assert_allclose(out.series["lr"][1], lrs, rtol=1e-14)
    assert np.all(out.series["lr"][1][30:] == out.series["lr"][1][30])
    w, expected = np.array([1.5, -0.7]), [np.array([1.5, -0.7])]
    for t in range(80):
        w = w - lrs[t] * _quad2d_grad(*w)
        expected.append(w)
    got = np.stack([out.series["params.x"][1], out.series["params.y"][1]], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_expr_trigger_fires_when_the_condition_first_holds() -> None:
    """GD on ½(w + 1)² from w = 1 with η = 0.1: w_t = −1 + 2·0.9^t. Oracle: the numpy loop's first t with
    w_t < 0 (t = 7). The action (freeze a constant schedule) does not end the run, so the condition keeps
    holding afterwards and ``fired_at`` must still be the first time."""
    out = run(
        {
            "problem": {"kind": "toy", "params": {"w": 1.0}, "objective": "0.5 * (w + 1)**2"},
            "optimizer": {"kind": "gd", "lr": 0.1},
            "events": [{"name": "crossed zero", "when": {"expr": "w < 0"}, "do": {"freeze_schedule": True}}],
            "train": {"steps": 40},
            "measure": [{"kind": "params"}],
        }
    )
    w, t = 1.0, 0
    while w >= 0:
        w, t = w - 0.1 * (w + 1), t + 1
    assert t == 7
    assert out.status == "completed" and out.events[0]["fired_at"] == t
    assert np.all(out.series["params.w"][1][t:] < 0)


def test_expr_trigger_on_sharpness_fires_at_the_crossing() -> None:
    """An ``expr`` trigger may use ``sharpness`` (the semantic checker allows it). Oracle: the first step
    where the closed-form λ_max of the numpy GD trajectory on the ReLU net is below 2/η (margins ≈ 1e-3),
    with no ``sharpness:`` trigger in the spec to make the engine compute it anyway."""
    out = run(
        relu_spec(
            GD,
            3000,
            [{"kind": "loss"}],
            events=[{"name": "flat", "when": {"expr": "sharpness < mss"}, "do": {"stop": True}}],
        )
    )
    u, v = simulate_eq5(3000, lambda t: 0.0)
    lam = relu_lambda_max(u, v)
    s = int(np.flatnonzero(lam < MSS)[0])
    assert out.events[0]["fired_at"] == s
    assert out.status == "stopped" and out.end_step == s


# ---------------------------------------------------------------------------------------- what is measured


def test_cadence_records_every_k_steps_and_the_last_step() -> None:
    """Oracle: steps {0, k, 2k, …} ∪ {T} for each series (T = 31, chunks of 4 so cadence and chunking are
    unaligned), with values equal to the numpy GD trajectory at those steps (w_t = 0.9^t)."""
    out = run(
        {
            "problem": QUAD_1D,
            "optimizer": {"kind": "gd", "lr": 0.1},
            "train": {"steps": 31},
            "runtime": {"chunk": 4},
            "measure": [{"kind": "loss", "every": 7}, {"kind": "params", "every": 10}],
        }
    )
    loss_steps, loss = out.series["loss"]
    w_steps, w = out.series["params.w"]
    np.testing.assert_array_equal(loss_steps, [0, 7, 14, 21, 28, 31])
    np.testing.assert_array_equal(w_steps, [0, 10, 20, 30, 31])
    np.testing.assert_allclose(loss, 0.5 * 0.81 ** loss_steps.astype(float), rtol=1e-13)
    np.testing.assert_allclose(w, 0.9 ** w_steps.astype(float), rtol=1e-13)


def test_state_after_the_last_update_is_measured() -> None:
    """With ``train.steps: T`` the run makes T updates and measures T + 1 states. Oracle: numpy GD on the
    2-D quadratic — the loss series covers steps 0..T and its last value is L(w_T) (1e-12)."""
    T = 12
    out = run(
        {
            "problem": QUAD_2D,
            "optimizer": {"kind": "gd", "lr": 0.1},
            "train": {"steps": T},
            "measure": [{"kind": "loss"}],
        }
    )
    w, losses = np.array([1.5, -0.7]), []
    for _ in range(T + 1):
        x, y = w
        losses.append(0.5 * (3 * x**2 + y**2) + 0.25 * x * y)
        w = w - 0.1 * _quad2d_grad(x, y)
    steps, loss = out.series["loss"]
    assert out.status == "completed" and out.end_step == T
    np.testing.assert_array_equal(steps, np.arange(T + 1))
    np.testing.assert_allclose(loss, losses, rtol=1e-12)
