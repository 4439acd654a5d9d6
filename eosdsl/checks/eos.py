"""Edge-of-stability checks on recorded curvature series (paper 003, Damian et al.).

* :func:`eos_band`: once the sharpness reaches the stability limit 2/η it stays within a relative band
  of it (the EoS regime, §1.1);
* :func:`eigengap`: Assumption 2, η·λ₂ < c (the paper's runs stop at c = 1.9, App. D.3);
* :func:`tracks_constrained`: GD stays within O(δ) of the constrained trajectory θ†, δ = √(2α/β)
  (Theorem 1, §6, §7.1);
* :func:`prediction`: Theorem 1's predicted sharpness 2/η + ŷ + (∇S·u)x̂ and loss L(θ†) + x̂²/η
  track the measured ones (Theorem 1, §5.3).

Each takes the spec's check model, the run's series (``name → (steps, values)``) and the scalars
expressions may use, and returns a :class:`CheckResult` whose margin is ≥ 0 iff the statement holds.
A series the check needs but the run did not record raises ``KeyError`` (reported as not applicable).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import Series, aligned, evaluate_series, in_window
from eosdsl.spec import models as m


def _per_step(source: str, series: Series, scalars: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, float values) of a per-step expression that must be scalar at each step."""
    steps, values = evaluate_series(source, series, scalars)
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"{source} is not a scalar at each step (shape {values.shape[1:]})")
    return steps, values


def _finite_or(values: np.ndarray, fill: float) -> np.ndarray:
    """``values`` with NaN (a diverged run, an undefined ratio) replaced by ``fill``: never a silent pass."""
    return np.where(np.isnan(values), fill, values)


def eos_band(check: m.EosBandCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    """After ``of`` first reaches ``threshold`` (S/T ≥ 1, searched from the run's start to the window's
    end), every recorded step in the window from then on has |S/T − 1| ≤ ``rel``.

    margin = rel − max |S/T − 1| over those steps. If S never reaches T: with ``must_reach`` the check
    fails with margin max(S/T) − 1 (< 0: the relative shortfall of the closest approach), else it is not
    applicable.
    """
    name = "eos_band"
    steps, ratio = _per_step(f"({check.of}) / ({check.threshold})", series, scalars)
    last = check.steps[1] if check.steps is not None else np.inf
    upto = steps <= last
    if not upto.any():
        return CheckResult.not_applicable(name, "no recorded steps in the window", {})
    dev = ratio - 1.0
    reached = np.flatnonzero(upto & (dev >= 0))
    if reached.size == 0:
        closest = float(np.nanmax(dev[upto])) if np.isfinite(dev[upto]).any() else float("-inf")
        detail = (
            f"{check.of} never reaches {check.threshold} (closest: {check.of}/({check.threshold}) − 1 = "
            f"{closest:.3g}" + (f", up to step {check.steps[1]})" if check.steps is not None else ")")
        )
        if not check.must_reach:
            return CheckResult.not_applicable(name, detail, {"closest": closest})
        return CheckResult(name, False, closest, detail, {"closest": closest})
    t_reach = int(steps[reached[0]])
    keep = (steps >= t_reach) & in_window(steps, check.steps)
    if not keep.any():
        return CheckResult.not_applicable(name, f"no recorded steps in the window after step {t_reach}", {})
    kept_steps, deviation = steps[keep], _finite_or(np.abs(dev[keep]), np.inf)
    worst = int(np.argmax(deviation))
    margin = check.rel - float(deviation[worst])
    outside = int(np.sum(deviation > check.rel))
    return CheckResult(
        name=name,
        passed=margin >= 0,
        margin=margin,
        detail=f"{check.of} reaches {check.threshold} at step {t_reach}; {outside} of {kept_steps.size} "
        f"steps from there leave the band ±{check.rel:g}; largest |{check.of}/({check.threshold}) − 1| = "
        f"{float(deviation[worst]):.3g} at step {int(kept_steps[worst])}",
        values={
            "reached_at": t_reach,
            "max_rel_deviation": float(deviation[worst]),
            "worst_step": int(kept_steps[worst]),
            "outside": outside,
        },
    )


def eigengap(check: m.EigengapCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    """Assumption 2: η·λ₂ < c at every recorded step in the window (λ₂ = ``eigs[1]``).

    margin = min (c − η·λ₂): dimensionless, in units of the stability constant; strict (passes iff > 0).
    The paper states it at θ†_t; the ``eigs`` series is measured at the GD iterate θ_t.
    """
    name = "eigengap"
    steps, eta_lam2 = _per_step(f"({check.eta}) * eigs[1]", series, scalars)
    keep = in_window(steps, check.steps)
    if not keep.any():
        return CheckResult.not_applicable(name, "no recorded steps in the window", {})
    steps, slack = steps[keep], _finite_or(check.c - eta_lam2[keep], -np.inf)
    worst = int(np.argmin(slack))
    violations = int(np.sum(slack <= 0))
    return CheckResult(
        name=name,
        passed=bool(slack[worst] > 0),
        margin=float(slack[worst]),
        detail=f"max η·λ₂ = {check.c - float(slack[worst]):.4g} at step {int(steps[worst])} "
        f"(c = {check.c:g}); {violations} of {steps.size} steps have η·λ₂ ≥ c",
        values={
            "max_eta_lambda2": check.c - float(slack[worst]),
            "worst_step": int(steps[worst]),
            "violations": violations,
        },
    )


def tracks_constrained(
    check: m.TracksConstrainedCheck, series: Series, scalars: Mapping[str, float]
) -> CheckResult:
    """‖θ_t − θ†_t‖ ≤ factor·δ_t and ≤ max_distance at every recorded step in the window.

    margin = min over steps of (bound − distance), in parameter-space distance units. Steps where δ is
    not finite (α ≤ 0: no progressive sharpening, so δ = √(2α/β) is undefined) have no relative bound;
    without ``max_distance`` they are skipped and counted. A non-finite distance fails the check.
    """
    name = "tracks_constrained"
    names = ["dagger_distance"] + (["ss_delta"] if check.factor is not None else [])
    steps, env = aligned(series, names)
    keep = in_window(steps, check.steps)
    steps, distance = steps[keep], np.asarray(env["dagger_distance"], dtype=float)[keep]
    bound = np.full(distance.shape, np.inf if check.max_distance is None else check.max_distance)
    undefined = np.zeros(distance.shape, dtype=bool)
    if check.factor is not None:
        delta = np.asarray(env["ss_delta"], dtype=float)[keep]
        undefined = ~np.isfinite(delta)
        bound = np.minimum(bound, np.where(undefined, np.inf, check.factor * delta))
    usable = np.isfinite(bound)
    skipped = int(np.sum(~usable))
    if not usable.any():
        reason = "no recorded steps in the window" if steps.size == 0 else "δ is undefined at every step"
        return CheckResult.not_applicable(name, reason, {"skipped": skipped})
    steps, slack = steps[usable], _finite_or(bound[usable] - distance[usable], -np.inf)
    worst = int(np.argmin(slack))
    bounds = " and ".join(
        ([f"{check.factor:g}·δ"] if check.factor is not None else [])
        + ([f"{check.max_distance:g}"] if check.max_distance is not None else [])
    )
    violations = int(np.sum(slack < 0))
    return CheckResult(
        name=name,
        passed=bool(slack[worst] >= 0),
        margin=float(slack[worst]),
        detail=f"‖θ − θ†‖ ≤ {bounds}: {violations} of {steps.size} steps violate it; tightest at step "
        f"{int(steps[worst])} (slack {float(slack[worst]):.3g})"
        + (f"; {skipped} steps without a bound (δ undefined) skipped" if skipped else ""),
        values={"violations": violations, "worst_step": int(steps[worst]), "skipped": skipped},
    )


def prediction(check: m.PredictionCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    """Theorem 1's predictions track GD: stat |pred.sharpness − sharpness|/(2/η) ≤ rel and
    stat |pred.loss − loss|/loss ≤ rel_loss, stat the ``statistic`` over the recorded steps in the window.

    margin = min over the compared quantities of (tolerance − statistic). A NaN error counts as infinite.
    """
    name = "prediction"
    reduce = np.max if check.statistic == "max" else np.median
    parts: list[tuple[str, float, float, int, int]] = []  # (what, tol, stat, worst step, steps)
    comparisons = []
    if check.rel is not None:
        source = f"abs(pred_sharpness - sharpness) * ({check.eta}) / 2"
        comparisons.append(("sharpness", check.rel, source))
    if check.rel_loss is not None:
        comparisons.append(("loss", check.rel_loss, "abs(pred_loss - loss) / loss"))
    for what, tol, source in comparisons:
        steps, error = _per_step(source, series, scalars)
        keep = in_window(steps, check.steps)
        if not keep.any():
            return CheckResult.not_applicable(name, f"no recorded {what} predictions in the window", {})
        steps, error = steps[keep], _finite_or(error[keep], np.inf)
        parts.append((what, tol, float(reduce(error)), int(steps[int(np.argmax(error))]), steps.size))
    margin = min(tol - stat for _, tol, stat, _, _ in parts)
    scale = {"sharpness": "(2/η)", "loss": "loss"}
    return CheckResult(
        name=name,
        passed=margin >= 0,
        margin=margin,
        detail="; ".join(
            f"{check.statistic} |pred.{what} − {what}|/{scale[what]} = {stat:.3g} (tol {tol:g}, "
            f"{n} steps, worst at step {worst})"
            for what, tol, stat, worst, n in parts
        ),
        values={f"{what}_{check.statistic}_error": stat for what, _, stat, _, _ in parts}
        | {f"{what}_worst_step": worst for what, _, _, worst, _ in parts},
    )
