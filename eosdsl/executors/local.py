"""The in-process executor: one task at a time, in order, in the calling process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from eosdsl.executors.base import ClosingExecutor

T = TypeVar("T")
R = TypeVar("R")


class LocalExecutor(ClosingExecutor):
    """Runs each task in this process, in order; completion order is therefore task order.

    An ``Exception`` raised by a task is yielded for its index and the next task runs;
    ``KeyboardInterrupt`` and ``SystemExit`` propagate, so Ctrl-C stops the sweep.
    """

    def __repr__(self) -> str:
        return "LocalExecutor()"

    def map_unordered(
        self, fn: Callable[[T], R], tasks: Iterable[T]
    ) -> Iterator[tuple[int, R | BaseException]]:
        for index, task in enumerate(tasks):
            try:
                result: R | BaseException = fn(task)
            except Exception as err:
                result = err
            yield index, result
