"""Per-run check models written in the series algebra (docs/expressions.md, "Operations across steps").

A ``claim`` states a paper's formula over the recorded series of one run, e.g. Theorem 7 of paper 000:

.. code-block:: yaml

    - kind: claim
      name: theorem7
      let:
        eta: (2 + eps) / u0**2
        tau_u: first(u**2 < (2 - eps) / eta)
        P: (u - sqrt(2 / eta))**2 + 0.5 * v**2
      that: at(u, last(step >= 0)) >= sqrt(2/eta) - sqrt(at(P, tau_u) * exp(...))

The models import no jax; their expressions are checked by ``eosdsl.spec.semantic``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eosdsl.spec.base import Model

__all__ = ["CLAIM_OPS", "ClaimCheck"]

CLAIM_OPS = ("<=", "<", ">=", ">")
"""The comparisons a claim may state."""


class ClaimCheck(Model):
    """A claim ``lhs op rhs`` (op one of <=, <, >=, >) over the run's recorded series.

    When both sides are single numbers for the run (after across-step reductions such as ``at``,
    ``first``, ``fraction``), the claim is that one inequality; when a side varies by step, it must
    hold at every step where both sides are recorded. Margin (≥ 0 iff it holds): rhs − lhs for
    ``<``/``<=``, lhs − rhs for ``>``/``>=`` (the smallest over steps), plus ``tol``; strict
    comparisons need a margin > 0 when ``tol`` is 0. A NaN side fails the claim.
    """

    kind: Literal["claim"]
    that: str = Field(
        description="A comparison `lhs op rhs` over recorded series, constants, reference values, the "
        "`let` names and operations across steps (`first(...)`, `at(x, t)`, `fraction(...)`, ...)."
    )
    let: dict[str, str] = Field(
        default_factory=dict,
        description="Named expressions evaluated in order before `that` (a single number or a series "
        "each), e.g. `tau_u: first(u**2 < (2 - eps) / eta)`; their numbers are stored with the result.",
    )
    name: str | None = Field(None, description="Short name of the result (default: the claim's text).")
    tol: float = Field(0.0, ge=0, description="Slack added to the margin.")
