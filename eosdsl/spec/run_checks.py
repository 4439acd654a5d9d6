"""Spec models of per-run checks: theorem bounds, inequalities, orderings and identities, judged on a
run's stored series (``eosdsl.checks``). Claims in the series algebra are
:class:`~eosdsl.spec.checks.ClaimCheck`; sweep-level claims are :mod:`eosdsl.spec.sweep_checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from eosdsl.spec.base import Model
from eosdsl.spec.checks import ClaimCheck


def _number_as_expression(value: Any) -> Any:
    """Let a plain number stand where an expression is expected (``rhs: 1e-6``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return value


CheckExpr = Annotated[
    str,
    BeforeValidator(_number_as_expression),
    Field(description="A number or an expression over recorded series (by expression name) and constants."),
]


Bound = Annotated[
    float | str,
    Field(description="A number or an expression over the final values of recorded series and constants."),
]


class FinalCheck(Model):
    """The final value of ``of`` (a series or an expression over final values) against bounds."""

    kind: Literal["final"]
    of: CheckExpr
    below: Bound | None = None
    above: Bound | None = None
    tol: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _a_bound(self) -> FinalCheck:
        if self.below is None and self.above is None:
            raise ValueError("a final check needs `below` and/or `above`")
        return self


class InequalityCheck(Model):
    """Per-step ``lhs op rhs`` (with tolerance ``tol``) over recorded series, optionally in a step window."""

    kind: Literal["inequality"]
    lhs: CheckExpr
    op: Literal["<=", "<", ">=", ">"]
    rhs: CheckExpr
    tol: float = Field(0.0, ge=0)
    steps: tuple[int, int] | None = Field(None, description="Inclusive [first, last] step window.")


class MonotoneCheck(Model):
    """``of`` is monotone along the run within ``tol`` per step."""

    kind: Literal["monotone"]
    of: CheckExpr
    direction: Literal["nonincreasing", "nondecreasing"]
    tol: float = Field(0.0, ge=0)
    steps: tuple[int, int] | None = Field(None, description="Inclusive [first, last] step window.")


class OrderingCheck(Model):
    """Across the runs of a sweep: ``of`` evaluated at each run's end is ordered along ``over``.

    ``over`` lists case labels (default: the sweep's expansion order).
    """

    kind: Literal["ordering"]
    of: CheckExpr
    order: Literal["decreasing", "increasing"]
    over: list[str] | None = None
    min_gap: float = Field(0.0, ge=0, description="Consecutive values must differ by more than this.")


class Lemma6Check(Model):
    """Paper 000 Lemma 6: u_t is non-increasing on the ReLU scalar net (GD and heavy ball)."""

    kind: Literal["lemma6"]
    tol: float | None = Field(None, description="Per-step slack; default: round-off scale of the dtype.")


class Theorem2Check(Model):
    """Paper 000 Theorem 2: u_T ≤ C_u/(1 + η C_v) with τ_u, C_u, C_v of eq. (3)."""

    kind: Literal["theorem2"]
    tol: float | None = Field(None, ge=0, description="Slack on u_T; default: round-off scale of the dtype.")


class OutputNormIdentityCheck(Model):
    """Paper 001's exact identity for a linear output layer A under GD at a constant rate η:
    ‖A_{t+1}‖² − ‖A_t‖² = −4ηs·D_tᵀF_t + η²‖∇_A L_t‖², with L = s·Σ‖D‖² (s = 1/n for the paper's
    L = ‖D‖²/n). Needs ``group_norms`` and ``residual`` recorded at every step."""

    kind: Literal["output_norm_identity"]
    group: str = Field("A", description="The output-layer group (`A` for two_layer_linear, else `output`).")
    rel_tol: float = Field(
        1e-10,
        gt=0,
        description="|lhs − rhs| ≤ rel_tol·(|4ηs·DᵀF| + η²‖∇_A L‖²) + 8ε(‖A_t‖² + ‖A_{t+1}‖²): relative "
        "to the terms, plus the round-off of the stored norms (ε: machine epsilon).",
    )


StepWindow = Annotated[
    tuple[int, int] | None, Field(description="Inclusive [first, last] step window; none: the whole run.")
]


class EosBandCheck(Model):
    """Edge of stability: once ``of`` (the sharpness) first reaches ``threshold`` (2/η), it stays within
    a relative band: |of/threshold − 1| ≤ ``rel`` at every later recorded step (in ``steps``)."""

    kind: Literal["eos_band"]
    of: CheckExpr = Field("sharpness", description="The curvature series (e.g. a two-step average).")
    threshold: CheckExpr = Field("2 / lr", description="The band's centre: the GD stability limit 2/η.")
    rel: float = Field(0.1, gt=0, description="Half-width of the band, relative to the threshold.")
    steps: StepWindow = None
    must_reach: bool = Field(
        True,
        description="Fail when `of` never reaches the threshold (by the window's end); with false, such "
        "a run makes the check not applicable.",
    )


class EigengapCheck(Model):
    """Paper 003 Assumption 2 (eigengap): η·λ₂ < ``c`` at every recorded step in ``steps``, λ₂ the
    second eigenvalue of the ``eigs`` series (a ``sharpness`` measure with k ≥ 2)."""

    kind: Literal["eigengap"]
    c: float = Field(1.9, gt=0, description="The constant c < 2 of λ₂ < c/η; the paper's runs use 1.9.")
    eta: CheckExpr = Field("lr", description="η: the recorded `lr` series, a constant or a number.")
    steps: StepWindow = None


class TracksConstrainedCheck(Model):
    """Paper 003 (Theorem 1, §6): GD stays near the constrained trajectory θ†, i.e. at every recorded step
    in ``steps`` ‖θ_t − θ†_t‖ (``dagger.distance``) ≤ ``factor``·δ_t (``ss.delta``) and ≤
    ``max_distance``. Needs a ``self_stabilization`` measure."""

    kind: Literal["tracks_constrained"]
    factor: float | None = Field(
        2.0, gt=0, description="Bound relative to δ = √(2α/β); null: no relative bound."
    )
    max_distance: float | None = Field(None, gt=0, description="Absolute bound on ‖θ − θ†‖; null: none.")
    steps: StepWindow = None

    @model_validator(mode="after")
    def _a_bound(self) -> TracksConstrainedCheck:
        if self.factor is None and self.max_distance is None:
            raise ValueError("tracks_constrained needs `factor` and/or `max_distance`")
        return self


class PredictionCheck(Model):
    """Paper 003 Theorem 1: the predicted dynamics track GD. Over the recorded steps in ``steps``, the
    ``statistic`` of |pred.sharpness − sharpness|/(2/η) is ≤ ``rel`` and that of
    |pred.loss − loss|/loss is ≤ ``rel_loss`` (each compared when its tolerance is given)."""

    kind: Literal["prediction"]
    rel: float | None = Field(
        0.1, gt=0, description="Tolerance on the sharpness error, relative to 2/η; null: not compared."
    )
    rel_loss: float | None = Field(
        None, gt=0, description="Tolerance on the loss error, relative to the loss; null: not compared."
    )
    statistic: Literal["max", "median"] = Field(
        "max", description="How per-step errors are summarized: the worst step, or the typical one."
    )
    eta: CheckExpr = Field("lr", description="η in 2/η: the recorded `lr` series, a constant or a number.")
    steps: StepWindow = None

    @model_validator(mode="after")
    def _a_comparison(self) -> PredictionCheck:
        if self.rel is None and self.rel_loss is None:
            raise ValueError("a prediction check needs `rel` (sharpness) and/or `rel_loss` (loss)")
        return self


class ProductChainIdentitiesCheck(Model):
    """Paper 004's exact identities on ``product_chain`` (§3.1, App. B.1 and App. C), at every step in
    ``steps`` where ``params`` and ``sharpness`` were both recorded, against a numpy closed form:
    ``hessian``: the top eigenvalue(s) of the closed-form Hessian (eq. 4, App. C) equal the recorded
    ``sharpness`` (and ``eigs``); ``secular``: the largest root of D·Σ_j 1/(λθ_j² + z'Θ) = 1 equals the
    recorded sharpness; ``r2`` (two parameters only, skipped otherwise): |u₁,ₛ/u₁,ₗ| = β + √(β² + 1),
    eq. (6), with s/l the smaller/larger |θ|."""

    kind: Literal["product_chain_identities"]
    rel_tol: float = Field(
        1e-8,
        gt=0,
        description="Largest error allowed, relative to ‖H‖₂ = max|λ| (eigenvalues) or to R₂ (the ratio).",
    )
    hessian: bool = Field(True, description="Check the closed-form Hessian's eigenvalues.")
    secular: bool = Field(True, description="Check the largest root of the secular equation.")
    r2: bool = Field(True, description="Check R₂ = β + √(β² + 1) (two parameters only).")
    steps: StepWindow = None

    @model_validator(mode="after")
    def _an_identity(self) -> ProductChainIdentitiesCheck:
        if not (self.hessian or self.secular or self.r2):
            raise ValueError("product_chain_identities needs at least one of hessian, secular, r2")
        return self


Check = Annotated[
    FinalCheck
    | InequalityCheck
    | MonotoneCheck
    | OrderingCheck
    | Lemma6Check
    | Theorem2Check
    | OutputNormIdentityCheck
    | EosBandCheck
    | EigengapCheck
    | TracksConstrainedCheck
    | PredictionCheck
    | ProductChainIdentitiesCheck
    | ClaimCheck,
    Field(discriminator="kind"),
]
