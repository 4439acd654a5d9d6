"""The spec language: pydantic v2 models for one eosdsl experiment.

A spec is data. Every model is closed (unknown keys are errors), every union is discriminated on
``kind``, and every default is filled at validation time so the canonical JSON that is hashed into
the run identity says everything the run depends on.

Numbers that are hyperparameters (learning rates, β, schedule values, initial values, thresholds)
have the type :data:`Scalar`: a number, or an expression string over the spec's ``constants``
(``"(2 + eps) / u0**2"``). Every float in a spec is a *traced* value in the compiled program, so a
grid that only changes numbers compiles once; integers (step counts, cadences, sizes) and strings
shape the program and are static.

The models are split by topic — problems (:mod:`~eosdsl.spec.problems`, :mod:`~eosdsl.spec.networks`),
optimizers (:mod:`~eosdsl.spec.optimizers`), events (:mod:`~eosdsl.spec.events`), measures
(:mod:`~eosdsl.spec.measures`), checks (:mod:`~eosdsl.spec.run_checks`, :mod:`~eosdsl.spec.checks`,
:mod:`~eosdsl.spec.sweep_checks`) — and all importable from here, the spec language in one namespace.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from eosdsl.spec.base import Model
from eosdsl.spec.checks import ClaimCheck  # noqa: F401  (re-exported: per-run claims in the series algebra)
from eosdsl.spec.events import (  # noqa: F401  (re-exported)
    AccuracyTrigger,
    Action,
    Event,
    LossTrigger,
    SharpnessTrigger,
    StepTrigger,
    Threshold,
    Trigger,
)
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
from eosdsl.spec.networks import SupervisedProblem  # noqa: F401  (re-exported)
from eosdsl.spec.optimizers import (  # noqa: F401  (re-exported)
    GD,
    Adam,
    Constant,
    Cosine,
    HeavyBall,
    LearningRate,
    LinearWarmup,
    LrConvention,
    Map,
    Measured,
    Nesterov,
    Ode,
    Optimizer,
    Piecewise,
    RMSProp,
    Schedule,
)
from eosdsl.spec.problems import (  # noqa: F401  (re-exported)
    LdnPoint,
    LdnRegression,
    Problem,
    ProductChain,
    ReluScalar,
    ScalarProduct,
    ToyProblem,
)
from eosdsl.spec.run_checks import (  # noqa: F401  (re-exported)
    Bound,
    Check,
    CheckExpr,
    EigengapCheck,
    EosBandCheck,
    FinalCheck,
    InequalityCheck,
    Lemma6Check,
    MonotoneCheck,
    OrderingCheck,
    OutputNormIdentityCheck,
    PredictionCheck,
    ProductChainIdentitiesCheck,
    StepWindow,
    Theorem2Check,
    TracksConstrainedCheck,
)
from eosdsl.spec.sweep_checks import SweepClaim


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

    OMIT_AT_DEFAULT = ("checks",)  # a sweep's dump (and id) is what it was before claims


class AtStep(Model):
    """The upstream run's state at step ``step``: its parameters w_N after N updates (the point it
    measured at step N)."""

    step: int = Field(ge=0, description="The step N of the upstream run: its parameters w_N.")


class AtEvent(Model):
    """The upstream run's state at the first step its event ``event`` fired: w_t at the step t the
    trigger held (the point it was measured at, before the event's action changed the update from t)."""

    event: str = Field(
        min_length=1,
        description="An event of the upstream run: its `name` (or `event i`), or `stop rule i`.",
    )


class Start(Model):
    """Where a run starts: a state of another run (its parameters; optimizer state restarts), and numbers
    read from that run's record (paper 000 App. E.5: restart at η = (2+ε)/S₀ from the sharpness S₀
    measured at the pretrained point). The other run is a stage of this spec (``stage``) or the run of
    another spec file (``spec``): exactly one of them (eosdsl.spec.stages)."""

    stage: str | None = Field(
        None, min_length=1, description="A key of `stages`: the run this one starts from."
    )
    spec: str | None = Field(
        None,
        min_length=1,
        description="Another spec file (a path relative to this spec's file) whose run this one starts "
        "from; it may not have a sweep. Dropped when resolved: the upstream run's key stands for it.",
    )
    at: Literal["final"] | AtStep | AtEvent = Field(
        "final",
        description="Which state of the upstream run: `final`, `{step: N}` or `{event: name}` (the first "
        "step the event fired). A state between its stored checkpoints is recomputed (bitwise) from the "
        "nearest one before it.",
    )
    values: dict[str, str] = Field(
        default_factory=dict,
        description="Name → series-algebra expression on the upstream run's record (`final(sharpness)`, "
        "`at(sharpness, start_step)`; `start_step` is the step of the start state), usable as a constant "
        "in this spec's expressions.",
    )
    run: str | None = Field(
        None,
        description="The upstream run's key: filled in by eosdsl (with the values added to `constants`) "
        "before the run is identified, so the upstream run enters this run's identity.",
    )

    OMIT_AT_DEFAULT = ("run", "stage", "spec")  # a stage start dumps as before `spec` existed

    @model_validator(mode="after")
    def _one_upstream(self) -> Start:
        """Exactly one of ``stage`` and ``spec`` (a resolved start, with ``run``, may have neither)."""
        if self.stage is not None and self.spec is not None:
            raise ValueError("give one of `stage` and `spec`, not both")
        if self.stage is None and self.spec is None and self.run is None:
            raise ValueError("give `stage` (a key of `stages`) or `spec` (another spec file)")
        return self


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
    stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Runs this spec starts from: name → dotted key paths set on this spec (as a case's "
        "`set`), without its sweep, stages, start, checks and events (eosdsl.spec.stages).",
    )
    start: Start | None = None
    runtime: Runtime = Field(default_factory=Runtime)

    OMIT_AT_DEFAULT = ("stages", "start")  # a spec without them dumps (and hashes) as before

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
