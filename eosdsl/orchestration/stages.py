"""Runs that start from other runs (``stages`` / ``start``; eosdsl.spec.stages): a state of the upstream
run — a stage of the spec or the run of another spec file — as a run's initial parameters, and numbers
read from the upstream run's record as constants.

Paper 000 App. E.5 (Figs. 7a, 17a/b) pretrains with GD until the loss is small and restarts at
η = (2+ε)/S₀ from the sharpness S₀ measured at the pretrained point: ``start.values: {S0:
final(sharpness)}`` and ``optimizer.lr: (2 + eps) / S0``. Only the parameters carry over: the
optimizer (momentum, Adam moments), schedule and event state start afresh, as in the paper's restart.

The state at a step N that is not a kept checkpoint (``start.at: {step: N}`` or ``{event: name}``) is
recomputed: the upstream run's program restarts from its latest kept checkpoint at a step ≤ N (or from
its initial state) and runs the remaining steps in memory, in the run's own chunks (one remainder chunk
to reach N). Runs are deterministic in one environment (resume is bitwise), so this is the state the
upstream run had at step N, bit for bit, when the run was computed as it is recomputed here. That is
checked, not assumed: what the recomputation records at steps [origin, N) must equal the stored series
bitwise, and a run computed in another environment (served by ``--reuse compatible``) is refused before
anything is recomputed. The stored run is not changed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import jax
import numpy as np

from eosdsl.checks.evaluate import scalars_of
from eosdsl.checks.series_ops import evaluate
from eosdsl.engine.execute import chunk_length, layout_of, prepare, run_chunks
from eosdsl.engine.packs import array_layout
from eosdsl.engine.program import RUNNING, Structure, hyperparameters, init_state, series_of
from eosdsl.problems.build import HostProblem, Params
from eosdsl.registry import Registry, StoredRun, numerics_environment, run_key
from eosdsl.registry.checkpoints import final_state, kept_positions, kept_state
from eosdsl.registry.identity import environment_difference
from eosdsl.spec import models as m
from eosdsl.spec.semantic import semantic_errors
from eosdsl.spec.stages import START_STEP, load_upstream, resolved_data, stage_data, start_step


class StageError(RuntimeError):
    """A run cannot start from its upstream run: the upstream spec cannot be loaded, its run failed, a
    value is not a finite number, the state asked for does not exist, the stored parameters do not fit
    the problem."""


def stage_spec(spec: m.Spec, name: str | None = None) -> m.Spec:
    """The spec of the stage ``spec`` starts from (``name``: the base name of the spec's sweep)."""
    assert spec.start is not None and spec.start.stage is not None
    return m.Spec.model_validate(stage_data(spec, spec.start.stage, name))


def upstream_spec(spec: m.Spec, name: str | None = None) -> m.Spec:
    """The spec of the run ``spec`` starts from: its stage (:func:`stage_spec`), or the spec file
    ``start.spec`` as it is (the same for every point of a sweep, so they share its run)."""
    assert spec.start is not None
    if spec.start.spec is None:
        return stage_spec(spec, name)
    loaded, errors = load_upstream(spec.start.spec)
    if loaded is None:
        raise StageError(f"{spec.name}: start.spec: " + "; ".join(e.message for e in errors))
    return loaded.spec


def upstream_step(spec: m.Spec, run: StoredRun) -> int:
    """The step of the upstream run ``run`` that ``spec.start.at`` names (its end step for ``final``)."""
    assert spec.start is not None
    try:
        return start_step(spec.start.at, int(run.info["end_step"]), list(run.info.get("events", [])))
    except ValueError as err:
        raise StageError(f"{spec.name} cannot start from run {run.short_id}: {err}") from None


def start_values(spec: m.Spec, run: StoredRun, stage: m.Spec, step: int) -> dict[str, float]:
    """``spec.start.values`` evaluated on the upstream run's record (series algebra, as checks see it:
    series by expression name, the upstream spec's constants and the run's references, and
    ``start_step``: ``step``, the step of the state the run starts from). The record is read only when
    there are values to evaluate."""
    assert spec.start is not None
    if not spec.start.values:
        return {}
    series = {name: run.series(name) for name in run.series_names()}
    scalars = {**scalars_of(stage, run.info.get("references", {})), START_STEP: step}
    values = {}
    for name, source in spec.start.values.items():
        try:
            value = np.asarray(evaluate(source, series, scalars))
        except Exception as err:  # noqa: BLE001 — an evaluation error (a step not recorded) names the value
            failed = f"start.values.{name}: `{source}` on the upstream run {run.short_id}: {err}"
            raise StageError(failed) from None
        if value.shape != () or not np.isfinite(value):
            raise StageError(
                f"start.values.{name}: `{source}` is {value} on the upstream run {run.short_id}; "
                "a start value must be one finite number"
            )
        values[name] = float(value)
    return values


def resolved(spec: m.Spec, run: StoredRun, stage: m.Spec) -> m.Spec:
    """``spec`` started from the committed upstream run ``run`` (of spec ``stage``): ``start.run`` and the
    values in ``constants``, checked again now that the values are numbers (a negative rate, say)."""
    step = upstream_step(spec, run)
    if run.status == "diverged" and step >= int(run.info["end_step"]):
        raise StageError(f"the upstream run {run.short_id} ({stage.name}) diverged; nothing to start from")
    out = m.Spec.model_validate(resolved_data(spec, run.run_key, start_values(spec, run, stage, step)))
    errors = semantic_errors(out)
    if errors:
        shown = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        raise StageError(f"{spec.name} with the values of its upstream run {run.short_id}: {shown}")
    return out


_RECOMPUTED: OrderedDict[tuple[str, int], Params] = OrderedDict()
"""Parameters recomputed at a step between kept checkpoints, by (run key, step): a sweep's points (and a
pack's keys, its worker, its lookups) start from one upstream state, recomputed once per process."""
_RECOMPUTED_MAX = 8


def start_params(spec: m.Spec, host: HostProblem, registry: Registry) -> Params:
    """The parameters of the upstream run ``spec.start.run`` at the state ``spec.start.at`` names, which
    must have the structure, shapes and dtypes of ``host.params`` (the initial parameters ``spec`` would
    have). The final state is restored from the checkpoint kept with the run; another step's state is
    :func:`state_at`."""
    assert spec.start is not None and spec.start.run is not None
    run = registry.get(spec.start.run)
    if run is None:
        missing = f"{spec.name} starts from run {spec.start.run[:12]}, which is not in {registry.root}"
        raise StageError(missing)
    step = upstream_step(spec, run)
    params = upstream_params(run, step, registry)
    if array_layout(params) != array_layout(host.params):
        raise StageError(
            f"{spec.name} cannot start from run {run.short_id}: its parameters (path, shape, dtype) "
            f"{array_layout(params)} do not fit this spec's problem {array_layout(host.params)}"
        )
    return params


def upstream_params(run: StoredRun, step: int, registry: Registry) -> Params:
    """w_step of the committed run ``run``: from its final state when ``step`` is its end step, else
    recomputed (:func:`state_at`, cached per process: the cache is looked up before anything is loaded)."""
    if step == int(run.info["end_step"]):
        _, _, template = _restore_inputs(run)
        return jax.device_get(final_state(run, template).params)
    key = (run.run_key, step)
    cached = _RECOMPUTED.get(key)
    if cached is not None:
        _RECOMPUTED.move_to_end(key)
        return cached
    stage, stage_host, template = _restore_inputs(run)
    cached = jax.device_get(state_at(run, stage, stage_host, step, registry, template)[0].params)
    _RECOMPUTED[key] = cached
    while len(_RECOMPUTED) > _RECOMPUTED_MAX:
        _RECOMPUTED.popitem(last=False)
    return cached


def _restore_inputs(run: StoredRun) -> tuple[m.Spec, HostProblem, Any]:
    """(spec, host inputs, abstract state template) of the committed run ``run``: what restoring or
    recomputing one of its states needs. The template holds shapes and dtypes only (no values, and no
    compilation of the run's init)."""
    stage = m.Spec.model_validate(run.spec)
    stage_host = prepare(stage)
    structure, hparams, layout = Structure.of(stage), hyperparameters(stage), layout_of(stage, stage_host)
    template = jax.eval_shape(lambda p: init_state(structure, hparams, layout, p), stage_host.params)
    return stage, stage_host, template


def state_at(
    run: StoredRun, stage: m.Spec, host: HostProblem, step: int, registry: Registry, template: Any
) -> tuple[Any, int]:
    """(state, step it was recomputed from) of the committed run ``run`` (spec ``stage``, host inputs
    ``host``) at ``step`` < its end step: the latest checkpoint kept with it whose state is at a step
    ≤ ``step`` (else its initial state: ``host.params``, or for a run that itself starts from another
    run, that run's state) advanced by the remaining steps of its own program, in memory, in its own
    chunks as the resume of a killed run does (:func:`eosdsl.engine.execute.run_chunks`).

    Bit for bit the state the run had, provided it was computed as it is recomputed here: a run of
    another environment is refused (:func:`_computed_here`), and every series the recomputation
    records at steps [origin, ``step``) must equal the stored one bitwise (:func:`first_difference`),
    else :class:`StageError`. The stored run is read, never written."""
    structure, hparams, layout = Structure.of(stage), hyperparameters(stage), layout_of(stage, host)
    state = _kept_before(run, step, template)
    if state is None or int(state.t) < step:
        _computed_here(run, stage, host, step)
    if state is None:
        params = host.params
        if stage.start is not None:  # a chained upstream: its own start state
            params = start_params(stage, host, registry)
        state = init_state(structure, hparams, layout, params)
    origin = int(state.t)
    names = set(run.series_names()) if step > origin else set()
    stored = {name: run.series(name) for name in series_of(stage, layout) if name in names}
    chunked = run_chunks(structure, hparams, layout, chunk_length(stage), state, host.data, step - origin)
    for state, output in chunked:  # noqa: B007 — after the loop, state is the recomputed w_step
        difference = first_difference(output, stored)
        if difference is not None:
            raise StageError(_not_reproduced(run, stage, step, origin, difference))
    if int(state.t) != step or int(state.status) != RUNNING:
        raise StageError(
            f"recomputing run {run.short_id} to step {step} from step {origin} ended at step {int(state.t)} "
            f"(status {int(state.status)}): the run is not reproduced; its stored record ends at "
            f"{run.info['end_step']}"
        )
    return state, origin


def _kept_before(run: StoredRun, step: int, template: Any) -> Any | None:
    """The latest state kept with ``run`` that is still running at a step ≤ ``step``; None if none."""
    for position in reversed([p for p in kept_positions(run) if p <= step]):
        kept = kept_state(run, position, template)
        if int(kept.status) == RUNNING and int(kept.t) <= step:
            return kept
    return None


def _computed_here(run: StoredRun, stage: m.Spec, host: HostProblem, step: int) -> None:
    """Refuse (:class:`StageError`) to recompute a state of ``run`` that this environment would not
    have computed: its key is not the key of its spec here (another numerics environment or other
    data contents — a run served by ``--reuse compatible``), so its recomputation is not bitwise."""
    env = numerics_environment()
    try:
        if run_key(str(run.info.get("spec_id")), env, host.fingerprints) == run.run_key:
            return
    except ValueError:  # no spec id in its record: not a run of this environment either
        pass
    how = environment_difference(run.env, env)
    if not how:
        same_data = run.info.get("data", {}) == dict(host.fingerprints)
        how = "under another spec id (another eosdsl version)" if same_data else "other dataset contents"
    raise StageError(
        f"the upstream run {run.short_id} ({stage.name}) was computed elsewhere ({how}; a run served "
        f"by `--reuse compatible`, or copied from another registry): its state at step {step} lies "
        "between the checkpoints kept with it and "
        "cannot be recomputed bit for bit here. Start from its final state (`start.at: final`), or "
        "compute the upstream here (run without `--reuse compatible`)"
    )


Difference = tuple[str, int, str, str]
"""(series, first step where the recomputation and the stored run differ, recomputed, stored)."""


def first_difference(
    output: dict[str, np.ndarray], stored: dict[str, tuple[np.ndarray, np.ndarray]]
) -> Difference | None:
    """The earliest difference between one recomputed chunk's ``output`` (as ``run_chunk`` gives it:
    per scan iteration ``step``, and per series its values and ``<name>/valid``) and the ``stored``
    series (name → (steps, values)) over the steps the chunk covers: a step recorded on one side only,
    or values that are not bitwise equal (NaNs included). None when they agree."""
    steps = np.asarray(output["step"]).astype(np.int64)
    if steps.size == 0:
        return None
    found = []
    for name, (old_steps, old_values) in stored.items():
        valid = np.asarray(output[f"{name}/valid"]).astype(bool)
        window = (old_steps >= steps[0]) & (old_steps <= steps[-1])
        new = (steps[valid], np.asarray(output[name])[valid])
        difference = series_difference(name, new, (old_steps[window], old_values[window]))
        if difference is not None:
            found.append(difference)
    return min(found, key=lambda d: d[1], default=None)


def series_difference(
    name: str, new: tuple[np.ndarray, np.ndarray], old: tuple[np.ndarray, np.ndarray]
) -> Difference | None:
    """The first difference between one series recomputed (``new``: steps, values) and stored (``old``)
    over the same window of steps: a step recorded on one side only, another dtype or shape, or the
    first row whose values are not bitwise equal (NaNs included); None when they are identical."""
    (new_steps, new_values), (old_steps, old_values) = new, old
    if not np.array_equal(new_steps, old_steps):
        only = np.setxor1d(new_steps, old_steps)  # steps recorded on one side only
        first = int(only.min()) if only.size else int(new_steps[0])
        side = ("recorded", "not recorded") if first in new_steps else ("not recorded", "recorded")
        return name, first, *side
    if new_values.dtype != old_values.dtype or new_values.shape != old_values.shape:
        new_type, old_type = (f"{v.dtype} {list(v.shape[1:])}" for v in (new_values, old_values))
        return name, int(new_steps[0]), f"of type {new_type}", f"of type {old_type}"
    if new_values.size == 0:
        return None
    rows = len(new_values)
    new_bits = np.ascontiguousarray(new_values).reshape(rows, -1).view(np.uint8)
    old_bits = np.ascontiguousarray(old_values).reshape(rows, -1).view(np.uint8)
    differs = np.any(new_bits != old_bits, axis=1)
    if not np.any(differs):
        return None
    i = int(np.argmax(differs))
    return name, int(new_steps[i]), _shown(new_values[i]), _shown(old_values[i])


def _shown(value: np.ndarray) -> str:
    """A recorded value, all its digits (``repr`` round-trips a float)."""
    return repr(np.asarray(value).tolist())


def _not_reproduced(run: StoredRun, stage: m.Spec, step: int, origin: int, difference: Difference) -> str:
    """Why the state at ``step`` of ``run`` cannot be recomputed: the series that differs, where, both
    values, how the stored run was computed, and what to do."""
    name, at, new, old = difference
    execution = run.info.get("execution") or {}
    if execution.get("mode") == "packed":
        how = (
            f"in a pack of {execution.get('size')} runs, whose vmapped kernels may round differently "
            "from the lone run recomputed here"
        )
    else:
        how = "by another program than the one recomputed here (another backend or eosdsl version)"
    return (
        f"recomputing the upstream run {run.short_id} ({stage.name}) from step {origin} to step {step} "
        f"does not reproduce its stored record: `{name}` at step {at} is {new} recomputed, {old} stored. "
        f"The run was computed {how}, so its state at step {step} (between the checkpoints kept with it) "
        "cannot be had bit for bit. Start from its final state (`start.at: final`), or run this spec "
        "with a registry that does not hold that upstream run (`--registry DIR`): the upstream is then "
        "computed here, alone, and its states recompute exactly"
    )
