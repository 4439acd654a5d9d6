"""Orchestration: run specs against a registry — look a run up by its identity, else compute it with
the engine, commit it, and judge its checks. The one place that joins the engine, the checks and the
registry; the CLI and the Python API call it.

One module per job, in import order:

- :mod:`~eosdsl.orchestration.judging` — per-run verdicts and sweep checks on stored runs;
- :mod:`~eosdsl.orchestration.stages` — runs that start from another run (a stage, another spec file's
  run): its parameters and values;
- :mod:`~eosdsl.orchestration.jobs` — a spec's identity and the stored run that may stand for it;
- :mod:`~eosdsl.orchestration.commit` — writing, publishing and indexing finished runs;
- :mod:`~eosdsl.orchestration.running` — claims, checkpoints, packs of the engine; :func:`run_one`;
- :mod:`~eosdsl.orchestration.packing` — planning a sweep: reuse and pack sizes;
- :mod:`~eosdsl.orchestration.dispatch` — running a sweep's packs here or on an executor.
"""

from eosdsl.orchestration.dispatch import (
    EnvironmentMismatch,
    MemberResult,
    PackTask,
    SweepReporter,
    run_pack_task,
    run_points,
)
from eosdsl.orchestration.jobs import Job, JobOutcome, Reuse
from eosdsl.orchestration.judging import claims_table, judge, rejudge_sweep, sweep_checks
from eosdsl.orchestration.packing import Plan, plan_points
from eosdsl.orchestration.running import compute, run_one, start_from_upstream
from eosdsl.orchestration.stages import StageError

__all__ = [
    "EnvironmentMismatch",
    "Job",
    "JobOutcome",
    "MemberResult",
    "PackTask",
    "Plan",
    "Reuse",
    "StageError",
    "SweepReporter",
    "claims_table",
    "compute",
    "judge",
    "plan_points",
    "rejudge_sweep",
    "run_one",
    "run_pack_task",
    "run_points",
    "start_from_upstream",
    "sweep_checks",
]
