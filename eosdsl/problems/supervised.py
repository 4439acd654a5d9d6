"""``problem: {kind: supervised}``: a dataset (source + preprocessing), a network and a loss.

The host half loads the data (its content hash enters the run identity) and initializes the network
from the spec's ``seed``; the traced half is the full-batch loss L(θ) = loss(f_θ(X), Y) and the
measurement functions of the supervised measures (accuracy, group norms, dead units, residual).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from eosdsl.cache import cached_dataset, cached_params, dataset_key
from eosdsl.curvature.gram import gram_blocks, gram_matvec, gram_scale
from eosdsl.data import Dataset, DatasetNotFoundError, images, pipeline, synthetic
from eosdsl.data.preprocess import parse_step
from eosdsl.models.build import ModelFns, build_model
from eosdsl.problems import losses
from eosdsl.spec import networks as n

Params = Any
Data = dict[str, Any]


def load_data(problem: n.SupervisedProblem) -> Dataset:
    """The dataset of ``problem``: its source, then its ``pipeline``. A dataset read from files is
    served from the dataset cache (:mod:`eosdsl.cache`) when a previous run stored it."""
    files = source_files(problem.data)
    if files is None:
        return _load_data(problem)

    def key() -> str:
        document = problem.model_dump(mode="json")
        source = {k: v for k, v in document["data"].items() if k != "path"}  # content, not location
        return dataset_key(source, files, document["pipeline"])

    return cached_dataset(key, lambda: _load_data(problem))


def source_files(data: n.DataSource) -> list[Path] | None:
    """The files a file-backed data source reads (None: a generated source, or files missing)."""
    if isinstance(data, n.FashionMnistData):
        return images.fashion_mnist_files(data.path)
    if isinstance(data, n.Cifar10Data) and data.path is not None:
        return images.cifar10_files(data.path)
    return None


def _load_data(problem: n.SupervisedProblem) -> Dataset:
    """Read or generate ``problem``'s data and apply its pipeline (no cache)."""
    d, steps = problem.data, list(problem.pipeline)
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
            labels=d.labels,
        )
    elif isinstance(d, n.FashionMnistData):  # a leading take_first reads only the samples it keeps
        name, params = parse_step(steps[0]) if steps else ("", {})
        first = (params.get("n_train"), params.get("n_test")) if name == "take_first" else None
        ds = images.load_fashion_mnist(d.path, first=first)
        steps = steps[1:] if first is not None else steps
    elif isinstance(d, n.Cifar10Data):
        if d.path is None:
            raise DatasetNotFoundError(
                "CIFAR-10 cannot be downloaded here: set problem.data.path to a directory holding "
                f"cifar-10-batches-py ({', '.join(images.CIFAR10_FILES)})"
            )
        ds = images.load_cifar10(d.path)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown data source {d!r}")
    return pipeline(ds, steps)


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
    float_dtype = np.float64 if precision == "float64" else np.float32

    def initialize() -> Params:
        params = network(config).init(jax.random.PRNGKey(seed))
        return jax.tree.map(lambda p: np.asarray(p, float_dtype), params)

    params = cached_params({"network": config, "seed": seed}, initialize)

    def cast(x: np.ndarray) -> np.ndarray:
        return x.astype(float_dtype) if np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8 else x

    data = {"x": cast(ds.x_train), "y": cast(ds.y_train)}
    if ds.n_test:
        data.update({"x_test": cast(ds.x_test), "y_test": cast(ds.y_test)})
    return params, data, ds, config


def chunked_sum(
    sum_fn: Callable[..., Any], params: Params, arrays: tuple[jax.Array, ...], chunk: int | None
) -> Any:
    """Σ_c sum_fn(params, *arrays[c]) over consecutive chunks c of ``chunk`` examples (axis 0).

    ``sum_fn`` returns a pytree of sums over the examples it is given. With ``chunk`` ``None`` or ≥ n it
    is called once on everything. Otherwise the ⌊n/chunk⌋ full chunks run under ``lax.scan`` over their
    index (each a ``dynamic_slice`` of ``arrays``: the full arrays are never copied), the body under
    ``jax.checkpoint``, and a last chunk of n mod chunk examples is added after the scan. The checkpoint
    makes reverse mode save only each chunk's *inputs* (the index; ``params`` and ``arrays`` are loop
    invariants) and recompute the chunk's activations, and it carries over to forward-over-reverse:
    ``jax.jvp(jax.grad(·))`` and ``jax.linearize(jax.value_and_grad(·))`` of a loss built on this keep
    one chunk's activations at a time (``tests/test_chunked.py`` measures it). The checkpoint must
    enclose the reduction, not only the network: with only ``apply`` under it, the linearization of
    the gradient kept every chunk's activations again (measured with jax 0.10.2).
    """
    size = arrays[0].shape[0]
    if chunk is None or chunk >= size:
        return sum_fn(params, *arrays)
    full, rest = divmod(size, chunk)

    def body(p: Params, i: jax.Array) -> Any:
        return sum_fn(p, *(lax.dynamic_slice_in_dim(a, i * chunk, chunk) for a in arrays))

    body = jax.checkpoint(body, prevent_cse=False)  # prevent_cse is unneeded under scan

    def step(total: Any, i: jax.Array) -> tuple[Any, None]:
        return jax.tree.map(jnp.add, total, body(params, i)), None

    zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(body, params, 0))
    total, _ = lax.scan(step, zero, jnp.arange(full))
    if rest:
        last = sum_fn(params, *(a[full * chunk :] for a in arrays))
        total = jax.tree.map(jnp.add, total, last)
    return total


def chunked_mean(
    mean_fn: Callable[..., Any], params: Params, arrays: tuple[jax.Array, ...], chunk: int | None
) -> Any:
    """The mean over all n examples of ``mean_fn`` (a pytree of means over the examples it is given),
    as (1/n) Σ_c n_c · mean_fn(chunk c) by :func:`chunked_sum`; ``mean_fn(params, *arrays)`` itself
    when not chunked.

    Exact (up to rounding) for every loss of :mod:`eosdsl.problems.losses`: each is (1/N) Σ_i ℓ_i with a
    per-example term ℓ_i that does not depend on N (the ``mean`` conventions divide by N·k, k fixed), so
    n_c · loss(chunk c) is the chunk's Σ_i ℓ_i and the total is divided by the true n.
    """
    size = arrays[0].shape[0]
    if chunk is None or chunk >= size:
        return mean_fn(params, *arrays)

    def sums(p: Params, *chunk_arrays: jax.Array) -> Any:
        m = chunk_arrays[0].shape[0]
        return jax.tree.map(lambda v: v * m, mean_fn(p, *chunk_arrays))

    return jax.tree.map(lambda t: t / size, chunked_sum(sums, params, arrays, chunk))


def chunked_map(
    fn: Callable[[Params, jax.Array], jax.Array], params: Params, x: jax.Array, chunk: int | None
) -> jax.Array:
    """``fn(params, x)`` for a per-example ``fn`` (outputs (n, …)), computed chunk by chunk: ``lax.map``
    over the full chunks (body under ``jax.checkpoint``) then the last n mod chunk examples. A
    linearization of it (``jax.linearize``, ``jax.linear_transpose``: the Gauss–Newton operator) keeps
    the outputs and each chunk's inputs, not the activations; each product recomputes them per chunk."""
    size = x.shape[0]
    if chunk is None or chunk >= size:
        return fn(params, x)
    full, rest = divmod(size, chunk)
    body = jax.checkpoint(
        lambda p, i: fn(p, lax.dynamic_slice_in_dim(x, i * chunk, chunk)), prevent_cse=False
    )
    out = lax.map(lambda i: body(params, i), jnp.arange(full))  # (full, chunk, …)
    out = out.reshape((full * chunk, *out.shape[2:]))
    return jnp.concatenate([out, fn(params, x[full * chunk :])]) if rest else out


def frozen_groups(net: ModelFns, names: Sequence[str]) -> ModelFns:
    """``net`` with the parameter groups ``names`` held where they are: ``apply`` (and ``hidden``) see
    them through ``lax.stop_gradient``, so the loss's gradient, every Hessian-vector product and the
    output Jacobian are zero in their coordinates. GD, heavy ball and Adam then never move them from
    their initial values, and the Hessian is block diagonal with a zero block there: its nonzero
    eigenvalues are those of the trainable block (paper 002 App. F: a last layer fixed at its random
    initial values). ``ValueError`` names the groups a network has when one is unknown."""

    def hold(params: Params) -> Params:
        unknown = [name for name in names if name not in params]
        if unknown:
            raise ValueError(f"problem.frozen: no parameter group {unknown} (groups: {list(params)})")
        return {k: lax.stop_gradient(v) if k in names else v for k, v in params.items()}

    hidden = None if net.hidden is None else (lambda params, x: net.hidden(hold(params), x))
    return dataclasses.replace(net, apply=lambda params, x: net.apply(hold(params), x), hidden=hidden)


def traced_fns(problem: n.SupervisedProblem, config: dict[str, Any]) -> dict[str, Callable]:
    """loss, test_loss and the measurement functions, each a function of (params, data).

    With ``problem.batch_chunk`` set, every full-batch function (the losses, accuracies, supervised
    measures and the Gauss–Newton operator) runs over chunks of that many examples
    (:func:`chunked_mean`, :func:`chunked_sum`, :func:`chunked_map`): the same numbers up to rounding,
    with activation memory bounded by the chunk instead of n.
    """
    net, loss, chunk = network(config), loss_function(problem.loss), problem.batch_chunk
    if problem.frozen:
        net = frozen_groups(net, problem.frozen)

    def mean_loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return loss(net.apply(params, x), y)

    def correct(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        """The number of correct predictions (an exact integer, so accuracy 1 stays exactly 1)."""
        return jnp.round(losses.accuracy(net.apply(params, x), y) * x.shape[0])

    def accuracy_on(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        if chunk is None or chunk >= x.shape[0]:
            return losses.accuracy(net.apply(params, x), y)
        return chunked_sum(correct, params, (x, y), chunk) / x.shape[0]

    def train_loss(params: Params, data: Data) -> jax.Array:
        return chunked_mean(mean_loss, params, (data["x"], data["y"]), chunk)

    def test_loss(params: Params, data: Data) -> jax.Array:
        return chunked_mean(mean_loss, params, (data["x_test"], data["y_test"]), chunk)

    def accuracy(params: Params, data: Data) -> dict[str, jax.Array]:
        return {"accuracy": accuracy_on(params, data["x"], data["y"])}

    def test_accuracy(params: Params, data: Data) -> dict[str, jax.Array]:
        return {"test_accuracy": accuracy_on(params, data["x_test"], data["y_test"])}

    def group_norms(params: Params, data: Data) -> dict[str, jax.Array]:
        """‖θ_g‖² and ‖∇_g L‖² per parameter group (paper 001: ‖A‖² of the output layer)."""
        grads = jax.grad(train_loss)(params, data)
        out = {}
        for name, group in net.groups(params).items():
            out[f"norm2.{name}"] = sum(jnp.sum(x * x) for x in jax.tree.leaves(group))
            out[f"grad_norm2.{name}"] = sum(jnp.sum(g * g) for g in jax.tree.leaves(grads[name]))
        return out

    def live_counts(params: Params, x: jax.Array) -> list[jax.Array]:
        return [jnp.sum(~(z <= 0), axis=0) for z in net.hidden(params, x)]  # per unit: inputs with z > 0

    def dead_units(params: Params, data: Data) -> dict[str, jax.Array]:
        """Hidden units whose pre-activation is ≤ 0 on every training input (paper 000 App. E.2)."""
        counts = chunked_sum(live_counts, params, (data["x"],), chunk)
        return {f"dead_units.layer{i}": jnp.sum(c == 0) for i, c in enumerate(counts)}

    def residual_sums(params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        f = net.apply(params, x)
        dres = f - losses.align_targets(f, y)
        return jnp.sum(dres * dres), jnp.sum(dres * f)

    def residual(params: Params, data: Data) -> dict[str, jax.Array]:
        """‖D‖ and DᵀF for the residual D = F − Y (paper 001 §3)."""
        norm2, dot = chunked_sum(residual_sums, params, (data["x"], data["y"]), chunk)
        return {"residual.norm": jnp.sqrt(norm2), "residual.dot": dot}

    def data_covariance(params: Params, data: Data) -> dict[str, jax.Array]:
        """The eigenvalues of the input covariance Σ = (1/n) Σ_i x_i x_iᵀ, descending: the min(n, d) that
        can be nonzero (those of paper 001 §4's XᵀX, X = [x₁ … x_n] ∈ ℝ^{d×n}, divided by n)."""
        x = data["x"].reshape(data["x"].shape[0], -1)
        size, dim = x.shape
        second = x.T @ x if dim <= size else x @ x.T  # same nonzero eigenvalues
        return {"data_covariance": jnp.linalg.eigvalsh(second / size)[::-1]}

    fns = {
        "loss": train_loss,
        "test_loss": test_loss,
        "accuracy": accuracy,
        "test_accuracy": test_accuracy,
        "group_norms": group_norms,
        "dead_units": dead_units,
        "residual": residual,
        "data_covariance": data_covariance,
    }
    if isinstance(problem.loss, n.MSELoss):
        c = gram_scale(problem.loss.convention, config_out(config), problem.loss.scale)

        def outputs(params: Params, x: jax.Array) -> jax.Array:
            return chunked_map(net.apply, params, x, chunk)

        def gauss_newton(params: Params, data: Data) -> Callable[[jax.Array], jax.Array]:
            """v ↦ (c/n)Jᵀ(Jv): the Gauss–Newton part of the MSE Hessian (Gram/NTK sharpness operator)."""
            return gram_matvec(outputs, params, data["x"], c)

        def gram_dense(params: Params, data: Data) -> dict[str, Any]:
            """The Gram blocks {g: M_g} (M = Σ_g M_g, paper 001 §3.2), D = F − Y and Y, flat over outputs."""
            f = outputs(params, data["x"])
            y = losses.align_targets(f, data["y"])
            return {
                "blocks": gram_blocks(outputs, params, data["x"], net.groups, c),
                "residual": jnp.ravel(f - y),
                "labels": jnp.ravel(y),
            }

        fns["gauss_newton"] = gauss_newton
        fns["gram_dense"] = gram_dense
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
    """Series a supervised measure records (known before tracing); the table is in the spec layer."""
    from eosdsl.spec.recorded import supervised_series

    return supervised_series(kind, config, group_names)
