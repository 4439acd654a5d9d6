"""Executors: where the independent tasks of a sweep run.

A sweep is split into *tasks* (a pack of sweep points: the registry's root path and the points' spec
documents). An executor runs a module-level function on each task and yields ``(task index, result)``
as tasks finish; a task that raised yields its exception instead, and the other tasks go on::

    from eosdsl.executors import make_executor

    with make_executor("ray", address=None, workers=4) as executor:
        for index, result in executor.map_unordered(run_pack, packs):
            if isinstance(result, BaseException):
                ...  # report the failed pack
            else:
                ...  # a small picklable summary (run keys, reused flags, notices)

What runs where:

- ``local`` (:class:`LocalExecutor`): every task in this process, one at a time, in order.
- ``ray`` (:class:`RayExecutor`): every task is a Ray task using one CPU, so tasks run in parallel in
  Ray's worker processes. With ``address`` (``--address``) the tasks go to that existing cluster and
  the executor only connects (closing disconnects; the cluster keeps running); without it a local Ray
  instance with ``workers`` CPUs (default: all cores) is started and shut down on close. Start-up of a
  local instance takes a few seconds. The function and the tasks are pickled (cloudpickle) to the
  workers, and each worker imports ``eosdsl`` itself, so it runs with the same settings as this process
  (64-bit JAX types included: ``eosdsl.orchestration.run_one`` enables them). Ray itself is an optional extra:
  ``pip install 'eosdsl[ray]'``; without it, ``make_executor("ray", ...)`` raises
  :class:`ExecutorUnavailable` whose message says so.

How results are committed: not through the executor. The task function
(``eosdsl.orchestration.run_pack_task``) opens the registry by its path in the worker and computes its pack
with ``eosdsl.orchestration.compute``, which checks that the worker derives the same run keys as the
planning process and commits through the registry's claim protocol (:mod:`eosdsl.registry.claims`): a run is
computed by the one process that holds its claim, and a process that finds the claim held waits for the
commit and reuses the run ("computed by another process"). So two workers, two executors, or a worker and a
CLI run on the same registry never compute the same run twice, and a task that Ray reruns after its worker
died resumes from that run's last checkpoint. Workers must therefore see the registry at the same path (one
machine, or a shared filesystem on a cluster), and they return only small picklable results (run keys,
flags, notices; no JAX arrays) to this process. """

from __future__ import annotations

from eosdsl.executors.base import Executor, ExecutorError, ExecutorUnavailable
from eosdsl.executors.local import LocalExecutor
from eosdsl.executors.ray_executor import INSTALL_HINT, RayExecutor

EXECUTORS = ("local", "ray")
"""The names :func:`make_executor` accepts (the CLI's ``--executor`` choices)."""


def make_executor(name: str, address: str | None = None, workers: int | None = None) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``), ready to use; close it when done.

    ``address`` (an existing Ray cluster) and ``workers`` (parallel tasks) apply to ``ray`` only.
    Raises :class:`ExecutorUnavailable` when Ray is not installed, :class:`ExecutorError` for an
    unknown name or an option the executor does not take.
    """
    if name == "local":
        if address is not None:
            raise ExecutorError("--address needs --executor ray")
        if workers not in (None, 1):
            raise ExecutorError("the local executor runs one task at a time: --workers needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_workers=workers)
    raise ExecutorError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "INSTALL_HINT",
    "Executor",
    "ExecutorError",
    "ExecutorUnavailable",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
]
