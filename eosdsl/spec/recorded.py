"""The one table of the series a spec records: stored names, expression names, measures, cadences.

Validation (``eosdsl.spec.semantic``: which names check and derived-measure expressions may use), the
engine (``eosdsl.engine.program.series_of``: what the compiled program records, at which cadence) and
the check evaluator (``eosdsl.checks``) all read :func:`recorded_series`, so a name a claim may use is
exactly a name a run stores.

Naming: a measure's series are stored under the names below; expressions see each under its
*expression name* (:func:`expression_name`): ``params.u`` → ``u``, other dots become underscores
(``sharpness.residual`` → ``sharpness_residual``).

Importing this module imports no jax (nor the spec models, which build networks): it reads the spec
by its ``kind`` fields and each curvature measure's ``series()``. A supervised problem's parameter
groups (which ``group_norms`` names series after) need the network's shapes: pass ``groups`` (the
engine knows them), or they are computed by building the network abstractly when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the models module imports the network builders (jax)
    from eosdsl.spec import models as m

__all__ = [
    "RecordedSeries",
    "expression_name",
    "param_names",
    "recorded_series",
    "supervised_series",
]


@dataclass(frozen=True)
class RecordedSeries:
    """One recorded series.

    Attributes:
        name: the stored name (``params.u``, ``sharpness.residual``, ``norm2.A``).
        expression: the name expressions use (``u``, ``sharpness_residual``, ``norm2_A``).
        measure: index of the measure in ``spec.measure`` that records it.
        kind: that measure's kind.
        every: the cadence in steps of a simple measure; 0 for a curvature measure (the program decides
            its steps from the measure's window, ``every`` and ``densify``); 0 for a derived series (it
            has the steps its expression's series share).
        derived: computed after the run from other series (``kind: derived``).
    """

    name: str
    expression: str
    measure: int
    kind: str
    every: int
    derived: bool = False


def expression_name(series_name: str) -> str:
    """The identifier by which expressions refer to a series or reference value."""
    return series_name.removeprefix("params.").replace(".", "_")


_PARAMS = {
    "relu_scalar": ["u", "v"],
    "ldn_point": ["u", "v"],
    "ldn_regression": ["u", "v"],
    "product_chain": ["theta"],
    "scalar_product": ["x", "y"],
}
"""Parameter names of the papers' closed-form problems (their toy forms in ``eosdsl.spec.toy``)."""


def param_names(problem: m.Problem) -> list[str]:
    """Names of a closed-form problem's parameters (as expressions see them); none for networks."""
    if problem.kind == "toy":
        return list(problem.params)
    return list(_PARAMS.get(problem.kind, []))


def supervised_series(kind: str, config: dict[str, Any], groups: Sequence[str]) -> list[str]:
    """Stored names of the series a supervised measure records (known before tracing)."""
    if kind == "group_norms":
        return [f"{p}.{g}" for g in groups for p in ("norm2", "grad_norm2")]
    if kind == "dead_units":
        return [f"dead_units.layer{i}" for i in range(len(config.get("widths") or ()))]
    if kind == "residual":
        return ["residual.norm", "residual.dot"]
    return [kind]


def _stored_names(
    spec: m.Spec,
    meas: Any,
    params: Sequence[str] | None,
    groups: Sequence[str] | None,
    network: dict[str, Any] | None,
) -> list[str]:
    """Stored names of one non-derived measure's series."""
    if hasattr(meas, "series"):  # a curvature measure names its own series
        return meas.series()
    if meas.kind == "params":
        names = param_names(spec.problem) if params is None else list(params)
        return [f"params.{p}" for p in names]
    if meas.kind == "lr":
        return ["lr", "lr_applied"]
    if meas.kind == "ode_steps":
        return ["ode.substeps", "ode.rejected", "ode.capped"]
    if spec.problem.kind == "supervised":
        config = network if network is not None else spec.problem.model.model_dump()
        if groups is None and meas.kind == "group_norms":
            from eosdsl.problems.supervised import group_names  # builds the network's shapes (jax)

            groups = group_names(spec.problem.model)
        return supervised_series(meas.kind, config, groups or ())
    return [meas.kind]


def recorded_series(
    spec: m.Spec,
    *,
    params: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    network: dict[str, Any] | None = None,
) -> list[RecordedSeries]:
    """Every series a run of ``spec`` records, derived ones included, in measure order.

    ``params``: the problem's parameter names (default: :func:`param_names`); ``groups``: a supervised
    network's parameter groups and ``network`` its config (default: from the spec). A name recorded by
    two measures appears twice (e.g. ``loss`` at two cadences): the engine records it at the smaller
    cadence.
    """
    table: list[RecordedSeries] = []
    for i, meas in enumerate(spec.measure):
        if meas.kind == "derived":
            table.append(RecordedSeries(meas.name, meas.name, i, meas.kind, 0, derived=True))
            continue
        every = 0 if hasattr(meas, "series") else meas.every
        for name in _stored_names(spec, meas, params, groups, network):
            table.append(RecordedSeries(name, expression_name(name), i, meas.kind, every))
    return table
