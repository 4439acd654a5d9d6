"""Run specs against a registry: look up by identity, else execute, check, store.

This is the one place that joins the engine, the checks and the registry; the CLI and the Python
API call it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from eosdsl.checks.evaluate import derived_series, final_value, ordering, run_checks, scalars_of
from eosdsl.checks.result import CheckResult
from eosdsl.engine.run import Progress, RunOutput, enable_x64, execute, prepare
from eosdsl.registry import Registry, Run, numerics_environment, provenance, run_key, spec_id, sweep_id
from eosdsl.registry.checkpoints import RunCheckpoints
from eosdsl.registry.claims import try_claim
from eosdsl.registry.index import update_index
from eosdsl.registry.store import RESULTS
from eosdsl.spec import models as m
from eosdsl.spec.sweep import Point

Reuse = Literal["exact", "compatible", "never"]
"""Which stored run may stand for a spec: the same run key (``exact``), else any run of the same spec
(``compatible``: another environment, so not bit-exact), or none (``never``: recompute and compare)."""


@dataclass
class Outcome:
    """One run's result: the stored run, whether it was found rather than computed, and any notice."""

    run: Run
    spec: m.Spec
    reused: bool
    label: str | None = None
    notice: str | None = None
    point: Point | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _compatible(registry: Registry, sid: str, env: dict[str, Any]) -> tuple[Run, str] | None:
    """The newest stored run of the same spec in another environment, with what differs."""
    for run in registry.runs():
        if run.info.get("spec_id") == sid:
            diff = sorted(k for k in set(env) | set(run.env) if env.get(k) != run.env.get(k))
            return run, f"not bit-exact: computed with a different {', '.join(diff) or 'dataset'}"
    return None


def _compare(stored: Run, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Whether recomputed series are bitwise equal to a stored run's."""
    differ = []
    for name, (steps, values) in series.items():
        old_steps, old_values = stored.series(name) if name in stored.series_names() else (None, None)
        if old_values is None or not (
            np.array_equal(old_steps, steps) and _bitwise_equal(old_values, values)
        ):
            differ.append(name)
    if not differ:
        return "recomputed: bit-identical to the stored run"
    return f"recomputed: differs from the stored run in {', '.join(differ)} (the stored run is kept)"


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _record(spec: m.Spec, out: RunOutput, sid: str, key: str, started: str) -> tuple[dict, dict]:
    """(series incl. derived, run.json) of a finished execution."""
    series = {**out.series, **derived_series(spec, out.series, out.references)}
    checks = run_checks(spec, series, out.references)
    info = {
        "status": out.status,
        "end_step": out.end_step,
        "stop_cause": out.stop_cause,
        "events": out.events,
        "references": out.references,
        "checks": [c.to_dict() for c in checks],
        "spec_id": sid,
        "run_key": key,
        "data": out.fingerprints,
        "started_at": started,
        "finished_at": _now(),
        "resumed_from": out.resumed_from,
        "timings": out.timings,
        "provenance": provenance(),
    }
    return series, info


def run_one(
    spec: m.Spec,
    registry: Registry,
    progress: Progress | None = None,
    reuse: Reuse = "exact",
    poll: float = 0.5,
) -> Outcome:
    """The stored run of ``spec``: found by its identity, or computed now and committed.

    Exactly one process computes a run: it holds the run's claim, heartbeats it between chunks and
    checkpoints into ``staging/<run_key>/``; a process that finds the claim held waits for the commit,
    and one that finds it stale takes it over and resumes from the last checkpoint.
    """
    enable_x64()
    document = spec.model_dump(mode="json")
    sid = spec_id(document)
    env = numerics_environment()
    host = prepare(spec)
    key = run_key(sid, env, host.fingerprints)
    existing = registry.get(key)
    if existing is not None and reuse != "never":
        return Outcome(existing, spec, reused=True)
    if existing is None and reuse == "compatible" and (found := _compatible(registry, sid, env)):
        return Outcome(found[0], spec, reused=True, notice=found[1])
    if existing is not None:  # reuse == "never": recompute in memory, compare, keep the stored run
        series, _ = _record(spec, execute(spec, host, progress), sid, key, _now())
        return Outcome(existing, spec, reused=True, notice=_compare(existing, series))

    while (claim := try_claim(registry.root, key)) is None:
        time.sleep(poll)
        if (done := registry.get(key)) is not None:
            return Outcome(done, spec, reused=True, notice="computed by another process")
    try:
        if (done := registry.get(key)) is not None:  # committed while we were claiming
            return Outcome(done, spec, reused=True, notice="computed by another process")
        started = _now()
        staged = registry.stage(key)
        checkpoints = RunCheckpoints(
            staged.path, staged.scratch, spec.runtime.checkpoint_every, claim.heartbeat
        )
        try:
            out = execute(spec, host, progress, checkpoints)
        finally:
            checkpoints.close()
        series, info = _record(spec, out, sid, key, started)
        staged.write_json("spec.json", document)
        staged.write_json("env.json", env)
        staged.write_json("run.json", info)
        shutil.rmtree(staged.path / RESULTS, ignore_errors=True)  # a crash during a previous write
        staged.write_series(series, attrs={"references": out.references})
        run = staged.commit()
        update_index(registry, run)  # a cache: errors are swallowed, `registry reindex` repairs it
    finally:
        claim.release()
    notice = None
    if out.resumed_from is not None:
        notice = f"resumed from the checkpoint at step {out.resumed_from}"
    elif claim.took_over:
        notice = "took over an abandoned claim"
    return Outcome(run, spec, reused=False, notice=notice)


def sweep_checks(spec: m.Spec, outcomes: Sequence[Outcome]) -> list[CheckResult]:
    """The sweep-level checks of ``spec`` (``ordering``) over its points' stored runs.

    An ordering whose ``over`` names case labels is checked among the cases at each grid point (one
    result per grid point when there is a grid); otherwise it orders the points by their full labels.
    """
    results = []
    for check in spec.checks:
        if not isinstance(check, m.OrderingCheck):
            continue
        finals = [_final_of(check.of, o) for o in outcomes]
        cases = {o.point.case for o in outcomes}
        by_case = check.over is not None and set(check.over) <= cases and any(o.point.grid for o in outcomes)
        if not by_case:
            labels = [o.label or o.run.short_id for o in outcomes]
            results.append(ordering(check, labels, finals))
            continue
        groups: dict[str, list[int]] = {}
        for i, o in enumerate(outcomes):
            groups.setdefault(o.point.grid, []).append(i)
        for grid, members in groups.items():
            result = ordering(check, [outcomes[i].point.case for i in members], [finals[i] for i in members])
            results.append(dataclasses.replace(result, name=f"{result.name} [{grid}]"))
    return results


def _final_of(source: str, outcome: Outcome) -> float:
    run = outcome.run
    series = {name: run.series(name) for name in run.series_names()}
    return final_value(source, series, scalars_of(outcome.spec, run.info.get("references", {})))


def run_points(
    base: m.Spec,
    points: Sequence[Point],
    registry: Registry,
    progress: Callable[[Point], Progress | None] | None = None,
    reuse: Reuse = "exact",
) -> tuple[list[Outcome], list[CheckResult], str | None]:
    """Run every point (one compiled program per structure), then the sweep-level checks."""
    outcomes = []
    for point in points:
        outcome = run_one(point.spec, registry, progress(point) if progress else None, reuse=reuse)
        outcome.label, outcome.point = point.label, point
        outcomes.append(outcome)
    if len(points) == 1 and points[0].label is None:
        return outcomes, [], None
    checks = sweep_checks(base, outcomes)
    sid = sweep_id(base.model_dump(mode="json"), [o.run.run_key for o in outcomes])
    registry.write_sweep(
        sid,
        {
            "name": base.name,
            "spec": base.model_dump(mode="json"),
            "axes": _axes(points),
            "members": [
                {
                    "label": o.label,
                    "run_key": o.run.run_key,
                    "status": o.run.status,
                    "case": o.point.case if o.point else None,
                    "values": dict(o.point.assignments) if o.point else {},
                }
                for o in outcomes
            ],
            "checks": [c.to_dict() for c in checks],
            "created_at": _now(),
        },
    )
    return outcomes, checks, sid


def _axes(points: Sequence[Point]) -> list[str]:
    """The swept spec paths in expansion order (case assignments first), each listed once."""
    axes: dict[str, None] = {}
    for point in points:
        axes.update(dict.fromkeys(point.assignments))
    return list(axes)


__all__ = ["Outcome", "run_one", "run_points", "sweep_checks"]
