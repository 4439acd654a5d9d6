"""Evaluate a spec's derived series and checks on the series a run recorded.

Expressions in checks and derived measures see every recorded series by its *expression name*:
``params.u`` is ``u``, other dots become underscores (``sharpness.residual`` → ``sharpness_residual``),
plus the spec's constants and the run's reference values (``test_loss.min_l1`` → ``test_loss_min_l1``).
Per-step expressions are evaluated on the steps where every series they use was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eosdsl.checks import claims, eos, phb_relu, product_chain
from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import (  # noqa: F401  (re-exported: the evaluation API in one namespace)
    Series,
    aligned,
    evaluate_series,
    expression_name,
    final_value,
    in_window,
)
from eosdsl.spec import models as m
from eosdsl.spec.recorded import RecordedSeries, recorded_series
from eosdsl.spec.scope import Scope


def scalars_of(spec: m.Spec | Mapping[str, Any], references: Mapping[str, float]) -> dict[str, float]:
    """Names every check expression may use besides series: constants and reference values. ``spec``:
    the validated spec, or a stored run's spec document (``run.spec``)."""
    constants = spec.constants if isinstance(spec, m.Spec) else spec.get("constants") or {}
    return {**constants, **{expression_name(k): v for k, v in references.items()}}


def derived_series(spec: m.Spec, series: Series, references: Mapping[str, float]) -> dict[str, Any]:
    """The spec's ``derived`` measures as new series."""
    scalars = scalars_of(spec, references)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for meas in spec.measure:
        if isinstance(meas, m.DerivedMeasure):
            out[meas.name] = evaluate_series(meas.expr, {**series, **out}, scalars)
    return out


# --------------------------------------------------------------------------------------- generic checks


def _worst_component(values: np.ndarray) -> np.ndarray:
    """Per-step minimum over components: a statement about a vector must hold for each component."""
    values = np.asarray(values, dtype=float)
    return values.reshape(values.shape[0], -1).min(axis=1) if values.ndim > 1 else values


def _final(check: m.FinalCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    values = np.asarray(final_value(check.of, series, scalars), dtype=float)
    value = (
        float(values)
        if values.ndim == 0
        else float(values.max() if check.below is not None else values.min())
    )
    bounds = []
    if check.below is not None:
        bound = float(final_value(str(check.below), series, scalars))
        margin = float(np.min(bound - values)) + check.tol
        bounds.append((margin, f"{check.of} = {value:.6g} < {bound:.6g}"))
    if check.above is not None:
        bound = float(final_value(str(check.above), series, scalars))
        margin = float(np.min(values - bound)) + check.tol
        bounds.append((margin, f"{check.of} = {value:.6g} > {bound:.6g}"))
    margin = min(b[0] for b in bounds)
    return CheckResult(
        name=f"final {check.of}",
        passed=bool(margin > 0 or (check.tol > 0 and margin >= 0)),
        margin=margin,
        detail="; ".join(b[1] for b in bounds) + (f" (tol {check.tol:g})" if check.tol else ""),
        values={"value": value},
    )


def _inequality(check: m.InequalityCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    source = f"({check.rhs}) - ({check.lhs})" if check.op in ("<=", "<") else f"({check.lhs}) - ({check.rhs})"
    steps, slack = evaluate_series(source, series, scalars)
    keep = in_window(steps, check.steps)
    steps, slack = steps[keep], slack[keep]
    name = f"{check.lhs} {check.op} {check.rhs}"
    if steps.size == 0:
        return CheckResult.not_applicable(name, "no recorded steps in the window", {})
    slack = _worst_component(slack) + check.tol
    strict = check.op in ("<", ">") and check.tol == 0
    ok = slack > 0 if strict else slack >= 0
    worst = int(np.argmin(slack))
    return CheckResult(
        name=name,
        passed=bool(np.all(ok)),
        margin=float(slack[worst]),
        detail=f"{int(np.sum(~ok))} of {steps.size} steps violate it; tightest at step {int(steps[worst])} "
        f"(slack {float(slack[worst]):.3g}, tol {check.tol:g})",
        values={"violations": int(np.sum(~ok)), "worst_step": int(steps[worst])},
    )


def _monotone(check: m.MonotoneCheck, series: Series, scalars: Mapping[str, float]) -> CheckResult:
    steps, values = evaluate_series(check.of, series, scalars)
    keep = in_window(steps, check.steps)
    steps, values = steps[keep], values[keep]
    diffs = np.diff(np.asarray(values, dtype=float), axis=0)
    diffs = -_worst_component(-diffs) if check.direction == "nonincreasing" else -_worst_component(diffs)
    name = f"{check.of} {check.direction}"
    if diffs.size == 0:
        return CheckResult.not_applicable(name, "fewer than two recorded values", {})
    worst = int(np.argmax(diffs))
    margin = float(check.tol - diffs[worst])
    return CheckResult(
        name=name,
        passed=bool(margin >= 0),
        margin=margin,
        detail=f"largest step against the direction {float(diffs[worst]):.3g} "
        f"at step {int(steps[worst + 1])} "
        f"(tol {check.tol:g})",
        values={"worst_step": int(steps[worst + 1])},
    )


# ---------------------------------------------------------------------------- paper 000 named checks


def _relu_scalar_setting(spec: m.Spec) -> tuple[float, float] | str:
    """(η GD-equivalent, β) of a ReLU-scalar run with one optimizer at a constant rate, or why not."""
    if any(e.do.switch_optimizer for e in spec.events):
        return "the run switches optimizers; the theorem is stated for one optimizer"
    opt = spec.optimizer
    if not isinstance(opt, m.GD | m.HeavyBall) or not isinstance(opt.lr, float | str):
        return "the theorem is stated for GD or heavy ball at a constant learning rate"
    scope = Scope(spec.constants, np.float64)
    lr = float(scope(opt.lr))
    if isinstance(opt, m.GD):
        return lr, 0.0
    beta = float(scope(opt.beta))
    return (lr if opt.lr_convention == "gd_equivalent" else lr / (1 + beta)), beta


def _every_step(series: Series, name: str) -> np.ndarray | str:
    if name not in series:
        return f"needs the series {name} (add `{{kind: params}}` to measure)"
    steps, values = series[name]
    if steps.size < 2 or np.any(np.diff(steps) != 1) or steps[0] != 0:
        return f"needs {name} recorded at every step from 0 (measure params with every: 1)"
    return values


def _lemma6(check: m.Lemma6Check, spec: m.Spec, series: Series) -> CheckResult:
    u = _every_step(series, "params.u")
    if isinstance(u, str):
        return CheckResult.not_applicable("lemma6", u, {})
    return phb_relu.lemma6(u, tol=check.tol)


def _theorem2(check: m.Theorem2Check, spec: m.Spec, series: Series) -> CheckResult:
    setting = _relu_scalar_setting(spec)
    u, v = _every_step(series, "params.u"), _every_step(series, "params.v")
    for reason in (setting, u, v):
        if isinstance(reason, str):
            return CheckResult.not_applicable("theorem2", reason, {})
    eta, beta = setting
    eps = eta * float(u[0]) ** 2 - 2.0  # u₀² = (2 + ε)/η (paper 000 §3.1)
    return phb_relu.theorem2(u, v, eta, beta, eps, **({} if check.tol is None else {"tol": check.tol}))


# ---------------------------------------------------------------------------- paper 001 named checks


def _loss_scale(spec: m.Spec, references: Mapping[str, float]) -> float | str:
    """s with L = s·Σ‖D‖² for the spec's MSE loss, or why there is none."""
    loss = getattr(spec.problem, "loss", None)
    if loss is None or loss.kind != "mse":
        return "the identity is stated for a mean-squared-error loss"
    n, k = references.get("n_train"), references.get("n_outputs", 1.0)
    per = {"half_sum_over_n": 1 / (2 * n), "sum_over_n": 1 / n, "mean": 1 / (n * k)}[loss.convention]
    return per * loss.scale


def _output_norm_identity(
    check: m.OutputNormIdentityCheck, spec: m.Spec, series: Series, references: Mapping[str, float]
) -> CheckResult:
    name = "output_norm_identity"
    opt = spec.optimizer
    if not isinstance(opt, m.GD) or not isinstance(opt.lr, float | str) or spec.events:
        return CheckResult.not_applicable(name, "the identity is stated for GD at a constant rate", {})
    scale = _loss_scale(spec, references)
    norm = _every_step(series, f"norm2.{check.group}")
    grad = _every_step(series, f"grad_norm2.{check.group}")
    dot = _every_step(series, "residual.dot")
    for reason in (scale, norm, grad, dot):
        if isinstance(reason, str):
            return CheckResult.not_applicable(name, reason, {})
    eta = float(Scope(spec.constants, np.float64)(opt.lr))
    lhs = np.diff(norm)
    first = -4 * eta * scale * dot[:-1]
    second = eta**2 * grad[:-1]
    # |lhs − rhs| ≤ rel_tol·(|first| + |second|) + floor: relative to the size of the terms, plus the
    # round-off of the left side itself — each stored norm carries ε·‖A‖², which dominates once the run
    # has converged and both sides are ~1e-9 while ‖A‖² ~ 10 (float64 cannot do better there).
    floor = 8 * np.finfo(float).eps * (norm[:-1] + norm[1:])
    diff = np.abs(lhs - (first + second))
    scale = np.abs(first) + np.abs(second)
    slack = check.rel_tol * scale + floor - diff
    worst = int(np.argmin(slack))
    dominant = check.rel_tol * scale > floor  # steps where the relative tolerance, not round-off, binds
    rel = float(np.max(diff[dominant] / scale[dominant])) if dominant.any() else float("nan")
    return CheckResult(
        name=name,
        passed=bool(slack[worst] >= 0),
        margin=float(slack[worst]),
        detail=f"max relative error {rel:.3g} over the {int(dominant.sum())} of {lhs.size} steps where the "
        f"terms dominate round-off (tol {check.rel_tol:g}); worst |lhs − rhs| elsewhere "
        f"{float(np.max(diff / floor)):.2g} × the round-off floor 8ε(‖A_t‖² + ‖A_t+1‖²)",
        values={"max_rel_error": rel, "worst_step": worst, "steps_dominant": int(dominant.sum())},
    )


# ---------------------------------------------------------------------------- paper 004 named checks


def _product_chain_identities(
    check: m.ProductChainIdentitiesCheck, spec: m.Spec, series: Series
) -> CheckResult:
    name = "product_chain_identities"
    if not isinstance(spec.problem, m.ProductChain):
        return CheckResult.not_applicable(name, "the identities are about the product_chain problem", {})
    coeffs = np.array([float(Scope(spec.constants, np.float64)(c)) for c in spec.problem.z])
    optional = [n for n in ("eigs", "eigvecs") if n in series]
    steps, env = aligned(series, ["theta", "sharpness", *optional])
    keep = in_window(steps, check.steps)
    if not keep.any():
        return CheckResult.not_applicable(name, "no step with both params and sharpness in the window", {})
    return product_chain.identities(
        steps[keep],
        env["theta"][keep],
        coeffs,
        env["sharpness"][keep],
        rel_tol=check.rel_tol,
        eigs=env["eigs"][keep] if "eigs" in env else None,
        eigvecs=env["eigvecs"][keep] if "eigvecs" in env else None,
        hessian_identity=check.hessian,
        secular=check.secular,
        r2=check.r2,
    )


# ----------------------------------------------------------------------------------------- dispatch


def run_checks(spec: m.Spec, series: Series, references: Mapping[str, float]) -> list[CheckResult]:
    """Every per-run check of ``spec`` (ordering checks are sweep-level: see :func:`ordering`)."""
    scalars = scalars_of(spec, references)
    results = []
    table: list[RecordedSeries] | None = None  # the spec's recorded series, for claims (built once)
    for check in spec.checks:
        try:
            if isinstance(check, m.FinalCheck):
                results.append(_final(check, series, scalars))
            elif isinstance(check, m.InequalityCheck):
                results.append(_inequality(check, series, scalars))
            elif isinstance(check, m.MonotoneCheck):
                results.append(_monotone(check, series, scalars))
            elif isinstance(check, m.Lemma6Check):
                results.append(_lemma6(check, spec, series))
            elif isinstance(check, m.Theorem2Check):
                results.append(_theorem2(check, spec, series))
            elif isinstance(check, m.OutputNormIdentityCheck):
                results.append(_output_norm_identity(check, spec, series, references))
            elif isinstance(check, m.EosBandCheck):
                results.append(eos.eos_band(check, series, scalars))
            elif isinstance(check, m.EigengapCheck):
                results.append(eos.eigengap(check, series, scalars))
            elif isinstance(check, m.TracksConstrainedCheck):
                results.append(eos.tracks_constrained(check, series, scalars))
            elif isinstance(check, m.PredictionCheck):
                results.append(eos.prediction(check, series, scalars))
            elif isinstance(check, m.ProductChainIdentitiesCheck):
                results.append(_product_chain_identities(check, spec, series))
            elif isinstance(check, m.ClaimCheck):
                table = table if table is not None else recorded_series(spec)
                results.append(claims.claim(check, series, scalars, table))
        except KeyError as err:  # a series the check needs was not recorded
            results.append(CheckResult.not_applicable(check.kind, str(err.args[0]), {}))
        except (ArithmeticError, ValueError, TypeError, IndexError) as err:  # ExprError is a ValueError
            results.append(CheckResult(check.kind, False, float("nan"), f"could not be evaluated: {err}", {}))
    return results


def ordering(check: m.OrderingCheck, labels: Sequence[str], finals: Sequence[float]) -> CheckResult:
    """Sweep-level: ``finals`` (one per label) ordered along ``check.over`` (or ``labels``), consecutive
    values differing by more than ``check.min_gap``. Labels that name no run fail the check."""
    over = check.over or list(labels)
    index = {label: i for i, label in enumerate(labels)}
    missing = [lab for lab in over if lab not in index]
    name = f"ordering {check.of}"
    if missing:
        detail = f"no runs labelled {', '.join(missing)} (labels: {', '.join(labels)})"
        return CheckResult(name, False, float("nan"), detail, {})
    values = [finals[index[lab]] for lab in over]
    gaps = np.diff(values) if check.order == "increasing" else -np.diff(values)
    margin = float(np.min(gaps)) - check.min_gap if gaps.size else float("nan")
    relation = " < " if check.order == "increasing" else " > "
    return CheckResult(
        name=name,
        passed=bool(gaps.size == 0 or margin > 0),
        margin=margin,
        detail=relation.join(f"{lab} {v:.10g}" for lab, v in zip(over, values, strict=True))
        + (f" (min gap {check.min_gap:g})" if check.min_gap else ""),
        values={lab: float(v) for lab, v in zip(over, values, strict=True)},
    )
