"""Planning a sweep: identify every point, find the stored ones, and pack the rest (members per pack
from the memory a member needs and a measured trial chunk).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax

from eosdsl.cache import cached_measurement
from eosdsl.engine.execute import enable_x64
from eosdsl.engine.packs import data_key, member_bytes, pack_key, trial_chunk_seconds
from eosdsl.orchestration.jobs import Job, JobOutcome, Reuse
from eosdsl.registry import Registry
from eosdsl.spec.sweep import Point


@dataclass
class Plan:
    """The points of a sweep with their identities: which are stored, and how the rest are packed."""

    jobs: list[Job]
    reused: dict[int, JobOutcome]
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
    jobs = [Job.of(p.spec, point=p, registry=registry) for p in points]
    shared: dict[tuple, Any] = {}  # one copy of each dataset for the whole sweep, not one per point
    for job in jobs:
        job.host = job.host._replace(data=shared.setdefault(data_key(job.host), job.host.data))
    reused: dict[int, JobOutcome] = {}
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


TRIAL_BUDGET_S = 2.0
"""The most a trial pack may cost to run (predicted: as many lone trial chunks as it has members, as for a
compute-bound step): a trial is never dearer than what packing could save."""


def _auto_pack_size(jobs: Sequence[Job]) -> tuple[int, str | None]:
    """(members per pack, why not packed or None), measured: as many as fit in memory
    (:func:`_fitting_pack`) if a trial chunk of a pack costs at most as much per member as one run
    alone (``engine.packs.trial_chunk_seconds``), else 1. The trial pack has that many members, or
    fewer so that it costs at most :data:`TRIAL_BUDGET_S` if each member cost as much as a lone chunk;
    when not even two fit, the points run alone without a pack trial (each of their steps costs so much
    that a step's fixed cost, which packing shares, is negligible on this machine).

    Packing pays when a step's fixed cost (loop, dispatch, kernel launches) dominates: the members share
    it. A compute-bound step gains nothing on a CPU (a batched matmul does the work of the separate
    ones, often slower) and members that end early wait for the rest; so this is measured on the
    machine at hand rather than guessed from a FLOP count. Measured on 2 CPU cores: paper 000's β-sweep
    runs ≈15× faster packed, a 300-image Fashion-MNIST MLP sweep ≈3× slower (so it runs alone).

    The trial's timings are kept in the cache (``eosdsl.cache.cached_measurement``, keyed by the pack
    key, the pack size, whether the points carry their own data, the trial budget, this machine's
    numerics platform and eosdsl's source), so a later sweep of the same programs decides from them
    without compiling and running the trial programs again. Only a *clear* outcome is reused: no pack
    trial (a lone chunk dearer than half the budget), or a pack at most :data:`CLEAR_RATIO` or at least
    1/:data:`CLEAR_RATIO` of the lone chunks' cost; a trial near the break-even point, which background
    load could tip either way, is run again by the next sweep (:func:`_clear_trial`).
    """
    if len(jobs) == 1:
        return 1, None  # nothing to pack: no trace of the step to size it
    size = _fitting_pack(jobs)
    if size == 1:
        return 1, None
    document = {
        "measurement": "pack trial",
        "pack": repr(pack_key(jobs[0].spec, jobs[0].host)),
        "members": size,
        "own_data": _own_data(jobs),
        "budget_s": TRIAL_BUDGET_S,
    }
    timings, kept = cached_measurement(
        document, lambda: _pack_trial(jobs, size), lambda found: _clear_trial(found, size)
    )
    alone, trial, packed = timings["alone_s"], timings["trial"], timings["packed_s"]
    earlier = " (timings kept from an earlier trial on this machine)" if kept else ""
    if packed is None:
        return 1, (
            f"{len(jobs)} points run one at a time: a trial chunk took {alone:.3g} s alone on "
            f"{jax.default_backend()}, so a trial pack would cost more than {TRIAL_BUDGET_S:g} s; "
            f"--pack N packs them{earlier}"
        )
    if packed <= trial * alone:
        return size, None
    return 1, (
        f"{len(jobs)} points run one at a time: a trial pack of {trial} took {packed / trial * 1e3:.3g} ms "
        f"per member-chunk against {alone * 1e3:.3g} ms alone on {jax.default_backend()}; --pack N packs "
        f"them{earlier}"
    )


def _pack_trial(jobs: Sequence[Job], size: int) -> dict[str, Any]:
    """The trial of :func:`_auto_pack_size`: ``alone_s`` (a lone chunk of the first job), ``trial`` (the
    members of the trial pack: ``size``, or fewer to fit :data:`TRIAL_BUDGET_S`) and ``packed_s`` (a
    chunk of that pack; None when fewer than two members fit and no pack was tried)."""
    alone = trial_chunk_seconds([jobs[0].spec], [jobs[0].host])
    trial = _trial_members(size, alone)
    if trial < 2:
        return {"alone_s": alone, "trial": trial, "packed_s": None}
    head = jobs[:trial]
    packed = trial_chunk_seconds([j.spec for j in head], [j.host for j in head])
    return {"alone_s": alone, "trial": trial, "packed_s": packed}


def _trial_members(size: int, alone: float) -> int:
    """Members of the trial pack: ``size``, or fewer so that it costs at most :data:`TRIAL_BUDGET_S` if
    each cost ``alone`` seconds (a lone trial chunk)."""
    return min(size, int(TRIAL_BUDGET_S // alone) if alone > 0 else size)


CLEAR_RATIO = 0.8
"""A kept packing trial is reused only when the pack cost at most this fraction, or at least its inverse,
of as many lone chunks (:func:`_clear_trial`)."""


def _clear_trial(found: dict[str, Any], size: int) -> bool:
    """Whether a kept entry is what :func:`_pack_trial` returns for ``size`` members (finite non-negative
    seconds, the trial size it would choose) with a clear outcome (:func:`_auto_pack_size`)."""

    def seconds(x: Any) -> bool:
        return type(x) in (int, float) and math.isfinite(x) and x >= 0

    alone, trial, packed = found.get("alone_s"), found.get("trial"), found.get("packed_s", "absent")
    if not seconds(alone) or type(trial) is not int:
        return False
    if trial != _trial_members(size, alone):
        return False
    if trial < 2:
        return packed is None
    if not seconds(packed):
        return False
    ratio = packed / (trial * alone) if alone > 0 else math.inf
    return ratio <= CLEAR_RATIO or ratio >= 1 / CLEAR_RATIO


def _fitting_pack(jobs: Sequence[Job]) -> int:
    """Members per pack so that a pack of ``jobs`` (one pack key) fits :data:`DEFAULT_PACK_BYTES`."""
    member = member_bytes(jobs[0].spec, jobs[0].host, _own_data(jobs))
    return max(1, min(len(jobs), MAX_PACK, DEFAULT_PACK_BYTES // max(member, 1)))


def _own_data(jobs: Sequence[Job]) -> bool:
    """Whether the points differ in their data (a pack then stacks one copy per member)."""
    return len({data_key(j.host) for j in jobs}) > 1
