r"""Paper 004's exact identities on the product chain L = z(Θ), Θ = θ₁⋯θₙ (Wang & Roberts, §3.1, App. B, C).

Closed forms, in numpy, independent of eosdsl's curvature code (they are the oracle it is checked
against). With z' = dz/dΘ, z'' = d²z/dΘ², Θ_j = ∏_{i≠j} θ_i and Θ_{jk} = ∏_{i≠j,k} θ_i:

* the Hessian ``H_jk = z''·Θ_j·Θ_k + z'·Θ_{jk}·[j ≠ k]`` — eq. (4) for n = 2, and for θ_j ≠ 0 the App. C
  form H = D·wwᵀ − z'Θ·diag(w²) with w = (1/θ_j)_j, D = z''Θ² + z'Θ (the product form needs no division,
  so it stays exact as some θ_j → 0, where the closed forms divide by zero);
* the secular equation (App. C) D·Σ_j 1/(λθ_j² + z'Θ) = 1, whose largest root is λ₁: H is the diagonal
  diag(−z'Θ·w²) plus the rank-one D·wwᵀ, so for D > 0 and every θ_j ≠ 0 the largest eigenvalue is the
  unique root above the largest diagonal entry;
* n = 2, eq. (6): β = |z''(θ₂² − θ₁²) / (2(z' + z''Θ))| and R₂ = β + √(β² + 1) = |u₁,₁/u₁,₂| when
  θ₂² > θ₁² (§3.1, App. B.1); R₂ is invariant to exchanging the magnitudes, so in general
  R₂ = |u₁,ₛ/u₁,ₗ| with s (l) the parameter of smaller (larger) magnitude. The ratio is read from the
  recorded eigenvector when the run stored ``eigvecs``, else from eq. (4)'s eigenvector of the recorded λ₁:
  u₁,ₛ/u₁,ₗ = (λ₁ − z''θₛ²)/(z' + z''Θ).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import polynomial as P

from eosdsl.checks.result import CheckResult

__all__ = ["hessian", "identities", "r2_ratio", "secular_top_root", "z_derivatives"]

BISECTION_STEPS = 200  # halvings of a bracket of width ~|λ₁|: far below one ulp


def z_derivatives(coeffs: np.ndarray, big_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z'(Θ), z''(Θ)) of z(Θ) = Σ_k c_k Θᵏ at each Θ."""
    first = P.polyder(coeffs, 1)
    second = P.polyder(coeffs, 2) if len(coeffs) > 2 else np.zeros(1)
    return P.polyval(big_theta, first), P.polyval(big_theta, second)


def hessian(theta: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Closed-form Hessian of z(∏θ), (T, n) parameters → (T, n, n): H_jk = z''Θ_jΘ_k + z'Θ_jk[j ≠ k]."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    n = theta.shape[1]
    eye = np.eye(n, dtype=bool)
    z1, z2 = z_derivatives(coeffs, theta.prod(axis=1))
    without_j = np.where(eye[None], 1.0, theta[:, None, :]).prod(axis=-1)  # (T, n): Θ_j
    pair = eye[:, None, :] | eye[None, :, :]  # (n, n, n): i ∈ {j, k}
    without_jk = np.where(pair[None], 1.0, theta[:, None, None, :]).prod(axis=-1)  # (T, n, n): Θ_jk
    return (
        z2[:, None, None] * without_j[:, :, None] * without_j[:, None, :]
        + z1[:, None, None] * without_jk * ~eye[None]
    )


def secular_top_root(theta: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Largest root λ of D·Σ_j 1/(λθ_j² + z'Θ) = 1 at each step (T,); NaN where D ≤ 0, some θ_j = 0, or
    1/θ_j² or D leaves the floating-point range.

    Bisection on (max_j d_j, max_j d_j + 2DΣw²], d_j = −z'Θ/θ_j² the poles: the left side falls from +∞
    to 0 on that interval (each term ≤ w_j²/(λ − max d)), so the root is bracketed and unique.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    # The form divides by θ_j² and multiplies powers of Θ: outside the floating-point range it cannot be
    # evaluated (a diverged run's Θ overflows D; on a run that converges to θ_1 → 0, 1/θ_1² overflows once
    # |θ_1| < 1e-154). Those steps are outside its hypotheses: masked, so the overflows are expected.
    with np.errstate(over="ignore", divide="ignore", under="ignore", invalid="ignore"):
        big_theta = theta.prod(axis=1)
        z1, z2 = z_derivatives(coeffs, big_theta)
        d_coef = z2 * big_theta**2 + z1 * big_theta  # D
        ok = (
            (d_coef > 0)
            & np.isfinite(d_coef)
            & np.all(theta != 0, axis=1)
            & np.all(np.isfinite(theta), axis=1)
        )
        ok &= np.all(np.isfinite(theta**-2.0), axis=1) & (d_coef > 1e3 * np.finfo(float).tiny)
        theta = np.where(ok[:, None], theta, 1.0)
        d_coef, z1_theta = np.where(ok, d_coef, 1.0), np.where(ok, z1 * big_theta, 0.0)
    w2 = theta**-2.0
    lo = np.max(-z1_theta[:, None] * w2, axis=1)
    hi = lo + 2.0 * d_coef * w2.sum(axis=1)

    def excess(lam: np.ndarray) -> np.ndarray:  # D·Σ 1/(λθ_j² + z'Θ) − 1, decreasing on (lo, ∞)
        return d_coef * np.sum(1.0 / (lam[:, None] * theta**2 + z1_theta[:, None]), axis=1) - 1.0

    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = excess(mid) > 0  # the root is right of mid
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(ok, 0.5 * (lo + hi), np.nan)


def r2_ratio(
    theta: np.ndarray, coeffs: np.ndarray, lam1: np.ndarray, vectors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(|u₁,ₛ/u₁,ₗ| measured, β + √(β² + 1)) for two parameters, (T, 2) → (T,), (T,); NaN where
    z' + z''Θ = 0 (β undefined, v₁ on an axis). ``vectors``: recorded top eigenvectors (T, 2), else the
    eigenvector of eq. (4) for the recorded ``lam1``."""
    theta = np.asarray(theta, dtype=float)
    big_theta = theta[:, 0] * theta[:, 1]
    z1, z2 = z_derivatives(coeffs, big_theta)
    off = z1 + z2 * big_theta  # H₁₂
    small = np.argmin(np.abs(theta), axis=1)  # s; l = 1 − s
    rows = np.arange(theta.shape[0])
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=float)
        measured = np.abs(vectors[rows, small] / vectors[rows, 1 - small])
    else:
        measured = np.abs((lam1 - z2 * theta[rows, small] ** 2) / off)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.abs(z2 * (theta[:, 1] ** 2 - theta[:, 0] ** 2) / (2.0 * off))
    predicted = np.where(off != 0, beta + np.sqrt(beta**2 + 1.0), np.nan)
    return np.where(off != 0, measured, np.nan), predicted


def identities(
    steps: np.ndarray,
    theta: np.ndarray,
    coeffs: np.ndarray,
    sharpness: np.ndarray,
    *,
    rel_tol: float,
    eigs: np.ndarray | None = None,
    eigvecs: np.ndarray | None = None,
    hessian_identity: bool = True,
    secular: bool = True,
    r2: bool = True,
) -> CheckResult:
    """The enabled identities at every step; margin = rel_tol − the largest relative error.

    Eigenvalue errors are relative to ‖H‖₂ = max_i |λ_i| of the closed form (the scale of a backward-
    stable eigensolver's error), R₂'s relative to R₂. Steps with non-finite values are skipped (a diverged
    run says nothing about the identities); so are steps outside an identity's hypotheses (counted).
    """
    name = "product_chain_identities"
    theta = np.asarray(theta, dtype=float).reshape(len(steps), -1)
    sharpness = np.asarray(sharpness, dtype=float)
    finite = np.all(np.isfinite(theta), axis=1) & np.isfinite(sharpness)
    steps, theta, sharpness = steps[finite], theta[finite], sharpness[finite]
    eigs = None if eigs is None else np.asarray(eigs, dtype=float)[finite]
    eigvecs = None if eigvecs is None else np.asarray(eigvecs, dtype=float)[finite]
    if steps.size == 0:
        return CheckResult.not_applicable(name, "no recorded step with finite parameters and sharpness", {})
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        errors, notes, exact_ok = _errors(
            theta, coeffs, sharpness, eigs, eigvecs, hessian_identity, secular, r2
        )
    for identity, error in errors.items():  # a step whose closed forms overflow (a diverging run's huge
        errors[identity] = np.where(np.isfinite(error) & exact_ok, error, np.nan)  # θ) is outside them
    values: dict[str, float] = {"steps_checked": int(steps.size), "steps_not_finite": int((~finite).sum())}
    worst_error, worst_step, parts = -np.inf, -1, []
    for identity, error in errors.items():
        applies = ~np.isnan(error)
        values[f"{identity}_max_rel_error"] = float(np.max(error[applies])) if applies.any() else float("nan")
        if not applies.any():
            parts.append(f"{identity}: not applicable at any step")
            continue
        i = int(np.nanargmax(error))
        parts.append(
            f"{identity}: max relative error {float(error[i]):.3g} at step {int(steps[i])}"
            + (f" ({int((~applies).sum())} steps outside its hypotheses)" if not applies.all() else "")
        )
        if error[i] > worst_error:
            worst_error, worst_step = float(error[i]), int(steps[i])
    detail = "; ".join(parts + notes) + f" (tol {rel_tol:g}, {steps.size} steps)"
    if worst_step < 0:
        return CheckResult.not_applicable(name, detail, values)
    values["worst_step"] = worst_step
    margin = rel_tol - worst_error
    return CheckResult(name, margin >= 0, margin, detail, values)


def _errors(
    theta: np.ndarray,
    coeffs: np.ndarray,
    sharpness: np.ndarray,
    eigs: np.ndarray | None,
    eigvecs: np.ndarray | None,
    hessian_identity: bool,
    secular: bool,
    r2: bool,
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """(per-step relative error of each enabled identity, notes, steps whose closed-form Hessian is
    finite) — see :func:`identities`."""
    n = theta.shape[1]
    h = hessian(theta, coeffs)
    exact_ok = np.all(np.isfinite(h), axis=(1, 2))
    exact = np.linalg.eigvalsh(np.where(exact_ok[:, None, None], h, 0.0))[:, ::-1]  # (T, n), descending
    scale = np.maximum(np.max(np.abs(exact), axis=1), np.finfo(float).tiny)
    errors: dict[str, np.ndarray] = {}  # identity → per-step relative error (NaN: not applicable there)
    notes: list[str] = []
    if hessian_identity:
        recorded = sharpness[:, None] if eigs is None else eigs
        k = min(recorded.shape[1], n)
        errors["hessian"] = np.max(np.abs(recorded[:, :k] - exact[:, :k]), axis=1) / scale
    if secular:
        errors["secular"] = np.abs(secular_top_root(theta, coeffs) - sharpness) / scale
    if r2 and n == 2:
        top = None if eigvecs is None else eigvecs[:, 0, :]
        measured, predicted = r2_ratio(theta, coeffs, sharpness, top)
        errors["r2"] = np.abs(measured - predicted) / predicted
        source = "recorded eigenvectors" if top is not None else "recorded λ₁ by eq. (4)"
        notes.append(f"R₂ from the {source}")
    elif r2:
        notes.append(f"R₂ skipped (defined for two parameters, the chain has {n})")
    return errors, notes, exact_ok
