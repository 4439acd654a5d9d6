"""Spec models of the closed-form problems (paper toys and hand-written objectives); networks on data
are :mod:`eosdsl.spec.networks`. ``Problem`` is the union of both, discriminated on ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from eosdsl.spec.base import Model, Scalar
from eosdsl.spec.networks import SupervisedProblem


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
