"""Run specs against a registry: look up by identity, else execute, check, store.

This is the one place that joins the engine, the checks and the registry; the CLI and the Python
API call it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import jax
import numpy as np

from eosdsl.checks.evaluate import derived_series, final_value, ordering, run_checks, scalars_of
from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import Series, expression_name
from eosdsl.checks.sweep_claims import Row, Table, evaluate_claim, quantities_of, quantity_key, run_quantity
from eosdsl.engine.run import (
    Progress,
    RunOutput,
    data_key,
    enable_x64,
    execute,
    execute_pack,
    member_bytes,
    pack_key,
    prepare,
    report_ended,
    report_writing,
    trial_chunk_seconds,
)
from eosdsl.problems.build import HostProblem
from eosdsl.registry import Registry, Run, numerics_environment, provenance, run_key, spec_id, sweep_id
from eosdsl.registry.checkpoints import RunCheckpoints
from eosdsl.registry.claims import STALE_AFTER, claim_is_live, try_claim
from eosdsl.registry.identity import environment_difference
from eosdsl.registry.index import update_index, update_index_many
from eosdsl.registry.integrity import serve, verify_run
from eosdsl.registry.manifest import MANIFEST
from eosdsl.registry.verdicts import find_verdict, write_verdict
from eosdsl.spec import models as m
from eosdsl.spec.overrides import format_path, split_dotted
from eosdsl.spec.scope import parse
from eosdsl.spec.sweep import Point

if TYPE_CHECKING:
    from eosdsl.executors import Executor

Reuse = Literal["exact", "compatible", "never"]
"""Which stored run may stand for a spec: the same run key (``exact``), else any run of the same spec
(``compatible``: another environment, so not bit-exact), or none (``never``: recompute and compare)."""


@dataclass
class Outcome:
    """One point's result: its stored run (``None`` if it failed), whether it was found rather than
    computed, and any notice or error."""

    run: Run | None
    spec: m.Spec
    reused: bool
    label: str | None = None
    notice: str | None = None
    point: Point | None = None
    error: str | None = None
    key: str | None = None  # the run key (also when there is no run)

    def __post_init__(self) -> None:
        if self.key is None and self.run is not None:
            self.key = self.run.run_key

    @property
    def status(self) -> str:
        """The run's status (completed, stopped, diverged), or ``failed``."""
        return "failed" if self.run is None else self.run.status


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _compatible(registry: Registry, sid: str, env: dict[str, Any]) -> tuple[Run, str] | None:
    """The newest stored run of the same spec in another environment, with what differs."""
    for run in registry.runs():
        if run.info.get("spec_id") == sid:
            diff = environment_difference(run.env, env) or "other dataset contents"
            return run, f"not bit-exact: computed on {diff}"
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


def judge(
    run: Run,
    spec: m.Spec,
    registry: Registry,
    series: Series | None = None,
    force: bool = False,
    index: bool = True,
) -> list[CheckResult]:
    """The verdict of ``spec``'s per-run checks on a stored run, stored beside it and indexed.

    Checks are not part of a run's identity: the stored verdict of exactly these checks (and this
    eosdsl version) is served if there is one, else they are evaluated on the stored series (or on
    ``series``, the ones just committed) and stored as a new verdict, which becomes the run's current
    one (what ``show``, ``ls`` and ``query`` see). ``force`` evaluates even when a verdict is stored
    (``eosdsl check``). The committed run's files are never touched. ``index=False`` leaves indexing
    to the caller (a commit batch indexes its runs in one transaction).
    """
    enable_x64()  # checks evaluate in float64, as the run did
    checks = [c.model_dump(mode="json") for c in spec.checks]
    before = run.verdict
    found = None if force else find_verdict(registry.root, run.run_key, checks)
    if found is None:
        if series is None:
            needed = [c for c in spec.checks if not isinstance(c, m.OrderingCheck)]
            series = {n: run.series(n) for n in run.series_names()} if needed else {}
        results = [c.to_dict() for c in run_checks(spec, series, run.info.get("references", {}))]
        found = write_verdict(registry.root, run.run_key, checks, results)
    if index and (force or before is None or before.get("verdict_id") != found["verdict_id"]):
        # the current verdict changed (a reused run judged as before needs no index write): a cache,
        # errors are swallowed, and a run missing from it makes the next reader rebuild it
        update_index(registry, run)
    return [CheckResult.from_dict(r) for r in found["results"]]


def _record(spec: m.Spec, out: RunOutput, sid: str, key: str, started: str) -> tuple[dict, dict]:
    """(series incl. derived, run.json) of a finished execution. Checks are not part of it: they are
    judged into a verdict beside the committed run (:func:`judge`)."""
    series = {**out.series, **derived_series(spec, out.series, out.references)}
    info = {
        "status": out.status,
        "end_step": out.end_step,
        "stop_cause": out.stop_cause,
        "events": out.events,
        "references": out.references,
        "spec_id": sid,
        "run_key": key,
        "data": out.fingerprints,
        "started_at": started,
        "finished_at": _now(),
        "resumed_from": out.resumed_from,
        "timings": out.timings,
        "execution": out.execution,
        "provenance": provenance(),
    }
    return series, info


def run_one(
    spec: m.Spec,
    registry: Registry,
    progress: Progress | None = None,
    reuse: Reuse = "exact",
    poll: float = 0.5,
    deep: bool = False,
) -> Outcome:
    """The stored run of ``spec``: found by its identity, or computed now and committed.

    Exactly one process computes a run: it holds the run's claim, heartbeats it between chunks and
    checkpoints into ``staging/<run_key>/``; a process that finds the claim held waits for the commit,
    and one that finds it stale takes it over and resumes from the last checkpoint.
    """
    enable_x64()
    job = Job.of(spec)
    found = job.lookup(registry, reuse, deep)
    if found is not None:
        return found
    if job.stored is not None:  # reuse == "never": recompute in memory, compare, keep the stored run
        series, _ = _record(spec, execute(spec, job.host, progress), job.sid, job.key, _now())
        judge(job.stored, spec, registry)
        return Outcome(job.stored, spec, reused=True, notice=_compare(job.stored, series))
    return compute([job], registry, progress, poll)[0]


@dataclass
class Job:
    """A spec with its identity, host-side inputs and, if any, its stored run."""

    spec: m.Spec
    host: HostProblem
    sid: str
    key: str
    env: dict[str, Any]
    stored: Run | None = None
    point: Point | None = None
    notice: str | None = None  # what reuse found (a damaged stored run, quarantined)

    @classmethod
    def of(cls, spec: m.Spec, point: Point | None = None) -> Job:
        """Load the spec's data and initial parameters and compute its run key."""
        sid = spec_id(spec.model_dump(mode="json"))
        env = numerics_environment()
        host = prepare(spec)
        key = run_key(sid, env, host.fingerprints)
        return cls(spec, host, sid, key, env, None, point)

    def lookup(self, registry: Registry, reuse: Reuse, deep: bool = False) -> Outcome | None:
        """The outcome of reusing a stored run, if ``reuse`` allows one (sets :attr:`stored`).

        What is served is verified first (``registry.integrity.serve``: manifest and sizes, ids; with
        ``deep`` also hashes and every series): a damaged run is quarantined and computed again.
        """
        self.stored, self.notice = serve(registry, self.key, deep)
        if self.stored is not None and reuse != "never":
            judge(self.stored, self.spec, registry)
            return Outcome(self.stored, self.spec, reused=True)
        if self.stored is None and reuse == "compatible":
            found = _compatible(registry, self.sid, self.env)
            if found is not None:
                judge(found[0], self.spec, registry)
                return Outcome(found[0], self.spec, reused=True, notice=found[1])
        return None


@dataclass
class _Claimed:
    """A job this process holds the claim of, with its work directory and checkpoints."""

    job: Job
    claim: Any
    staged: Any
    checkpoints: RunCheckpoints
    started: str


def compute(
    jobs: Sequence[Job], registry: Registry, progress: Progress | None = None, poll: float = 0.5
) -> list[Outcome]:
    """Compute and commit ``jobs`` (one pack: one structure, see ``engine.run.pack_key``), in order.

    Each job is claimed first; one whose claim another process holds is waited for (its commit is
    reused). The claimed jobs are grouped by the position of their checkpoints (all 0 on a fresh start)
    and each group runs as one pack (``execute_pack``; alone when it has one member), every member
    committed as soon as it has ended. An exception fails the members not yet committed; they keep
    their claims' checkpoints, so a later attempt resumes them.
    """
    outcomes: dict[int, Outcome] = {}
    claims: dict[int, Any] = {}
    claimed: dict[int, _Claimed] = {}
    waiting: list[int] = []
    try:
        with _Heartbeats(claims):
            for i, job in enumerate(jobs):
                claim = try_claim(registry.root, job.key)
                if claim is None:
                    waiting.append(i)
                    continue
                claims[i] = claim  # from here on released in `finally`, whatever happens
                if (done := registry.get(job.key)) is not None:  # committed while we were claiming
                    outcomes[i] = Outcome(done, job.spec, reused=True, notice="computed by another process")
                    continue
                staged = registry.stage(job.key)
                if (finished := _finish_interrupted_commit(job, staged, registry)) is not None:
                    outcomes[i] = finished
                    continue
                runtime = job.spec.runtime
                checkpoints = RunCheckpoints(
                    staged.path,
                    staged.scratch,
                    runtime.checkpoint_every,
                    claim.heartbeat,
                    runtime.checkpoint_min_seconds,
                )
                claimed[i] = _Claimed(job, claim, staged, checkpoints, _now())
            by_position: dict[int, list[int]] = {}
            for i, c in claimed.items():
                by_position.setdefault(c.checkpoints.position(), []).append(i)
            for members in by_position.values():
                _run_group([claimed[i] for i in members], registry, progress, members, outcomes)
    finally:
        for c in claimed.values():
            with contextlib.suppress(Exception):
                c.checkpoints.close()
        for claim in claims.values():
            with contextlib.suppress(OSError):
                claim.release()
    for i in waiting:
        outcomes[i] = _wait_for(jobs[i], registry, poll)
    return [outcomes[i] for i in range(len(jobs))]


def _finish_interrupted_commit(job: Job, staged: Any, registry: Registry) -> Outcome | None:
    """Publish a staged run whose commit was interrupted after its manifest was written (the process
    died before or during the rename), if the staged files verify against that manifest and the ids;
    else drop the manifest, so the run resumes from its checkpoints (or starts over) like any other."""
    if not (staged.path / MANIFEST).is_file():
        return None
    if verify_run(staged.path, deep=True):
        (staged.path / MANIFEST).unlink(missing_ok=True)
        return None
    run = staged.commit()
    judge(run, job.spec, registry)
    return Outcome(run, job.spec, reused=False, notice="finished the commit of an interrupted run")


class _Heartbeats:
    """Refreshes every held claim from a background thread while a pack's jobs are computed, so the
    claims of members waiting for their group (or of a pack whose chunks are slow) never look abandoned
    (``registry.claims.STALE_AFTER``)."""

    def __init__(self, claims: dict[int, Any], period: float = STALE_AFTER / 4) -> None:
        self.claims, self.period = claims, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="eosdsl-heartbeats", daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.period):
            for claim in list(self.claims.values()):
                claim.heartbeat()

    def __enter__(self) -> _Heartbeats:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _run_group(
    group: Sequence[_Claimed],
    registry: Registry,
    progress: Progress | None,
    indices: Sequence[int],
    outcomes: dict[int, Outcome],
) -> None:
    """Run claimed jobs at one checkpoint position as a pack; each member is committed as soon as it
    ends, in the background while the pack goes on (:class:`_Committer`)."""
    with _Committer(registry, progress) as committer:
        progress = committer.progress

        def commit(k: int, out: RunOutput) -> None:
            if len(group) > 1:  # the pack that computed it: re-running that pack reproduces it bit-exactly
                out.execution["members"] = [c.job.key for c in group]
            committer.submit(indices[k], group[k], out)

        if len(group) == 1:
            c = group[0]
            execute(c.job.spec, c.job.host, progress, c.checkpoints, on_done=commit)
        else:
            execute_pack(
                [c.job.spec for c in group],
                [c.job.host for c in group],
                progress,
                [c.checkpoints for c in group],
                on_done=commit,
            )
    outcomes.update(committer.outcomes)


class _Committer:
    """Stores finished runs in worker threads while the engine computes, and indexes them in one batch.

    Storing a run is mostly waiting: Zarr and Orbax hand their writes to their own threads and file
    system calls release the GIL, so a few commits overlap well even on two cores (measured by
    ``benchmarks/packed_sweep.py --store``). Each commit writes the run's files, saves its final
    checkpoint, publishes it and writes its verdict (:func:`_commit`); on leaving the ``with`` block
    every commit has finished, the committed runs are indexed in one SQLite transaction, and the first
    commit that failed re-raises its exception (the others are still committed). ``progress`` hears
    that the run or pack ``ended`` only then, so its report of the write phase covers the writes.
    """

    WORKERS = 4

    def __init__(self, registry: Registry, progress: Progress | None) -> None:
        self.registry = registry
        self.progress = _EndAfterCommits(progress) if progress is not None else None
        self.pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="eosdsl-commit")
        self.pending: dict[int, Future[tuple[Outcome, Series]]] = {}
        self.outcomes: dict[int, Outcome] = {}

    def __enter__(self) -> _Committer:
        return self

    def submit(self, index: int, claimed: _Claimed, out: RunOutput) -> None:
        self.pending[index] = self.pool.submit(_commit, claimed, out, self.registry)

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)
        committed, error = [], None
        for index, future in self.pending.items():
            try:
                outcome, series = future.result()
            except Exception as failure:  # noqa: BLE001 — the others are committed and indexed first
                error = error or failure
                continue
            self.outcomes[index] = outcome
            committed.append((outcome.run, series))
        update_index_many(self.registry, committed)
        if self.progress is not None:
            self.progress.release()
        if error is not None and exc[0] is None:
            raise error


class _EndAfterCommits:
    """A progress callback that forwards everything but ``ended``, which it holds until :meth:`release`
    (the engine reports the end when its last member is handed over, before it is written)."""

    def __init__(self, progress: Progress) -> None:
        self.inner, self.held = progress, []

    def __call__(self, done: int, total: int) -> None:
        self.inner(done, total)

    def writing(self, runs: int) -> None:
        report_writing(self.inner, runs)

    def ended(self, ends: Sequence[tuple[str, int]], total: int) -> None:
        self.held.append((list(ends), total))

    def release(self) -> None:
        for ends, total in self.held:
            report_ended(self.inner, ends, total)
        self.held = []


def _commit(c: _Claimed, out: RunOutput, registry: Registry) -> tuple[Outcome, Series]:
    """Write a finished run into its staging directory, save its final checkpoint and publish it, with
    its verdict (not indexed: :class:`_Committer` indexes a batch). Returns the outcome and the series
    written."""
    job, staged = c.job, c.staged
    series, info = _record(job.spec, out, job.sid, job.key, c.started)
    staged.write_run(job.spec.model_dump(mode="json"), job.env, info, series, {"references": out.references})
    c.checkpoints.save_final()
    run = staged.commit()
    judge(run, job.spec, registry, series, index=False)
    notice = job.notice
    if out.resumed_from is not None:
        notice = f"resumed from the checkpoint at step {out.resumed_from}"
    elif c.claim.took_over:
        notice = "took over an abandoned claim"
    return Outcome(run, job.spec, reused=False, notice=notice), series


def _wait_for(job: Job, registry: Registry, poll: float) -> Outcome:
    """Wait for the process holding ``job``'s claim to commit it; compute it if that process dies."""
    while (done := registry.get(job.key)) is None:
        if not claim_is_live(registry.root, job.key):
            return compute([job], registry, None, poll)[0]  # takes the abandoned claim over
        time.sleep(poll)
    judge(done, job.spec, registry)  # the other process may have judged it with other checks
    return Outcome(done, job.spec, reused=True, notice="computed by another process")


def sweep_checks(spec: m.Spec, outcomes: Sequence[Outcome]) -> list[CheckResult]:
    """The sweep-level checks of ``spec`` over its points: the ``ordering`` checks over the stored runs,
    then the claims of ``sweep.checks`` over every point (:mod:`eosdsl.checks.sweep_claims`; a point
    without a stored run is *missing* there).

    An ordering whose ``over`` names case labels is checked among the cases at each grid point (one
    result per grid point when there is a grid); otherwise it orders the points by their full labels.
    """
    claims = spec.sweep.checks if spec.sweep is not None else []
    table = claims_table(spec, outcomes, claims) if claims else None
    outcomes = [o for o in outcomes if o.run is not None]
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
    return results + [_claim_result(claim, table) for claim in claims]


def _claim_result(claim: Any, table: Table) -> CheckResult:
    """A sweep claim's result; one that cannot be evaluated fails (the sweep's runs are kept)."""
    try:
        return evaluate_claim(claim, table)
    except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as err:
        name = claim.name or claim.kind
        return CheckResult(name, False, math.nan, f"could not be evaluated: {type(err).__name__}: {err}", {})


def claims_table(spec: m.Spec, outcomes: Sequence[Outcome], claims: Sequence[Any]) -> Table:
    """The table the sweep claims see: per point its case, swept values (not the paths cases set),
    status and the quantities the claims read, computed from its stored run (NaN, with the reason, where
    one cannot be: an unrecorded series, a vector)."""
    cases = spec.sweep.cases if spec.sweep else []
    set_by_cases = {format_path(split_dotted(k)) for case in cases for k in case.set}
    axes = tuple(a for a in _axes([o.point for o in outcomes if o.point]) if a not in set_by_cases)
    needed = list(dict.fromkeys(q for claim in claims for q in quantities_of(claim)))
    try:  # read only the series the quantities use
        names: set[str] | None = {n for of, _ in needed for n in parse(of).names}
    except ValueError:  # an expression the plain parser does not take: read every series
        names = None
    rows = []
    for o in outcomes:
        point = o.point
        quantities: dict[str, float] = {}
        problems: dict[str, str] = {}
        if o.run is not None:
            wanted = [s for s in o.run.series_names() if names is None or expression_name(s) in names]
            series = {s: o.run.series(s) for s in wanted}
            scalars = scalars_of(o.spec, o.run.info.get("references", {}))
            for of, at in needed:
                key = quantity_key(of, at)
                try:
                    quantities[key] = run_quantity(of, at, series, scalars)
                except (KeyError, ValueError, TypeError, ArithmeticError, IndexError) as err:
                    quantities[key], problems[key] = math.nan, f"{o.label}: {err}"
        rows.append(
            Row(
                label=o.label or "",
                case=point.case if point else None,
                axes={a: point.assignments[a] for a in axes if point and a in point.assignments},
                status=o.status,
                quantities=quantities,
                problems=problems,
            )
        )
    return Table(axes, tuple(rows))


def _final_of(source: str, outcome: Outcome) -> float:
    run = outcome.run
    series = {name: run.series(name) for name in run.series_names()}
    return final_value(source, series, scalars_of(outcome.spec, run.info.get("references", {})))


class SweepReporter(Protocol):
    """What a sweep tells its caller while it runs (the CLI draws progress from it)."""

    def planned(self, points: int, reused: int, packs: Sequence[int]) -> None:
        """Before computing: the number of points, how many are stored already, the pack sizes."""

    def pack(self, index: int, labels: Sequence[str]) -> Progress | None:
        """A pack starts (its members' labels); returns its per-chunk step callback."""

    def finished(self, outcome: Outcome) -> None:
        """A point is done: computed, reused or failed."""


@dataclass
class Plan:
    """The points of a sweep with their identities: which are stored, and how the rest are packed."""

    jobs: list[Job]
    reused: dict[int, Outcome]
    packs: list[list[int]]  # indices into ``jobs``, each list one pack (expansion order inside)
    notes: list[str] = dataclasses.field(default_factory=list)  # why points were not packed


DEFAULT_PACK_BYTES = 2 << 30
"""Memory a pack's states, stacked data and per-chunk outputs may take when ``--pack`` is not given."""

MAX_PACK = 256

def plan_points(
    points: Sequence[Point],
    registry: Registry,
    reuse: Reuse = "exact",
    pack: int | None = None,
    deep: bool = False,
) -> Plan:
    """Identify every point, find the stored ones, and pack the rest (``pack``: members per pack; None:
    as many as fit in :data:`DEFAULT_PACK_BYTES`, at most :data:`MAX_PACK`; 1: no packing)."""
    enable_x64()
    jobs = [Job.of(p.spec, point=p) for p in points]
    shared: dict[tuple, Any] = {}  # one copy of each dataset for the whole sweep, not one per point
    for job in jobs:
        job.host = job.host._replace(data=shared.setdefault(data_key(job.host), job.host.data))
    reused: dict[int, Outcome] = {}
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        found = job.lookup(registry, reuse, deep)
        if found is not None:
            reused[i] = found
        else:
            groups.setdefault(pack_key(job.spec, job.host), []).append(i)
    packs, notes = [], []
    for members in groups.values():
        size, note = (pack, None) if pack else _auto_pack_size([jobs[i] for i in members])
        packs += [members[k : k + size] for k in range(0, len(members), size)]
        notes += [note] if note else []
    packs.sort(key=lambda p: p[0])
    return Plan(jobs, reused, packs, notes)


def _auto_pack_size(jobs: Sequence[Job]) -> tuple[int, str | None]:
    """(members per pack, why not packed or None), measured: as many as fit in memory
    (:func:`_fitting_pack`) if a trial chunk of that pack costs at most as much per member as one run
    alone (``engine.run.trial_chunk_seconds``), else 1.

    Packing pays when a step's fixed cost (loop, dispatch, kernel launches) dominates: the members share
    it. A compute-bound step gains nothing on a CPU (a batched matmul does the work of the separate
    ones, often slower) and members that end early wait for the rest; so this is measured on the
    machine at hand rather than guessed from a FLOP count. Measured on 2 CPU cores: paper 000's β-sweep
    runs ≈15× faster packed, a 300-image Fashion-MNIST MLP sweep ≈3× slower (so it runs alone).
    """
    size = _fitting_pack(jobs)
    if size == 1:
        return 1, None
    head = jobs[:size]
    alone = trial_chunk_seconds([head[0].spec], [head[0].host])
    packed = trial_chunk_seconds([j.spec for j in head], [j.host for j in head])
    if packed <= size * alone:
        return size, None
    return 1, (
        f"{len(jobs)} points run one at a time: a trial pack of {size} took {packed / size * 1e3:.3g} ms "
        f"per member-chunk against {alone * 1e3:.3g} ms alone on {jax.default_backend()}; --pack N packs them"
    )


def _fitting_pack(jobs: Sequence[Job]) -> int:
    """Members per pack so that a pack of ``jobs`` (one pack key) fits :data:`DEFAULT_PACK_BYTES`."""
    own_data = len({data_key(j.host) for j in jobs}) > 1
    member = member_bytes(jobs[0].spec, jobs[0].host, own_data)
    return max(1, min(len(jobs), MAX_PACK, DEFAULT_PACK_BYTES // max(member, 1)))


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
    jobs = [Job.of(m.Spec.model_validate(d)) for d in task.documents]
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
) -> tuple[list[Outcome], list[CheckResult], str | None]:
    """Run every point of a sweep (or the one point of a plain spec), then the sweep-level checks.

    Stored points are reused; the others run in packs (:func:`plan_points`), in-process or on
    ``executor``. A pack that raises fails its members not yet committed and the sweep goes on
    (``fail_fast``: it stops launching packs). Re-running the same command reuses what was committed
    and resumes interrupted points from their checkpoints. ``reuse="never"`` recomputes every point
    alone and compares it with the stored run. A stored point is verified before reuse (``deep``:
    hashes and every series too); a damaged one is quarantined and recomputed.
    """
    if reuse == "never":
        outcomes = [_recompute(p, registry) for p in points]
    else:
        plan = plan_points(points, registry, reuse, pack, deep)
        if reporter:
            reporter.planned(len(points), len(plan.reused), [len(p) for p in plan.packs])
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
                o = Outcome(run, job.spec, reused=False, error=None if run else "not run (--fail-fast)")
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
            "axes": _axes(points),
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
            "created_at": _now(),
        },
    )
    return outcomes, checks, sid


def rejudge_sweep(
    base: m.Spec, outcomes: Sequence[Outcome], registry: Registry, sid: str, record: dict[str, Any]
) -> list[CheckResult]:
    """Evaluate ``base``'s sweep-level checks on a stored sweep again and store them in its record
    (``eosdsl check <sweep>``): the members' runs are judged separately (:func:`judge`)."""
    checks = sweep_checks(base, outcomes)
    registry.write_sweep(
        sid,
        {
            **record,
            "spec": base.model_dump(mode="json"),
            "checks": [c.to_dict() for c in checks],
            "judged_at": _now(),
        },
    )
    return checks


def _recompute(point: Point, registry: Registry) -> Outcome:
    """``run_one(reuse="never")`` for a sweep point: an error fails this point only."""
    try:
        outcome = run_one(point.spec, registry, reuse="never")
    except Exception as exc:  # noqa: BLE001 — one failed point must not stop the sweep
        outcome = Outcome(None, point.spec, reused=False, error=f"{type(exc).__name__}: {exc}")
    outcome.label, outcome.point = point.label, point
    return outcome


def _label(job: Job) -> str:
    return (job.point.label if job.point else None) or job.spec.name


def _collect(
    jobs: Sequence[Job],
    indices: Sequence[int],
    registry: Registry,
    error: BaseException | None,
    done: list[Outcome] | list[MemberResult] | None,
    results: dict[int, Outcome],
    reporter: SweepReporter | None,
) -> bool:
    """Record a pack's outcomes (``done``: outcomes here, or a worker's member results; else what
    reached the registry before ``error``). True if a member failed."""
    failed = False
    for k, i in enumerate(indices):
        spec, found = jobs[i].spec, done[k] if done is not None else None
        if isinstance(found, Outcome):
            outcome = found
        elif isinstance(found, MemberResult) and (run := registry.get(found.key)) is not None:
            outcome = Outcome(run, spec, reused=found.reused, notice=found.notice)
        elif (run := registry.get(jobs[i].key)) is not None:
            outcome = Outcome(run, spec, reused=False)
        else:
            why = f"{type(error).__name__}: {error}" if error else "not stored (the worker reported no error)"
            outcome = Outcome(None, spec, reused=False, error=why)
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
    results: dict[int, Outcome],
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
    results: dict[int, Outcome],
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


def _axes(points: Sequence[Point]) -> list[str]:
    """The swept spec paths in expansion order (case assignments first), each listed once."""
    axes: dict[str, None] = {}
    for point in points:
        axes.update(dict.fromkeys(point.assignments))
    return list(axes)


__all__ = [
    "Job",
    "Outcome",
    "Plan",
    "compute",
    "judge",
    "plan_points",
    "rejudge_sweep",
    "run_one",
    "run_points",
    "sweep_checks",
]
