"""Jobs: a spec with its identity (spec id, run key), its host-side inputs, and the stored run that may
stand for it (exact or compatible reuse, verified before it is served).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from eosdsl.engine.execute import (
    prepare,
)
from eosdsl.orchestration.judging import judge
from eosdsl.orchestration.stages import StageError, series_difference, start_params
from eosdsl.problems.build import HostProblem
from eosdsl.registry import Registry, StoredRun, numerics_environment, run_key, spec_id
from eosdsl.registry.identity import environment_difference
from eosdsl.registry.integrity import serve
from eosdsl.spec import models as m
from eosdsl.spec.sweep import Point

Reuse = Literal["exact", "compatible", "never"]
"""Which stored run may stand for a spec: the same run key (``exact``), else any run of the same spec
(``compatible``: another environment, so not bit-exact), or none (``never``: recompute and compare)."""


@dataclass
class JobOutcome:
    """One point's result: its stored run (``None`` if it failed), whether it was found rather than
    computed, and any notice or error."""

    run: StoredRun | None
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


def _compatible(registry: Registry, sid: str, env: dict[str, Any]) -> tuple[StoredRun, str] | None:
    """The newest stored run of the same spec in another environment, with what differs."""
    for run in registry.runs():
        if run.info.get("spec_id") == sid:
            diff = environment_difference(run.env, env) or "other dataset contents"
            return run, f"not bit-exact: computed on {diff}"
    return None


def compare_with_stored(stored: StoredRun, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Whether recomputed series are bitwise equal to a stored run's."""
    names = stored.series_names()
    differ = [
        name
        for name, new in series.items()
        if name not in names or series_difference(name, new, stored.series(name)) is not None
    ]
    if not differ:
        return "recomputed: bit-identical to the stored run"
    return f"recomputed: differs from the stored run in {', '.join(differ)} (the stored run is kept)"


@dataclass
class Job:
    """A spec with its identity, host-side inputs and, if any, its stored run."""

    spec: m.Spec
    host: HostProblem
    sid: str
    key: str
    env: dict[str, Any]
    stored: StoredRun | None = None
    point: Point | None = None
    notice: str | None = None  # what reuse found (a damaged stored run, quarantined)
    registry: Registry | None = None  # where a chained spec's start state is read from
    started: bool = False  # whether ``host`` holds the start state (:meth:`start`)

    @classmethod
    def of(cls, spec: m.Spec, point: Point | None = None, registry: Registry | None = None) -> Job:
        """Load the spec's data and initial parameters and compute its run key. A spec resolved to start
        from an upstream run (``start.run``, in ``registry``) starts from that run's state ``start.at``,
        which :meth:`start` loads when the run is to be computed: the key does not depend on it, so a
        lookup or a dry run never reads (or recomputes) an upstream state."""
        sid = spec_id(spec.model_dump(mode="json"))
        env = numerics_environment()
        host = prepare(spec)
        if spec.start is not None and (spec.start.run is None or registry is None):
            start = spec.start
            upstream = f"stage '{start.stage}'" if start.stage else f"upstream spec {start.spec}"
            raise StageError(f"{spec.name}: its {upstream} must be run first")
        key = run_key(sid, env, host.fingerprints)
        return cls(spec, host, sid, key, env, None, point, registry=registry)

    def start(self) -> HostProblem:
        """The host inputs the run is computed from: for a chained spec, with the upstream run's state
        at ``start.at`` as its initial parameters (read from its checkpoints or recomputed, once; the
        same paths, shapes and dtypes as the spec's own, which packing relies on)."""
        if self.spec.start is not None and not self.started:
            assert self.registry is not None  # Job.of refuses a chained spec without one
            self.host = self.host._replace(params=start_params(self.spec, self.host, self.registry))
            self.started = True
        return self.host

    def lookup(self, registry: Registry, reuse: Reuse, deep: bool = False) -> JobOutcome | None:
        """The outcome of reusing a stored run, if ``reuse`` allows one (sets :attr:`stored`).

        What is served is verified first (``registry.integrity.serve``: manifest and sizes, ids; with
        ``deep`` also hashes and every series): a damaged run is quarantined and computed again.
        """
        self.stored, self.notice = serve(registry, self.key, deep)
        if self.stored is not None and reuse != "never":
            judge(self.stored, self.spec, registry)
            return JobOutcome(self.stored, self.spec, reused=True)
        if self.stored is None and reuse == "compatible":
            found = _compatible(registry, self.sid, self.env)
            if found is not None:
                judge(found[0], self.spec, registry)
                return JobOutcome(found[0], self.spec, reused=True, notice=found[1])
        return None
