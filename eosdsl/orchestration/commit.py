"""Committing finished runs: a run's files written into its staging directory, its final checkpoint,
the atomic publication, its verdict; in background threads while the engine goes on, indexed in
batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eosdsl.checks.evaluate import derived_series
from eosdsl.checks.series import Series
from eosdsl.engine.execute import (
    ExecutionResult,
    Progress,
    report_ended,
    report_writing,
)
from eosdsl.orchestration.jobs import Job, JobOutcome
from eosdsl.orchestration.judging import judge
from eosdsl.registry import Registry, provenance
from eosdsl.registry.checkpoints import RunCheckpoints
from eosdsl.registry.index import update_index_many
from eosdsl.registry.integrity import verify_run
from eosdsl.registry.manifest import MANIFEST, utc_timestamp
from eosdsl.spec import models as m

if TYPE_CHECKING:
    pass




@dataclass
class ClaimedJob:
    """A job this process holds the claim of, with its work directory and checkpoints."""

    job: Job
    claim: Any
    staged: Any
    checkpoints: RunCheckpoints
    started: str


def record_of(spec: m.Spec, out: ExecutionResult, sid: str, key: str, started: str) -> tuple[dict, dict]:
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
        "finished_at": utc_timestamp(),
        "resumed_from": out.resumed_from,
        "timings": out.timings,
        "execution": out.execution,
        "provenance": provenance(),
    }
    return series, info


def finish_interrupted_commit(job: Job, staged: Any, registry: Registry) -> JobOutcome | None:
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
    return JobOutcome(run, job.spec, reused=False, notice="finished the commit of an interrupted run")


class Committer:
    """Stores finished runs in worker threads while the engine computes, and indexes them in one batch.

    Storing a run is mostly waiting: Zarr and Orbax hand their writes to their own threads and file
    system calls release the GIL, so a few commits overlap well even on two cores (measured by
    ``benchmarks/packed_sweep.py --store``). Each commit writes the run's files, saves its final
    checkpoint, publishes it and writes its verdict (:func:`commit_run`); on leaving the ``with`` block
    every commit has finished, the committed runs are indexed in one SQLite transaction, and the first
    commit that failed re-raises its exception (the others are still committed). ``progress`` hears
    that the run or pack ``ended`` only then, so its report of the write phase covers the writes.
    """

    WORKERS = 4

    def __init__(self, registry: Registry, progress: Progress | None) -> None:
        self.registry = registry
        self.progress = _EndAfterCommits(progress) if progress is not None else None
        self.pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="eosdsl-commit")
        self.pending: dict[int, Future[tuple[JobOutcome, Series]]] = {}
        self.outcomes: dict[int, JobOutcome] = {}

    def __enter__(self) -> Committer:
        return self

    def submit(self, index: int, claimed: ClaimedJob, out: ExecutionResult) -> None:
        self.pending[index] = self.pool.submit(commit_run, claimed, out, self.registry)

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


def commit_run(c: ClaimedJob, out: ExecutionResult, registry: Registry) -> tuple[JobOutcome, Series]:
    """Write a finished run into its staging directory, save its final checkpoint and publish it, with
    its verdict (not indexed: :class:`Committer` indexes a batch). Returns the outcome and the series
    written."""
    job, staged = c.job, c.staged
    series, info = record_of(job.spec, out, job.sid, job.key, c.started)
    staged.write_run(job.spec.model_dump(mode="json"), job.env, info, series, {"references": out.references})
    c.checkpoints.save_final()
    run = staged.commit()
    judge(run, job.spec, registry, series, index=False)
    notice = job.notice
    if out.resumed_from is not None:
        notice = f"resumed from the checkpoint at step {out.resumed_from}"
    elif c.claim.took_over:
        notice = "took over an abandoned claim"
    return JobOutcome(run, job.spec, reused=False, notice=notice), series
