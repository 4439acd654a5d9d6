"""The Ray executor: each task is a Ray task (1 CPU) in a worker process of a local or existing cluster."""

from __future__ import annotations

import itertools
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, TypeVar

from eosdsl.executors.base import ClosingExecutor, ExecutorError, ExecutorUnavailable

T = TypeVar("T")
R = TypeVar("R")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes, which Ray puts in a remote traceback's first line."""

INSTALL_HINT = "the ray executor needs Ray: pip install 'eosdsl[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`ExecutorUnavailable` saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ExecutorUnavailable(INSTALL_HINT) from err
    return ray


def _invoke(fn: Callable[[T], R], task: T) -> R:
    """What a Ray worker runs: the caller's function on one task."""
    return fn(task)


class RayExecutor(ClosingExecutor):
    """Runs tasks as Ray tasks, one CPU each, and yields their results as they complete.

    ``address`` connects to an existing cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
    without it a local Ray instance with ``num_workers`` CPUs (default: all cores) is started, and
    shut down again by :meth:`close`. A cluster the executor only connected to is never shut down:
    closing disconnects this driver from it. If this process is already connected to Ray (the caller
    called ``ray.init``), that connection is used and left alone.

    ``num_workers`` also bounds how many tasks are in flight at once (on a cluster, how many of its
    CPUs this sweep uses). ``gpus_per_task`` reserves GPUs for each task (Ray then sets
    ``CUDA_VISIBLE_DEVICES`` in the worker); with the default 0, recent Ray (2.60) leaves the variable
    alone, so every worker sees every GPU (and JAX in each one preallocates most of its memory).
    ``runtime_env`` is passed to ``ray.init`` (for example ``{"env_vars": {...}}`` for a cluster whose
    workers do not inherit this process's environment). Ray's default retry of a task whose worker
    died is kept: the rerun finds the dead worker's claim and resumes from its checkpoint.
    """

    def __init__(
        self,
        address: str | None = None,
        num_workers: int | None = None,
        *,
        gpus_per_task: float = 0.0,
        log_to_driver: bool = False,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        if num_workers is not None and num_workers < 1:
            raise ExecutorError(f"the number of Ray workers must be at least 1, not {num_workers}")
        ray = import_ray()
        self._ray = ray
        self.address = address
        self.num_workers = num_workers
        self._started_local = False
        self._connected = False
        self._closed = False
        if not ray.is_initialized():
            common: dict[str, Any] = {
                "log_to_driver": log_to_driver,
                "logging_level": logging.WARNING,
                "runtime_env": dict(runtime_env) if runtime_env is not None else None,
                "ignore_reinit_error": True,
            }
            with warnings.catch_warnings():
                # Ray starts its processes with subprocess (fork + exec, no Python in the child), which
                # JAX's "os.fork() was called" warning cannot tell from a bare fork.
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                if address is None:
                    # "local" starts a new instance even when RAY_ADDRESS names a cluster.
                    cpus = num_workers or os.cpu_count() or 1
                    ray.init(address="local", num_cpus=cpus, include_dashboard=False, **common)
                    self._started_local = True
                else:
                    ray.init(address=address, **common)
            self._connected = True
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus_per_task)(_invoke)

    def __repr__(self) -> str:
        where = self.address or ("local instance" if self._started_local else "existing connection")
        return f"RayExecutor({where!r}, num_workers={self.num_workers})"

    @property
    def started_local(self) -> bool:
        """Whether this executor started the local Ray instance it runs on (and will shut it down)."""
        return self._started_local

    def map_unordered(
        self, fn: Callable[[T], R], tasks: Iterable[T]
    ) -> Iterator[tuple[int, R | BaseException]]:
        if self._closed:
            raise ExecutorError("the Ray executor is closed")
        ray = self._ray
        upcoming = enumerate(tasks)
        fn_ref = ray.put(fn)  # pickled once, not once per task
        remote = self._remote.options(name=getattr(fn, "__qualname__", "task"))  # how Ray's tools show it
        pending: dict[Any, int] = {}  # ObjectRef → task index

        def submit() -> None:
            room = None if self.num_workers is None else self.num_workers - len(pending)
            for index, task in itertools.islice(upcoming, room):
                pending[remote.remote(fn_ref, task)] = index

        try:
            submit()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                finished = [(pending.pop(ref), self._result(ref)) for ref in done]
                submit()  # keep the workers busy while the caller handles the results
                yield from finished
        finally:  # the caller stopped early (an error, Ctrl-C): do not leave work running
            if pending and ray.is_initialized():
                for ref in pending:
                    ray.cancel(ref)

    def _result(self, ref: Any) -> Any:
        """The task's return value, or the exception it raised (the original one where Ray has it)."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            # ``err`` subclasses both RayTaskError and the cause's class; its text is the remote traceback.
            cause = err.cause
            if not isinstance(cause, BaseException) or isinstance(cause, ray.exceptions.RayError):
                return err  # the original exception could not be pickled: Ray's error has its traceback
            cause.add_note(f"raised in a Ray worker: {_ANSI.sub('', str(err))}")
            return cause
        except ray.exceptions.RayError as err:  # the worker died, the task was cancelled, ...
            return err

    def close(self) -> None:
        """Shut down the local instance this executor started, or disconnect from a cluster it joined."""
        if self._closed:
            return
        self._closed = True
        if self._connected and self._ray.is_initialized():
            self._ray.shutdown()  # on a cluster this only disconnects this driver
