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

from eosdsl.spec import models as m

Params = Any
Resolve = Callable[[object], jnp.ndarray]


class StepInputs(NamedTuple):
    """What a rule sees at step t."""

    params: Params  # w_t
    grad: Params  # ∇L(w_t)
    grad_fn: Callable[[Params], Params]  # ∇L at another point (Nesterov's look-ahead)
    d: Params  # d_t = w_t − w_{t−1}
    lr: jnp.ndarray  # applied learning rate η_t
    lr_prev: jnp.ndarray  # applied learning rate of the previous step (torch buffer form)


class Rule(NamedTuple):
    """An optimizer: its extra state, its update of d, its applied rate and its MSS."""

    init: Callable[[Params], Any]
    update: Callable[[StepInputs, Any], tuple[Params, Any]]
    applied_lr: Callable[[jnp.ndarray], jnp.ndarray]
    mss: Callable[[jnp.ndarray], jnp.ndarray]


def _tree_axpby(a: Any, x: Params, b: Any, y: Params) -> Params:
    return jax.tree.map(lambda xi, yi: a * xi + b * yi, x, y)


def _no_state(_: Params) -> tuple[()]:
    return ()


def gd() -> Rule:
    """Gradient descent: d_{t+1} = −η ∇L(w_t). MSS = 2/η."""

    def update(s: StepInputs, state: Any) -> tuple[Params, Any]:
        return jax.tree.map(lambda g: -s.lr * g, s.grad), state

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


def build_rule(opt: m.Optimizer, resolve: Resolve) -> Rule:
    """The update rule of an optimizer model, with its numbers resolved to (traced) values."""
    if isinstance(opt, m.GD):
        return gd()
    if isinstance(opt, m.HeavyBall):
        return heavy_ball(resolve(opt.beta), opt.lr_convention, opt.form)
    if isinstance(opt, m.Nesterov):
        return nesterov(resolve(opt.beta), opt.lr_convention)
    if isinstance(opt, m.Adam):
        return adam(resolve(opt.b1), resolve(opt.b2), resolve(opt.eps))
    if isinstance(opt, m.RMSProp):
        return rmsprop(resolve(opt.decay), resolve(opt.eps))
    raise TypeError(f"unknown optimizer {opt!r}")
