"""Stages: the runs a spec starts from (``stages`` and ``start``, paper 000 App. E.5).

A stage is the spec itself with some keys set: ``stages: {pretrain: {optimizer: {...}, train.steps: ...}}``
sets dotted key paths as a case's ``set`` does, on the spec without ``sweep``, ``stages``, ``start``,
``checks`` and ``events`` (the run's own claims and optimizer switches are not the stage's). So a sweep
point's stage inherits the point's problem, seed and measures unless the stage sets them: points that
differ only in what the stage replaces share one stage run.

Before a spec with ``start`` runs, its stage is run (or found stored) and the spec is *resolved*
(:func:`resolved_data`): ``start.run`` names the stage run, the ``start.values`` computed on its record
join ``constants``, and ``stages`` is dropped (the stage run's key says all of it), so the resolved
spec's identity holds the upstream run and the numbers read from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eosdsl.spec import models as m
from eosdsl.spec.overrides import apply_overrides, split_dotted

NOT_IN_STAGE = ("sweep", "stages", "start", "checks", "events")
"""Top-level keys a stage does not inherit from the spec, and may not set."""


def stage_data(spec: m.Spec, stage: str, name: str | None = None) -> dict[str, Any]:
    """The raw spec of ``spec``'s stage ``stage``, named ``<name>.<stage>`` (``name``: the spec's base
    name, the same for every point of a sweep so that points sharing a stage share its run).
    Raises ``OverrideError`` for a key path that cannot be set, ``KeyError`` for an unknown stage."""
    data = {k: v for k, v in spec.model_dump(mode="json").items() if k not in NOT_IN_STAGE}
    data["name"] = f"{name or spec.name}.{stage}"
    return apply_overrides(data, [(split_dotted(k), v) for k, v in spec.stages[stage].items()])


def resolved_data(spec: m.Spec, run_key: str, values: Mapping[str, float]) -> dict[str, Any]:
    """The raw spec of ``spec`` started from the stage run ``run_key`` with the ``start.values`` found
    on it: ``start.run`` set, the values added to ``constants``, ``stages`` dropped."""
    assert spec.start is not None
    data = spec.model_dump(mode="json")
    data.pop("stages", None)
    data["constants"] = {**spec.constants, **{k: float(v) for k, v in values.items()}}
    data["start"] = {**data["start"], "run": run_key}
    return data


def as_stored(spec: m.Spec, stored: Mapping[str, Any]) -> m.Spec:
    """``spec`` resolved as the stored spec document ``stored`` (a run's ``spec.json``) was: started
    from the same stage run with the values found then; ``spec`` itself when either has no ``start`` to
    match (so a spec file can be matched to the runs it made, ``eosdsl check --spec``)."""
    start, constants = stored.get("start"), stored.get("constants")
    if spec.start is None or spec.start.run is not None or not isinstance(start, dict):
        return spec
    if not isinstance(constants, dict) or not isinstance(start.get("run"), str):
        return spec
    try:
        values = {name: float(constants[name]) for name in spec.start.values}
    except (KeyError, TypeError, ValueError):
        return spec
    return m.Spec.model_validate(resolved_data(spec, start["run"], values))
