"""Curvature measurements inside the compiled step: one eigensolve per step, shared by every measure.

At a step where any curvature quantity is needed (a measure is due, a rotation window is open, or a
trigger reads the sharpness), the top-k eigenpairs of H = ∇²L(w_t) are computed once by the solver of
the spec's ``sharpness`` measure, from Hessian-vector products (forward-over-reverse), and shared:

* ``sharpness`` — θ₁ … θ_k with their true residuals ‖Hv_i − θ_iv_i‖, HVP and iteration counts, and
  whether the solver stopped at its iteration cap unconverged (``sharpness.capped``);
* ``rotation`` — the eigenvectors against a baseline (paper 004 App. D), from a ring of the last T
  blocks carried in the scan state (baseline ``period``), or one stored block (``start``, ``step``);
* ``sharpness_gradient`` — ∇S = ∇³L[u, u] at u = v₁ (paper 003 Lemma 2) and α = −∇L·∇S;
* ``gram_sharpness`` — a second solve, on the Gauss–Newton operator v ↦ Jᵀ(g·Jv), and where asked the
  dense Gram matrix's λ_min, residual projections and per-group blocks (paper 001 §3), and Lemma 3.5's
  auxiliary recursion R′ over the n·k outputs, carried in the state from step to step;
* ``flow_projection`` — gradient flow from w_t to its limit θ* on the minimizers (paper 000 App. E.5),
  characterized by one more solve at θ* (:mod:`eosdsl.engine.step_projection`);
* ``hessian_trace`` and ``spectral_density`` — Hutchinson's trace estimate and the stochastic Lanczos
  quadrature of the spectral density (``eosdsl.curvature.trace_density``), each from its own Rademacher
  probes, drawn from the spec's seed and the step (no state: a resumed or packed run draws the same).

The iterative solvers are warm-started: the blocks of the previous two solves are carried in the state
(:class:`Curvature.init`) and LOBPCG starts from the Rayleigh–Ritz of both (under GD's period-2
oscillation at the edge of stability H_t is closer to H_{t−2} than to H_{t−1}), so a solve at an
edge-of-stability step typically costs a handful of HVPs instead of a cold Lanczos run. The state is a
plain pytree (checkpointable, vmappable).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eosdsl.curvature import rotation as rot
from eosdsl.curvature.gram import gram_spectrum, residual_recursion
from eosdsl.curvature.hvp import hvp_fn
from eosdsl.curvature.preconditioned import (
    adam_preconditioner,
    adaptive_threshold,
    preconditioned_matvec,
    rmsprop_preconditioner,
)
from eosdsl.curvature.slices import loss_slice, sharpness_slice
from eosdsl.curvature.solve import top_eigenpairs_warm
from eosdsl.curvature.third_order import sharpness_gradient
from eosdsl.curvature.trace_density import hutchinson_trace, slq_density
from eosdsl.engine.lanes import ALONE, Lanes
from eosdsl.engine.step_companions import SelfStabilization
from eosdsl.engine.step_projection import FlowProjection
from eosdsl.optim.optimizers import Eigenpairs
from eosdsl.spec import models as m
from eosdsl.spec.measures import (
    RECURSION_SERIES,
    FlowProjectionMeasure,
    HessianTraceMeasure,
    SpectralDensityMeasure,
)
from eosdsl.spec.scope import Scope

Aux = dict[str, Any]


def _single(spec: m.Spec, cls: type) -> Any:
    return next((x for x in spec.measure if isinstance(x, cls)), None)


def recursion_outputs(spec: m.Spec, host: Any) -> int:
    """n·k, the number of flat training outputs of ``host`` (an ``eosdsl.problems.build.HostProblem``),
    where ``spec`` runs ``gram_sharpness``'s recursion R′ (its state lives over the outputs); else 0, so
    the layout of every other spec is unchanged."""
    gram = _single(spec, m.GramSharpnessMeasure)
    if gram is None or not gram.recursion or host.network is None:
        return 0
    from eosdsl.problems.supervised import config_out  # networks: imported on use

    return int(host.data["x"].shape[0]) * config_out(dict(host.network))


def _advance(warm: Aux, block: jnp.ndarray, solved: jnp.ndarray) -> Aux:
    """The warm-start state after a solve (where ``solved``): the new block, and the one it replaces as
    ``previous`` (the last two measurements' blocks both seed the next LOBPCG start)."""
    return {
        "block": jnp.where(solved, block, warm["block"]),
        "previous": jnp.where(solved, warm["block"], warm["previous"]),
        "ready": warm["ready"] | solved,
    }


class Curvature:
    """The curvature measures of one spec, built inside the program's trace."""

    def __init__(
        self, spec: m.Spec, scope: Scope, dtype: Any, needs_sharpness: bool, seed: Any, outputs: int = 0
    ) -> None:
        self.dtype = dtype
        self.outputs = outputs  # n·k training outputs (the space of gram_sharpness's recursion R′)
        self.scope = scope
        self.seed = seed  # traced: points differing only in their seed share the program
        self.sharp: m.SharpnessMeasure | None = _single(spec, m.SharpnessMeasure)
        self.rotation: m.RotationMeasure | None = _single(spec, m.RotationMeasure)
        self.gradient: m.SharpnessGradientMeasure | None = _single(spec, m.SharpnessGradientMeasure)
        self.gram: m.GramSharpnessMeasure | None = _single(spec, m.GramSharpnessMeasure)
        self.solver: m.Solver = self.sharp or m.Solver()
        self.precond: m.PreconditionedSharpnessMeasure | None = _single(
            spec, m.PreconditionedSharpnessMeasure
        )
        self.optimizer = spec.optimizer
        self.slice: m.SliceMeasure | None = _single(spec, m.SliceMeasure)
        ss = _single(spec, m.SelfStabilizationMeasure)
        self.ss = SelfStabilization(ss, self.solver, scope, seed) if ss else None
        self.trace: HessianTraceMeasure | None = _single(spec, HessianTraceMeasure)
        self.density: SpectralDensityMeasure | None = _single(spec, SpectralDensityMeasure)
        projection = _single(spec, FlowProjectionMeasure)
        self.projection = FlowProjection(projection, self.solver, scope) if projection else None
        self.needs_sharpness = needs_sharpness  # a trigger reads S at every step
        self.active = bool(
            self.sharp
            or self.rotation
            or self.gradient
            or self.gram
            or self.precond
            or self.slice
            or self.ss
            or self.trace
            or self.density
            or self.projection
            or needs_sharpness
        )
        every_step = self.sharp is not None and (self.sharp.every, self.sharp.start, self.sharp.stop) == (
            1,
            0,
            None,
        )
        self.always = needs_sharpness or every_step
        """The Hessian is solved at every step: the step shares one linearization of ∇L between its
        gradient and the HVPs (:meth:`measure`'s ``hvp``), which saves one gradient evaluation per step."""

    # ------------------------------------------------------------------------------------------ state

    def init(self, params: Any) -> Aux:
        """Warm-start blocks, the rotation baseline ring and the last measured sharpness."""
        if not self.active:
            return {}
        dim = ravel_pytree(params)[0].size
        aux: Aux = {"last_sharpness": jnp.array(jnp.nan, self.dtype)}
        if self.sharp or self.rotation or self.gradient or self.ss or self.needs_sharpness:
            aux["eig"] = self._warm_init(self.solver, dim)
        if self.rotation:
            depth = self.rotation.period if self.rotation.baseline == "period" else 1
            aux["rotation"] = rot.ring_init(depth, self.rotation.k, dim, self.dtype)
        if self.gram:
            aux["gram"] = self._warm_init(self.gram, dim)
            if self.gram.recursion:
                aux["gram_recursion"] = self._recursion_init()
        if self.precond:
            aux["precond"] = self._warm_init(self.precond, dim)
        if self.ss:
            aux["ss"] = self.ss.init(params, self.dtype)
        return aux

    def _recursion_init(self) -> Aux:
        """R′ over the n·k outputs (set to R(t₀) at the window's first step) and whether it has started."""
        if self.outputs <= 0:
            raise ValueError(
                "gram_sharpness.recursion needs the number of training outputs n·k (a network with an "
                "MSE loss, its layout built by eosdsl.engine.execute.layout_of)"
            )
        return {"r_prime": jnp.zeros((self.outputs,), self.dtype), "started": jnp.array(False)}

    def _warm_init(self, solver: m.Solver, dim: int) -> Aux:
        block = jnp.zeros((min(solver.block_size, dim), dim), self.dtype)
        return {"block": block, "previous": block, "ready": jnp.array(False)}

    # ---------------------------------------------------------------------------------------- cadence

    def _window(self, c: m.Cadence, t: jnp.ndarray) -> jnp.ndarray:
        inside = t >= c.start
        return inside if c.stop is None else inside & (t <= c.stop)

    def _due(self, c: m.Cadence, t: jnp.ndarray, ended: jnp.ndarray, lr: jnp.ndarray, aux: Aux) -> Any:
        """Every ``every`` steps of the window (and at the end); densified while η·S > ``above``."""
        offset = t - c.start
        due = self._window(c, t) & (offset % c.every == 0)
        if c.densify is not None:
            hot = lr * aux["last_sharpness"] > self.scope(c.densify.above)
            due = due | (self._window(c, t) & hot & (offset % c.densify.every == 0))
        return due | ended

    # ----------------------------------------------------------------------------------------- solves

    def _key(self, salt: int, t: jnp.ndarray) -> jnp.ndarray:
        """The PRNG key of a randomized computation at step ``t``: from the seed, the computation's salt
        (0 sharpness, 1 gram, 2 preconditioned, 3 self-stabilization, 4 slices, 5 trace, 6 density,
        7 flow projection) and the step, so lone, packed and resumed runs draw the same numbers."""
        return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), salt), t)

    def _solve(
        self, solver: m.Solver, matvec: Any, dim: int, warm: Aux, t: jnp.ndarray, salt: int, lanes: Lanes
    ) -> Any:
        key = self._key(salt, t)
        return top_eigenpairs_warm(
            matvec,
            dim,
            self.dtype,
            method=solver.method,
            k=solver.k,
            block=solver.block_size,
            tol=solver.tol,
            iters=solver.iters,
            max_iters=solver.max_iters,
            dense_max=solver.dense_max,
            key=key,
            warm_block=warm["block"],
            warm_valid=warm["ready"],
            cond=lanes.cond,
            warm_previous=warm.get("previous"),  # the block before: at EoS H_t is closer to H_{t-2}
        )

    def measure(
        self,
        aux: Aux,
        loss: Any,
        params: Any,
        grad: Any,
        t: jnp.ndarray,
        ended: jnp.ndarray,
        lr: jnp.ndarray,
        gauss_newton: Any = None,
        hvp: Any = None,
        optimizer_state: Any = None,
        lanes: Lanes = ALONE,
        gram_dense: Any = None,
    ) -> tuple[dict[str, Any], dict[str, Any], Aux, jnp.ndarray, Eigenpairs | None]:
        """(values, validity, new aux, S for triggers, this step's top eigenpairs or None) at step ``t``;
        ``loss`` is params ↦ L.

        ``hvp``: the Hessian-vector product at ``params`` when the caller already linearized ∇L there
        (only with :attr:`always`); otherwise each solve linearizes on its own, inside its ``lax.cond``.
        ``optimizer_state``: the main (adaptive) optimizer's state after this step's update, for
        ``preconditioned_sharpness``. ``lanes``: how conditionals run (alone, or across a pack).
        ``gram_dense``: params ↦ the problem's Gram blocks, residual and labels (``gram_sharpness``'s
        dense quantities).
        """
        if not self.active:
            return {}, {}, aux, jnp.array(jnp.nan, self.dtype), None
        flat, _ = ravel_pytree(params)
        dim = flat.size
        nan = jnp.array(jnp.nan, self.dtype)
        values: dict[str, Any] = {}
        valid: dict[str, Any] = {}
        new = dict(aux)

        sharp_due = self._due(self.sharp, t, ended, lr, aux) if self.sharp else jnp.array(False)
        grad_due = self._due(self.gradient, t, ended, lr, aux) if self.gradient else jnp.array(False)
        slice_due = self._due(self.slice, t, ended, lr, aux) if self.slice else jnp.array(False)
        rot_open = self._window(self.rotation, t) if self.rotation else jnp.array(False)
        need = sharp_due | grad_due | rot_open | jnp.array(self.needs_sharpness)
        if self.slice is not None and self.slice.direction == "eigenvector":
            need = need | slice_due
        if self.ss:  # S(θ_t) decides the time origin: solved at every step of the window until then
            ss_open = self._window(self.ss.measure, t)
            need = need | (ss_open & ~aux["ss"]["started"])

        if "eig" in aux:
            solver, k = self.solver, self.solver.k

            def solve(p: Any) -> Any:
                return self._solve(solver, hvp_fn(loss, p), dim, aux["eig"], t, 0, lanes)

            if hvp is not None:
                need = jnp.array(True)
                out = self._solve(solver, hvp, dim, aux["eig"], t, 0, lanes)
            else:
                out = lanes.when(need, solve, params, fill=0.0)
            res = out.result
            theta = jnp.where(need, res.values, nan)
            resid = jnp.where(need, res.residuals, nan)
            new["eig"] = _advance(aux["eig"], out.block, need)
            sharp = theta[0]
            new["last_sharpness"] = jnp.where(need, sharp, aux["last_sharpness"])
            if self.sharp:
                values.update(
                    {
                        "sharpness": sharp,
                        "sharpness.residual": resid[0],
                        "sharpness.hvps": res.hvps.astype(jnp.int32),
                        "sharpness.iterations": res.iterations.astype(jnp.int32),
                        "sharpness.capped": jnp.asarray(res.capped).astype(jnp.int32),
                    }
                )
                if k > 1:
                    values.update({"eigs": theta, "eigs.residual": resid})
                if self.sharp.vectors:
                    values["eigvecs"] = res.vectors
                valid.update({name: sharp_due for name in self.sharp.series()})
            vectors, u = res.vectors, res.vectors[0]
            eig = Eigenpairs(theta, vectors, need)
        else:
            sharp, eig = nan, None

        if self.rotation:
            values_r, new["rotation"], ok = self._rotation(aux["rotation"], vectors, rot_open, t)
            due = self._due(self.rotation, t, ended, lr, aux) & ok
            values.update(values_r)
            valid.update({name: due for name in self.rotation.series()})

        if self.gradient:
            g = ravel_pytree(grad)[0]

            def grad_s(p: Any) -> jnp.ndarray:
                return sharpness_gradient(loss, p, u)

            gs = lanes.cond(grad_due, grad_s, lambda p: jnp.zeros_like(flat), params)
            along = jnp.dot(gs, u)
            perp = gs - along * u
            values.update(
                {
                    "alpha": -jnp.dot(g, gs),
                    "grad_s.norm2": jnp.dot(gs, gs),
                    "grad_s_perp.norm2": jnp.dot(perp, perp),
                    "grad_s.u": along,
                }
            )
            valid.update({name: grad_due for name in self.gradient.series()})

        if self.ss:
            values_s, exists, new["ss"] = self.ss.step(
                aux["ss"], loss, params, t, ended, lr, sharp, u, ss_open, lanes
            )
            values.update(values_s)
            ss_due = self._due(self.ss.measure, t, ended, lr, aux) & exists
            valid.update({name: ss_due for name in self.ss.measure.series()})

        if self.gram:
            gram_due = self._due(self.gram, t, ended, lr, aux)

            def gram_solve(p: Any) -> Any:
                return self._solve(self.gram, gauss_newton(p), dim, aux["gram"], t, 1, lanes)

            out = lanes.when(gram_due, gram_solve, params, fill=0.0)
            new["gram"] = _advance(aux["gram"], out.block, gram_due)
            values.update(
                {"gram_sharpness": out.result.values[0], "gram_sharpness.residual": out.result.residuals[0]}
            )
            if self.gram.k > 1:
                values.update({"gram_eigs": out.result.values, "gram_eigs.residual": out.result.residuals})
            if self.gram.dense:
                values.update(self._gram_dense(gram_dense, params, gram_due, lanes, aux, new, lr, t))
            valid.update({name: gram_due for name in self.gram.series()})
            if self.gram.recursion:  # R′ is defined on the window only (not at a run's end after it)
                window = self._window(self.gram, t)
                valid.update(
                    {name: window for name in self.gram.series() if name.startswith("gram_recursion.")}
                )

        if self.slice:
            values.update(self._slice(loss, params, grad, u if "eig" in aux else None, slice_due, t, lanes))
            valid.update({name: slice_due for name in self.slice.series()})

        if self.precond:
            pre_due = self._due(self.precond, t, ended, lr, aux)
            p_flat = self._preconditioner(optimizer_state)

            def pre_solve(p: Any) -> Any:
                matvec = preconditioned_matvec(hvp_fn(loss, p), p_flat)
                return self._solve(self.precond, matvec, dim, aux["precond"], t, 2, lanes)

            out = lanes.when(pre_due, pre_solve, params, fill=0.0)
            new["precond"] = _advance(aux["precond"], out.block, pre_due)
            b1 = self.scope(self.optimizer.b1) if isinstance(self.optimizer, m.Adam) else 0.0
            values.update(
                {
                    "preconditioned_sharpness": out.result.values[0],
                    "preconditioned_sharpness.residual": out.result.residuals[0],
                    "preconditioned_sharpness.threshold": adaptive_threshold(lr, b1),
                }
            )
            valid.update({name: pre_due for name in self.precond.series()})

        if self.projection:  # θ*_t: gradient flow from θ_t to the minimizers (paper 000 App. E.5)
            proj_due = self._due(self.projection.measure, t, ended, lr, aux)
            values.update(self.projection.values(loss, params, proj_due, self._key(7, t), lanes))
            valid.update({name: proj_due for name in self.projection.measure.series()})

        if self.trace or self.density:
            values_h, valid_h = self._stochastic(loss, params, dim, hvp, t, ended, lr, aux, lanes)
            values.update(values_h)
            valid.update(valid_h)

        values = {
            k: (v.astype(self.dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v)
            for k, v in values.items()
        }
        return values, valid, new, sharp, eig

    def _gram_dense(
        self,
        gram_dense: Any,
        params: Any,
        due: jnp.ndarray,
        lanes: Lanes,
        aux: Aux,
        new: Aux,
        lr: jnp.ndarray,
        t: jnp.ndarray,
    ) -> Aux:
        """``gram_min``, ``gram_projections``, ``gram_block.<g>`` and ``gram_recursion.*`` from the dense
        Gram matrix M = Σ_g M_g (``eosdsl.curvature.gram.gram_spectrum``, ``residual_recursion``), computed
        only where due (NaN elsewhere). With ``recursion``, ``new["gram_recursion"]`` gets R′(t+1) on the
        steps of the window (η = ``lr``, this step's GD rate) and keeps R′ elsewhere."""
        g = self.gram
        rec = aux.get("gram_recursion")
        first = None if rec is None else ~rec["started"]
        if gram_dense is None:
            raise ValueError(
                "gram_sharpness's min, projections, blocks and recursion need a network with an MSE loss"
            )

        def compute(p: Any) -> Aux:
            parts = gram_dense(p)
            blocks, outputs = parts["blocks"], parts["residual"].shape[0]
            if g.projections > outputs:
                many = g.projections
                raise ValueError(f"gram_sharpness.projections ({many}) exceeds the n·k = {outputs} outputs")
            unknown = [name for name in g.blocks if name not in blocks]
            if unknown:
                known = list(blocks)
                raise ValueError(f"gram_sharpness.blocks: no parameter group {unknown} (groups: {known})")
            spec = gram_spectrum(
                list(blocks.values()),
                parts["residual"],
                parts["labels"],
                g.projections,
                [blocks[name] for name in g.blocks],
            )
            out: Aux = {f"gram_block.{name}": spec.block_tops[i] for i, name in enumerate(g.blocks)}
            if g.min:
                out["gram_min"] = spec.values[-1]
            if g.projections:
                out["gram_projections"] = spec.projections
            if rec is not None:
                step = residual_recursion(
                    spec.matrix,
                    spec.top,
                    parts["residual"],
                    parts["labels"],
                    rec["r_prime"],
                    lr,
                    first,
                )
                out.update({f"gram_recursion.{x}": getattr(step, x) for x in RECURSION_SERIES})
                out["gram_recursion.next"] = step.next
            return out

        out = lanes.when(due, compute, params)
        if rec is not None:
            advance = self._window(g, t)  # every step of the window (``every: 1`` is validated)
            new["gram_recursion"] = {
                "r_prime": jnp.where(advance, out.pop("gram_recursion.next"), rec["r_prime"]),
                "started": rec["started"] | advance,
            }
        return out

    def _slice(
        self, loss: Any, params: Any, grad: Any, u: Any, due: jnp.ndarray, t: jnp.ndarray, lanes: Lanes
    ) -> Aux:
        """L (and S) at θ + s·d̂ for the slice's offsets s, computed only where due."""
        sl = self.slice
        direction = ravel_pytree(grad)[0] if sl.direction == "gradient" else u
        offsets = jnp.stack([jnp.asarray(self.scope(x), self.dtype) for x in sl.offsets])
        solver = self.solver

        def compute(p: Any) -> Aux:
            out = {"slice.loss": loss_slice(loss, p, direction, offsets)}
            if sl.sharpness:
                dim = ravel_pytree(p)[0].size

                def top(q: Any) -> jnp.ndarray:
                    cold = {
                        "block": jnp.zeros((min(solver.block_size, dim), dim), self.dtype),
                        "ready": False,
                    }
                    return self._solve(solver, hvp_fn(loss, q), dim, cold, t, 4, lanes).result.values[0]

                out["slice.sharpness"] = sharpness_slice(top, p, direction, offsets)
            return out

        return lanes.when(due, compute, params)

    def _stochastic(
        self,
        loss: Any,
        params: Any,
        dim: int,
        hvp: Any,
        t: jnp.ndarray,
        ended: jnp.ndarray,
        lr: jnp.ndarray,
        aux: Aux,
        lanes: Lanes,
    ) -> tuple[Aux, Aux]:
        """(values, validity) of ``hessian_trace`` and ``spectral_density``, each computed only where due.

        Each uses the step's shared linearization ``hvp`` when there is one, else linearizes ∇L inside
        its own conditional branch."""
        values: Aux = {}
        valid: Aux = {}

        def operator(p: Any) -> Any:
            return hvp if hvp is not None else hvp_fn(loss, p)

        if self.trace:
            tr = self.trace
            due = self._due(tr, t, ended, lr, aux)

            def trace(p: Any) -> Aux:
                est = hutchinson_trace(operator(p), dim, tr.probes, self._key(5, t), self.dtype)
                return {
                    "hessian_trace": est.trace,
                    "hessian_trace.stderr": est.stderr,
                    "hessian_trace.hvps": est.hvps,
                }

            values.update(lanes.when(due, trace, params))
            valid.update({name: due for name in tr.series()})

        if self.density:
            sd = self.density
            due = self._due(sd, t, ended, lr, aux)

            def density(p: Any) -> Aux:
                out = slq_density(operator(p), dim, sd.probes, sd.lanczos_steps, self._key(6, t), self.dtype)
                return {
                    "spectral_density.nodes": out.nodes,
                    "spectral_density.weights": out.weights,
                    "spectral_density.hvps": out.hvps,
                }

            values.update(lanes.when(due, density, params))
            valid.update({name: due for name in sd.series()})
        return values, valid

    def _preconditioner(self, state: Any) -> jnp.ndarray:
        """The flat diagonal preconditioner (P,) of the main optimizer from its optax state."""
        opt = self.optimizer
        if isinstance(opt, m.Adam):
            return adam_preconditioner(state.nu, state.count, self.scope(opt.b2), self.scope(opt.eps))
        return rmsprop_preconditioner(state.nu, self.scope(opt.eps))

    def _rotation(
        self, ring: jnp.ndarray, vectors: jnp.ndarray, solved: jnp.ndarray, t: jnp.ndarray
    ) -> tuple[dict[str, Any], jnp.ndarray, jnp.ndarray]:
        """(similarities of the top-k block to its baseline, the updated baseline store, baseline valid).

        ``period``: a ring of the last T blocks (eigenvectors are solved at every step of the window,
        so the oldest entry is v(t − T)); ``start``/``step``: one block, kept from the first solve of
        the window or from step ``at``.
        """
        r = self.rotation
        current = vectors[: r.k]
        if r.baseline == "period":
            baseline, ok = rot.ring_lagged(ring)
            ring = jnp.where(solved, rot.ring_push(ring, current), ring)
        else:
            _, filled = rot.ring_lagged(ring)
            take = solved & (~filled if r.baseline == "start" else t == r.at)
            ring = jnp.where(take, current[None], ring)
            baseline, ok = rot.ring_lagged(ring)
        cosines = rot.abs_cosines_matched if r.match else rot.abs_cosines
        sim = rot.subspace_similarity(current, baseline)
        values = {
            "rotation.cos": cosines(current, baseline),
            "rotation.prod_cos": sim.prod_cos,
            "rotation.mean_cos2": sim.mean_cos2,
            "rotation.grassmann": sim.grassmann,
        }
        return values, ring, ok & solved
