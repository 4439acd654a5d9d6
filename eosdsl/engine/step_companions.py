"""Paper 003's companions of a GD run, advanced inside the compiled step (the ``self_stabilization``
measure; the mathematics is in :mod:`eosdsl.dynamics`).

From the time origin t₀ — the first step of the measure's window where η·S(θ_t) ≥ ``start_when`` — the
scan state carries, beside the GD iterate θ_t:

* the Taylor center of the constrained trajectory θ†_t (eq. 2; :func:`constrained.constrained_step`),
  started at θ†₀ = proj_M(θ_{t₀});
* the predicted deviation v̂_t (eq. 6; :func:`predicted.predicted_step`), started at v̂₀ = θ_{t₀} − θ†₀;
* the gradient-flow point θ_GF(η(t − t₀)) started at θ_{t₀} (:func:`flow.gradient_flow_step`), with a
  warm eigenvector for its own sharpness (which sets the number of sub-steps).

At step t the measure records the deviation θ_t − θ†_t in the coordinates (x, y) of Def. 5, the
predictions of Theorem 1 from v̂_t, and ‖θ_t − θ_GF‖; then the three companions advance to t + 1 with
the step's η. Every eigensolve is the spec's ``sharpness`` solver at k = 1, warm-started from the
previous eigenvector (a block of one row for LOBPCG), so a θ† step costs four warm solves and four
∇³L(u, u) products (App. D.3's three linearized steps plus the gradient step), not four cold Lanczos runs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.solve import top_eigenpairs
from eosdsl.dynamics import constrained, flow, predicted
from eosdsl.engine.lanes import ALONE, Lanes
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

Aux = dict[str, Any]


def solver_top_eig(loss: Any, solver: m.Solver, key: jax.Array) -> constrained.TopEigFn:
    """A ``TopEigFn`` (params, u_warm) ↦ (S, u, residual) by ``solver`` at k = 1, block 1, warm from u_warm.

    A zero ``u_warm`` (no previous eigenvector) is a valid start for LOBPCG: a dependent start row is
    refilled from a fixed pseudo-random one, so the first solve is a short cold solve.
    """

    def top_eig(params: Any, u_warm: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        flat, _ = ravel_pytree(params)
        method = solver.method
        if method == "auto":
            method = "dense" if flat.size <= solver.dense_max else "lobpcg"
        warm = u_warm[None].astype(flat.dtype) if method in ("lobpcg", "power") else None
        out = top_eigenpairs(
            hvp_fn(loss, params),
            flat.size,
            flat.dtype,
            method=method,
            k=1,
            block=1,
            tol=solver.tol,
            iters=solver.iters,
            max_iters=solver.max_iters,
            key=key,
            warm=warm,
            dense_max=solver.dense_max,
        )
        res = out.result
        return res.values[0], constrained.align_sign(res.vectors[0], u_warm), res.residuals[0]

    return top_eig


class SelfStabilization:
    """The ``self_stabilization`` measure of one spec (built inside the program's trace)."""

    def __init__(
        self, measure: m.SelfStabilizationMeasure, solver: m.Solver, scope: Scope, seed: Any
    ) -> None:
        self.measure = measure
        self.solver = solver
        self.scope = scope
        self.key = jax.random.fold_in(jax.random.PRNGKey(seed), 3)

    def init(self, params: Any, dtype: Any) -> Aux:
        flat, _ = ravel_pytree(params)
        zero, zeros = jnp.zeros((), dtype), jnp.zeros_like(flat)
        center = constrained.TaylorCenter(
            jax.tree.map(jnp.zeros_like, params), zero, zeros, zero, zeros, zeros, zero
        )
        return {
            "started": jnp.array(False),
            "center": center,
            "v_hat": zeros,
            "flow": jax.tree.map(jnp.zeros_like, params),
            "flow_u": zeros,
        }

    def step(
        self,
        aux: Aux,
        loss: Any,
        params: Any,
        t: jnp.ndarray,
        ended: jnp.ndarray,
        lr: jnp.ndarray,
        sharp: jnp.ndarray,
        u_gd: jnp.ndarray,
        window: jnp.ndarray,
        lanes: Lanes = ALONE,
    ) -> tuple[dict[str, Any], jnp.ndarray, Aux]:
        """(values at step t, whether they exist, the companions advanced to t + 1)."""
        meas, eta = self.measure, lr
        top_eig = solver_top_eig(loss, self.solver, self.key)
        start_now = ~aux["started"] & window & (eta * sharp >= self.scope(meas.start_when))
        active = aux["started"] | start_now
        flat = ravel_pytree(params)[0]

        def begin(_: None) -> tuple[Any, ...]:
            center = constrained.initial_center(loss, params, u_gd, eta, top_eig, meas.projection_steps)
            v_hat = flat - ravel_pytree(center.params)[0]
            return center, v_hat, params, u_gd

        def carry(_: None) -> tuple[Any, ...]:
            return aux["center"], aux["v_hat"], aux["flow"], aux["flow_u"]

        center, v_hat, flow_params, flow_u = lanes.cond(start_now, begin, carry, None)

        deviation = predicted.deviation(params, center)
        diagnostics = constrained.center_diagnostics(center, eta)
        if meas.generalized:
            forecast = predicted.generalized_observables(loss, center, v_hat, eta)
        else:
            forecast = predicted.predicted_observables(center, v_hat, eta)
        values = {
            "dagger.loss": center.loss,
            "dagger.sharpness": center.sharpness,
            "dagger.gap": diagnostics.sharpness_residual,
            "dagger.newton": diagnostics.newton_residual,
            "dagger.distance": jnp.linalg.norm(deviation.v),
            "ss.x": deviation.x,
            "ss.y": deviation.y,
            "ss.alpha": diagnostics.alpha,
            "ss.beta": diagnostics.beta,
            "ss.delta": diagnostics.delta,
            "pred.x": forecast.x,
            "pred.y": forecast.y,
            "pred.distance": jnp.linalg.norm(v_hat),
            "pred.loss": forecast.loss,
            "pred.sharpness": forecast.sharpness,
            "flow.distance": jnp.linalg.norm(flat - ravel_pytree(flow_params)[0]),
            "flow.loss": loss(flow_params),
        }

        def advance(_: None) -> tuple[Any, ...]:
            nxt, _ = constrained.constrained_step(loss, center, eta, top_eig, meas.projection_steps)
            v_next = predicted.predicted_step(
                loss, center, nxt, v_hat, eta, form=meas.form, generalized=meas.generalized
            )
            s_flow, u_flow, _ = top_eig(flow_params, flow_u)
            flow_next = flow.gradient_flow_step(
                loss, flow_params, eta, s_flow, fraction=meas.flow_fraction, method=meas.flow
            )
            return nxt, v_next, flow_next, u_flow

        center, v_hat, flow_params, flow_u = lanes.cond(
            active & ~ended, advance, lambda _: (center, v_hat, flow_params, flow_u), None
        )
        new = {"started": active, "center": center, "v_hat": v_hat, "flow": flow_params, "flow_u": flow_u}
        return values, active, new
