"""The spec language: pydantic v2 models for one eosdsl experiment.

A spec is data. Every model is closed (unknown keys are errors), every union is discriminated on
``kind``, and every default is filled at validation time so the canonical JSON that is hashed into
the run identity says everything the run depends on.

Numbers that are hyperparameters (learning rates, β, schedule values, initial values, thresholds)
have the type :data:`Scalar`: a number, or an expression string over the spec's ``constants``
(``"(2 + eps) / u0**2"``). Every float in a spec is a *traced* value in the compiled program, so a
grid that only changes numbers compiles once; integers (step counts, cadences, sizes) and strings
shape the program and are static.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_serializer, model_validator

from eosdsl.spec.base import Model, Scalar
from eosdsl.spec.checks import ClaimCheck  # noqa: F401  (re-exported: per-run claims in the series algebra)
from eosdsl.spec.measures import (  # noqa: F401  (re-exported: the spec language in one namespace)
    CURVATURE_KINDS,
    Cadence,
    CurvatureMeasure,
    Densify,
    DerivedMeasure,
    GramSharpnessMeasure,
    Measure,
    PreconditionedSharpnessMeasure,
    RotationMeasure,
    SelfStabilizationMeasure,
    SharpnessGradientMeasure,
    SharpnessMeasure,
    SimpleKind,
    SimpleMeasure,
    SliceMeasure,
    Solver,
)
from eosdsl.spec.networks import SupervisedProblem
from eosdsl.spec.sweep_checks import SweepClaim

# --------------------------------------------------------------------------------------------- problems


class ToyProblem(Model):
    """A closed-form objective over named parameters, e.g. ``0.5 * u**2 * v**2 * (u >= 0)``."""

    kind: Literal["toy"]
    params: dict[str, Scalar | list[Scalar]] = Field(
        description="Parameter names with initial values: a scalar, or a list for a vector parameter.",
        min_length=1,
    )
    objective: str = Field(
        description="Expression over parameters, `coefficients`, `definitions`, constants."
    )
    coefficients: dict[str, Scalar] = Field(
        default_factory=dict, description="Named numeric coefficients usable in the objective (traced)."
    )
    definitions: dict[str, str] = Field(
        default_factory=dict,
        description="Named intermediate expressions, evaluated in order before the objective.",
    )


class ReluScalar(Model):
    """Paper 000's ReLU scalar network L(u, v) = ½u²v²·1[u ≥ 0] (§3.1, Fig. 3)."""

    kind: Literal["relu_scalar"]
    u0: Scalar = 10.0
    v0: Scalar = 1e-6


class LdnPoint(Model):
    """Paper 000's single-point diagonal network L(u, v) = ½(u² − v² − 1)² (App. E.5, eq. 17)."""

    kind: Literal["ldn_point"]
    u0: Scalar = 1.0
    v0: Scalar = 0.5


class ProductChain(Model):
    """Paper 004's deep-linear toy L = z(Θ), Θ = θ₁⋯θₙ, z a polynomial (§3, eqs. 4–14).

    ``z`` lists polynomial coefficients c₀, c₁, … so that z(Θ) = Σₖ cₖ Θᵏ; the default is Θ².
    """

    kind: Literal["product_chain"]
    theta0: list[Scalar] = Field(min_length=1, description="Initial θ₁…θₙ.")
    z: list[Scalar] = Field(default_factory=lambda: [0.0, 0.0, 1.0], min_length=1)


class ScalarProduct(Model):
    """Paper 002's two-parameter family f(x, y) = g(xy).

    ``g`` is an expression in ``s`` (= xy) and the coefficients ``a``, ``b``. The default is the
    continuous regularity family g(s) = ((1 + (sᵇ − 1)²)^{a/2} − 1)/(a b²): a = 1 is the
    "good regularity" line of eq. (2), a = 2 the polynomial ½(sᵇ − 1)²/b² (paper 002 §3; the
    paper's text lost the formula, so ``g`` is user-definable).
    """

    kind: Literal["scalar_product"]
    x0: Scalar
    y0: Scalar
    a: Scalar = 1.0
    b: Scalar = 1.0
    g: str = "((1 + (s**b - 1)**2)**(a/2) - 1) / (a * b**2)"


class LdnRegression(Model):
    """Paper 000's depth-2 linear diagonal network on sparse regression (§2.1, App. B).

    Data x ~ N(μ·1, σ²I_d), y = ⟨w*, x⟩ with w* = 1/√k on the first k coordinates. Model
    f(x) = ⟨u⊙u − v⊙v, x⟩, u₀ = v₀ = α·1. Loss (c/N) Σₙ (f(xₙ) − yₙ)² with c = ``loss_scale``.
    """

    kind: Literal["ldn_regression"]
    n: int = Field(50, ge=1, description="Number of training points N.")
    d: int = Field(100, ge=1, description="Input dimension d.")
    mu: float = Field(5.0, description="Mean of every input coordinate.")
    sigma2: float = Field(5.0, gt=0, description="Variance σ² of every input coordinate.")
    sparsity: int = Field(5, ge=1, description="Number k of non-zero teacher coordinates.")
    data_seed: int = Field(0, ge=0, description="Seed of the data generator (numpy PCG64).")
    alpha: Scalar = Field(0.1, description="Initialization scale: u₀ = v₀ = α·1.")
    loss_scale: Scalar = Field(
        1.0,
        description="c in (c/N) Σ (f − y)²: 1 is the plain mean (calibrated so η=0.0023 is just unstable).",
    )

    @model_validator(mode="after")
    def _sparsity_fits(self) -> LdnRegression:
        if self.sparsity > self.d:
            raise ValueError(f"sparsity {self.sparsity} exceeds the dimension d={self.d}")
        return self


Problem = Annotated[
    ToyProblem | ReluScalar | LdnPoint | ProductChain | ScalarProduct | LdnRegression | SupervisedProblem,
    Field(discriminator="kind"),
]

# ------------------------------------------------------------------------------------------- schedules


class Constant(Model):
    """η_t = value."""

    kind: Literal["constant"]
    value: Scalar


class LinearWarmup(Model):
    """η_t = start + (end − start)·min(t/steps, 1): linear warmup, holding ``end`` afterwards."""

    kind: Literal["linear_warmup"]
    start: Scalar
    end: Scalar
    steps: Scalar = Field(description="Warmup length W in steps (may be an expression, e.g. `eta_f * 1e6`).")


class Piecewise(Model):
    """Piecewise-constant: η_t = values[i] for boundaries[i−1] ≤ t < boundaries[i]."""

    kind: Literal["piecewise"]
    boundaries: list[Scalar] = Field(min_length=1, description="Increasing step boundaries.")
    values: list[Scalar] = Field(min_length=2, description="One more value than boundaries.")

    @model_validator(mode="after")
    def _lengths(self) -> Piecewise:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"piecewise needs len(values) == len(boundaries) + 1, got {len(self.values)} values "
                f"and {len(self.boundaries)} boundaries"
            )
        return self


class Cosine(Model):
    """η_t = end + (peak − end)·½(1 + cos(π·min((t − warmup)/decay_steps, 1))), after a linear warmup."""

    kind: Literal["cosine"]
    peak: Scalar
    decay_steps: Scalar
    end: Scalar = 0.0
    warmup_steps: Scalar = 0.0


Schedule = Annotated[Constant | LinearWarmup | Piecewise | Cosine, Field(discriminator="kind")]
LearningRate = Annotated[
    Scalar | Schedule,
    Field(description="A constant learning rate (number or expression) or a schedule with a `kind`."),
]

# ------------------------------------------------------------------------------------------ optimizers

LrConvention = Literal["gd_equivalent", "raw"]


class GD(Model):
    """Gradient descent, w_{t+1} = w_t − η_t ∇L(w_t). MSS = 2/η."""

    kind: Literal["gd"]
    lr: LearningRate


class HeavyBall(Model):
    """Polyak heavy ball, paper 000 eq. (1): w_{t+1} = w_t − η ∇L(w_t) + β(w_t − w_{t−1}).

    ``lr_convention: gd_equivalent`` applies (1+β)·lr, so the maximum stable sharpness
    2(1+β)/η_applied equals GD's 2/lr (the paper's matched-MSS comparison); ``raw`` applies lr.
    ``form: displacement`` is eq. (1); ``torch_buffer`` is ``torch.optim.SGD(momentum=β)``, which
    differs from eq. (1) only while the learning rate changes (docs/specs.md, ``optimizer``).
    """

    kind: Literal["heavy_ball"]
    lr: LearningRate
    beta: Scalar = 0.9
    lr_convention: LrConvention = "gd_equivalent"
    form: Literal["displacement", "torch_buffer"] = "displacement"


class Nesterov(Model):
    """Nesterov momentum: w_{t+1} = w_t + β d_t − η ∇L(w_t + β d_t), with d_t = w_t − w_{t−1}.

    On a quadratic of curvature h it is stable iff η h < 2(1+β)/(1+2β), so MSS = 2(1+β)/((1+2β)η).
    ``gd_equivalent`` applies η = lr·(1+β)/(1+2β), making the MSS equal GD's 2/lr; ``raw`` applies lr.
    """

    kind: Literal["nesterov"]
    lr: LearningRate
    beta: Scalar = 0.9
    lr_convention: LrConvention = "gd_equivalent"


class Adam(Model):
    """Adam (optax ``scale_by_adam``). MSS of the preconditioned sharpness: (2 + 2β₁)/((1 − β₁)η)."""

    kind: Literal["adam"]
    lr: LearningRate
    b1: Scalar = 0.9
    b2: Scalar = 0.999
    eps: Scalar = 1e-8


class RMSProp(Model):
    """RMSProp (optax ``scale_by_rms``). MSS of the preconditioned sharpness: 2/η."""

    kind: Literal["rmsprop"]
    lr: LearningRate
    decay: Scalar = 0.99
    eps: Scalar = 1e-8


Optimizer = Annotated[GD | HeavyBall | Nesterov | Adam | RMSProp, Field(discriminator="kind")]


# -------------------------------------------------------------------------------------- events, stops

Threshold = Annotated[
    float | str,
    Field(
        description="A number, `mss`, or an expression over `mss`, `lr`, `lr_applied`, `step` and constants."
    ),
]


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


class SharpnessTrigger(Model):
    """Fires when the Hessian sharpness crosses ``threshold`` (a sign change between two steps)."""

    crosses: Literal["below", "above"]
    threshold: Threshold = "mss"


class LossTrigger(Model):
    """Fires at the first step whose training loss is below ``below``."""

    below: Scalar


class AccuracyTrigger(Model):
    """Fires at the first step whose training accuracy is at least ``at_least`` (supervised problems;
    paper 004 §4 trains "to completion", 100% training accuracy)."""

    at_least: Scalar


class StepTrigger(Model):
    """Fires at step ``at``."""

    at: int = Field(ge=0)


class Trigger(Model):
    """Exactly one of ``sharpness``, ``loss``, ``step`` or ``expr``.

    ``expr`` is a condition over parameters, ``loss``, ``lr``, ``mss``, ``step`` and constants that
    fires the first time it is true (e.g. ``u < 0``).
    """

    sharpness: SharpnessTrigger | None = None
    loss: LossTrigger | None = None
    accuracy: AccuracyTrigger | None = None
    step: StepTrigger | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [k for k in ("sharpness", "loss", "accuracy", "step", "expr") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a trigger needs exactly one of sharpness, loss, accuracy, step, expr"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Action(Model):
    """What an event does: switch the optimizer, freeze the schedule, and/or stop the run."""

    switch_optimizer: Optimizer | None = Field(
        None, description="The optimizer to switch to; without `lr` it keeps the running schedule."
    )
    freeze_schedule: bool = False
    stop: bool = False

    @model_validator(mode="after")
    def _something(self) -> Action:
        if self.switch_optimizer is None and not self.freeze_schedule and not self.stop:
            raise ValueError("an action needs switch_optimizer, freeze_schedule: true or stop: true")
        return self


class Event(Model):
    """``when`` a trigger fires (once), ``do`` an action. Evaluated inside the compiled program."""

    name: str | None = None
    when: Trigger
    do: Action


class Train(Model):
    """How long to train: ``steps`` updates (the state after the last update is measured too)."""

    steps: int = Field(ge=0)
    stop: list[Trigger] = Field(default_factory=list, description="Stop rules: the run stops when one fires.")


class Runtime(Model):
    """How a run is executed; never changes its results, so it is not part of the run's identity."""

    chunk: int = Field(2000, ge=1, description="Steps per compiled chunk between host updates.")
    checkpoint_every: int = Field(
        20000, ge=1, description="Steps between checkpoints (rounded up to whole chunks); also at the end."
    )
    checkpoint_min_seconds: float = Field(
        30.0,
        ge=0,
        description="Wall-clock seconds at least between two checkpoints before the end: a checkpoint "
        "is written when `checkpoint_every` steps and this much time have passed since the last one, "
        "so fast runs and packs of many points do not spend their time saving state. 0: every "
        "`checkpoint_every` steps.",
    )


# ---------------------------------------------------------------------------------------------- checks


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

# ---------------------------------------------------------------------------------------------- sweeps


class Case(Model):
    """One named variant of the base spec: dotted key paths set to values."""

    label: str = Field(pattern=r"^[A-Za-z0-9_.\-+>]+$")
    set: dict[str, Any] = Field(default_factory=dict)


class Sweep(Model):
    """Runs of this spec: ``cases`` × the cartesian ``grid`` (last axis fastest); each point is a run."""

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Dotted key path → values.")
    cases: list[Case] = Field(default_factory=list)
    checks: list[SweepClaim] = Field(
        default_factory=list, description="Claims across the points (eosdsl.spec.sweep_checks)."
    )

    @model_serializer(mode="wrap")
    def _without_empty_checks(self, handler: Any) -> Any:
        """No ``checks`` key when there are none: a sweep's dump (and id) is what it was before claims."""
        data = handler(self)
        if not self.checks and isinstance(data, dict):
            data.pop("checks", None)
        return data


# ------------------------------------------------------------------------------------------------ spec


class Spec(Model):
    """One eosdsl experiment."""

    model_config = ConfigDict(
        extra="forbid",
        validate_default=True,
        json_schema_extra={"$comment": "eosdsl spec; generated by `eosdsl schema`."},
    )

    name: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0)
    precision: Literal["float32", "float64"] = "float64"
    constants: dict[str, float] = Field(
        default_factory=dict, description="Named numbers usable in every expression of the spec (traced)."
    )
    problem: Problem
    optimizer: Optimizer
    events: list[Event] = Field(default_factory=list)
    train: Train
    measure: list[Measure] = Field(default_factory=lambda: [SimpleMeasure(kind="loss")])
    checks: list[Check] = Field(default_factory=list)
    sweep: Sweep | None = None
    runtime: Runtime = Field(default_factory=Runtime)

    @model_validator(mode="before")
    @classmethod
    def _switch_targets_inherit_lr(cls, data: Any) -> Any:
        """A ``switch_optimizer`` without ``lr`` keeps the main schedule (filled in before hashing)."""
        if not isinstance(data, dict):
            return data
        lr = data.get("optimizer", {}).get("lr") if isinstance(data.get("optimizer"), dict) else None
        events = data.get("events")
        if lr is None or not isinstance(events, list):
            return data
        filled = []
        for event in events:
            do = event.get("do") if isinstance(event, dict) else None
            target = do.get("switch_optimizer") if isinstance(do, dict) else None  # do: null fails later
            if isinstance(target, dict) and "lr" not in target:
                event = {**event, "do": {**event["do"], "switch_optimizer": {**target, "lr": lr}}}
            filled.append(event)
        return {**data, "events": filled}
