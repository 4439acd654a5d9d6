"""Closed-form toy objectives: named parameters and an objective expression.

The papers' toys are shortcuts that expand to a :class:`~eosdsl.spec.models.ToyProblem`, so each is
also writable by hand as an expression and all of them share one evaluator. They are facts of the spec
language (validation expands a shortcut to check its expressions), so they live in the spec layer, which
:mod:`eosdsl.problems` builds on.
"""

from __future__ import annotations

from eosdsl.spec import models as m

RELU_SCALAR = "0.5 * u**2 * v**2 * (u >= 0)"
"""Paper 000 §3.1: L(u, v) = ½u²v²·1[u ≥ 0]."""

LDN_POINT = "0.5 * (u**2 - v**2 - 1)**2"
"""Paper 000 App. E.5: L(u, v) = ½(u² − v² − 1)², the diagonal network on the single point (e₁, 1)."""


def as_toy(problem: m.Problem) -> m.ToyProblem | None:
    """The toy form of a closed-form problem (``None`` for data-driven problems)."""
    if isinstance(problem, m.ToyProblem):
        return problem
    if isinstance(problem, m.ReluScalar):
        return m.ToyProblem.model_construct(
            kind="toy",
            params={"u": problem.u0, "v": problem.v0},
            objective=RELU_SCALAR,
            coefficients={},
            definitions={},
        )
    if isinstance(problem, m.LdnPoint):
        return m.ToyProblem.model_construct(
            kind="toy",
            params={"u": problem.u0, "v": problem.v0},
            objective=LDN_POINT,
            coefficients={},
            definitions={},
        )
    if isinstance(problem, m.ProductChain):
        # Paper 004 §3: L = z(Θ) with Θ = ∏ θ_i and z(Θ) = Σ_k c_k Θ^k.
        terms = " + ".join(f"z{k} * Theta**{k}" for k in range(len(problem.z)))
        return m.ToyProblem.model_construct(
            kind="toy",
            params={"theta": list(problem.theta0)},
            objective=terms,
            coefficients={f"z{k}": c for k, c in enumerate(problem.z)},
            definitions={"Theta": "prod(theta)"},
        )
    if isinstance(problem, m.ScalarProduct):
        # Paper 002: f(x, y) = g(s) with s = xy.
        return m.ToyProblem.model_construct(
            kind="toy",
            params={"x": problem.x0, "y": problem.y0},
            objective=problem.g,
            coefficients={"a": problem.a, "b": problem.b},
            definitions={"s": "x * y"},
        )
    return None
