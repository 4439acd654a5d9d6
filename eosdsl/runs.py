"""Run specs against a registry: look up by identity, else execute, check, store.

This is the one place that joins the engine, the checks and the registry; the CLI and the Python
API call it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eosdsl.checks.evaluate import derived_series, final_value, ordering, run_checks, scalars_of
from eosdsl.checks.result import CheckResult
from eosdsl.engine.run import Progress, enable_x64, execute, prepare
from eosdsl.registry import Registry, Run, numerics_environment, provenance, run_key, spec_id, sweep_id
from eosdsl.spec import models as m
from eosdsl.spec.sweep import Point


@dataclass
class Outcome:
    """One run's result: the stored run and whether it was found rather than computed."""

    run: Run
    spec: m.Spec
    reused: bool
    label: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_one(spec: m.Spec, registry: Registry, progress: Progress | None = None) -> Outcome:
    """The stored run of ``spec``: found by its run key, or computed now and committed."""
    enable_x64()
    document = spec.model_dump(mode="json")
    sid = spec_id(document)
    env = numerics_environment()
    host = prepare(spec)
    key = run_key(sid, env, host.fingerprints)
    existing = registry.get(key)
    if existing is not None:
        return Outcome(existing, spec, reused=True)

    started = _now()
    out = execute(spec, host, progress)
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
        "timings": out.timings,
        "provenance": provenance(),
    }
    with registry.stage(key) as staged:
        staged.write_json("spec.json", document)
        staged.write_json("env.json", env)
        staged.write_json("run.json", info)
        staged.write_series(series, attrs={"references": out.references})
        return Outcome(staged.commit(), spec, reused=False)


def sweep_checks(spec: m.Spec, outcomes: Sequence[Outcome]) -> list[CheckResult]:
    """The sweep-level checks of ``spec`` (``ordering``) over its points' stored runs."""
    results = []
    labels = [o.label or o.run.short_id for o in outcomes]
    for check in spec.checks:
        if not isinstance(check, m.OrderingCheck):
            continue
        finals = []
        for o in outcomes:
            series = {name: o.run.series(name) for name in o.run.series_names()}
            finals.append(final_value(check.of, series, scalars_of(o.spec, o.run.info.get("references", {}))))
        results.append(ordering(check, labels, finals))
    return results


def run_points(
    base: m.Spec,
    points: Sequence[Point],
    registry: Registry,
    progress: Callable[[Point], Progress | None] | None = None,
) -> tuple[list[Outcome], list[CheckResult], str | None]:
    """Run every point (one compiled program per structure), then the sweep-level checks."""
    outcomes = []
    for point in points:
        outcome = run_one(point.spec, registry, progress(point) if progress else None)
        outcome.label = point.label
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
            "members": [
                {"label": o.label, "run_key": o.run.run_key, "status": o.run.status} for o in outcomes
            ],
            "checks": [c.to_dict() for c in checks],
            "created_at": _now(),
        },
    )
    return outcomes, checks, sid


__all__ = ["Outcome", "run_one", "run_points", "sweep_checks"]
