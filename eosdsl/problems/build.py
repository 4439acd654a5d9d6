"""Turn a problem model into host-side inputs and traceable loss functions.

Two halves, because numbers in a spec are traced: :func:`host_problem` runs once per run on the host
(initial parameters, generated data and its content hash, reference values), and
:func:`problem_fns` runs inside the compiled program, where the spec's floats are tracers.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from eosdsl.data.sparse_regression import (
    make_sparse_regression,
    min_l1_interpolator,
    min_l2_interpolator,
    population_risk,
)
from eosdsl.spec import models as m
from eosdsl.spec.networks import SupervisedProblem
from eosdsl.spec.scope import Scope
from eosdsl.spec.toy import as_toy

Params = dict[str, Any]
Data = dict[str, Any]


class HostProblem(NamedTuple):
    """Concrete inputs of one run."""

    params: Params  # initial parameters, name → array (or group → subtree) of the run's dtype
    data: Data  # arrays the program reads (inputs, not constants, so grids over data share a compile)
    fingerprints: dict[str, str]  # content hashes of generated/loaded data (enter the run identity)
    references: dict[str, float]  # reference values stored with the run (e.g. interpolator baselines)
    network: tuple | None = None  # a supervised problem's network config (static, hashable)


class ProblemFns(NamedTuple):
    """Traceable functions of (params, data)."""

    loss: Callable[[Params, Data], jnp.ndarray]
    test_loss: Callable[[Params, Data], jnp.ndarray] | None
    measures: dict[str, Callable[[Params, Data], dict[str, jnp.ndarray]]] = {}  # supervised measures
    gauss_newton: Callable[[Params, Data], Callable[[jnp.ndarray], jnp.ndarray]] | None = None  # MSE nets
    gram_dense: Callable[[Params, Data], dict[str, Any]] | None = None  # MSE nets: Gram blocks, D, Y


def _toy_env(toy: m.ToyProblem, scope: Scope, params: Params) -> dict[str, Any]:
    env = {**scope.values, **{k: scope(v) for k, v in toy.coefficients.items()}, **params}
    for name, source in toy.definitions.items():
        env[name] = scope.eval(source, **env)
    return env


def host_problem(problem: m.Problem, scope: Scope, seed: int = 0) -> HostProblem:
    """Initial parameters, data and references of ``problem`` (numbers resolved in ``scope``)."""
    dtype = scope.dtype
    if isinstance(problem, SupervisedProblem):
        from eosdsl.problems import supervised  # networks: flax and the data pipeline, imported on use

        precision = "float64" if np.dtype(dtype) == np.float64 else "float32"
        params, data, ds, config = supervised.host_inputs(problem, precision, seed)
        references = {
            "n_train": float(ds.n_train),
            "n_test": float(ds.n_test),
            "n_outputs": float(supervised.config_out(config)),
        }
        return HostProblem(
            params, data, {"dataset": ds.fingerprint}, references, tuple(sorted(config.items()))
        )
    toy = as_toy(problem)
    if toy is not None:
        params = {
            name: np.asarray([scope(x) for x in value] if isinstance(value, list) else scope(value), dtype)
            for name, value in toy.params.items()
        }
        return HostProblem(params, {}, {}, {})
    if isinstance(problem, m.LdnRegression):
        ds = make_sparse_regression(
            problem.n, problem.d, problem.mu, problem.sigma2, problem.sparsity, problem.data_seed
        )
        alpha = float(scope(problem.alpha))
        c = float(scope(problem.loss_scale))
        params = {"u": np.full(problem.d, alpha, dtype), "v": np.full(problem.d, alpha, dtype)}
        data = {
            "X": ds.X.astype(dtype),
            "y": ds.y.astype(dtype),
            "w_star": ds.w_star.astype(dtype),
            "mu": ds.mu.astype(dtype),
            "sigma2": np.asarray(ds.sigma2, dtype),
        }
        references = {
            "test_loss.min_l1": float(population_risk(min_l1_interpolator(ds.X, ds.y), ds, c)),
            "test_loss.min_l2": float(population_risk(min_l2_interpolator(ds.X, ds.y), ds, c)),
        }
        return HostProblem(params, data, {"sparse_regression": ds.fingerprint}, references)
    raise TypeError(f"unknown problem {problem!r}")


def problem_fns(problem: m.Problem, scope: Scope, network: tuple | None = None) -> ProblemFns:
    """Loss (and test loss where defined) as functions of (params, data)."""
    if isinstance(problem, SupervisedProblem):
        from eosdsl.problems import supervised

        fns = supervised.traced_fns(problem, dict(network or ()))
        operators = ("loss", "test_loss", "gauss_newton", "gram_dense")
        measures = {k: v for k, v in fns.items() if k not in operators}
        return ProblemFns(
            fns["loss"], fns["test_loss"], measures, fns.get("gauss_newton"), fns.get("gram_dense")
        )
    toy = as_toy(problem)
    if toy is not None:

        def toy_loss(params: Params, data: Data) -> jnp.ndarray:
            env = _toy_env(toy, scope, params)
            return jnp.sum(scope.eval(toy.objective, **env))

        return ProblemFns(toy_loss, None)
    if isinstance(problem, m.LdnRegression):
        c = scope(problem.loss_scale)

        def ldn_loss(params: Params, data: Data) -> jnp.ndarray:
            # Paper 000 eq. (2): f(x) = <u⊙u − v⊙v, x>, loss (c/N) Σ (f(x_n) − y_n)².
            w = params["u"] ** 2 - params["v"] ** 2
            r = data["X"] @ w - data["y"]
            return c * jnp.mean(r**2)

        def ldn_test_loss(params: Params, data: Data) -> jnp.ndarray:
            # The closed-form population risk, on the traced data arrays (the same function computes
            # the interpolator references on the host).
            teacher = SimpleNamespace(w_star=data["w_star"], mu=data["mu"], sigma2=data["sigma2"])
            return population_risk(params["u"] ** 2 - params["v"] ** 2, teacher, c)

        return ProblemFns(ldn_loss, ldn_test_loss)
    raise TypeError(f"unknown problem {problem!r}")
