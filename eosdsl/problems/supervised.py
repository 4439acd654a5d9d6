"""``problem: {kind: supervised}``: a dataset (source + preprocessing), a network and a loss.

The host half loads the data (its content hash enters the run identity) and initializes the network
from the spec's ``seed``; the traced half is the full-batch loss L(θ) = loss(f_θ(X), Y) and the
measurement functions of the supervised measures (accuracy, group norms, dead units, residual).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from eosdsl import losses
from eosdsl.curvature.gram import gram_matvec, gram_scale
from eosdsl.data import Dataset, DatasetNotFoundError, images, pipeline, synthetic
from eosdsl.models.build import ModelFns, build_model
from eosdsl.spec import networks as n

Params = Any
Data = dict[str, Any]


def load_data(problem: n.SupervisedProblem) -> Dataset:
    """The dataset of ``problem``: its source, then its ``pipeline``."""
    d = problem.data
    if isinstance(d, n.Rank2Data):
        ds = synthetic.rank2(d=d.d, n=d.n, n_test=d.n_test, seed=d.seed)
    elif isinstance(d, n.GaussianSpectrumData):
        ds = synthetic.gaussian_spectrum_binary(
            d.spectrum,
            n=d.n,
            d=d.d,
            n_test=d.n_test,
            seed=d.seed,
            teacher_seed=d.teacher_seed,
            spectrum_of=d.spectrum_of,
            center=d.center,
            labels=d.labels,
        )
    elif isinstance(d, n.GaussianMixtureData):
        ds = synthetic.gaussian_mixture(
            n=d.n, d=d.d, k=d.k, separation=d.separation, seed=d.seed, n_test=d.n_test
        )
    elif isinstance(d, n.TeacherStudentData):
        ds = synthetic.teacher_student(
            n=d.n,
            d=d.d,
            width=d.width,
            activation=d.activation,
            seed=d.seed,
            n_test=d.n_test,
            out_dim=d.out_dim,
            noise_std=d.noise_std,
        )
    elif isinstance(d, n.FashionMnistData):
        ds = images.load_fashion_mnist(d.path)
    elif isinstance(d, n.Cifar10Data):
        if d.path is None:
            raise DatasetNotFoundError(
                "CIFAR-10 cannot be downloaded here: set problem.data.path to a directory holding "
                f"cifar-10-batches-py ({', '.join(images.CIFAR10_FILES)})"
            )
        ds = images.load_cifar10(d.path)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown data source {d!r}")
    return pipeline(ds, problem.pipeline)


def config_out(config: dict[str, Any]) -> int:
    """The number of network outputs k of a network config."""
    return int(config.get("out", config.get("k", 1)))


def _outputs(ds: Dataset) -> int:
    if ds.y_train.ndim == 2:
        return int(ds.y_train.shape[1])
    if np.issubdtype(ds.y_train.dtype, np.integer) and ds.n_classes:
        return int(ds.n_classes)
    return 1


def network_config(problem: n.SupervisedProblem, ds: Dataset, precision: str) -> dict[str, Any]:
    """The network's config: the spec's fields plus the sizes the data decides and the dtype."""
    spec = problem.model.model_dump()
    kind = spec.pop("kind")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    shape, out = tuple(int(s) for s in ds.input_shape), _outputs(ds)
    derived = {
        "mlp": {"in_dim": math.prod(shape), "out": out},
        "deep_linear": {"in_dim": math.prod(shape), "out": out},
        "two_layer_linear": {"d": math.prod(shape), "k": out},
    }.get(kind, {"input_shape": shape, "out": out})
    return {"kind": kind, **config, **derived, "dtype": precision}


@lru_cache(maxsize=64)
def _network(frozen: tuple) -> ModelFns:
    config = dict(frozen)
    return build_model(config.pop("kind"), **config)


def network(config: dict[str, Any]) -> ModelFns:
    """The (cached) model functions of a network config."""
    return _network(tuple(sorted(config.items())))


def loss_function(loss: n.Loss) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if isinstance(loss, n.MSELoss):
        return lambda f, y: losses.mse(f, y, loss.convention, loss.scale)
    if isinstance(loss, n.HuberLoss):
        return lambda f, y: losses.huber(f, y, loss.delta, loss.convention, loss.scale)
    return losses.cross_entropy


def host_inputs(
    problem: n.SupervisedProblem, precision: str, seed: int
) -> tuple[Params, Data, Dataset, dict]:
    """(initial params, program data, dataset, network config)."""
    ds = load_data(problem)
    config = network_config(problem, ds, precision)
    params = network(config).init(jax.random.PRNGKey(seed))
    float_dtype = np.float64 if precision == "float64" else np.float32

    def cast(x: np.ndarray) -> np.ndarray:
        return x.astype(float_dtype) if np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8 else x

    data = {"x": cast(ds.x_train), "y": cast(ds.y_train)}
    if ds.n_test:
        data.update({"x_test": cast(ds.x_test), "y_test": cast(ds.y_test)})
    params = jax.tree.map(lambda p: np.asarray(p, float_dtype), params)
    return params, data, ds, config


def traced_fns(problem: n.SupervisedProblem, config: dict[str, Any]) -> dict[str, Callable]:
    """loss, test_loss and the measurement functions, each a function of (params, data)."""
    net, loss = network(config), loss_function(problem.loss)

    def train_loss(params: Params, data: Data) -> jax.Array:
        return loss(net.apply(params, data["x"]), data["y"])

    def test_loss(params: Params, data: Data) -> jax.Array:
        return loss(net.apply(params, data["x_test"]), data["y_test"])

    def accuracy(params: Params, data: Data) -> dict[str, jax.Array]:
        return {"accuracy": losses.accuracy(net.apply(params, data["x"]), data["y"])}

    def test_accuracy(params: Params, data: Data) -> dict[str, jax.Array]:
        return {"test_accuracy": losses.accuracy(net.apply(params, data["x_test"]), data["y_test"])}

    def group_norms(params: Params, data: Data) -> dict[str, jax.Array]:
        """‖θ_g‖² and ‖∇_g L‖² per parameter group (paper 001: ‖A‖² of the output layer)."""
        grads = jax.grad(train_loss)(params, data)
        out = {}
        for name, group in net.groups(params).items():
            out[f"norm2.{name}"] = sum(jnp.sum(x * x) for x in jax.tree.leaves(group))
            out[f"grad_norm2.{name}"] = sum(jnp.sum(g * g) for g in jax.tree.leaves(grads[name]))
        return out

    def dead_units(params: Params, data: Data) -> dict[str, jax.Array]:
        """Hidden units whose pre-activation is ≤ 0 on every training input (paper 000 App. E.2)."""
        pre = net.hidden(params, data["x"])
        return {f"dead_units.layer{i}": jnp.sum(jnp.all(z <= 0, axis=0)) for i, z in enumerate(pre)}

    def residual(params: Params, data: Data) -> dict[str, jax.Array]:
        """‖D‖ and DᵀF for the residual D = F − Y (paper 001 §3)."""
        f = net.apply(params, data["x"])
        dres = f - losses.align_targets(f, data["y"])
        return {"residual.norm": jnp.sqrt(jnp.sum(dres * dres)), "residual.dot": jnp.sum(dres * f)}

    fns = {
        "loss": train_loss,
        "test_loss": test_loss,
        "accuracy": accuracy,
        "test_accuracy": test_accuracy,
        "group_norms": group_norms,
        "dead_units": dead_units,
        "residual": residual,
    }
    if isinstance(problem.loss, n.MSELoss):
        c = gram_scale(problem.loss.convention, config_out(config), problem.loss.scale)

        def gauss_newton(params: Params, data: Data) -> Callable[[jax.Array], jax.Array]:
            """v ↦ (c/n)Jᵀ(Jv): the Gauss–Newton part of the MSE Hessian (Gram/NTK sharpness operator)."""
            return gram_matvec(net.apply, params, data["x"], c)

        fns["gauss_newton"] = gauss_newton
    return fns


def group_names(model: n.Network) -> list[str]:
    """The parameter groups of a network (they depend on its config, not on the data sizes)."""
    spec = model.model_dump()
    kind = spec.pop("kind")
    sizes = {"mlp": {"in_dim": 4}, "deep_linear": {"in_dim": 4}, "two_layer_linear": {"d": 4}}.get(
        kind, {"input_shape": (32, 32, 3)}
    )
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    fns = network({"kind": kind, **config, **sizes, "dtype": "float32"})  # shapes only
    shapes = jax.eval_shape(fns.init, jax.random.PRNGKey(0))
    return list(fns.groups(shapes))


def series_names(kind: str, config: dict[str, Any], group_names: list[str]) -> list[str]:
    """Series a supervised measure records (known before tracing)."""
    if kind == "group_norms":
        return [f"{p}.{g}" for g in group_names for p in ("norm2", "grad_norm2")]
    if kind == "dead_units":
        return [f"dead_units.layer{i}" for i in range(len(config.get("widths") or ()))]
    if kind == "residual":
        return ["residual.norm", "residual.dot"]
    return [kind]
