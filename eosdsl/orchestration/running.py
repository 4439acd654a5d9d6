"""Computing jobs: claims and their heartbeats, checkpoints, one pack of the engine per checkpoint
position, each member committed as it ends; and :func:`run_one`, the whole path of one spec.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from eosdsl.engine.execute import (
    ExecutionResult,
    Progress,
    enable_x64,
    execute,
)
from eosdsl.engine.packs import execute_pack
from eosdsl.orchestration.commit import ClaimedJob, Committer, finish_interrupted_commit, record_of
from eosdsl.orchestration.jobs import Job, JobOutcome, Reuse, compare_with_stored
from eosdsl.orchestration.judging import judge
from eosdsl.orchestration.stages import StageError, resolved, upstream_spec
from eosdsl.registry import Registry, StoredRun
from eosdsl.registry.checkpoints import RunCheckpoints
from eosdsl.registry.claims import STALE_AFTER, claim_is_live, try_claim
from eosdsl.registry.manifest import utc_timestamp
from eosdsl.spec import models as m


def run_one(
    spec: m.Spec,
    registry: Registry,
    progress: Progress | None = None,
    reuse: Reuse = "exact",
    poll: float = 0.5,
    deep: bool = False,
) -> JobOutcome:
    """The stored run of ``spec``: found by its identity, or computed now and committed.

    Exactly one process computes a run: it holds the run's claim, heartbeats it between chunks and
    checkpoints into ``staging/<run_key>/``; a process that finds the claim held waits for the commit,
    and one that finds it stale takes it over and resumes from the last checkpoint.
    """
    enable_x64()
    spec = start_from_upstream(spec, registry, reuse=reuse, deep=deep, progress=lambda _: progress)
    job = Job.of(spec, registry=registry)
    found = job.lookup(registry, reuse, deep)
    if found is not None:
        return found
    if job.stored is not None:  # reuse == "never": recompute in memory, compare, keep the stored run
        series, _ = record_of(spec, execute(spec, job.start(), progress), job.sid, job.key, utc_timestamp())
        judge(job.stored, spec, registry)
        return JobOutcome(job.stored, spec, reused=True, notice=compare_with_stored(job.stored, series))
    return compute([job], registry, progress, poll)[0]


def start_from_upstream(
    spec: m.Spec,
    registry: Registry,
    name: str | None = None,
    reuse: Reuse = "exact",
    deep: bool = False,
    done: dict[str, tuple[m.Spec, StoredRun]] | None = None,
    compute: bool = True,
    progress: Callable[[str], Progress | None] | None = None,
) -> m.Spec:
    """``spec`` resolved to start from its upstream run (eosdsl.spec.stages: a stage, or another spec
    file), which is found stored or computed now like any run (:func:`run_one`, which resolves an
    upstream that starts from another run in turn); ``spec`` itself when it has no unresolved ``start``,
    or (``compute=False``, a dry run) when its upstream run is not stored. ``name``: the sweep's base
    name (a stage's name begins with it); ``done``: upstream runs already resolved, by spec document
    (points sharing one look it up once); ``progress``: the progress callback of an upstream run, given
    its name."""
    if spec.start is None or spec.start.run is not None:
        return spec
    enable_x64()  # before any identity is computed (the numerics environment records it)
    upstream = upstream_spec(spec, name)
    document = json.dumps(upstream.model_dump(mode="json"), sort_keys=True)
    if done is not None and document in done:
        upstream, run = done[document]
    else:
        if compute:
            shown = progress(upstream.name) if progress is not None else None
            outcome = run_one(upstream, registry, shown, reuse=reuse, deep=deep)
            if outcome.run is None:
                raise StageError(f"the upstream run of {spec.name} ({upstream.name}) failed: {outcome.error}")
        else:
            looked_up = start_from_upstream(upstream, registry, reuse=reuse, deep=deep, compute=False)
            if looked_up.start is not None and looked_up.start.run is None:
                return spec  # the upstream's own upstream is not stored: neither is the upstream
            outcome = Job.of(looked_up, registry=registry).lookup(registry, reuse, deep)
            if outcome is None or outcome.run is None:
                return spec
        run = outcome.run
        if done is not None:
            done[document] = (upstream, run)
    return resolved(spec, run, upstream)


def compute(
    jobs: Sequence[Job], registry: Registry, progress: Progress | None = None, poll: float = 0.5
) -> list[JobOutcome]:
    """Compute and commit ``jobs`` (one pack: one structure, see ``engine.packs.pack_key``), in order.

    Each job is claimed first; one whose claim another process holds is waited for (its commit is
    reused). The claimed jobs are grouped by the position of their checkpoints (all 0 on a fresh start)
    and each group runs as one pack (``execute_pack``; alone when it has one member), every member
    committed as soon as it has ended. An exception fails the members not yet committed; they keep
    their claims' checkpoints, so a later attempt resumes them.
    """
    outcomes: dict[int, JobOutcome] = {}
    claims: dict[int, Any] = {}
    claimed: dict[int, ClaimedJob] = {}
    units: dict = {}  # the pack units verified for staged runs (one check per unit, not per run)
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
                    notice = "computed by another process"
                    outcomes[i] = JobOutcome(done, job.spec, reused=True, notice=notice)
                    continue
                staged = registry.stage(job.key)
                if (finished := finish_interrupted_commit(job, staged, registry, units)) is not None:
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
                claimed[i] = ClaimedJob(job, claim, staged, checkpoints, utc_timestamp())
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
    group: Sequence[ClaimedJob],
    registry: Registry,
    progress: Progress | None,
    indices: Sequence[int],
    outcomes: dict[int, JobOutcome],
) -> None:
    """Run claimed jobs at one checkpoint position as a pack; each member is committed as soon as it
    ends, in the background while the pack goes on (:class:`Committer`)."""
    hosts = [c.job.start() for c in group]  # a chained run's start state, read now that it is computed
    with Committer(registry, progress) as committer:
        progress = committer.progress

        def commit(ended: list[tuple[int, ExecutionResult]]) -> None:
            for _, out in ended:
                if len(group) > 1:  # the pack that computed it: re-running it reproduces the run bit-exactly
                    out.execution["members"] = [c.job.key for c in group]
            committer.submit([(indices[k], group[k], out) for k, out in ended])

        if len(group) == 1:
            c = group[0]
            execute(c.job.spec, hosts[0], progress, c.checkpoints, on_done=commit)
        else:
            execute_pack(
                [c.job.spec for c in group],
                hosts,
                progress,
                [c.checkpoints for c in group],
                on_done=commit,
            )
    outcomes.update(committer.outcomes)


def _wait_for(job: Job, registry: Registry, poll: float) -> JobOutcome:
    """Wait for the process holding ``job``'s claim to commit it; compute it if that process dies."""
    while (done := registry.get(job.key)) is None:
        if not claim_is_live(registry.root, job.key):
            return compute([job], registry, None, poll)[0]  # takes the abandoned claim over
        time.sleep(poll)
    judge(done, job.spec, registry)  # the other process may have judged it with other checks
    return JobOutcome(done, job.spec, reused=True, notice="computed by another process")
