"""The ``flow_projection`` measure inside the compiled step: the gradient-flow projection θ*_t of the
iterate onto the minimizers (paper 000 App. E.5, eq. (16); the mathematics is
:func:`eosdsl.dynamics.flow.gradient_flow_limit`).

At a step where the measure is due, gradient flow is integrated from θ_t to convergence (or to its
caps) inside a ``lax.cond`` (across a pack: :meth:`Lanes.cond`, where members that are not due stop
the flow at once); its end point θ* is then characterized by one eigensolve of ∇²L(θ*) with the spec's
solver. Everything is recomputed from θ_t: the measure carries no state, so a resumed or packed run
computes what its lone, uninterrupted run computes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eosdsl.dynamics import flow
from eosdsl.engine.lanes import ALONE, Lanes
from eosdsl.engine.step_companions import solver_top_eig
from eosdsl.spec import models as m
from eosdsl.spec.measures import FlowProjectionMeasure
from eosdsl.spec.scope import Scope


def canonical_sign(w: jax.Array) -> jax.Array:
    """w or −w, whichever has its largest-magnitude component positive (a deterministic sign for an
    eigenvector, which any solver returns up to sign)."""
    return jnp.where(w[jnp.argmax(jnp.abs(w))] < 0, -w, w)


class FlowProjection:
    """The ``flow_projection`` measure of one spec (built inside the program's trace)."""

    def __init__(self, measure: FlowProjectionMeasure, solver: m.Solver, scope: Scope) -> None:
        self.measure = measure
        self.solver = solver
        self.scope = scope

    def values(
        self, loss: Any, params: Any, due: jax.Array, key: jax.Array, lanes: Lanes = ALONE
    ) -> dict[str, Any]:
        """The measure's series at θ_t = ``params`` (computed where ``due``; NaN, and 0 steps, elsewhere).

        ``key``: the PRNG key of this step's eigensolves (cold starts of iterative solvers).
        """
        meas = self.measure
        top_eig = solver_top_eig(loss, self.solver, key)
        horizon = jnp.inf if meas.horizon is None else self.scope(meas.horizon)

        def compute(p: Any, active: jax.Array) -> dict[str, Any]:
            lim = flow.gradient_flow_limit(
                loss,
                p,
                top_eig,
                tol=self.scope(meas.tol),
                horizon=horizon,
                max_steps=meas.max_steps,
                round_steps=meas.round_steps,
                fraction=meas.flow_fraction,
                method=meas.flow,
                active=active,
            )
            s, w, residual = top_eig(lim.params, lim.vector)
            star = ravel_pytree(lim.params)[0]
            offset = ravel_pytree(p)[0] - star  # θ_t − θ*
            out = {
                "theta_star.sharpness": s,
                "theta_star.residual": residual,
                "theta_star.loss": loss(lim.params),
                "theta_star.grad_norm": lim.grad_norm,
                "theta_star.distance": jnp.linalg.norm(offset),
                "theta_star.deviation": jnp.dot(canonical_sign(w), offset),
                "theta_star.time": lim.time,
                "theta_star.steps": lim.steps,
            }
            if meas.params:
                out["theta_star.params"] = star
            return out

        return lanes.when(due, compute, params, due)
