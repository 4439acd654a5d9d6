"""What an executor is: something that runs independent tasks and yields their results as they finish."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Protocol, Self, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ExecutorError(Exception):
    """An executor cannot be made or used as asked; a CLI reports the message and exits 2."""


class ExecutorUnavailable(ExecutorError):
    """The executor needs an optional dependency that is not installed; the message says how to get it."""


class Executor(Protocol):
    """Runs ``fn`` on each task and yields ``(index, result)`` pairs in completion order.

    A task that raises yields ``(index, exception)`` instead of stopping the others: the caller decides
    what a failed task means. ``fn`` and the tasks must be picklable (module-level function, plain data)
    for executors that run them in other processes. Use an executor as a context manager, or call
    :meth:`close` when done.
    """

    def map_unordered(
        self, fn: Callable[[T], R], tasks: Iterable[T]
    ) -> Iterator[tuple[int, R | BaseException]]:
        """``(index into tasks, fn(task) or the exception it raised)``, as the tasks finish."""
        ...

    def close(self) -> None:
        """Release what the executor holds (processes, a cluster connection); idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ClosingExecutor:
    """Context-manager plumbing shared by the executors: ``with`` closes on the way out."""

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
