r"""Trajectory checks for the ReLU scalar network of Phunyaphibarn et al. (paper 000 §3.2, App. D).

The loss is :math:`\mathcal L(u,v)=\tfrac12u^2v^2\mathbb 1[u\ge0]`, trained by GD (:math:`\beta=0`) or by
Polyak heavy ball (paper eq. (1)) with the *GD-equivalent* learning rate :math:`\eta`, i.e. applied rate
:math:`(1+\beta)\eta`, and zero initial velocity (:math:`u_{-1}=u_0`). The dynamics are (App. D.1, eq. (5))

.. math::
    u_{t+1} = u_t + \beta(u_t-u_{t-1}) - \eta(1+\beta)\,u_tv_t^2\,\mathbb 1[u_t\ge0],\\
    v_{t+1} = v_t + \beta(v_t-v_{t-1}) - \eta(1+\beta)\,u_t^2v_t\,\mathbb 1[u_t\ge0].

All functions take the FULL per-step trajectories ``u, v`` (1-D float arrays, index ``t = 0..T``) plus the
scalars ``eta`` (GD-equivalent lr), ``beta`` and ``eps`` (the standing setting is
:math:`u_0^2=(2+\epsilon)/\eta`). Definitions (paper eq. (3)/(4)):

* :math:`\tau_u=\inf\{t\ge0: u_t^2<(2-\epsilon)/\eta\}` (threshold :math:`(2-\epsilon)/\eta`, *not* the MSS);
* :math:`C_u=(u_{\tau_u}-\beta u_{\tau_u-1})/(1-\beta)` (GD: :math:`C_u=u_{\tau_u}`);
* :math:`C_v=\frac{1+\beta}{1-\beta}\sum_{t=\tau_u}^{T}v_t^2` (the paper's infinite sum, truncated at T);
* :math:`\bar u_\infty=C_u/(1+\eta C_v)` and :math:`\tau_0=\inf\{t: u_t<0\}` (neuron death).

Integer times that never occur are reported as ``-1``; quantities depending on a missing
:math:`\tau_u` are ``nan``.
"""

from __future__ import annotations

import math

import numpy as np

from eosdsl.checks.result import CheckResult

__all__ = ["lemma6", "relu_scalar_quantities", "telescoping_residual", "theorem2"]


def _trajectory(x: np.ndarray, name: str) -> np.ndarray:
    """Validate a 1-D, non-empty float trajectory (index t = 0..T)."""
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array indexed by t = 0..T, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a


def _pair(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, v = _trajectory(u, "u"), _trajectory(v, "v")
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same length, got {u.shape} and {v.shape}")
    return u, v


def _check_scalars(eta: float, beta: float) -> None:
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")


def _roundoff_tol(u: np.ndarray, factor: float = 8.0) -> float:
    """Round-off scale of a trajectory: ``factor * finfo(dtype).eps * max|u|`` (finite entries only)."""
    finite = np.abs(u[np.isfinite(u)])
    scale = float(finite.max()) if finite.size else 1.0
    return factor * float(np.finfo(u.dtype).eps) * max(scale, np.finfo(u.dtype).tiny)


def _first_index(mask: np.ndarray) -> int:
    """First index where ``mask`` is True, or -1."""
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else -1


def relu_scalar_quantities(
    u: np.ndarray, v: np.ndarray, eta: float, beta: float, eps: float
) -> dict[str, float]:
    r"""Derived quantities of paper eq. (3) and Theorem 2 for one trajectory.

    Returns a dict with

    * ``T`` (last index), ``u_0``, ``u_T``, ``S_0 = u_0^2``, ``S_T = u_T^2``, ``mss = 2/eta``;
    * ``tau_u`` (``-1`` if :math:`u_t^2<(2-\epsilon)/\eta` never happens) and ``u_tau``;
    * ``C_u = (u_tau - beta*u_{tau-1})/(1-beta)`` with :math:`u_{-1}:=u_0` (zero initial velocity);
    * ``C_v = (1+beta)/(1-beta) * sum_{t=tau_u}^{T} v_t^2`` (truncated at T, so :math:`C_v(T)\le C_v`);
    * ``u_bar = C_u/(1+eta*C_v)`` (Theorem 2's bound on :math:`u_\infty`);
    * ``delta_S = u_0^2 - u_T^2`` and ``delta_S_bound = u_0^2 - u_bar^2`` (Theorem 2's lower bound on the
      sharpness reduction);
    * ``tau_0`` = first t with :math:`u_t<0` (``-1`` if never).

    Quantities that need :math:`\tau_u` are ``nan`` when ``tau_u == -1``.
    """
    u, v = _pair(u, v)
    _check_scalars(eta, beta)
    T = u.size - 1
    u0, uT = float(u[0]), float(u[-1])
    tau_u = _first_index(u**2 < (2.0 - eps) / eta)
    if tau_u >= 0:
        u_tau = float(u[tau_u])
        u_prev = float(u[tau_u - 1]) if tau_u > 0 else u0
        C_u = (u_tau - beta * u_prev) / (1.0 - beta)
        C_v = (1.0 + beta) / (1.0 - beta) * float(np.sum(v[tau_u:].astype(np.float64) ** 2))
        u_bar = C_u / (1.0 + eta * C_v)
        delta_S_bound = u0**2 - u_bar**2
    else:
        u_tau = C_u = C_v = u_bar = delta_S_bound = math.nan
    return {
        "T": T,
        "u_0": u0,
        "u_T": uT,
        "S_0": u0**2,
        "S_T": uT**2,
        "mss": 2.0 / eta,
        "tau_u": tau_u,
        "u_tau": u_tau,
        "C_u": C_u,
        "C_v": C_v,
        "u_bar": u_bar,
        "delta_S": u0**2 - uT**2,
        "delta_S_bound": delta_S_bound,
        "tau_0": _first_index(u < 0),
    }


def lemma6(u: np.ndarray, tol: float | None = None) -> CheckResult:
    r"""Lemma 6: :math:`u_{t+1}\le u_t` for all t (GD and PHB on the ReLU scalar network).

    ``margin = -max_t (u_{t+1}-u_t)`` (so a constant or decreasing trajectory has ``margin >= 0``);
    ``passed`` iff ``max_t (u_{t+1}-u_t) <= tol``. Default ``tol = 8 * finfo(u.dtype).eps * max|u|``: a few
    ulps of the largest iterate, the size of a single rounding error in ``u_t + beta*(u_t - u_{t-1})``.
    (This matters for PHB in finite precision, whose displacement can sit at a few ulps forever —
    the float32 "rounding fixed point" of docs/specs.md — but it must never be positive beyond round-off.)
    The worst step is reported.
    """
    u = _trajectory(u, "u")
    name = "lemma6"
    if u.size < 2:
        return CheckResult.not_applicable(name, "trajectory has fewer than 2 points", {"T": u.size - 1})
    if tol is None:
        tol = _roundoff_tol(u)
    if not np.all(np.isfinite(u)):
        t_bad = _first_index(~np.isfinite(u))
        return CheckResult(
            name, False, -math.inf, f"u is not finite at t = {t_bad}", {"t_nonfinite": t_bad, "tol": tol}
        )
    d = np.diff(u)
    t_worst = int(np.argmax(d))
    worst = float(d[t_worst])
    passed = worst <= tol
    rel = "<=" if passed else ">"
    detail = (
        f"max_t (u_(t+1) - u_t) = {worst:.6g} at t = {t_worst} {rel} tol = {tol:.3g} "
        f"(u_t = {u[t_worst]:.10g}, u_(t+1) = {u[t_worst + 1]:.10g})"
    )
    values = {"max_increase": worst, "t_worst": t_worst, "tol": tol, "T": u.size - 1}
    return CheckResult(name, passed, -worst, detail, values)


def theorem2(
    u: np.ndarray, v: np.ndarray, eta: float, beta: float, eps: float, tol: float | None = None
) -> CheckResult:
    r"""Theorem 2: :math:`u_\infty\le\bar u_\infty=C_u/(1+\eta C_v)`, checked at the last step T.

    Hypotheses (else ``applicable=False``): :math:`\inf_t u_t\ge0` (no neuron death), :math:`0<\epsilon<1`,
    :math:`|v_0|<1`, and :math:`\tau_u\le T` (the quantities exist). The check is the limit statement
    evaluated at T with the truncated :math:`C_v(T)\le C_v` (App. D.2, eqs. (6)–(8)): this is looser
    than the limit statement, but it presumes the run has converged (``u_T ≈ u_∞``); the last-step change
    ``u_(T-1) - u_T`` is reported as a convergence diagnostic. ``margin = u_bar - u_T``; ``passed`` iff
    ``margin >= -tol`` with default ``tol = 64 * finfo(u.dtype).eps * max|u|`` (round-off of ``u_bar``,
    which involves a T-term sum).
    """
    u, v = _pair(u, v)
    name = "theorem2"
    q = relu_scalar_quantities(u, v, eta, beta, eps)
    values = {k: q[k] for k in ("T", "tau_u", "tau_0", "u_T", "u_tau", "C_u", "C_v", "u_bar")}
    values |= {"eta": eta, "beta": beta, "eps": eps}
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        return CheckResult.not_applicable(name, "trajectory is not finite (diverged run)", values)
    u_min = float(np.min(u))
    values["u_min"] = u_min
    if u_min < 0:
        return CheckResult.not_applicable(
            name,
            f"hypothesis inf_t u_t >= 0 fails: u_t < 0 first at t = {q['tau_0']} (min u = {u_min:.6g})",
            values,
        )
    if not 0 < eps < 1:
        return CheckResult.not_applicable(name, f"hypothesis 0 < eps < 1 fails (eps = {eps})", values)
    if not abs(float(v[0])) < 1:
        return CheckResult.not_applicable(
            name, f"hypothesis |v_0| < 1 fails (v_0 = {float(v[0]):.6g})", values
        )
    if q["tau_u"] < 0:
        return CheckResult.not_applicable(
            name, f"tau_u not reached by T = {q['T']}: u_t^2 >= (2-eps)/eta = {(2 - eps) / eta:.6g}", values
        )
    if tol is None:
        tol = _roundoff_tol(u, factor=64.0)
    margin = q["u_bar"] - q["u_T"]
    values["tol"] = tol
    values["last_step_change"] = float(u[-2] - u[-1]) if u.size > 1 else 0.0
    passed = margin >= -tol
    rel = "<=" if passed else ">"
    detail = (
        f"u_T = {q['u_T']:.10g} {rel} C_u/(1+eta*C_v) = {q['C_u']:.10g}/(1+{eta:.6g}*{q['C_v']:.6g}) "
        f"= {q['u_bar']:.10g} (margin {margin:.3g}, tau_u = {q['tau_u']})"
    )
    return CheckResult(name, passed, margin, detail, values)


def telescoping_residual(u: np.ndarray, v: np.ndarray, eta: float, beta: float, eps: float) -> np.ndarray:
    r"""Residual of the exact telescoping identity behind Theorem 2 (App. D.2).

    Summing eq. (5) over :math:`k=\tau_u,\dots,t-1` gives, for :math:`t\ge\tau_u+1`,

    .. math::
        r_t = u_t-u_{\tau_u}-\beta(u_{t-1}-u_{\tau_u-1})
              +\eta(1+\beta)\sum_{k=\tau_u}^{t-1}u_kv_k^2\,\mathbb 1[u_k\ge0] = 0,

    with :math:`u_{-1}:=u_0`. The indicator is 1 under Theorem 2's hypothesis :math:`u\ge0`; keeping it makes
    the identity exact for every trajectory of eq. (5), including ones where the neuron dies.

    Returns an array aligned with ``u`` (length T+1): ``r_t`` for ``t >= tau_u + 1`` and ``nan`` for
    ``t <= tau_u`` (all ``nan`` when ``tau_u`` is never reached). For a float64 simulation of eq. (5) the
    residual is at round-off relative to ``max|u|``.
    """
    u, v = _pair(u, v)
    _check_scalars(eta, beta)
    out = np.full(u.shape, np.nan, dtype=np.result_type(u.dtype, v.dtype, np.float64))
    tau = _first_index(u**2 < (2.0 - eps) / eta)
    if tau < 0 or tau >= u.size - 1:
        return out
    u_prev_tau = u[tau - 1] if tau > 0 else u[0]
    g = u * v * v * (u >= 0)
    partial = np.cumsum(g[tau:-1])  # partial[i] = sum_{k=tau}^{tau+i} g_k, used at t = tau + 1 + i
    t = np.arange(tau + 1, u.size)
    out[tau + 1 :] = u[t] - u[tau] - beta * (u[t - 1] - u_prev_tau) + eta * (1.0 + beta) * partial
    return out
