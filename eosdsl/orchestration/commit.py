"""Committing finished runs: a run's files written into its staging directory, its final checkpoint
(or, for runs that ended together in a pack, one unit holding their series and final states), the
atomic publication, its verdict; in background threads while the engine goes on, indexed in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosdsl.checks.evaluate import derived_series
from eosdsl.checks.series import Series
from eosdsl.engine.execute import (
    ExecutionResult,
    Progress,
    report_ended,
    report_writing,
)
from eosdsl.orchestration.jobs import Job, JobOutcome
from eosdsl.orchestration.judging import evaluate_checks, judge
from eosdsl.registry import Registry, provenance, zarr_io
from eosdsl.registry.checkpoints import RunCheckpoints, save_stacked
from eosdsl.registry.index import update_index_many
from eosdsl.registry.integrity import verify_run
from eosdsl.registry.manifest import MANIFEST, utc_timestamp
from eosdsl.registry.store import CHECKPOINTS, StagedPack
from eosdsl.spec import models as m


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


def finish_interrupted_commit(
    job: Job, staged: Any, registry: Registry, units: dict | None = None
) -> JobOutcome | None:
    """Publish a staged run whose commit was interrupted after its manifest was written (the process
    died before or during the rename), if the staged files verify against that manifest and the ids
    (and the pack unit it refers to, if any, is published and sound: ``units`` caches the units
    verified for the other runs of the pack); else drop the manifest, so the run resumes from its
    checkpoints (or starts over) like any other. The caller holds the run's claim, which keeps
    ``registry gc`` from removing its unit meanwhile."""
    if not (staged.path / MANIFEST).is_file():
        return None
    if verify_run(staged.path, deep=True, units=units, root=registry.root):
        (staged.path / MANIFEST).unlink(missing_ok=True)
        return None
    run = staged.commit()
    judge(run, job.spec, registry)
    return JobOutcome(run, job.spec, reused=False, notice="finished the commit of an interrupted run")


class Committer:
    """Stores finished runs in worker threads while the engine computes, and indexes them in one batch.

    Storing a run is mostly waiting: Zarr and Orbax hand their writes to their own threads and file
    system calls release the GIL, so a few commits overlap well even on two cores (measured by
    ``benchmarks/packed_sweep.py --store``). A run that ended alone is committed on its own: its files,
    its final checkpoint, its publication and its verdict (:func:`commit_run`). Runs that ended
    together are stored with their pack: one unit for all (:func:`store_pack`), written while each
    run's own files and checks are prepared (:func:`prepare_member`), each run published after it
    (:func:`publish_member`). On leaving the ``with`` block
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

    def submit(self, ended: Sequence[tuple[int, ClaimedJob, ExecutionResult]]) -> None:
        """Commit runs that ended together: stored with their pack, in units of :data:`UNIT_BYTES` at
        most, when there are several with the same kind of series and final states at one position
        (:func:`store_pack`, each run then in its own tasks); else each run on its own
        (:func:`commit_run`). A run whose record cannot be made fails alone (its future holds the
        error), never the engine's pack."""
        records: dict[int, tuple[dict, dict]] = {}
        for index, c, out in ended:
            try:
                records[index] = record_of(c.job.spec, out, c.job.sid, c.job.key, c.started)
            except Exception as error:  # noqa: BLE001 — reported by __exit__, like a failed commit
                self.pending[index] = failed = Future()
                failed.set_exception(error)
        ended = [item for item in ended if item[0] in records]
        for batch in _units(ended, records):
            if len(batch) > 1:
                try:
                    unit = StagedPack(self.registry, [c.job.key for _, c, _ in batch])
                except OSError:
                    unit = None
                if unit is not None:
                    self._submit_unit(unit, batch, records)
                    continue
            for index, claimed, out in batch:
                self.pending[index] = self.pool.submit(
                    commit_run, claimed, out, self.registry, records[index]
                )

    def _submit_unit(
        self,
        unit: StagedPack,
        batch: Sequence[tuple[int, ClaimedJob, ExecutionResult]],
        records: dict[int, tuple[dict, dict]],
    ) -> None:
        """The unit is written while the runs' own files and checks are prepared; each run is published
        after its unit (tasks start in submission order, so no task waits on one not yet started)."""
        published = self.pool.submit(store_pack, unit, [(c, out, records[i]) for i, c, out in batch])
        places = [_StoredIn(unit.pack_id, published, member) for member in range(len(batch))]
        prepared = [
            self.pool.submit(prepare_member, c, out, records[i], place)
            for (i, c, out), place in zip(batch, places, strict=True)
        ]
        for (index, c, out), ready, place in zip(batch, prepared, places, strict=True):
            self.pending[index] = self.pool.submit(
                publish_member, c, out, self.registry, records[index][0], ready, place
            )

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


UNIT_BYTES = 256 << 20
"""The most bytes of one stacked array in a pack unit (its rows are held in memory while it is written);
a larger pack is stored as several units."""


def _units(
    ended: Sequence[tuple[int, ClaimedJob, ExecutionResult]], records: dict[int, tuple[dict, dict]]
) -> list[list[tuple[int, ClaimedJob, ExecutionResult]]]:
    """Runs that ended together, in batches to store as one unit each (a batch of one: alone). They
    share a unit when their series stack (``zarr_io.stackable``) and their final states are at one scan
    position; a batch's stacked arrays stay within :data:`UNIT_BYTES`."""
    finals = {c.checkpoints.final[0] if c.checkpoints.final else None for _, c, _ in ended}
    series = [records[i][0] for i, _, _ in ended]
    if len(ended) < 2 or None in finals or len(finals) != 1 or not zarr_io.stackable(series):
        return [[item] for item in ended]
    row = max((np.asarray(a).nbytes for s in series for pair in s.values() for a in pair), default=0)
    size = max(1, UNIT_BYTES // max(row, 1))
    return [list(ended[k : k + size]) for k in range(0, len(ended), size)]


@dataclass
class _StoredIn:
    """Where a run is stored with its pack: its pack unit's id, the future of the unit's publication,
    and its member index."""

    pack_id: str
    published: Future[None]
    member: int


def store_pack(
    unit: StagedPack, members: Sequence[tuple[ClaimedJob, ExecutionResult, tuple[dict, dict]]]
) -> None:
    """Write the pack unit of runs that ended together (their stacked series and final states, all at
    one scan position: :func:`_units` only groups such runs) and publish it, before the runs that refer
    to it are committed."""
    try:
        series = [record[0] for _, _, record in members]
        unit.write(series, [{"references": out.references} for _, out, _ in members])
        finals = [c.checkpoints.take_final() for c, _, _ in members]
        save_stacked(unit.path / CHECKPOINTS, finals[0][0], [state for _, state in finals])
        unit.commit()
    except BaseException:
        unit.abort()
        raise


def commit_run(
    c: ClaimedJob, out: ExecutionResult, registry: Registry, record: tuple[dict, dict]
) -> tuple[JobOutcome, Series]:
    """Write a finished run into its staging directory, save its final checkpoint and publish it, with
    its verdict (not indexed: :class:`Committer` indexes a batch). Returns the outcome and the series
    written."""
    series, info = record
    c.staged.write_run(
        c.job.spec.model_dump(mode="json"), c.job.env, info, series, {"references": out.references}
    )
    c.checkpoints.save_final()
    return _publish(c, out, registry, series)


def prepare_member(
    c: ClaimedJob, out: ExecutionResult, record: tuple[dict, dict], stored_in: _StoredIn
) -> list[dict]:
    """Everything of committing a run stored with its pack that does not need its unit, done while the
    unit is written: its files (``run.json`` referring to the unit, no series, no checkpoint), its
    manifest (:meth:`~eosdsl.registry.store.StagedRun.seal`) and its checks' results, returned."""
    series, info = record
    info = {**info, "stored_in": {"pack": stored_in.pack_id, "member": stored_in.member}}
    c.checkpoints.keep_latest()
    c.staged.write_run(c.job.spec.model_dump(mode="json"), c.job.env, info, None)
    results = evaluate_checks(c.job.spec, series, out.references)
    c.staged.seal()
    return results


def publish_member(
    c: ClaimedJob,
    out: ExecutionResult,
    registry: Registry,
    series: Series,
    prepared: Future[list[dict]],
    stored_in: _StoredIn,
) -> tuple[JobOutcome, Series]:
    """Publish a run stored with its pack (:func:`prepare_member`) once its unit is published."""
    results = prepared.result()
    stored_in.published.result()
    return _publish(c, out, registry, series, results)


def _publish(
    c: ClaimedJob, out: ExecutionResult, registry: Registry, series: Series, results: list[dict] | None = None
) -> tuple[JobOutcome, Series]:
    """Rename a written run into ``objects/`` and store its verdict (``results``: evaluated already)."""
    job = c.job
    run = c.staged.commit()
    judge(run, job.spec, registry, series, index=False, results=results)
    notice = job.notice
    if out.resumed_from is not None:
        notice = f"resumed from the checkpoint at step {out.resumed_from}"
    elif c.claim.took_over:
        notice = "took over an abandoned claim"
    return JobOutcome(run, job.spec, reused=False, notice=notice), series
