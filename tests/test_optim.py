"""Oracle tests for the update rules (``eosdsl.optim.optimizers``) and schedules (``eosdsl.optim.schedules``).

Every rule is driven directly, the way the engine drives it (d₀ = 0, ``lr_prev`` = 1 at t = 0,
w_{t+1} = w_t + d_{t+1}), and compared with an independent literal implementation in numpy (or a plain
optax loop) of the textbook form of the method: eq. (1) for heavy ball, torch's ``buf = β·buf + g;
w −= lr·buf`` for the torch form, the look-ahead form for Nesterov. The quadratic is
L(w) = ½ wᵀAw − bᵀw with a fixed, well-conditioned SPD matrix A, so no trajectory amplifies rounding
and float64 agreement to ~1e-12 is the right tolerance everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from pydantic import TypeAdapter

from eosdsl.optim.optimizers import StepInputs, build_rule
from eosdsl.optim.schedules import build_schedule
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

RESOLVE = Scope({}, jnp.float64)

A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])  # SPD, λ ∈ [≈0.4, ≈3.1]
B = np.array([1.0, -1.0, 0.5])
W0 = np.array([1.5, -0.7, 2.0])
STEPS = 30
RTOL, ATOL = 1e-12, 1e-14


def np_grad(w: np.ndarray) -> np.ndarray:
    return A @ w - B


def jax_grad(params: dict) -> dict:
    return {"w": jnp.asarray(A) @ params["w"] - jnp.asarray(B)}


def optimizer(data: dict) -> m.Optimizer:
    return TypeAdapter(m.Optimizer).validate_python(data)


def schedule_model(data: object) -> m.LearningRate:
    return TypeAdapter(m.LearningRate).validate_python(data)


def eosdsl_trajectory(
    opt_data: dict,
    steps: int = STEPS,
    w0: np.ndarray | float = W0,
    grad: Callable[[dict], dict] = jax_grad,
) -> np.ndarray:
    """w_0..w_steps under eosdsl's rule for ``opt_data``, driven as ``engine.program`` drives it."""
    opt = optimizer(opt_data)
    rule = build_rule(opt, RESOLVE)
    schedule = build_schedule(opt.lr, RESOLVE)
    params = {"w": jnp.asarray(w0, jnp.float64)}
    d = jax.tree.map(jnp.zeros_like, params)
    state = rule.init(params)
    lr_prev = jnp.asarray(1.0)
    out = [np.asarray(params["w"])]
    for t in range(steps):
        lr = rule.applied_lr(schedule(jnp.asarray(float(t))))
        d, state = rule.update(StepInputs(params, grad(params), grad, d, lr, lr_prev), state)
        params = jax.tree.map(jnp.add, params, d)
        lr_prev = lr
        out.append(np.asarray(params["w"]))
    return np.stack(out)


# ------------------------------------------------------------------------------------------ update rules


def test_gd_matches_numpy_gradient_descent() -> None:
    """Oracle: w ← w − η(Aw − b) in numpy. Same arithmetic up to summation order → 1e-12."""
    lr = 0.3
    w, expected = W0.copy(), [W0.copy()]
    for _ in range(STEPS):
        w = w - lr * np_grad(w)
        expected.append(w)
    np.testing.assert_allclose(eosdsl_trajectory({"kind": "gd", "lr": lr}), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("convention", "beta"), [("gd_equivalent", 0.9), ("raw", 0.9), ("raw", 0.5)])
def test_heavy_ball_displacement_matches_eq1(convention: str, beta: float) -> None:
    """Oracle: paper 000 eq. (1) literally, w_{t+1} = w_t − η g_t + β(w_t − w_{t−1}), w_{−1} = w_0, with
    η = (1+β)·lr under ``gd_equivalent`` and η = lr under ``raw``. eosdsl carries d instead of taking the
    difference of iterates; on a contracting quadratic the two roundings stay within 1e-12."""
    lr = 0.2
    eta = (1 + beta) * lr if convention == "gd_equivalent" else lr
    w_prev, w, expected = W0.copy(), W0.copy(), [W0.copy()]
    for _ in range(STEPS):
        w, w_prev = w - eta * np_grad(w) + beta * (w - w_prev), w
        expected.append(w)
    got = eosdsl_trajectory({"kind": "heavy_ball", "lr": lr, "beta": beta, "lr_convention": convention})
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def _warmup(start: float, end: float, steps: float) -> Callable[[int], float]:
    return lambda t: start + (end - start) * min(t / steps, 1.0)


@pytest.mark.parametrize("convention", ["gd_equivalent", "raw"])
@pytest.mark.parametrize("start", [0.05, 0.0], ids=["warmup-from-0.05", "warmup-from-0"])
def test_heavy_ball_torch_buffer_matches_torch_sgd_under_changing_lr(convention: str, start: float) -> None:
    """Oracle: ``torch.optim.SGD(momentum=β)`` simulated literally — buf = g on the first step, then
    buf = β·buf + g; w −= lr_t·buf — under a linear warmup of the applied rate (with ``gd_equivalent``
    torch's lr is (1+β)·lr_t). Equal to 1e-12 in float64. The warmup from 0 is what torch users get from
    a cosine/linear warmup; there the displacement d_t = 0 after an lr = 0 step, so the buffer cannot be
    recovered from d alone. Also asserts that eq. (1) differs by >1e-3 here, so the form matters."""
    beta, end, warm = 0.9, 0.3, 20.0
    sched = _warmup(start, end, warm)
    scale = (1 + beta) if convention == "gd_equivalent" else 1.0
    w, buf, torch_traj = W0.copy(), None, [W0.copy()]
    for t in range(STEPS):
        g = np_grad(w)
        buf = g.copy() if buf is None else beta * buf + g
        w = w - scale * sched(t) * buf
        torch_traj.append(w)
    w_prev, w, eq1 = W0.copy(), W0.copy(), [W0.copy()]
    for t in range(STEPS):
        w, w_prev = w - scale * sched(t) * np_grad(w) + beta * (w - w_prev), w
        eq1.append(w)

    lr = {"kind": "linear_warmup", "start": start, "end": end, "steps": warm}
    got = eosdsl_trajectory(
        {"kind": "heavy_ball", "lr": lr, "beta": beta, "lr_convention": convention, "form": "torch_buffer"}
    )
    np.testing.assert_allclose(got, torch_traj, rtol=RTOL, atol=ATOL)
    assert np.max(np.abs(np.asarray(torch_traj) - np.asarray(eq1))) > 1e-3


@pytest.mark.parametrize(("convention", "beta"), [("gd_equivalent", 0.9), ("raw", 0.9), ("raw", 0.5)])
def test_nesterov_matches_textbook_lookahead(convention: str, beta: float) -> None:
    """Oracle: y = w + β(w − w_prev); w_next = y − η∇L(y) (w_{−1} = w_0), with η = lr(1+β)/(1+2β) under
    ``gd_equivalent``. Same arithmetic, contracting quadratic → 1e-12."""
    lr = 0.2
    eta = lr * (1 + beta) / (1 + 2 * beta) if convention == "gd_equivalent" else lr
    w_prev, w, expected = W0.copy(), W0.copy(), [W0.copy()]
    for _ in range(STEPS):
        y = w + beta * (w - w_prev)
        w, w_prev = y - eta * np_grad(y), w
        expected.append(w)
    got = eosdsl_trajectory({"kind": "nesterov", "lr": lr, "beta": beta, "lr_convention": convention})
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def _optax_loop(tx: optax.GradientTransformation, steps: int = STEPS) -> np.ndarray:
    params = jnp.asarray(W0)
    state = tx.init(params)
    out = [np.asarray(params)]
    for _ in range(steps):
        updates, state = tx.update(jnp.asarray(np_grad(np.asarray(params))), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params))
    return np.stack(out)


def test_adam_matches_numpy_and_optax_adam() -> None:
    """Oracles: (1) Adam written out in numpy (bias-corrected moments, ε outside the square root), and
    (2) ``optax.adam`` applied in a plain loop. Non-default b1, b2, ε so each hyperparameter is exercised.
    Same arithmetic in float64 → 1e-12."""
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-6
    w, mom, nu, expected = W0.copy(), np.zeros(3), np.zeros(3), [W0.copy()]
    for t in range(1, STEPS + 1):
        g = np_grad(w)
        mom = b1 * mom + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g * g
        w = w - lr * (mom / (1 - b1**t)) / (np.sqrt(nu / (1 - b2**t)) + eps)
        expected.append(w)
    got = eosdsl_trajectory({"kind": "adam", "lr": lr, "b1": b1, "b2": b2, "eps": eps})
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got, _optax_loop(optax.adam(lr, b1=b1, b2=b2, eps=eps)), rtol=RTOL, atol=ATOL)


def test_rmsprop_matches_numpy_and_optax_rmsprop() -> None:
    """Oracles: (1) RMSProp in numpy, ν ← ρν + (1−ρ)g², w ← w − η g/√(ν + ε) (ε inside the root, ν₀ = 0,
    as ``optax.scale_by_rms``), and (2) ``optax.rmsprop`` in a plain loop. ε = 1e-4 is large enough that
    putting it outside the root would miss 1e-12 by orders of magnitude."""
    lr, decay, eps = 0.05, 0.9, 1e-4
    w, nu, expected = W0.copy(), np.zeros(3), [W0.copy()]
    for _ in range(STEPS):
        g = np_grad(w)
        nu = decay * nu + (1 - decay) * g * g
        w = w - lr * g / np.sqrt(nu + eps)
        expected.append(w)
    got = eosdsl_trajectory({"kind": "rmsprop", "lr": lr, "decay": decay, "eps": eps})
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        got, _optax_loop(optax.rmsprop(lr, decay=decay, eps=eps)), rtol=RTOL, atol=ATOL
    )


# ------------------------------------------------------------------------------- maximum stable sharpness

MSS_CASES = [
    # (optimizer, companion matrix of the textbook recurrence for applied rate η on curvature h)
    ({"kind": "gd"}, lambda eta, h, beta: np.array([[1 - eta * h]])),
    *[
        (
            {"kind": "heavy_ball", "beta": beta, "lr_convention": conv},
            lambda eta, h, beta: np.array([[1 + beta - eta * h, -beta], [1.0, 0.0]]),
        )
        for conv in ("gd_equivalent", "raw")
        for beta in (0.9, 0.5)
    ],
    *[
        (
            {"kind": "nesterov", "beta": beta, "lr_convention": conv},
            lambda eta, h, beta: np.array([[(1 + beta) * (1 - eta * h), -beta * (1 - eta * h)], [1.0, 0.0]]),
        )
        for conv in ("gd_equivalent", "raw")
        for beta in (0.9, 0.5)
    ],
]


def _mss_id(case: tuple) -> str:
    opt = case[0]
    return "-".join(str(opt[k]) for k in ("kind", "lr_convention", "beta") if k in opt)


def _closed_form_mss(opt: dict, eta: float) -> float:
    beta = opt.get("beta", 0.0)
    if opt["kind"] == "nesterov":
        return 2 * (1 + beta) / ((1 + 2 * beta) * eta)
    return 2 * (1 + beta) / eta


@pytest.mark.slow
@pytest.mark.parametrize("case", MSS_CASES, ids=[_mss_id(c) for c in MSS_CASES])
def test_mss_is_the_stability_edge_on_a_1d_quadratic(case: tuple) -> None:
    """Oracles: the closed-form MSS (GD 2/η, heavy ball 2(1+β)/η, Nesterov 2(1+β)/((1+2β)η), η applied),
    the spectral radius of the textbook recurrence's companion matrix in numpy (< 1 at h = 0.98·MSS,
    > 1 at 1.02·MSS), and a 400-step run of eosdsl's rule on L = ½hw² that contracts by >1e6 below the
    edge and grows by >1e6 above it (ρ is ≤ 0.96 below and ≥ 1.04 above, so 400 steps leave a wide
    margin). ``gd_equivalent`` must make the MSS equal 2/lr exactly (to rounding)."""
    opt_data, companion = case
    lr = 0.1
    opt = optimizer({**opt_data, "lr": lr})
    rule = build_rule(opt, RESOLVE)
    eta = float(rule.applied_lr(jnp.asarray(lr)))
    mss = float(rule.mss(jnp.asarray(eta)))
    beta = opt_data.get("beta", 0.0)
    assert mss == pytest.approx(_closed_form_mss(opt_data, eta), rel=1e-14)
    if opt_data.get("lr_convention", "gd_equivalent") == "gd_equivalent":
        assert mss == pytest.approx(2 / lr, rel=1e-14)
    for factor, stable in ((0.98, True), (1.02, False)):
        h = factor * mss
        rho = max(abs(np.linalg.eigvals(companion(eta, h, beta))))
        assert (rho < 1) == stable, (factor, rho)
        traj = eosdsl_trajectory(
            {**opt_data, "lr": lr}, steps=400, w0=1.0, grad=lambda p, h=h: {"w": h * p["w"]}
        )
        ratio = abs(traj[-1]) / abs(traj[0])
        assert (ratio < 1e-6) if stable else (ratio > 1e6), (factor, ratio)


# ------------------------------------------------------------------------------------------------ schedules

T_GRID = np.arange(0.0, 301.0)


def _eval(lr_data: object, t: np.ndarray = T_GRID) -> np.ndarray:
    fn = build_schedule(schedule_model(lr_data), RESOLVE)
    return np.array([float(fn(jnp.asarray(x))) for x in t])


def test_constant_schedules_against_closed_form() -> None:
    """Oracle: η_t = value for every t, whether given as a number, an expression or ``kind: constant``."""
    t = np.arange(0.0, 50.0)
    for data in (0.25, "0.5 / 2", {"kind": "constant", "value": 0.25}):
        np.testing.assert_allclose(_eval(data, t), np.full(t.shape, 0.25), rtol=1e-15)


@pytest.mark.parametrize("warm", [50.0, 37.5, 1.0])
def test_linear_warmup_against_closed_form_and_holds_end(warm: float) -> None:
    """Oracle: η_t = start + (end − start)·min(t/W, 1), evaluated in numpy; after W it holds ``end``
    exactly. One rounding per operation → 1e-14."""
    start, end = 1e-3, 0.1
    expected = start + (end - start) * np.minimum(T_GRID / warm, 1.0)
    got = _eval({"kind": "linear_warmup", "start": start, "end": end, "steps": warm})
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert np.all(got[warm <= T_GRID] == end)


def test_linear_warmup_of_zero_steps_is_the_end_value() -> None:
    """Oracle: min(t/W, 1) → 1 as W → 0⁺ for every t ≥ 0, so a zero-length warmup is the constant
    ``end`` (a warmup-length grid that includes 0 must not produce a NaN rate at t = 0)."""
    got = _eval({"kind": "linear_warmup", "start": 1e-3, "end": 0.1, "steps": 0.0}, np.arange(0.0, 5.0))
    np.testing.assert_array_equal(got, np.full(5, 0.1))


def test_piecewise_against_closed_form() -> None:
    """Oracle: η_t = values[#{boundaries ≤ t}] (``np.searchsorted(..., side='right')``): each boundary
    step already takes the next value. Exact (a table lookup)."""
    boundaries, values = [10.0, 25.0, 40.0], [0.1, 0.05, 0.02, 0.01]
    expected = np.asarray(values)[np.searchsorted(boundaries, T_GRID, side="right")]
    got = _eval({"kind": "piecewise", "boundaries": boundaries, "values": values})
    np.testing.assert_array_equal(got, expected)
    assert got[9] == 0.1 and got[10] == 0.05 and got[24] == 0.05 and got[25] == 0.02 and got[40] == 0.01


@pytest.mark.parametrize(("warmup", "end"), [(15.0, 0.01), (0.0, 0.0), (0.0, 0.03)])
def test_cosine_against_closed_form_and_optax(warmup: float, end: float) -> None:
    """Oracles: (1) the closed form η_t = peak·t/W for t < W, else
    end + (peak − end)·½(1 + cos(π·min((t − W)/D, 1))), in numpy; (2) ``optax.warmup_cosine_decay_schedule``
    from 0 with total decay W + D (same function at integer t). Float64 with one cos → 1e-13."""
    peak, decay = 0.2, 60.0
    s = np.minimum(np.maximum(T_GRID - warmup, 0.0) / decay, 1.0)
    decayed = end + (peak - end) * 0.5 * (1 + np.cos(np.pi * s))
    expected = np.where(warmup > T_GRID, peak * T_GRID / max(warmup, 1.0), decayed)
    got = _eval({"kind": "cosine", "peak": peak, "decay_steps": decay, "end": end, "warmup_steps": warmup})
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-16)
    assert got[int(warmup)] == pytest.approx(peak, rel=1e-15)
    assert np.all(got[warmup + decay <= T_GRID] == pytest.approx(end, abs=1e-16))
    ref = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=int(warmup),
        decay_steps=int(warmup + decay),
        end_value=end,
    )
    np.testing.assert_allclose(got, [float(ref(int(x))) for x in T_GRID], rtol=1e-12, atol=1e-15)
