"""Oracle tests for the ReLU scalar-network checks (paper 000 §3, App. D)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eosdsl.checks.phb_relu import lemma6, relu_scalar_quantities, telescoping_residual, theorem2
from eosdsl.checks.result import CheckResult

# Paper Fig. 3 setting: u0 = 10, v0 = 1e-6, eps = 0.01, eta = (2 + eps)/u0^2 (GD-equivalent lr).
U0, V0, EPS = 10.0, 1e-6, 0.01
ETA = (2 + EPS) / U0**2
T = 20_000  # GD: |v_t| < 1e-18 by t = 5000; PHB(0.9): |v_t| < 1e-100 by t = 5000 (asserted below)


def simulate(beta: float, T: int = T, u0: float = U0, v0: float = V0, eps: float = EPS) -> tuple:
    """Eq. (5) in float64 with zero initial velocity (u_{-1} = u_0) and applied lr (1+beta)*eta."""
    eta = (2 + eps) / u0**2
    u = np.empty(T + 1)
    v = np.empty(T + 1)
    u[0], v[0] = u0, v0
    u_prev, v_prev = u0, v0
    for t in range(T):
        ut, vt = u[t], v[t]
        alive = 1.0 if ut >= 0 else 0.0
        u[t + 1] = ut + beta * (ut - u_prev) - eta * (1 + beta) * ut * vt * vt * alive
        v[t + 1] = vt + beta * (vt - v_prev) - eta * (1 + beta) * ut * ut * vt * alive
        u_prev, v_prev = ut, vt
    return u, v, eta


@pytest.fixture(scope="module")
def gd():
    return simulate(0.0)


@pytest.fixture(scope="module")
def phb():
    return simulate(0.9)


# ---------------------------------------------------------------------------------------------- CheckResult


def test_check_result_roundtrip_and_invariants():
    r = CheckResult("x", np.bool_(True), np.float64(0.5), "ok", {"a": np.int64(3), "b": np.float32(1.5)})
    assert type(r.passed) is bool and type(r.values["a"]) is int and type(r.values["b"]) is float
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert CheckResult.from_dict(d) == r
    na = CheckResult.not_applicable("y", "because", {"q": math.nan})
    assert na.passed and not na.applicable and math.isnan(na.margin)
    back = CheckResult.from_dict(json.loads(json.dumps(na.to_dict())))
    assert not back.applicable and math.isnan(back.margin)
    with pytest.raises(ValueError):
        CheckResult("z", False, math.nan, "inconsistent", applicable=False)
    with pytest.raises(TypeError):
        CheckResult("z", True, 0.0, "bad value", {"s": "text"})


# ------------------------------------------------------------------------------ hand-computed quantities

# Hand-made trajectory (not a solution of eq. (5)): eta = 1, eps = 0.5 -> threshold (2 - eps)/eta = 1.5.
HAND_U = np.array([1.6, 1.5, 1.3, 1.2, 1.1, 1.0, 1.0])  # u^2 = 2.56, 2.25, 1.69, 1.44, ... -> tau_u = 3
HAND_V = np.array([0.1, -0.2, 0.3, -0.2, 0.1, 0.0, 0.0])


def test_quantities_hand_computed_phb():
    q = relu_scalar_quantities(HAND_U, HAND_V, eta=1.0, beta=0.5, eps=0.5)
    assert q["T"] == 6 and q["tau_u"] == 3 and q["tau_0"] == -1
    # C_u = (u_3 - 0.5*u_2)/(1 - 0.5) = (1.2 - 0.65)/0.5 = 1.1
    assert q["C_u"] == pytest.approx(1.1, rel=1e-14)
    # C_v = (1.5/0.5) * (v_3^2 + v_4^2 + v_5^2 + v_6^2) = 3 * (0.04 + 0.01 + 0 + 0) = 0.15
    assert q["C_v"] == pytest.approx(0.15, rel=1e-14)
    # u_bar = 1.1/(1 + 1*0.15) = 1.1/1.15 = 22/23
    assert q["u_bar"] == pytest.approx(22 / 23, rel=1e-14)
    assert q["u_T"] == 1.0 and q["u_tau"] == 1.2
    assert q["delta_S"] == pytest.approx(2.56 - 1.0, rel=1e-14)  # 1.56
    assert q["delta_S_bound"] == pytest.approx(2.56 - (22 / 23) ** 2, rel=1e-14)  # 1.645066...


def test_quantities_hand_computed_gd_and_edge_cases():
    q = relu_scalar_quantities(HAND_U, HAND_V, eta=1.0, beta=0.0, eps=0.5)
    assert q["C_u"] == 1.2  # GD: C_u = u_tau exactly
    assert q["C_v"] == pytest.approx(0.05, rel=1e-14)  # 1 * (0.04 + 0.01)
    assert q["u_bar"] == pytest.approx(1.2 / 1.05, rel=1e-14)
    # tau_u = 0: u_{-1} := u_0, so C_u = (u_0 - beta*u_0)/(1 - beta) = u_0
    q0 = relu_scalar_quantities(np.array([1.0, 0.9, 0.8]), np.array([0.5, 0.1, 0.0]), 1.0, 0.5, 0.5)
    assert q0["tau_u"] == 0 and q0["C_u"] == pytest.approx(1.0, rel=1e-15)
    assert q0["C_v"] == pytest.approx(3 * (0.25 + 0.01), rel=1e-14)
    # never below threshold -> tau_u = -1 and nan for dependent quantities
    qn = relu_scalar_quantities(np.array([2.0, 1.9, 1.8]), np.zeros(3), 1.0, 0.5, 0.5)
    assert qn["tau_u"] == -1 and all(math.isnan(qn[k]) for k in ("C_u", "C_v", "u_bar", "delta_S_bound"))
    assert np.all(np.isnan(telescoping_residual(np.array([2.0, 1.9, 1.8]), np.zeros(3), 1.0, 0.5, 0.5)))
    # neuron death time
    qd = relu_scalar_quantities(np.array([1.6, 1.0, 0.2, -0.1, -0.3]), np.zeros(5), 1.0, 0.5, 0.5)
    assert qd["tau_0"] == 3 and qd["tau_u"] == 1


def test_telescoping_residual_hand():
    # u_{t+1} = u_t + beta(u_t - u_{t-1}) - eta(1+beta) u_t v_t^2 built by hand for 3 steps; beta=0.5, eta=1
    beta, eta = 0.5, 1.0
    u = [1.6]
    v = [0.5, 0.4, 0.3, 0.2]
    up = 1.6
    for t in range(3):
        u.append(u[t] + beta * (u[t] - up) - eta * (1 + beta) * u[t] * v[t] ** 2)
        up = u[t]
    u = np.array(u)  # 1.6, 1.0, 0.46, 0.0796... ; u_1^2 = 1 < 1.5 -> tau_u = 1
    r = telescoping_residual(u, np.array(v), eta, beta, 0.5)
    assert np.isnan(r[:2]).all() and np.abs(r[2:]).max() < 1e-15


# ------------------------------------------------------------------------------------- Fig. 3 trajectories


def test_oscillation_has_died_out(gd, phb):
    for u, v, _ in (gd, phb):
        assert abs(v[5000]) < 1e-18 and abs(v[-1]) < 1e-30
        assert abs(u[-1] - u[-2]) < 1e-13


@pytest.mark.parametrize("which", ["gd", "phb"])
def test_lemma6_theorem2_identity_pass(which, request):
    u, v, eta = request.getfixturevalue(which)
    beta = 0.0 if which == "gd" else 0.9
    l6 = lemma6(u)
    assert l6.passed and l6.applicable and l6.margin >= 0
    t2 = theorem2(u, v, eta, beta, EPS)
    assert t2.passed and t2.applicable and t2.margin >= 0, t2.detail
    json.dumps(t2.to_dict())
    res = telescoping_residual(u, v, eta, beta, EPS)
    tau = t2.values["tau_u"]
    assert np.isnan(res[: tau + 1]).all() and np.isfinite(res[tau + 1 :]).all()
    assert np.abs(res[tau + 1 :]).max() <= 1e-9 * np.abs(u).max()


def test_final_sharpness_gd_vs_phb(gd, phb):
    u_gd, v_gd, eta = gd
    u_phb, v_phb, _ = phb
    S_gd, S_phb = u_gd[-1] ** 2, u_phb[-1] ** 2
    # Theorem 7: GD ends just below the MSS 2/eta
    assert (2 - EPS) / eta * 0.98 < S_gd < 2 / eta
    assert S_phb < S_gd
    q_gd = relu_scalar_quantities(u_gd, v_gd, eta, 0.0, EPS)
    q_phb = relu_scalar_quantities(u_phb, v_phb, eta, 0.9, EPS)
    assert q_gd["C_u"] == q_gd["u_tau"] == u_gd[q_gd["tau_u"]]
    assert q_gd["tau_0"] == -1 and q_phb["tau_0"] == -1
    # Theorem 2's sharpness form: delta_S >= delta_S_bound; PHB has the larger reduction and bound
    for q in (q_gd, q_phb):
        assert q["delta_S"] >= q["delta_S_bound"]
    assert q_phb["delta_S"] > q_gd["delta_S"] and q_phb["delta_S_bound"] > q_gd["delta_S_bound"]
    assert q_phb["C_u"] < q_gd["C_u"] and q_phb["C_v"] > q_gd["C_v"]
    assert q_phb["tau_u"] < q_gd["tau_u"]  # PHB catapults far sooner (growth 1.1032 vs 1.01 per step)


# ---------------------------------------------------------------------------------------------- violations


def test_lemma6_detects_increase():
    r = lemma6(np.array([3.0, 2.0, 2.5, 1.0]))
    assert not r.passed and r.applicable
    assert r.margin == pytest.approx(-0.5) and r.values["t_worst"] == 1
    assert not lemma6(np.array([1.0, np.nan])).passed
    # increase below tolerance passes, above fails
    assert lemma6(np.array([1.0, 1.0 + 1e-16])).passed
    assert not lemma6(np.array([1.0, 1.0 + 1e-6]), tol=1e-7).passed


def test_theorem2_detects_violation(gd):
    # hand trajectory: u_T = 1 > u_bar = 22/23 (with eps = 0.5 < 1, |v_0| < 1, u >= 0: applicable)
    r = theorem2(HAND_U, HAND_V, eta=1.0, beta=0.5, eps=0.5)
    assert r.applicable and not r.passed
    assert r.margin == pytest.approx(22 / 23 - 1.0, rel=1e-12)
    # a real GD run with u_T bumped above the bound
    u, v, eta = gd
    bumped = u.copy()
    bumped[-1] += 1e-6
    r = theorem2(bumped, v, eta, 0.0, EPS)
    assert r.applicable and not r.passed and r.margin < 0


def test_theorem2_not_applicable_cases(gd):
    u, v, eta = gd
    neg = u.copy()
    neg[-5:] = -0.1
    r = theorem2(neg, v, eta, 0.0, EPS)
    assert not r.applicable and r.passed and math.isnan(r.margin) and "inf_t u_t >= 0" in r.detail
    r = theorem2(u[:100], v[:100], eta, 0.0, EPS)  # before tau_u
    assert not r.applicable and "tau_u not reached" in r.detail
    assert not theorem2(u, v, eta, 0.0, eps=1.5).applicable
    v_big = v.copy()
    v_big[0] = 2.0
    assert not theorem2(u, v_big, eta, 0.0, EPS).applicable


def test_dead_neuron_trajectory():
    # eps = 0.1, beta = 0.9: momentum overshoots past u = 0 (paper 000 App. E.2, Fig. 7(c)).
    beta, eps = 0.9, 0.1
    u, v, eta = simulate(beta, T=5000, eps=eps)
    q = relu_scalar_quantities(u, v, eta, beta, eps)
    assert q["tau_0"] > 0 and u.min() < 0
    assert lemma6(u).passed  # Lemma 6 holds regardless of death
    r = theorem2(u, v, eta, beta, eps)
    assert not r.applicable and r.passed
    # Lemma 6 closed-form limit after death: u_inf = (u_tau0 - beta*u_{tau0-1})/(1-beta)
    t0 = q["tau_0"]
    u_inf = (u[t0] - beta * u[t0 - 1]) / (1 - beta)
    assert u[-1] == pytest.approx(u_inf, abs=1e-9)
    # the identity keeps the indicator, so it is exact through the death as well
    res = telescoping_residual(u, v, eta, beta, eps)
    assert np.nanmax(np.abs(res)) <= 1e-9 * np.abs(u).max()
