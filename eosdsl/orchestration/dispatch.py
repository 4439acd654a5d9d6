"""Running a sweep's points: packs in this process or on an executor's workers, failures isolated per
pack, the sweep's record and checks at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from eosdsl.checks.result import CheckResult
from eosdsl.engine.execute import (
    Progress,
    enable_x64,
)
from eosdsl.orchestration.jobs import Job, JobOutcome, Reuse
from eosdsl.orchestration.judging import sweep_checks, swept_axes
from eosdsl.orchestration.packing import Plan, plan_points
from eosdsl.orchestration.running import compute, run_one, start_from_upstream
from eosdsl.registry import Registry, numerics_environment, sweep_id
from eosdsl.registry.manifest import utc_timestamp
from eosdsl.spec import models as m
from eosdsl.spec.sweep import Point

if TYPE_CHECKING:
    from eosdsl.executors import Executor


class SweepReporter(Protocol):
    """What a sweep tells its caller while it runs (the CLI draws progress from it)."""

    def planned(self, points: int, reused: int, packs: Sequence[int], notes: Sequence[str] = ()) -> None:
        """Before computing: the number of points, how many are stored already, the pack sizes, and
        notes on the plan (why points that could be packed run one at a time)."""

    def pack(self, index: int, labels: Sequence[str]) -> Progress | None:
        """A pack starts (its members' labels); returns its per-chunk step callback."""

    def finished(self, outcome: JobOutcome) -> None:
        """A point is done: computed, reused or failed."""


@dataclass(frozen=True)
class PackTask:
    """A pack sent to a worker process: the registry root, the members' spec documents and the run keys
    the sender computed for them (a worker in another numerics environment must not store them under
    other keys)."""

    root: str
    documents: tuple[dict[str, Any], ...]
    keys: tuple[str, ...]


@dataclass(frozen=True)
class MemberResult:
    """What a worker reports per member (picklable): the committed run's key and how it was obtained."""

    key: str
    reused: bool
    notice: str | None


class EnvironmentMismatch(RuntimeError):
    """A worker computes other run keys than the process that planned the sweep."""


def run_pack_task(task: PackTask) -> list[MemberResult]:
    """Compute a pack in a worker (``eosdsl.executors``) and commit it to the registry at ``task.root``;
    per member the run key and whether it was reused. Refuses (:class:`EnvironmentMismatch`) when this
    worker's numerics environment gives other run keys than the planning process's."""
    enable_x64()
    registry = Registry(Path(task.root))
    jobs = [Job.of(m.Spec.model_validate(d), registry=registry) for d in task.documents]
    if [j.key for j in jobs] != list(task.keys):
        env = numerics_environment()
        raise EnvironmentMismatch(
            "this worker computes other run keys than the process that planned the sweep (another jax "
            f"version, backend or device: here {env}); run workers in the same environment"
        )
    return [MemberResult(o.run.run_key, o.reused, o.notice) for o in compute(jobs, registry)]


def run_points(
    base: m.Spec,
    points: Sequence[Point],
    registry: Registry,
    reporter: SweepReporter | None = None,
    reuse: Reuse = "exact",
    pack: int | None = None,
    fail_fast: bool = False,
    executor: Executor | None = None,
    deep: bool = False,
) -> tuple[list[JobOutcome], list[CheckResult], str | None]:
    """Run every point of a sweep (or the one point of a plain spec), then the sweep-level checks.

    Stored points are reused; the others run in packs (:func:`plan_points`), in-process or on
    ``executor``. A pack that raises fails its members not yet committed and the sweep goes on
    (``fail_fast``: it stops launching packs). Re-running the same command reuses what was committed
    and resumes interrupted points from their checkpoints. ``reuse="never"`` recomputes every point
    alone and compares it with the stored run. A stored point is verified before reuse (``deep``:
    hashes and every series too); a damaged one is quarantined and recomputed.
    """
    done: dict[str, Any] = {}  # a stage shared by points is looked up once
    shown = (lambda name: reporter.pack(-1, [name])) if reporter is not None else None
    points = [
        dataclasses.replace(
            p, spec=start_from_upstream(p.spec, registry, base.name, reuse, deep, done, progress=shown)
        )
        for p in points
    ]
    if reuse == "never":
        outcomes = [_recompute(p, registry) for p in points]
    else:
        plan = plan_points(points, registry, reuse, pack, deep)
        if reporter:
            reporter.planned(len(points), len(plan.reused), [len(p) for p in plan.packs], plan.notes)
            for o in plan.reused.values():
                reporter.finished(o)
        results = dict(plan.reused)
        if executor is None:
            _run_local(plan, registry, reporter, fail_fast, results)
        else:
            _run_on(executor, plan, registry, reporter, fail_fast, results)
        outcomes = []
        for i, (job, p) in enumerate(zip(plan.jobs, points, strict=True)):
            o = results.get(i)
            if o is None:  # not launched after a failure (--fail-fast), unless committed meanwhile
                run = registry.get(job.key)
                o = JobOutcome(run, job.spec, reused=False, error=None if run else "not run (--fail-fast)")
            o.label, o.point = p.label, p
            o.key = o.run.run_key if o.run is not None else job.key  # a compatible reuse has its own key
            outcomes.append(o)
    if len(points) == 1 and points[0].label is None:
        return outcomes, [], None
    checks = sweep_checks(base, outcomes)
    sid = sweep_id(base.model_dump(mode="json"), [o.key for o in outcomes])
    registry.write_sweep(
        sid,
        {
            "name": base.name,
            "spec": base.model_dump(mode="json"),
            "axes": swept_axes(points),
            "members": [
                {
                    "label": o.label,
                    "run_key": o.key,
                    "status": o.status,
                    "case": o.point.case if o.point else None,
                    "values": dict(o.point.assignments) if o.point else {},
                    **({"error": o.error} if o.error else {}),
                }
                for o in outcomes
            ],
            "checks": [c.to_dict() for c in checks],
            "created_at": utc_timestamp(),
        },
    )
    return outcomes, checks, sid


def _recompute(point: Point, registry: Registry) -> JobOutcome:
    """``run_one(reuse="never")`` for a sweep point: an error fails this point only."""
    try:
        outcome = run_one(point.spec, registry, reuse="never")
    except Exception as exc:  # noqa: BLE001 — one failed point must not stop the sweep
        outcome = JobOutcome(None, point.spec, reused=False, error=f"{type(exc).__name__}: {exc}")
    outcome.label, outcome.point = point.label, point
    return outcome


def _label(job: Job) -> str:
    return (job.point.label if job.point else None) or job.spec.name


def _collect(
    jobs: Sequence[Job],
    indices: Sequence[int],
    registry: Registry,
    error: BaseException | None,
    done: list[JobOutcome] | list[MemberResult] | None,
    results: dict[int, JobOutcome],
    reporter: SweepReporter | None,
) -> bool:
    """Record a pack's outcomes (``done``: outcomes here, or a worker's member results; else what
    reached the registry before ``error``). True if a member failed."""
    failed = False
    for k, i in enumerate(indices):
        spec, found = jobs[i].spec, done[k] if done is not None else None
        if isinstance(found, JobOutcome):
            outcome = found
        elif isinstance(found, MemberResult) and (run := registry.get(found.key)) is not None:
            outcome = JobOutcome(run, spec, reused=found.reused, notice=found.notice)
        elif (run := registry.get(jobs[i].key)) is not None:
            outcome = JobOutcome(run, spec, reused=False)
        else:
            why = f"{type(error).__name__}: {error}" if error else "not stored (the worker reported no error)"
            outcome = JobOutcome(None, spec, reused=False, error=why)
            failed = True
        results[i] = outcome
        if reporter:
            reporter.finished(outcome)
    return failed


def _run_local(
    plan: Plan,
    registry: Registry,
    reporter: SweepReporter | None,
    fail_fast: bool,
    results: dict[int, JobOutcome],
) -> None:
    for n, members in enumerate(plan.packs):
        progress = reporter.pack(n, [_label(plan.jobs[i]) for i in members]) if reporter else None
        try:
            done, error = compute([plan.jobs[i] for i in members], registry, progress), None
        except Exception as exc:  # noqa: BLE001 — a failed pack must not stop the sweep
            done, error = None, exc
        if _collect(plan.jobs, members, registry, error, done, results, reporter) and fail_fast:
            return


def _run_on(
    executor: Executor,
    plan: Plan,
    registry: Registry,
    reporter: SweepReporter | None,
    fail_fast: bool,
    results: dict[int, JobOutcome],
) -> None:
    tasks = [
        PackTask(
            str(registry.root),
            tuple(plan.jobs[i].spec.model_dump(mode="json") for i in members),
            tuple(plan.jobs[i].key for i in members),
        )
        for members in plan.packs
    ]
    for n, result in executor.map_unordered(run_pack_task, tasks):
        members = plan.packs[n]
        error = result if isinstance(result, BaseException) else None
        done = None if error else result
        if _collect(plan.jobs, members, registry, error, done, results, reporter) and fail_fast:
            return
