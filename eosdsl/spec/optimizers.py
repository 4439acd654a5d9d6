"""Spec models of optimizers and their learning-rate schedules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from eosdsl.spec.base import Model, Scalar


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


MEASURED_NAMES = ("sharpness", "loss", "grad_norm")
"""The measurements a ``measured`` learning rate may read, besides the constants."""


class Measured(Model):
    """η_t = f(latest measurements): an expression over the constants and ``sharpness`` (the latest
    solved S = λ_max(∇²L), at w_t when it is solved at step t), ``loss`` and ``grad_norm`` (at w_t).

    Paper 003 App. G.1 (Fig. 6) trains with η_t = 1/S(θ_t), S refreshed every 40 steps:
    ``{kind: measured, value: 1 / sharpness}`` with ``{kind: sharpness, every: 40}``.
    """

    kind: Literal["measured"]
    value: str = Field(
        min_length=1,
        description="Expression over constants, `sharpness` (latest solved), `loss` and `grad_norm` "
        "(at this step), e.g. `1 / sharpness`.",
    )


Schedule = Annotated[Constant | LinearWarmup | Piecewise | Cosine | Measured, Field(discriminator="kind")]


LearningRate = Annotated[
    Scalar | Schedule,
    Field(description="A constant learning rate (number or expression) or a schedule with a `kind`."),
]


LrConvention = Literal["gd_equivalent", "raw"]


class Directional(Model):
    """A separate learning rate along the top Hessian eigendirections (paper 004 App. G, Fig. 10).

    With (λ_i, v_i), i ≤ ``k``, the top eigenpairs of ∇²L(w_t) solved at this step by the spec's
    ``sharpness`` measure, U ⊆ {1, …, k} the selected ones and P = Σ_{i∈U} v_i v_iᵀ, the GD step becomes

        w_{t+1} = w_t − η (g − P g) − η_u P g      (``rest: keep``)
        w_{t+1} = w_t − η_u P g                    (``rest: drop``: the update restricted to U)

    with g = ∇L(w_t). ``select: unstable`` takes U = {i ≤ k : λ_i > 2/η} (the directions GD at η would
    amplify), ``top`` all k. Fig. 10: (a) ``lr: 0`` suppresses the unstable directions, (b) ``lr`` below
    2/S makes them stable (e.g. ``{kind: measured, value: 1.9 / sharpness}``), (c) ``select: top, rest:
    drop, lr: <η>`` restricts the update to the sharpest directions. At steps where the sharpness
    measure does not solve (outside its window or cadence) the step is plain GD.
    """

    k: int = Field(
        ge=1, le=64, description="How many top eigenpairs are candidates (≤ the sharpness measure's k)."
    )
    select: Literal["unstable", "top"] = Field(
        "unstable", description="`unstable`: those with λ_i > 2/η; `top`: all k."
    )
    lr: LearningRate = Field(description="η_u, the learning rate along the selected directions.")
    rest: Literal["keep", "drop"] = Field(
        "keep",
        description="`keep`: the rest of the gradient at η; `drop`: no update off the selected directions.",
    )


class GD(Model):
    """Gradient descent, w_{t+1} = w_t − η_t ∇L(w_t). MSS = 2/η.

    ``directional`` gives the top Hessian eigendirections their own rate (:class:`Directional`).
    """

    kind: Literal["gd"]
    lr: LearningRate
    directional: Directional | None = Field(
        None, description="A separate rate along the top Hessian eigendirections (paper 004 Fig. 10)."
    )

    OMIT_AT_DEFAULT = ("directional",)


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


class Map(Model):
    """User-defined discrete dynamics on a closed-form problem's parameters: w_{t+1} = F(w_t), one
    expression per parameter over the parameters, the constants and ``lr`` (η_t of this optimizer's
    schedule); parameters not listed stay where they are. Paper 003 eq. (3), the self-stabilization
    recurrence: ``update: {x: -(1 + lr * y) * x, y: y + lr * (alpha - beta * x**2 / 2)}``. MSS: ∞ (the
    map is not a gradient method; ``mss`` is recorded as inf)."""

    kind: Literal["map"]
    lr: LearningRate = Field(0.0, description="η_t, the name `lr` in the update expressions.")
    update: dict[str, str] = Field(min_length=1, description="Parameter name → its next value F(w).")


class Ode(Model):
    """An ODE dw/dτ = f(w) on a closed-form problem's parameters, one right-hand side per parameter over
    the parameters and the constants (parameters not listed are constant). Each engine step advances τ
    by Δτ = ``lr`` (a schedule is allowed) in ``substeps`` steps of the classical fourth-order
    Runge–Kutta method (``rk4``: global error O(h⁴), h = Δτ/substeps) or explicit Euler (``euler``,
    O(h)), or (``dopri5``) by adaptive Dormand–Prince 5(4) sub-steps to a stated tolerance: each
    sub-step's local error estimate must satisfy RMS(err/(``atol`` + ``rtol``·max(|w|, |w_new|))) ≤ 1
    (Hairer–Nørsett–Wanner II.4), landing exactly at τ + Δτ, with at most ``max_substeps`` sub-steps
    (accepted or rejected) per engine step; when the cap is hit the last sub-step is forced to land and
    the series ``ode.capped`` records 1 if it missed the tolerance (also when w or f(w) turned non-finite:
    the integration stops there). ``rtol``, ``atol`` ≥ 0, not both 0 (checked on their values).
    ``dopri5`` needs the measure ``{kind: ode_steps}`` (series ``ode.substeps``, ``ode.rejected``,
    ``ode.capped`` per engine step).
    Paper 003 eq. (4): ``rhs: {X: X * Y, Y: alpha - beta * X**2 / 2}`` with τ = η·step. MSS: ∞."""

    kind: Literal["ode"]
    lr: LearningRate = Field(description="Δτ, the ODE time one engine step advances.")
    rhs: dict[str, str] = Field(min_length=1, description="Parameter name → dw/dτ.")
    method: Literal["rk4", "euler", "dopri5"] = "rk4"
    substeps: int = Field(1, ge=1, le=10_000, description="Integrator steps per engine step (rk4, euler).")
    rtol: Scalar = Field(1e-6, description="dopri5: relative tolerance of each sub-step's error estimate.")
    atol: Scalar = Field(1e-9, description="dopri5: absolute tolerance of each sub-step's error estimate.")
    max_substeps: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="dopri5: cap on sub-steps (accepted + rejected) per engine step.",
    )

    OMIT_AT_DEFAULT = ("rtol", "atol", "max_substeps")  # rk4/euler specs hash as before

    def omitted_at_default(self) -> tuple[str, ...]:
        """A ``dopri5`` spec dumps its tolerances and cap even at their defaults (they are what its run
        means, so a later change of a default cannot silently change a stored run's meaning); an rk4 or
        euler spec, which cannot set them, leaves them out (its id is what it was before they existed)."""
        return () if self.method == "dopri5" else self.OMIT_AT_DEFAULT

    @model_validator(mode="after")
    def _method_fields(self) -> Ode:
        """``substeps`` is for the fixed-step methods, the tolerances and cap for ``dopri5``. (The values of
        ``rtol``/``atol``, which may be expressions, are checked once resolved: eosdsl.spec.semantic.)"""
        fields = type(self).model_fields
        if self.method == "dopri5":
            if self.substeps != 1:
                raise ValueError("substeps is for rk4 and euler; dopri5 chooses its sub-steps (max_substeps)")
        else:
            for name in self.OMIT_AT_DEFAULT:
                if getattr(self, name) != fields[name].default:
                    raise ValueError(f"{name} is for method dopri5 (method here: {self.method})")
        return self


Optimizer = Annotated[GD | HeavyBall | Nesterov | Adam | RMSProp | Map | Ode, Field(discriminator="kind")]
