"""Compile a spec into a pure step function and run it in jitted, scanned chunks.

The compiled program is a function of (static structure, traced hyperparameters, state, data). The
structure is the spec with every float removed (:mod:`eosdsl.engine.traced`), so all specs that
differ only in numbers — every point of a learning-rate grid — share one compilation.

One step at state (t, w_t), in this order:

1. loss and gradient at w_t; the sharpness, if a trigger or a ``measured`` rate reads it (a measured
   rate reads the latest solve: this step's if S is solved at step t, else the last one before); the
   schedule's GD-equivalent rate η_t, the applied rate and the MSS of the active optimizer;
2. divergence test (non-finite loss or parameters);
3. events and stop rules, each firing at most once (a switch takes effect for this step's update);
4. measurements of w_t, every ``every`` steps and always at the last step;
5. unless the run ended at this step, the update w_{t+1} = w_t + d_{t+1}.

Steps run from t = 0 to t = ``train.steps``; the state after the last update is measured, not updated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from eosdsl.engine.compiled import cached_entry
from eosdsl.engine.lanes import ALONE, PACK_AXIS, Lanes, traced_once
from eosdsl.engine.step_curvature import Curvature
from eosdsl.engine.traced import float_leaves, replace_floats, structure_key
from eosdsl.optim.optimizers import Eigenpairs, StepInputs, build_rule
from eosdsl.optim.schedules import build_rate
from eosdsl.problems.build import problem_fns
from eosdsl.spec import models as m
from eosdsl.spec.recorded import recorded_series
from eosdsl.spec.scope import Scope, parse

RUNNING, COMPLETED, STOPPED, DIVERGED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", COMPLETED: "completed", STOPPED: "stopped", DIVERGED: "diverged"}

NOT_IN_PROGRAM = frozenset({"name", "description", "tags", "checks", "sweep", "runtime", "data_seed", "seed"})
"""Spec fields that do not enter the structure key, at any depth: never read by the program, or
(``seed``) traced. Only names no field the program reads carries (a measure's ``start`` window does)."""


def in_program(spec: m.Spec) -> m.Spec:
    """``spec`` as the program sees it: without the top-level ``stages`` and ``start`` (a run's start is
    in its initial parameters and its constants), so the points that start from different stage runs
    share one program."""
    if not spec.stages and spec.start is None:
        return spec
    return spec.model_copy(update={"stages": {}, "start": None})


class State(NamedTuple):
    """Everything a run carries from one step to the next (a pytree; checkpointable)."""

    t: jnp.ndarray  # int32 step index of `params`
    params: Any  # w_t
    d: Any  # w_t − w_{t−1}, shared by every optimizer so switches carry it
    extras: tuple  # per-optimizer state (Adam moments, ...)
    active: jnp.ndarray  # int32 index of the optimizer in use
    lr_prev: jnp.ndarray  # applied rate of the previous step
    clock: jnp.ndarray  # schedule clock (stops while frozen)
    frozen: jnp.ndarray  # bool: schedule frozen
    fired: jnp.ndarray  # bool[n_triggers]
    fired_at: jnp.ndarray  # int32[n_triggers], −1 if not fired
    prev_gap: jnp.ndarray  # [n_triggers]: value − threshold at the previous step (crossing detection)
    status: jnp.ndarray  # int32, one of RUNNING, COMPLETED, STOPPED, DIVERGED
    end_step: jnp.ndarray  # int32 step at which the run ended, −1 while running
    stop_cause: jnp.ndarray  # int32 trigger index that stopped the run, −1 otherwise
    curvature: dict  # eigensolver warm-start blocks, rotation baselines (see engine.curvature)


@dataclass(frozen=True)
class Structure:
    """The static part of a program: equal keys ⇒ one compiled program serves both specs."""

    key: str
    template: m.Spec = field(compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, spec: m.Spec) -> Structure:
        spec = in_program(spec)
        return cls(structure_key(spec, NOT_IN_PROGRAM.__contains__), spec)


class Hyper(NamedTuple):
    """The traced inputs of a program: the spec's float leaves (in its dtype) and its seed.

    Specs with equal structure keys differ only here, so they share one compilation and can be packed
    (stacked along a leading axis) into one ``vmap``-ped program.
    """

    floats: list[Any]
    seed: Any  # int64 scalar: keys of the eigensolvers' random starts


def hyperparameters(spec: m.Spec) -> Hyper:
    """The traced inputs of ``spec``: its float leaves the program reads, as arrays of its dtype, and seed."""
    dtype = dtype_of(spec)
    floats = [np.asarray(x, dtype) for x in float_leaves(in_program(spec), NOT_IN_PROGRAM.__contains__)]
    return Hyper(floats, np.asarray(spec.seed, np.int64))


def dtype_of(spec: m.Spec) -> Any:
    return jnp.float64 if spec.precision == "float64" else jnp.float32


def triggers_of(spec: m.Spec) -> list[tuple[m.Trigger, m.Action | None]]:
    """Events' triggers with their actions, then the stop rules (action ``None`` = stop)."""
    return [(e.when, e.do) for e in spec.events] + [(t, None) for t in spec.train.stop]


def optimizers_of(spec: m.Spec) -> list[m.Optimizer]:
    """The main optimizer, then each switch target in event order (index = value of ``State.active``)."""
    return [spec.optimizer] + [e.do.switch_optimizer for e in spec.events if e.do.switch_optimizer]


class Layout(NamedTuple):
    """What the program must know about the problem before tracing (static, hashable)."""

    param_names: tuple[str, ...]  # parameters visible to expressions and `params` series (toys, LDN)
    groups: tuple[str, ...]  # top-level parameter groups (a network's layers)
    network: tuple | None = None  # a supervised problem's network config
    outputs: int = 0  # n·k training outputs, for state over them (gram_sharpness recursion); else 0


def series_of(spec: m.Spec, layout: Layout) -> dict[str, int]:
    """Recorded series → cadence (0 for curvature series, whose steps the program decides).

    The names come from the spec layer's one table (:func:`eosdsl.spec.recorded.recorded_series`);
    a series two simple measures record is recorded at the smaller cadence.
    """
    out: dict[str, int] = {}
    table = recorded_series(
        spec, params=layout.param_names, groups=layout.groups, network=dict(layout.network or ())
    )
    for rec in table:
        if rec.derived:
            continue
        out[rec.name] = 0 if rec.every == 0 else min(out.get(rec.name, rec.every), rec.every)
    return out


def _tree_finite(tree: Any) -> jnp.ndarray:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class Program:
    """The step function of one spec, built inside a trace (the spec's floats may be tracers)."""

    def __init__(self, spec: m.Spec, layout: Layout, seed: Any, axis: str | None = None) -> None:
        self.spec = spec
        self.dtype = dtype_of(spec)
        self.axis = axis  # the pack's vmap axis name (None: not packed)
        self.scope = Scope(spec.constants, self.dtype)
        self.fns = problem_fns(spec.problem, self.scope, layout.network)
        optimizers = optimizers_of(spec)
        self.rules = [build_rule(o, self.scope) for o in optimizers]
        self.schedules = [build_rate(o.lr, self.scope) for o in optimizers]
        # η_u of each rule with ``directional`` (paper 004 Fig. 10), None for the others
        self.directional_rates = [
            build_rate(o.directional.lr, self.scope) if getattr(o, "directional", None) else None
            for o in optimizers
        ]
        self.rate_reads_sharpness = any(
            isinstance(o.lr, m.Measured) and "sharpness" in parse(o.lr.value).names for o in optimizers
        )
        self.triggers = triggers_of(spec)
        self.param_names = list(layout.param_names)
        self.cadence = series_of(spec, layout)
        self.measure_every = {
            meas.kind: meas.every for meas in spec.measure if meas.kind in self.fns.measures
        }
        switch_targets = iter(range(1, len(optimizers)))
        self.switch_index = [
            next(switch_targets) if (a is not None and a.switch_optimizer) else -1 for _, a in self.triggers
        ]
        self.accuracy_triggers = any(t.accuracy is not None for t, _ in self.triggers)
        self.sharp_triggers = any(
            t.sharpness is not None or (t.expr is not None and "sharpness" in parse(t.expr).names)
            for t, _ in self.triggers
        )
        self.curvature = Curvature(
            spec,
            self.scope,
            self.dtype,
            needs_sharpness=self.sharp_triggers,
            seed=seed,
            outputs=layout.outputs,
        )

    # ---------------------------------------------------------------------------------------- state

    def init(self, params: Any) -> State:
        n = max(len(self.triggers), 1)  # one unused slot when there are none: checkpoints refuse empty arrays
        zero = jnp.zeros((), self.dtype)
        return State(
            t=jnp.zeros((), jnp.int32),
            params=params,
            d=jax.tree.map(jnp.zeros_like, params),
            extras=tuple(rule.init(params) for rule in self.rules),
            active=jnp.zeros((), jnp.int32),
            lr_prev=zero + 1.0,
            clock=zero,
            frozen=jnp.array(False),
            fired=jnp.zeros((n,), bool),
            fired_at=jnp.full((n,), -1, jnp.int32),
            prev_gap=jnp.full((n,), jnp.nan, self.dtype),
            status=jnp.array(RUNNING, jnp.int32),
            end_step=jnp.array(-1, jnp.int32),
            stop_cause=jnp.array(-1, jnp.int32),
            curvature=self.curvature.init(params),
        )

    # ----------------------------------------------------------------------------------------- step

    def _rates(
        self, clock: jnp.ndarray, active: jnp.ndarray, latest: dict[str, jnp.ndarray]
    ) -> tuple[jnp.ndarray, ...]:
        """(GD-equivalent η, applied η, MSS) of the active optimizer; ``latest``: what measured rates read."""
        lrs = [s(clock, latest) for s in self.schedules]
        applied = [r.applied_lr(lr) for r, lr in zip(self.rules, lrs, strict=True)]
        mss = [r.mss(a) for r, a in zip(self.rules, applied, strict=True)]
        return tuple(jnp.stack(x)[active] for x in (lrs, applied, mss))

    def _trigger(self, i: int, trig: m.Trigger, ctx: dict[str, Any], state: State) -> tuple[Any, Any]:
        """(condition now, gap for crossing detection) of trigger ``i``."""
        nan = jnp.array(jnp.nan, self.dtype)
        if trig.sharpness is not None:
            threshold = self.scope.child(**ctx)(trig.sharpness.threshold)
            gap = ctx["sharpness"] - threshold
            prev = state.prev_gap[i]
            crossed = (
                (prev >= 0) & (gap < 0) if trig.sharpness.crosses == "below" else (prev <= 0) & (gap > 0)
            )
            return crossed, gap
        if trig.loss is not None:
            return ctx["loss"] < self.scope(trig.loss.below), nan
        if trig.accuracy is not None:
            return ctx["accuracy"] >= self.scope(trig.accuracy.at_least), nan
        if trig.step is not None:
            return ctx["step"] >= trig.step.at, nan
        value = jnp.asarray(self.scope.eval(trig.expr, **ctx))
        return jnp.all(value != 0), nan  # a condition on a vector holds when it holds for every component

    def step(self, state: State, data: Any) -> tuple[State, dict[str, Any]]:
        """One step (see the module docstring); a no-op once the run has ended.

        In a pack, members that have ended stay unchanged while the others go on, and no member that
        has ended makes a conditional branch (a due measurement) run.
        """
        running = state.status == RUNNING
        lanes = Lanes(self.axis, running)
        if self.axis is None:  # traced once: its jaxpr replayed in the branch, its shapes for idle's
            live, shapes = traced_once(lambda s: self._live(s, data, lanes), state)
            blank = shapes[1]
        else:  # a pack's step holds collectives over the pack axis: shapes from a lone tracing
            live = lambda s: self._live(s, data, lanes)  # noqa: E731
            blank = jax.eval_shape(lambda s, d: self._live(s, d, ALONE), state, data)[1]

        def idle(s: State) -> tuple[State, dict[str, Any]]:
            return s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), blank)

        return Lanes(self.axis).cond(running, live, idle, state)

    def _live(self, state: State, data: Any, lanes: Lanes) -> tuple[State, dict[str, Any]]:
        spec, dtype, t = self.spec, self.dtype, state.t
        step_f = t.astype(dtype)
        loss_of = lambda p: self.fns.loss(p, data)  # noqa: E731
        if self.curvature.always:  # one linearization of ∇L serves the gradient and every HVP
            flat, unravel = ravel_pytree(state.params)
            (loss, flat_grad), tangent = jax.linearize(
                jax.value_and_grad(lambda x: loss_of(unravel(x))), flat
            )
            grad, hvp = unravel(flat_grad), (lambda v: tangent(v)[1])
        else:
            (loss, grad), hvp = jax.value_and_grad(loss_of)(state.params), None
        nan = jnp.array(jnp.nan, dtype)
        grad_norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))
        # What a `measured` rate reads; S is the carried last solve until this step's solve replaces it.
        last_sharpness = state.curvature.get("last_sharpness", nan)
        latest = {"loss": loss, "grad_norm": grad_norm, "sharpness": last_sharpness}
        lr, lr_app, mss = self._rates(state.clock, state.active, latest)

        diverged = ~(jnp.isfinite(loss) & _tree_finite(state.params))

        optimizer_state = None
        if self.curvature.precond:  # the main rule's state after this step's update (its ν_t)
            inputs = StepInputs(state.params, grad, jax.grad(loss_of), state.d, lr_app, state.lr_prev)
            optimizer_state = self.rules[0].update(inputs, state.extras[0])[1]

        def curvature(ended: jnp.ndarray) -> tuple[Any, ...]:
            return self.curvature.measure(
                state.curvature,
                loss_of,
                state.params,
                grad,
                t,
                ended,
                lr,
                self._gauss_newton(data),
                hvp,
                optimizer_state,
                lanes,
                self._gram_dense(data),
            )

        if self.sharp_triggers or self.rate_reads_sharpness:  # events need S(w_t) at every step, a
            # measured rate the latest S (solved here when due); measurements reuse the solve
            curv_values, curv_valid, curv_state, sharp, eig = curvature(diverged | (t >= spec.train.steps))
            if self.rate_reads_sharpness:
                latest["sharpness"] = curv_state["last_sharpness"]
                lr, lr_app, mss = self._rates(state.clock, state.active, latest)
        else:
            sharp = nan
        if self.accuracy_triggers:
            accuracy = self.fns.measures["accuracy"](state.params, data)["accuracy"].astype(dtype)
        else:
            accuracy = nan
        ctx = {
            **{k: state.params[k] for k in self.param_names},
            "loss": loss,
            "lr": lr,
            "lr_applied": lr_app,
            "mss": mss,
            "step": step_f,
            "sharpness": sharp,
            "accuracy": accuracy,
        }

        active, frozen, stop = state.active, state.frozen, jnp.array(False)
        fired, fired_at, gaps = state.fired, state.fired_at, state.prev_gap
        stop_cause = state.stop_cause
        for i, (trig, action) in enumerate(self.triggers):
            cond, gap = self._trigger(i, trig, ctx, state)
            fire = cond & ~state.fired[i] & ~diverged
            fired = fired.at[i].set(fired[i] | fire)
            fired_at = fired_at.at[i].set(jnp.where(fire, t, fired_at[i]))
            gaps = gaps.at[i].set(gap)
            if action is None or action.stop:
                stop_cause = jnp.where(fire & ~stop, i, stop_cause)
                stop = stop | fire
            if action is not None and action.switch_optimizer is not None:
                active = jnp.where(fire, self.switch_index[i], active)
            if action is not None and action.freeze_schedule:
                frozen = frozen | fire
        lr, lr_app, mss = self._rates(state.clock, active, latest)

        ended = diverged | stop | (t >= spec.train.steps)
        status = jnp.where(diverged, DIVERGED, jnp.where(stop, STOPPED, jnp.where(ended, COMPLETED, RUNNING)))

        if self.sharp_triggers:  # S was solved at this step whatever its cadence: record it at the end
            solved = set(self.curvature.sharp.series()) if self.curvature.sharp else set()
            curv_valid = {name: ok | (ended & (name in solved)) for name, ok in curv_valid.items()}
        elif not self.rate_reads_sharpness:  # (measured above; validation refuses its stop rules)
            curv_values, curv_valid, curv_state, _, eig = curvature(ended)

        # The update, skipped (selected away) if the run ended at this step.
        grad_fn = jax.grad(loss_of)
        branches = [self._branch(k, grad_fn) for k in range(len(self.rules))]
        eig_in, lr_dir = self._directional(eig, curv_state, latest, state.clock, active)
        # A member that has ended (now, or before: under vmap an ended member's step still runs, selected
        # away) updates with rate 0: its update is discarded (`keep` below), and a rate of 0 makes an
        # adaptive `ode` rule integrate over an empty interval instead of holding up the pack's loop.
        halted = ended | (state.status != RUNNING)
        lr_update = jnp.where(halted, jnp.zeros_like(lr_app), lr_app)
        operands = (state.params, grad, state.d, lr_update, state.lr_prev, eig_in, lr_dir)
        d_new, extras_new = lax.switch(active, branches, operands, state.extras)
        params_new = jax.tree.map(lambda w, dw: w + dw, state.params, d_new)

        values: dict[str, Any] = {
            "loss": loss,
            "lr": lr,
            "lr_applied": lr_app,
            "mss": mss,
            "grad_norm": grad_norm,
        }
        if "ode.substeps" in self.cadence:  # the sub-steps of this step's update (none once ended)
            values.update(self._ode_counts(active, extras_new, ended))
        if "test_loss" in self.cadence:
            values["test_loss"] = self.fns.test_loss(state.params, data) if self.fns.test_loss else nan
        values.update({f"params.{k}": state.params[k] for k in self.param_names})
        for kind, every in self.measure_every.items():
            values.update(self._measure(kind, ended | (t % every == 0), state.params, data, lanes))
        out = {"step": t}
        for name, every in self.cadence.items():
            if every:
                out[name] = values[name]
                out[f"{name}/valid"] = ended | (t % every == 0)
        for name, value in curv_values.items():
            out[name] = value
            out[f"{name}/valid"] = curv_valid[name]

        keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(ended, a, b), old, new)  # noqa: E731
        new_state = State(
            t=jnp.where(ended, t, t + 1),
            params=keep(state.params, params_new),
            d=keep(state.d, d_new),
            extras=keep(state.extras, extras_new),
            active=active,
            lr_prev=jnp.where(ended, state.lr_prev, lr_app),
            clock=jnp.where(ended | frozen, state.clock, state.clock + 1),
            frozen=frozen,
            fired=fired,
            fired_at=fired_at,
            prev_gap=gaps,
            status=status.astype(jnp.int32),
            end_step=jnp.where(ended, t, -1).astype(jnp.int32),
            stop_cause=stop_cause.astype(jnp.int32),
            curvature=curv_state,
        )
        return new_state, out

    def _directional(
        self, eig: Eigenpairs | None, curv: dict, latest: dict, clock: jnp.ndarray, active: jnp.ndarray
    ) -> tuple[Eigenpairs | None, jnp.ndarray]:
        """What rules with ``directional`` read: this step's eigenpairs and the active rule's η_u (0 for
        rules without), its ``measured`` form reading the sharpness solved at this step."""
        zero = jnp.zeros((), self.dtype)
        if not any(self.directional_rates):
            return None, zero
        if eig is None:  # validation requires a sharpness measure (spec.semantic)
            raise ValueError("optimizer.directional needs the spec's sharpness measure")
        seen = {**latest, "sharpness": curv.get("last_sharpness", latest["sharpness"])}
        rates = [
            zero if rate is None else jnp.asarray(rate(clock, seen), self.dtype)
            for rate in self.directional_rates
        ]
        return eig, jnp.stack(rates)[active]

    def _ode_counts(self, active: jnp.ndarray, extras: tuple, ended: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """``ode_steps``: the active rule's sub-step counts of this step's update (0 for rules without
        counts, and at the step where the run ended: no update)."""
        zero = jnp.zeros((), jnp.int32)
        out = {"ode.substeps": zero, "ode.rejected": zero, "ode.capped": zero}
        for k, rule in enumerate(self.rules):
            if rule.counts is not None:
                mine = (active == k) & ~ended
                counts = rule.counts(extras[k])
                out = {name: jnp.where(mine, value, out[name]) for name, value in counts.items()}
        return out

    def _gauss_newton(self, data: Any) -> Any:
        """params ↦ the Gauss–Newton operator v ↦ Jᵀ(g·Jv) of the problem (MSE networks), or None."""
        gauss_newton = self.fns.gauss_newton
        return None if gauss_newton is None else (lambda p: gauss_newton(p, data))

    def _gram_dense(self, data: Any) -> Any:
        """params ↦ the problem's Gram blocks, residual and labels (MSE networks), or None."""
        gram_dense = self.fns.gram_dense
        return None if gram_dense is None else (lambda p: gram_dense(p, data))

    def _measure(
        self, kind: str, due: jnp.ndarray, params: Any, data: Any, lanes: Lanes
    ) -> dict[str, jnp.ndarray]:
        """A supervised measure's values, computed only at the steps where it is recorded."""
        measure = self.fns.measures[kind]

        def fn(p: Any, d: Any) -> dict[str, jnp.ndarray]:  # every series in the run's dtype
            return jax.tree.map(lambda x: jnp.asarray(x, self.dtype), measure(p, d))

        return lanes.when(due, lambda p: fn(p, data), params)

    def _branch(self, k: int, grad_fn: Any) -> Any:
        """Branch ``k`` of the optimizer switch: rule k's update, touching only its own extra state."""
        rule = self.rules[k]

        def branch(operands: tuple, extras: tuple) -> tuple[Any, tuple]:
            params, grad, d, lr, lr_prev, eig, lr_dir = operands
            inputs = StepInputs(params, grad, grad_fn, d, lr, lr_prev, eig, lr_dir)
            d_new, own = rule.update(inputs, extras[k])
            return d_new, extras[:k] + (own,) + extras[k + 1 :]

        return branch


# ------------------------------------------------------------------------------- jitted entry points


def _program(structure: Structure, hparams: Hyper, layout: Layout, axis: str | None = None) -> Program:
    spec = replace_floats(structure.template, hparams.floats, NOT_IN_PROGRAM.__contains__)
    return Program(spec, layout, hparams.seed, axis)


@cached_entry(static_argnums=(0, 2))
def init_state(structure: Structure, hparams: Hyper, layout: Layout, params: Any) -> State:
    """The initial state of a run (jitted; one compilation per structure)."""
    return _program(structure, hparams, layout).init(params)


@cached_entry(static_argnums=(0, 2, 3))
def run_chunk(
    structure: Structure,
    hparams: Hyper,
    layout: Layout,
    length: int,
    state: State,
    data: Any,
) -> tuple[State, dict[str, Any]]:
    """``length`` steps under ``lax.scan``; outputs are stacked per step with validity masks."""
    program = _program(structure, hparams, layout)
    return lax.scan(lambda s, _: program.step(s, data), state, None, length=length)


# A pack: programs of one structure, their hyperparameters, initial parameters and states stacked along a
# leading axis, run as one ``vmap`` over that axis (named PACK_AXIS; see engine.lanes).


@cached_entry(static_argnums=(0, 2))
def init_pack(structure: Structure, hparams: Hyper, layout: Layout, params: Any) -> State:
    """The stacked initial states of a pack (``hparams`` and ``params`` stacked along axis 0)."""
    return jax.vmap(lambda h, p: _program(structure, h, layout, PACK_AXIS).init(p), axis_name=PACK_AXIS)(
        hparams, params
    )


@cached_entry(static_argnums=(0, 2, 3, 6))
def run_pack_chunk(
    structure: Structure,
    hparams: Hyper,
    layout: Layout,
    length: int,
    state: State,
    data: Any,
    data_axis: int | None,
) -> tuple[State, dict[str, Any]]:
    """``run_chunk`` for every member of a pack at once; ``data_axis`` None: one dataset for all."""

    def one(h: Hyper, s: State, d: Any) -> tuple[State, dict[str, Any]]:
        program = _program(structure, h, layout, PACK_AXIS)
        return lax.scan(lambda c, _: program.step(c, d), s, None, length=length)

    return jax.vmap(one, in_axes=(0, 0, data_axis), axis_name=PACK_AXIS)(hparams, state, data)
