"""What a run records: the ``measure`` list of a spec.

Simple measures are per-step quantities of the problem (loss, parameters, accuracy, …). Curvature
measures are computed from Hessian-vector products and an eigensolver at the steps where they are
due: a cadence ``every`` inside an optional window ``[start, stop]``, optionally densified to
``densify.every`` while η·S (the GD-equivalent rate times the last measured sharpness) exceeds
``densify.above``. Every curvature measure names the series it records (:meth:`series`), the one table
the engine and the spec checks share.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from eosdsl.spec.base import Model, Scalar

SimpleKind = Literal[
    "loss",
    "params",
    "lr",
    "mss",
    "grad_norm",
    "test_loss",
    "accuracy",
    "test_accuracy",
    "group_norms",
    "dead_units",
    "residual",
    "data_covariance",
    "ode_steps",
]


class SimpleMeasure(Model):
    """A built-in per-step quantity recorded every ``every`` steps.

    Toys and ``ldn_regression``: ``params``. Supervised problems: ``accuracy``, ``test_accuracy``,
    ``group_norms`` (‖θ_g‖² per parameter group, e.g. ‖A‖² of the output layer, paper 001),
    ``dead_units`` (hidden units whose pre-activation is ≤ 0 on every training input, per layer,
    paper 000 App. E.2), ``residual`` (‖D‖ and DᵀF for D = F − Y, paper 001 §3), ``data_covariance``
    (the eigenvalues of the input covariance (1/n) Σ_i x_i x_iᵀ, descending, min(n, d) values: paper 001
    §4's spectrum of XᵀX over n; constant over a run, so ``every`` can be large). ``ode_steps`` (an
    ``ode`` optimizer): the sub-steps of each step's update, ``ode.substeps`` accepted, ``ode.rejected``
    and ``ode.capped`` (1 where ``dopri5`` hit ``max_substeps`` and forced an unconverged sub-step, or
    stopped at a non-finite value); ``every: 1`` only (a cap hit between records would be lost).
    ``test_loss``: ``ldn_regression`` and supervised problems with a test split.
    """

    kind: SimpleKind
    every: int = Field(1, ge=1)


class Densify(Model):
    """Measure every ``every`` steps while η_t·S > ``above`` (S: the last measured sharpness)."""

    above: Scalar = Field(description="Threshold on η·S; 2 is the GD stability limit.")
    every: int = Field(1, ge=1)


class Cadence(Model):
    """When a curvature measure is due: every ``every`` steps of the window [start, stop] (and at the
    run's last step), or every ``densify.every`` steps while η·S > ``densify.above``."""

    every: int = Field(1, ge=1)
    start: int = Field(0, ge=0, description="First step of the window.")
    stop: int | None = Field(None, ge=0, description="Last step of the window (inclusive); none: the end.")
    densify: Densify | None = None


SolverMethod = Literal["auto", "dense", "lanczos", "lobpcg", "power"]


class Solver(Model):
    """How top eigenpairs are computed; every value is stored with its residual certificate.

    ``dense``: ``eigh`` of the matrix built from P operator products (small problems; the test oracle).
    ``lanczos``: ``iters`` Lanczos steps with full re-orthogonalization from a random start (cold).
    ``lobpcg``: block LOBPCG warm-started from the last two measurements' blocks (Lanczos the first time),
    iterated until every top-k residual ‖Hv − θv‖ ≤ ``tol``·max|θ| or ``max_iters``. ``power``: power
    iteration warm-started likewise (k = 1). ``auto``: ``dense`` up to ``dense_max`` parameters, else
    ``lobpcg``. By the residual bound some eigenvalue lies in [θ − r, θ + r] whatever the solver did.
    """

    method: SolverMethod = "auto"
    k: int = Field(1, ge=1, le=32, description="How many top (algebraic) eigenpairs.")
    block: int | None = Field(None, ge=1, description="LOBPCG block size (default max(k, 2)).")
    tol: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="Relative residual tolerance (lobpcg, power); static: each value compiles its program.",
    )
    iters: int = Field(30, ge=2, description="Lanczos steps (the cold solver and the warm solvers' seed).")
    max_iters: int = Field(100, ge=1, description="Iteration cap of lobpcg and power.")
    dense_max: int = Field(400, ge=1, description="Largest parameter count ``auto`` solves densely.")

    @model_validator(mode="after")
    def _block_holds_k(self) -> Solver:
        if self.block is not None and self.block < self.k:
            raise ValueError(f"block ({self.block}) must be at least k ({self.k})")
        if self.method == "power" and self.k != 1:
            raise ValueError("power iteration finds one eigenpair: use k: 1 (or lobpcg for k > 1)")
        return self

    @property
    def block_size(self) -> int:
        return self.block or max(self.k, 2)


# ``tol`` decides at trace time whether LOBPCG spends certification products
# (``curvature.lobpcg.certifies``), so it is part of a program's structure, not a traced number.
Solver.__static_float_fields__ = ("tol",)


class SharpnessMeasure(Cadence, Solver):
    """S = λ_max(∇²L) of the full-batch training loss, and the top-k eigenvalues when ``k`` > 1.

    Records ``sharpness`` (θ₁) and ``sharpness.residual`` (‖Hv₁ − θ₁v₁‖: some eigenvalue lies within
    it of θ₁), the solver's ``sharpness.hvps``, ``sharpness.iterations`` and ``sharpness.capped`` (1 where an
    iterative solver stopped at ``max_iters`` without converging, else 0), with k > 1 the vectors
    ``eigs`` and ``eigs.residual`` (k values per step, descending), and with ``vectors: true`` the unit
    eigenvectors ``eigvecs`` (k × P floats per recorded step, in ``ravel_pytree`` order).
    """

    kind: Literal["sharpness"]
    vectors: bool = Field(False, description="Store the top-k eigenvectors (k × P floats per record).")

    def series(self) -> list[str]:
        names = ["sharpness", "sharpness.residual", "sharpness.hvps", "sharpness.iterations"]
        names.append("sharpness.capped")
        if self.k > 1:
            names += ["eigs", "eigs.residual"]
        if self.vectors:
            names.append("eigvecs")
        return names


class RotationMeasure(Cadence):
    """Rotation of the top-k Hessian eigenvectors (paper 004 §2, App. D).

    Against a baseline — ``period``: the eigenvectors T = ``period`` steps earlier (T = 2 compares
    iterates of the same parity of a period-2 oscillation); ``start``: those at the window's first
    step; ``step``: those at step ``at`` — records per-eigenvector similarity ``rotation.cos``
    (|⟨v_i(t), v_i(t₀)⟩|, k values; with ``match: true`` after pairing eigenvectors by maximal |cos|)
    and the top-k subspace similarity from the principal angles φ_i between the spans:
    ``rotation.prod_cos`` (∏ cos φ_i), ``rotation.mean_cos2`` (mean cos² φ_i) and
    ``rotation.grassmann`` (‖φ‖₂). Needs a ``sharpness`` measure with at least ``k`` eigenpairs; the
    eigenvectors are computed at every step of the window.
    """

    kind: Literal["rotation"]
    k: int = Field(3, ge=1, le=32)
    baseline: Literal["period", "start", "step"] = "period"
    period: int = Field(2, ge=1, description="T for ``baseline: period``.")
    at: int | None = Field(None, ge=0, description="The baseline step for ``baseline: step``.")
    match: bool = Field(False, description="Pair eigenvectors by maximal overlap before comparing.")

    @model_validator(mode="after")
    def _baseline_step(self) -> RotationMeasure:
        if (self.baseline == "step") != (self.at is not None):
            raise ValueError("`at` is the baseline step of `baseline: step` (and only of it)")
        return self

    def series(self) -> list[str]:
        return ["rotation.cos", "rotation.prod_cos", "rotation.mean_cos2", "rotation.grassmann"]


class SharpnessGradientMeasure(Cadence):
    """∇S = ∇³L[u, u] (paper 003 Lemma 2) at the top eigenvector u, and what it says about sharpening.

    Records ``alpha`` = −∇L·∇S (the progressive-sharpening coefficient, paper 003 Def. 2),
    ``grad_s.norm2`` = ‖∇S‖², ``grad_s_perp.norm2`` = ‖∇S⊥‖² with ∇S⊥ = ∇S − u(u·∇S) (β_t of Def. 4)
    and ``grad_s.u`` = ∇S·u. Needs a ``sharpness`` measure (u comes from its solve).
    """

    kind: Literal["sharpness_gradient"]

    def series(self) -> list[str]:
        return ["alpha", "grad_s.norm2", "grad_s_perp.norm2", "grad_s.u"]


RECURSION_SERIES = ("gap", "r", "r_prime", "r_prime_dot", "r_dot")
"""The ``gram_recursion.<x>`` series of ``gram_sharpness`` with ``recursion: true``, in order."""


class GramSharpnessMeasure(Cadence, Solver):
    """Gram (NTK) sharpness Λ = λ_max(M), M = (c/n)·J Jᵀ, of an MSE-trained network (paper 001 §2), with J
    the Jacobian of the n·k training outputs and c the loss's Gauss–Newton factor, so that Λ is the top
    eigenvalue of the Gauss–Newton part of the Hessian. Records ``gram_sharpness`` and its residual, and
    with ``k`` > 1 the solver's top-k ``gram_eigs`` and ``gram_eigs.residual`` (descending).

    Paper 001's other Gram quantities come from a dense n·k × n·k matrix (n·k reverse-mode products and
    an ``eigh`` per measurement: small problems): ``min: true`` records ``gram_min`` = λ_min(M) (Lemmas
    3.3, 3.5); ``projections: p`` records ``gram_projections``, the p values Dᵀv_i of the residual
    D = F − Y on the top unit eigenvectors of M (each oriented so that Yᵀv_i ≥ 0; Lemma 3.2, Fig. 3(b):
    ‖R‖² = ‖D‖² − (Dᵀv₁)²); ``blocks: [A, W]`` records ``gram_block.A`` … = λ_max(M_g) of the Gram
    matrix M_g = (c/n) J_g J_gᵀ of each named parameter group (M = Σ_g M_g; Fig. 3(a)). Unset, they
    are left out of the spec's identity.

    ``recursion: true`` runs Lemma 3.5's auxiliary recursion beside GD, in the output space (dense, every
    step of the window [start, stop]; needs ``every: 1``, no ``densify``, and plain GD): from the
    window's first step t₀, R′(t₀) = R(t₀) and R′(t+1) = (I − η_t M(t)(I − v₁(t)v₁(t)ᵀ)) R′(t), with
    R(t) = (I − v₁v₁ᵀ)D(t) and v₁(t) the top unit eigenvector of M(t); R′ is carried across steps.
    Records ``gram_recursion.gap`` = ‖R(t) − R′(t)‖ (Lemma 3.5, Theorem 2.3: small),
    ``gram_recursion.r`` = ‖R(t)‖, ``gram_recursion.r_prime`` = ‖R′(t)‖, ``gram_recursion.r_prime_dot``
    = R′(t)ᵀ(R′(t) + Y) (App. E.1: < 0) and ``gram_recursion.r_dot`` = R(t)ᵀ(R(t) + Y) (the Phase IV
    term, < 0).
    """

    kind: Literal["gram_sharpness"]
    min: bool = Field(False, description="Record λ_min of the Gram matrix (dense).")
    projections: int = Field(
        0, ge=0, le=32, description="Record Dᵀv_i on the top p Gram eigenvectors (dense)."
    )
    blocks: list[str] = Field(
        default_factory=list, description="Parameter groups whose Gram block's λ_max is recorded (dense)."
    )
    recursion: bool = Field(
        False, description="Run Lemma 3.5's recursion R′ beside GD and record ‖R − R′‖ (dense, every step)."
    )

    OMIT_AT_DEFAULT = ("min", "projections", "blocks", "recursion")

    @model_validator(mode="after")
    def _recursion_every_step(self) -> GramSharpnessMeasure:
        if self.recursion and (self.every != 1 or self.densify is not None):
            raise ValueError(
                "recursion: true advances R′(t+1) = (I − ηM(t)(I − v₁v₁ᵀ))R′(t) with M(t) of every step: "
                f"the measure needs every: 1 and no densify (got every: {self.every}"
                + (", densify" if self.densify is not None else "")
                + ")"
            )
        return self

    @property
    def dense(self) -> bool:
        """Whether the dense Gram matrix is built (any of ``min``, ``projections``, ``blocks``,
        ``recursion``)."""
        return self.min or self.projections > 0 or bool(self.blocks) or self.recursion

    def series(self) -> list[str]:
        names = ["gram_sharpness", "gram_sharpness.residual"]
        if self.k > 1:
            names += ["gram_eigs", "gram_eigs.residual"]
        if self.min:
            names.append("gram_min")
        if self.projections:
            names.append("gram_projections")
        names += [f"gram_block.{g}" for g in self.blocks]
        if self.recursion:
            names += [f"gram_recursion.{x}" for x in RECURSION_SERIES]
        return names


class PreconditionedSharpnessMeasure(Cadence, Solver):
    """Effective sharpness of an adaptive method (Cohen et al. 2022, "Adaptive gradient methods at the edge
    of stability"): λ_max(P^{-1/2} H P^{-1/2}) — the eigenvalues of P⁻¹H — with the diagonal
    preconditioner of the main optimizer after this step's update of its second-moment estimate: Adam's
    P = diag(√v̂_t + ε), RMSProp's P = diag(√(ν_t + ε)). Records ``preconditioned_sharpness`` with its
    residual and its stability threshold ``preconditioned_sharpness.threshold`` (2/η for RMSProp,
    (2 + 2β₁)/((1 − β₁)η) for Adam: the optimizer's MSS). Needs an ``adam`` or ``rmsprop`` optimizer
    without optimizer switches."""

    kind: Literal["preconditioned_sharpness"]

    def series(self) -> list[str]:
        return [
            "preconditioned_sharpness",
            "preconditioned_sharpness.residual",
            "preconditioned_sharpness.threshold",
        ]


class SliceMeasure(Cadence):
    """One-dimensional slices through θ_t (paper 004 Fig. 3): ``slice.loss`` = L(θ_t + s·d̂) and, with
    ``sharpness: true``, ``slice.sharpness`` = S(θ_t + s·d̂) for each offset s (Euclidean distances in
    parameter space) along the unit direction d̂ of the gradient ∇L(θ_t) or of the top eigenvector.
    Each sharpness point is a cold solve by the ``sharpness`` measure's solver, from the same start
    vector at every offset (so the slice is smooth)."""

    kind: Literal["slice"]
    direction: Literal["gradient", "eigenvector"] = "gradient"
    offsets: list[Scalar] = Field(min_length=1, description="Distances s along the unit direction.")
    sharpness: bool = Field(False, description="Also S along the slice (one eigensolve per offset).")

    def series(self) -> list[str]:
        return ["slice.loss", "slice.sharpness"] if self.sharpness else ["slice.loss"]


class SelfStabilizationMeasure(Cadence):
    """Paper 003's constrained trajectory, its predicted dynamics and a gradient-flow reference, run
    alongside GD from the first step of the window where η·S(θ_t) ≥ ``start_when`` (the time origin t₀).

    From t₀ on, every step advances three companions of the GD iterate θ_t:

    * θ†: projected GD on the stable set M = {S ≤ 2/η, ∇L·u = 0} (eq. 2), each projection made of
      ``projection_steps`` linearized steps (App. D.3; every one costs a warm top-eigenpair solve by
      the ``sharpness`` measure's solver and one ∇³L(u, u));
    * v̂: the predicted deviation of eq. (6) (``form: paper``; ``code``: the authors' variant without
      re-projection; ``generalized: true``: the exact loss along u, §7.2 / App. F);
    * θ_GF: gradient flow over the same time η(t − t₀), by ``flow`` (RK4 or Euler) in sub-steps h with
      h·S ≤ 2·``flow_fraction``.

    Records (at the cadence): ``dagger.loss`` L(θ†), ``dagger.sharpness`` S(θ†), ``dagger.gap``
    S(θ†) − 2/η, ``dagger.newton`` u·∇L(θ†), ``dagger.distance`` ‖θ_t − θ†_t‖, the deviation coordinates
    ``ss.x`` = u·(θ − θ†) and ``ss.y`` = ∇S⊥·(θ − θ†), ``ss.alpha``, ``ss.beta`` = ‖∇S⊥‖², ``ss.delta`` =
    √(2α/β) at θ†, the predictions ``pred.x``, ``pred.y``, ``pred.distance`` ‖v̂‖, and Theorem 1's
    ``pred.loss`` = L(θ†) + x̂²/η and ``pred.sharpness`` = 2/η + ŷ + (∇S·u)x̂, and ``flow.distance``
    ‖θ_t − θ_GF‖ and ``flow.loss``. Needs plain GD and a ``sharpness`` measure.
    """

    kind: Literal["self_stabilization"]
    start_when: Scalar = Field(2.0, description="θ† starts at the first step with η·S ≥ this.")
    projection_steps: int = Field(3, ge=1, description="Linearized projection steps per θ† step.")
    form: Literal["paper", "code"] = "paper"
    generalized: bool = False
    flow: Literal["rk4", "euler"] = "rk4"
    flow_fraction: float = Field(0.5, gt=0, le=1, description="Gradient-flow sub-steps satisfy h·S ≤ 2·this.")

    def series(self) -> list[str]:
        return [
            "dagger.loss",
            "dagger.sharpness",
            "dagger.gap",
            "dagger.newton",
            "dagger.distance",
            "ss.x",
            "ss.y",
            "ss.alpha",
            "ss.beta",
            "ss.delta",
            "pred.x",
            "pred.y",
            "pred.distance",
            "pred.loss",
            "pred.sharpness",
            "flow.distance",
            "flow.loss",
        ]


class FlowProjectionMeasure(Cadence):
    """The gradient-flow projection θ*_t of the iterate onto the minimizers (paper 000 App. E.5, eq. (16);
    Figs. 7a, 17b): θ* = lim_{τ→∞} θ(τ) for dθ/dτ = −∇L(θ), θ(0) = θ_t.

    The flow is integrated by ``flow`` (RK4 or Euler) in rounds of ``round_steps`` sub-steps h with
    h·S ≤ 2·``flow_fraction`` (S re-measured at every round's start) until ‖∇L‖ ≤ ``tol``, flow time
    ``horizon`` or ``max_steps`` sub-steps. Records ``theta_star.sharpness`` S(θ*) (by the ``sharpness``
    measure's solver, or the default solver) with its residual ``theta_star.residual``,
    ``theta_star.loss`` L(θ*), ``theta_star.grad_norm`` ‖∇L(θ*)‖ (≤ ``tol`` where the flow converged),
    ``theta_star.distance`` ‖θ_t − θ*‖, ``theta_star.deviation`` ⟨w_max(θ*), θ_t − θ*⟩ (w_max the unit top
    eigenvector at θ*, signed so that its largest-magnitude component is positive), ``theta_star.time``
    (flow time) and ``theta_star.steps`` (sub-steps), and with ``params: true`` θ* itself
    (``theta_star.params``, P floats per record in ``ravel_pytree`` order).
    """

    kind: Literal["flow_projection"]
    tol: float = Field(1e-8, gt=0, description="Stop the flow once ‖∇L(θ)‖ ≤ this.")
    horizon: float | None = Field(None, gt=0, description="Longest flow time τ; none: no limit.")
    max_steps: int = Field(4096, ge=1, description="Sub-step cap of one projection.")
    round_steps: int = Field(16, ge=1, description="Sub-steps between re-measurements of S and ‖∇L‖.")
    flow: Literal["rk4", "euler"] = "rk4"
    flow_fraction: float = Field(0.25, gt=0, le=1, description="Flow sub-steps satisfy h·S ≤ 2·this.")
    params: bool = Field(False, description="Also store θ* (P floats per record).")

    def series(self) -> list[str]:
        names = [
            "theta_star.sharpness",
            "theta_star.residual",
            "theta_star.loss",
            "theta_star.grad_norm",
            "theta_star.distance",
            "theta_star.deviation",
            "theta_star.time",
            "theta_star.steps",
        ]
        return [*names, "theta_star.params"] if self.params else names


class HessianTraceMeasure(Cadence):
    """tr(∇²L) of the full-batch training loss by Hutchinson's estimator (Hutchinson 1990; Avron & Toledo
    2011) with ``probes`` Rademacher probes z_i: t̂ = mean_i z_iᵀHz_i, unbiased, recorded as
    ``hessian_trace`` with its standard error ``hessian_trace.stderr`` = std(z_iᵀHz_i)/√m (a Monte-Carlo
    estimate: tr(H) lies within 2 of them ≈ 95% of the time) and ``hessian_trace.hvps`` (= ``probes``).
    The probes are drawn from the spec's ``seed`` and the step (``eosdsl.curvature.trace_density``)."""

    kind: Literal["hessian_trace"]
    probes: int = Field(100, ge=2, description="Rademacher probes (HVPs) per measurement.")

    def series(self) -> list[str]:
        return ["hessian_trace", "hessian_trace.stderr", "hessian_trace.hvps"]


class SpectralDensityMeasure(Cadence):
    """The Hessian's spectral density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani,
    Krishnan & Xiao 2019, PyHessian's method): for each of ``probes`` Rademacher probes, k =
    min(``lanczos_steps``, P) Lanczos steps with full re-orthogonalization; the tridiagonal's Ritz values
    θ_j and weights τ_j = (first component of its eigenvector)². Records ``spectral_density.nodes`` and
    ``spectral_density.weights`` (probes × k floats per recorded step; each row of weights sums to 1; the
    density is (1/probes)·Σ τ·δ(λ − θ)) and ``spectral_density.hvps`` (= probes·k)."""

    kind: Literal["spectral_density"]
    probes: int = Field(10, ge=1, description="Rademacher probes, one Lanczos run each.")
    lanczos_steps: int = Field(80, ge=1, description="Lanczos steps per probe (nodes per probe, at most P).")

    def series(self) -> list[str]:
        return ["spectral_density.nodes", "spectral_density.weights", "spectral_density.hvps"]


class DerivedMeasure(Model):
    """A series computed after the run from recorded series and constants, e.g. ``sharpness / mss``."""

    kind: Literal["derived"]
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    expr: str


CurvatureMeasure = (
    SharpnessMeasure
    | RotationMeasure
    | SharpnessGradientMeasure
    | GramSharpnessMeasure
    | PreconditionedSharpnessMeasure
    | SliceMeasure
    | SelfStabilizationMeasure
    | FlowProjectionMeasure
    | HessianTraceMeasure
    | SpectralDensityMeasure
)
CURVATURE_KINDS = tuple(
    kind for c in get_args(CurvatureMeasure) for kind in get_args(c.model_fields["kind"].annotation)
)
"""The ``kind`` of each curvature measure, in :data:`CurvatureMeasure`'s order."""

Measure = Annotated[SimpleMeasure | CurvatureMeasure | DerivedMeasure, Field(discriminator="kind")]
