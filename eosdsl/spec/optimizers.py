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


Schedule = Annotated[Constant | LinearWarmup | Piecewise | Cosine, Field(discriminator="kind")]


LearningRate = Annotated[
    Scalar | Schedule,
    Field(description="A constant learning rate (number or expression) or a schedule with a `kind`."),
]


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
