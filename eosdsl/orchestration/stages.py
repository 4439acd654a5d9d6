"""Runs that start from other runs (``stages`` and ``start``; eosdsl.spec.stages): the stage run's final
parameters as a run's initial ones, and numbers read from the stage run's record as constants.

Paper 000 App. E.5 (Figs. 7a, 17a/b) pretrains with GD until the loss is small and restarts at
η = (2+ε)/S₀ from the sharpness S₀ measured at the pretrained point: ``start.values: {S0:
final(sharpness)}`` and ``optimizer.lr: (2 + eps) / S0``. Only the parameters carry over: the
optimizer (momentum, Adam moments), schedule and event state start afresh, as in the paper's restart.
"""

from __future__ import annotations

import jax
import numpy as np

from eosdsl.checks.evaluate import scalars_of
from eosdsl.checks.series_ops import evaluate
from eosdsl.engine.execute import layout_of, prepare
from eosdsl.engine.packs import array_layout
from eosdsl.engine.program import Structure, hyperparameters, init_state
from eosdsl.problems.build import HostProblem, Params
from eosdsl.registry import Registry, StoredRun
from eosdsl.registry.checkpoints import final_state
from eosdsl.spec import models as m
from eosdsl.spec.semantic import semantic_errors
from eosdsl.spec.stages import resolved_data, stage_data


class StageError(RuntimeError):
    """A run cannot start from its stage run: the stage failed, a value is not a finite number, the
    stored parameters do not fit the problem."""


def stage_spec(spec: m.Spec, name: str | None = None) -> m.Spec:
    """The spec of the stage ``spec`` starts from (``name``: the base name of the spec's sweep)."""
    assert spec.start is not None
    return m.Spec.model_validate(stage_data(spec, spec.start.stage, name))


def start_values(spec: m.Spec, run: StoredRun, stage: m.Spec) -> dict[str, float]:
    """``spec.start.values`` evaluated on the stage run's record (series algebra, as checks see it:
    series by expression name, the stage's constants and the run's references)."""
    assert spec.start is not None
    series = {name: run.series(name) for name in run.series_names()}
    scalars = scalars_of(stage, run.info.get("references", {}))
    values = {}
    for name, source in spec.start.values.items():
        value = np.asarray(evaluate(source, series, scalars))
        if value.shape != () or not np.isfinite(value):
            raise StageError(
                f"start.values.{name}: `{source}` is {value} on the stage run {run.short_id}; "
                "a start value must be one finite number"
            )
        values[name] = float(value)
    return values


def resolved(spec: m.Spec, run: StoredRun, stage: m.Spec) -> m.Spec:
    """``spec`` started from the committed stage run ``run`` (of spec ``stage``): ``start.run`` and the
    values in ``constants``, checked again now that the values are numbers (a negative rate, say)."""
    if run.status == "diverged":
        raise StageError(f"the stage run {run.short_id} ({stage.name}) diverged; nothing to start from")
    out = m.Spec.model_validate(resolved_data(spec, run.run_key, start_values(spec, run, stage)))
    errors = semantic_errors(out)
    if errors:
        shown = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        raise StageError(f"{spec.name} with the values of its stage run {run.short_id}: {shown}")
    return out


def start_params(spec: m.Spec, host: HostProblem, registry: Registry) -> Params:
    """The final parameters of the stage run ``spec.start.run`` (restored from the final state kept with
    it, :func:`eosdsl.registry.checkpoints.final_state`), which must have the structure, shapes and
    dtypes of ``host.params`` (the initial parameters ``spec`` would have)."""
    assert spec.start is not None and spec.start.run is not None
    run = registry.get(spec.start.run)
    if run is None:
        missing = f"{spec.name} starts from run {spec.start.run[:12]}, which is not in {registry.root}"
        raise StageError(missing)
    stage = m.Spec.model_validate(run.spec)
    stage_host = prepare(stage)
    structure, hparams, layout = Structure.of(stage), hyperparameters(stage), layout_of(stage, stage_host)
    # shapes and dtypes only: the restore needs no values (and no compilation of the stage's init)
    template = jax.eval_shape(lambda p: init_state(structure, hparams, layout, p), stage_host.params)
    params = jax.device_get(final_state(run.path, template).params)
    if array_layout(params) != array_layout(host.params):
        raise StageError(
            f"{spec.name} cannot start from run {run.short_id}: its parameters (path, shape, dtype) "
            f"{array_layout(params)} do not fit this spec's problem {array_layout(host.params)}"
        )
    return params
