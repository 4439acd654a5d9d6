"""Update rules in displacement form, so a run can switch optimizers mid-flight.

Every rule maps the current displacement d_t = w_t − w_{t−1} (carried explicitly, never recomputed
as a difference of iterates) to the next one, and the engine applies w_{t+1} = w_t + d_{t+1}. Keeping
d as its own accumulator is what makes heavy ball robust in float32: the literal form
``w + β(w − w_prev)`` has a rounding fixed point where |w − w_prev| is a few ulps and never decays
(docs/specs.md, "Heavy ball in float32" under `precision`); the accumulated d decays geometrically. Because d
is shared by all rules, a GD → heavy-ball switch carries the displacement, as paper 000 requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from eosdsl.dynamics.flow import euler_step, rk4_step
from eosdsl.optim.dopri5 import integrate
from eosdsl.spec import models as m

Params = Any
Resolve = Callable[[object], jnp.ndarray]


class Eigenpairs(NamedTuple):
    """The top eigenpairs of ∇²L(w_t) the step solved, for rules that act along them."""

    values: jnp.ndarray  # (k,) descending
    vectors: jnp.ndarray  # (k, P) orthonormal rows over the flattened parameters
    fresh: jnp.ndarray  # bool: solved at this step (False: the values are stale or blank)


class StepInputs(NamedTuple):
    """What a rule sees at step t."""

    params: Params  # w_t
    grad: Params  # ∇L(w_t)
    grad_fn: Callable[[Params], Params]  # ∇L at another point (Nesterov's look-ahead)
    d: Params  # d_t = w_t − w_{t−1}
    lr: jnp.ndarray  # applied learning rate η_t
    lr_prev: jnp.ndarray  # applied learning rate of the previous step (torch buffer form)
    eig: Eigenpairs | None = None  # this step's top eigenpairs (rules with ``directional``)
    lr_dir: jnp.ndarray | None = None  # η_u of a ``directional`` rule at this step


class Rule(NamedTuple):
    """An optimizer: its extra state, its update of d, its applied rate, its MSS and (``ode`` rules) the
    sub-step counts of its last update, from its state (the ``ode_steps`` series)."""

    init: Callable[[Params], Any]
    update: Callable[[StepInputs, Any], tuple[Params, Any]]
    applied_lr: Callable[[jnp.ndarray], jnp.ndarray]
    mss: Callable[[jnp.ndarray], jnp.ndarray]
    counts: Callable[[Any], dict[str, jnp.ndarray]] | None = None  # an ``ode`` rule's step counts


def _tree_axpby(a: Any, x: Params, b: Any, y: Params) -> Params:
    return jax.tree.map(lambda xi, yi: a * xi + b * yi, x, y)


def _unbounded_mss(lr: jnp.ndarray) -> jnp.ndarray:
    """MSS = ∞ (user dynamics: no quadratic stability limit), shaped and typed like ``lr``."""
    return jnp.inf + 0.0 * lr


def _no_state(_: Params) -> tuple[()]:
    return ()


def gd() -> Rule:
    """Gradient descent: d_{t+1} = −η ∇L(w_t). MSS = 2/η."""

    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        return jax.tree.map(lambda g: -s.lr * g, s.grad), state

    return Rule(_no_state, update, lambda lr: lr, lambda lr: 2.0 / lr)


def directional_gd(k: int, select: str, rest: str) -> Rule:
    """GD with its own rate η_u along the top eigendirections (paper 004 App. G, Fig. 10).

    With g = ∇L(w_t), (λ_i, v_i) the step's top-k eigenpairs, U = {i ≤ k : λ_i > 2/η} (``select``
    ``unstable``) or all k (``top``) and P g = Σ_{i∈U} (v_iᵀg) v_i:
    d_{t+1} = −η (g − P g) − η_u P g (``rest`` ``keep``) or −η_u P g (``drop``). At a step without a
    fresh solve, U = ∅ and the rest is kept: plain GD. MSS = 2/η (of the unmodified directions).
    """

    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        flat, unravel = ravel_pytree(s.grad)
        values, vectors = s.eig.values[:k], s.eig.vectors[:k]
        chosen = values > 2.0 / s.lr if select == "unstable" else jnp.ones((k,), bool)
        chosen = chosen & s.eig.fresh
        along = jnp.where(chosen, vectors @ flat, 0.0) @ vectors  # P g
        rest_rate = s.lr if rest == "keep" else jnp.where(s.eig.fresh, 0.0, s.lr)
        return unravel(-rest_rate * (flat - along) - s.lr_dir * along), state

    return Rule(_no_state, update, lambda lr: lr, lambda lr: 2.0 / lr)


def heavy_ball(beta: jnp.ndarray, convention: str, form: str) -> Rule:
    """Polyak heavy ball (paper 000 eq. 1): d_{t+1} = β d_t − η ∇L(w_t), w_{t+1} = w_t + d_{t+1}.

    ``form="torch_buffer"`` is ``torch.optim.SGD(momentum=β)``: b_{t+1} = β b_t + ∇L(w_t),
    d_{t+1} = −η_t b_{t+1}, i.e. d_{t+1} = β(η_t/η_{t−1}) d_t − η_t ∇L(w_t), identical to eq. (1) at a
    constant rate. The buffer b_t = −d_t/η_{t−1} is recovered from the shared displacement (so a switch
    into this form carries it), except after a step at η = 0 (a warmup from 0), where d_t = 0 has lost
    it and the rule's own copy of b_t is used. MSS = 2(1+β)/η_applied; ``gd_equivalent`` applies (1+β)·lr.
    """

    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        return _tree_axpby(beta, s.d, -s.lr, s.grad), state

    def update_torch(s: StepInputs, buf: Params) -> tuple[Params, Params]:
        known = s.lr_prev != 0
        safe_prev = jnp.where(known, s.lr_prev, 1.0)
        buf = jax.tree.map(lambda d, b, g: beta * jnp.where(known, -d / safe_prev, b) + g, s.d, buf, s.grad)
        return jax.tree.map(lambda b: -s.lr * b, buf), buf

    def init_torch(params: Params) -> Params:
        return jax.tree.map(jnp.zeros_like, params)

    scale = (1.0 + beta) if convention == "gd_equivalent" else 1.0
    mss = lambda lr: 2.0 * (1.0 + beta) / lr  # noqa: E731
    if form == "torch_buffer":
        return Rule(init_torch, update_torch, lambda lr: scale * lr, mss)
    return Rule(_no_state, update, lambda lr: scale * lr, mss)


def nesterov(beta: jnp.ndarray, convention: str) -> Rule:
    """Nesterov: d_{t+1} = β d_t − η ∇L(w_t + β d_t).

    MSS = 2(1+β)/((1+2β)η); ``gd_equivalent`` applies η = lr(1+β)/(1+2β) so the MSS is 2/lr.
    """

    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        look = _tree_axpby(1.0, s.params, beta, s.d)
        return _tree_axpby(beta, s.d, -s.lr, s.grad_fn(look)), state

    scale = (1.0 + beta) / (1.0 + 2.0 * beta) if convention == "gd_equivalent" else 1.0
    return Rule(
        _no_state, update, lambda lr: scale * lr, lambda lr: 2.0 * (1.0 + beta) / ((1.0 + 2.0 * beta) * lr)
    )


def _preconditioned(
    transform: optax.GradientTransformation, mss: Callable[[jnp.ndarray], jnp.ndarray]
) -> Rule:
    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        direction, state = transform.update(s.grad, state, s.params)
        return jax.tree.map(lambda u: -s.lr * u, direction), state

    return Rule(transform.init, update, lambda lr: lr, mss)


def adam(b1: jnp.ndarray, b2: jnp.ndarray, eps: jnp.ndarray) -> Rule:
    """Adam via ``optax.scale_by_adam``: d = −η m̂/(√v̂ + ε).

    MSS of the preconditioned Hessian P⁻¹H: (2 + 2β₁)/((1 − β₁)η) (Cohen et al. 2022).
    """
    return _preconditioned(optax.scale_by_adam(b1, b2, eps), lambda lr: (2.0 + 2.0 * b1) / ((1.0 - b1) * lr))


def rmsprop(decay: jnp.ndarray, eps: jnp.ndarray) -> Rule:
    """RMSProp via ``optax.scale_by_rms``: d = −η g/√(ν + ε). MSS of P⁻¹H: 2/η."""
    return _preconditioned(optax.scale_by_rms(decay=decay, eps=eps), lambda lr: 2.0 / lr)


def _fields(exprs: dict[str, str], scope: Any, dtype: Any) -> Callable[[Params, jnp.ndarray], Params]:
    """(w, η) ↦ {name: expression at w} for the listed parameters, 0 for the others (zeros_like)."""

    def fn(params: Params, lr: jnp.ndarray) -> Params:
        names = {**params, "lr": lr}
        return {
            k: (jnp.asarray(scope.eval(exprs[k], **names), dtype) * jnp.ones_like(v) if k in exprs else None)
            for k, v in params.items()
        }

    return fn


def dynamics_map(update: dict[str, str], scope: Any) -> Rule:
    """User-defined dynamics w_{t+1} = F(w_t) (``{kind: map}``): d_{t+1} = F(w_t) − w_t, parameters not in
    ``update`` unchanged. MSS = ∞ (not a gradient method)."""
    new_values = _fields(update, scope, scope.dtype)

    def step(s: StepInputs, state: Any) -> tuple[Params, Any]:
        new = new_values(s.params, s.lr)
        return {
            k: (new[k] - w if new[k] is not None else jnp.zeros_like(w)) for k, w in s.params.items()
        }, state

    return Rule(_no_state, step, lambda lr: lr, _unbounded_mss)


class OdeSteps(NamedTuple):
    """An adaptive ``ode`` rule's state: the integrator's proposed next step size (0 before the first
    engine step: chosen by the starting-step algorithm) and the counts of the last engine step."""

    h: jnp.ndarray  # the step size the next engine step tries first
    substeps: jnp.ndarray  # int32: accepted sub-steps of the last engine step
    rejected: jnp.ndarray  # int32: rejected sub-steps of the last engine step
    capped: jnp.ndarray  # int32: 1 where ``max_substeps`` forced an unconverged last sub-step


def _ode_field(rhs: dict[str, str], scope: Any) -> Callable[[Params], Params]:
    """w ↦ f(w): the right-hand sides of the listed parameters, 0 for the others."""
    field = _fields(rhs, scope, scope.dtype)

    def f(w: Params) -> Params:
        out = field(w, jnp.zeros((), scope.dtype))
        return {k: out[k] if out[k] is not None else jnp.zeros_like(v) for k, v in w.items()}

    return f


def dynamics_ode(rhs: dict[str, str], scope: Any, method: str, substeps: int) -> Rule:
    """An ODE dw/dτ = f(w) (``{kind: ode}``) advanced by Δτ = η per engine step, in ``substeps`` steps of
    h = Δτ/substeps: classical RK4 (w + h/6·(k₁ + 2k₂ + 2k₃ + k₄), global error O(h⁴)) or explicit
    Euler (w + h·f(w), O(h)); parameters not in ``rhs`` are constant. d_{t+1} = w(τ + Δτ) − w(τ). MSS = ∞.
    Its step counts (``ode_steps``): ``substeps`` accepted, none rejected, never capped."""
    f = _ode_field(rhs, scope)
    advance = euler_step if method == "euler" else rk4_step

    def step(s: StepInputs, state: Any) -> tuple[Params, Any]:
        h = s.lr / substeps
        end = jax.lax.fori_loop(0, substeps, lambda _, w: advance(f, w, h), s.params)
        return jax.tree.map(lambda a, b: a - b, end, s.params), state

    def counts(_: Any) -> dict[str, jnp.ndarray]:
        zero = jnp.zeros((), jnp.int32)
        return {"ode.substeps": zero + substeps, "ode.rejected": zero, "ode.capped": zero}

    return Rule(_no_state, step, lambda lr: lr, _unbounded_mss, counts)


def dynamics_ode_adaptive(
    rhs: dict[str, str], scope: Any, rtol: jnp.ndarray, atol: jnp.ndarray, max_substeps: int
) -> Rule:
    """An ODE dw/dτ = f(w) (``{kind: ode, method: dopri5}``) advanced by Δτ = η per engine step by adaptive
    Dormand–Prince 5(4) sub-steps (:mod:`eosdsl.optim.dopri5`, Hairer–Nørsett–Wanner II.4–5) to the local
    tolerance ‖err‖ ≤ 1, ‖err‖ = RMS of err/(atol + rtol·max(|w|, |w_new|)) over the flattened parameters,
    landing exactly at τ + Δτ; at most ``max_substeps`` sub-steps (accepted or rejected) per engine step,
    the last one forced to land (``ode.capped`` = 1 when it missed the tolerance, or when the integration
    stopped at a non-finite w or f(w)). The first sub-step of an
    engine step tries the step size the previous one proposed (state: :class:`OdeSteps`), so the run is
    a deterministic function of its state and resumes bit for bit. d_{t+1} = w(τ + Δτ) − w(τ). MSS = ∞."""
    f = _ode_field(rhs, scope)

    def init(params: Params) -> OdeSteps:
        zero = jnp.zeros((), jnp.int32)
        return OdeSteps(jnp.zeros((), scope.dtype), zero, zero, zero)

    def step(s: StepInputs, state: OdeSteps) -> tuple[Params, OdeSteps]:
        flat, unravel = ravel_pytree(s.params)
        field = lambda y: ravel_pytree(f(unravel(y)))[0]  # noqa: E731
        out = integrate(field, flat, s.lr, rtol, atol, max_substeps, state.h)
        d = unravel(out.y - flat)
        return d, OdeSteps(out.h_next, out.accepted, out.rejected, out.capped.astype(jnp.int32))

    def counts(state: OdeSteps) -> dict[str, jnp.ndarray]:
        return {"ode.substeps": state.substeps, "ode.rejected": state.rejected, "ode.capped": state.capped}

    return Rule(init, step, lambda lr: lr, _unbounded_mss, counts)


def build_rule(opt: m.Optimizer, resolve: Resolve) -> Rule:
    """The update rule of an optimizer model, with its numbers resolved to (traced) values."""
    if isinstance(opt, m.GD):
        if opt.directional is not None:
            return directional_gd(opt.directional.k, opt.directional.select, opt.directional.rest)
        return gd()
    if isinstance(opt, m.HeavyBall):
        return heavy_ball(resolve(opt.beta), opt.lr_convention, opt.form)
    if isinstance(opt, m.Nesterov):
        return nesterov(resolve(opt.beta), opt.lr_convention)
    if isinstance(opt, m.Adam):
        return adam(resolve(opt.b1), resolve(opt.b2), resolve(opt.eps))
    if isinstance(opt, m.RMSProp):
        return rmsprop(resolve(opt.decay), resolve(opt.eps))
    if isinstance(opt, m.Map):
        return dynamics_map(opt.update, resolve)
    if isinstance(opt, m.Ode) and opt.method == "dopri5":
        return dynamics_ode_adaptive(opt.rhs, resolve, resolve(opt.rtol), resolve(opt.atol), opt.max_substeps)
    if isinstance(opt, m.Ode):
        return dynamics_ode(opt.rhs, resolve, opt.method, opt.substeps)
    raise TypeError(f"unknown optimizer {opt!r}")
