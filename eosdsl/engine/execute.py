"""Execute one validated spec: the only loop in eosdsl.

The host drives jitted chunks of ``lax.scan``; between chunks it reports progress and keeps the
measured values. Nothing here touches the disk: the caller stores the returned
:class:`ExecutionResult`. Packs of specs run in :mod:`eosdsl.engine.packs`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from eosdsl.engine.program import (
    RUNNING,
    STATUS_NAMES,
    Layout,
    State,
    Structure,
    dtype_of,
    hyperparameters,
    init_state,
    run_chunk,
    series_of,
    triggers_of,
)
from eosdsl.engine.step_curvature import recursion_outputs
from eosdsl.problems.build import HostProblem, host_problem
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope
from eosdsl.spec.stages import recorded_events

Progress = Callable[[int, int], None]
"""Called after each chunk with (steps measured so far, steps planned).

A progress callback may also have two optional methods, which the engine calls when present (see
``eosdsl.cli.common.SweepProgress``):

- ``writing(runs)``: ``runs`` runs have ended and their results are about to be handed to ``on_done``
  (written to the registry); called after the chunk's ``progress(done, total)``;
- ``ended(ends, total)``: the run or pack is over; ``ends`` holds ``(status, end step)`` per member
  (``("stopped", 548)``), so a run that stopped early is not reported as done at ``total``.
"""


class Checkpoints(Protocol):
    """Where a run keeps its progress so a killed process can resume it (see eosdsl.registry.checkpoints).

    ``position`` counts scan iterations done (a multiple of the chunk length), so a resumed run replays
    exactly the chunks an uninterrupted run would — which is what makes resuming bit-exact on CPU.
    """

    def position(self) -> int:
        """Scan iterations covered by the latest checkpoint (0: none)."""

    def restore(self, template: State) -> tuple[State, int, list[dict[str, np.ndarray]]] | None:
        """(state, position, outputs of the chunks before ``position``) of the latest checkpoint."""

    def due(self, position: int) -> bool:
        """Whether a checkpoint is due at ``position`` (a pack asks one member and saves them all)."""

    def after_chunk(
        self,
        state: State | None,
        position: int,
        output: dict[str, np.ndarray],
        ended: bool,
        save: bool | None = None,
    ) -> None:
        """Called after every chunk; saves a checkpoint when due (or as ``save`` says). When the run ended,
        the final state is kept for whoever stores the finished run (``on_done``) to save. ``state`` may
        be None when ``save`` is False and the run has not ended (a pack then does not cut it out)."""


def report_writing(progress: Progress | None, runs: int) -> None:
    """Tell ``progress`` that the results of ``runs`` runs are being written (if it listens)."""
    writing = getattr(progress, "writing", None)
    if writing is not None and runs > 0:
        writing(runs)


def report_ended(progress: Progress | None, ends: Sequence[tuple[str, int]], total: int) -> None:
    """Tell ``progress`` how each member of a finished run or pack ended (if it listens)."""
    ended = getattr(progress, "ended", None)
    if ended is not None:
        ended(list(ends), total)


def enable_x64() -> None:
    """eosdsl runs with 64-bit types enabled; float32 specs use explicit float32 arrays. Every entry
    point calls this first."""
    jax.config.update("jax_enable_x64", True)


@dataclass
class ExecutionResult:
    """What one run produced, in memory."""

    status: str  # completed | stopped | diverged
    end_step: int
    series: dict[str, tuple[np.ndarray, np.ndarray]]  # name → (steps, values)
    events: list[dict[str, Any]]  # one entry per event/stop rule: name, kind, fired_at (or None)
    stop_cause: str | None
    references: dict[str, float]
    fingerprints: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None  # step of the checkpoint this run resumed from, if any
    execution: dict[str, Any] = field(
        default_factory=lambda: {"mode": "alone"}
    )  # alone | packed (index, size)


def prepare(spec: m.Spec) -> HostProblem:
    """The host-side inputs of ``spec`` (initial parameters, data, reference values)."""
    enable_x64()
    dtype = dtype_of(spec)
    return host_problem(spec.problem, Scope(spec.constants, dtype), spec.seed)


def layout_of(spec: m.Spec, host: HostProblem) -> Layout:
    """The static facts about ``spec``'s problem the compiled program is specialized to."""
    groups = tuple(host.params)
    names = () if host.network is not None else groups
    return Layout(names, groups, host.network, recursion_outputs(spec, host))


def run_chunks(
    structure: Structure,
    hparams: Any,
    layout: Layout,
    length: int,
    state: State,
    data: Any,
    iterations: int,
) -> Iterator[tuple[State, dict[str, np.ndarray]]]:
    """Advance ``state`` by ``iterations`` scan iterations in chunks of ``length`` (the last one shorter
    when ``length`` does not divide ``iterations``), stopping after the chunk in which the run ended.
    Yields (state, the chunk's outputs on the host) after each chunk.

    The one loop that drives a run's program: :func:`execute` runs whole chunks to the end of a run;
    ``orchestration.stages.state_at`` recomputes a stored run's state between its kept checkpoints
    with the same chunk program (one compilation per chunk length: ``length`` is static).
    """
    done = 0
    while int(state.status) == RUNNING and done < iterations:
        size = min(length, iterations - done)
        state, out = run_chunk(structure, hparams, layout, size, state, data)
        done += size
        yield state, jax.device_get(out)


def chunk_length(spec: m.Spec) -> int:
    """The number of scan iterations per chunk a run of ``spec`` uses (:func:`execute`)."""
    return _plan(spec)[1]


def execute(
    spec: m.Spec,
    host: HostProblem | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    on_done: Callable[[list[tuple[int, ExecutionResult]]], None] | None = None,
) -> ExecutionResult:
    """Run ``spec`` to its end (completed, stopped by a rule or event, or diverged).

    With ``checkpoints``, the run starts from the latest checkpoint if there is one.
    ``on_done([(0, out)])`` (storing the run) is called before ``progress`` hears that the run ended, as
    in :func:`execute_pack`.
    """
    enable_x64()
    started = time.perf_counter()
    host = host or prepare(spec)
    structure = Structure.of(spec)
    hparams = hyperparameters(spec)
    layout = layout_of(spec, host)
    state = init_state(structure, hparams, layout, host.params)

    total, length = _plan(spec)
    chunks: list[dict[str, np.ndarray]] = []
    position, resumed_from = 0, None
    restored = checkpoints.restore(state) if checkpoints else None
    if restored is not None:
        state, position, chunks = restored
        resumed_from = int(state.t)
    compile_done = None
    planned = math.ceil(total / length) * length  # whole chunks: a resumed run replays the same ones
    chunked = run_chunks(structure, hparams, layout, length, state, host.data, planned - position)
    for state, output in chunked:  # after the loop, state is the final state (or the restored one)
        chunks.append(output)
        position += length
        compile_done = compile_done or time.perf_counter()
        ended = int(state.status) != 0
        if checkpoints:
            checkpoints.after_chunk(state, position, output, ended)
        if progress:
            progress(int(state.t) + ended, total)  # steps measured so far
    finished = time.perf_counter()
    timings = {"total_s": finished - started, "first_chunk_s": (compile_done or finished) - started}
    output = _output(spec, layout, host, chunks, jax.device_get(state), timings, resumed_from)
    if on_done:
        report_writing(progress, 1)
        on_done([(0, output)])
    report_ended(progress, [(output.status, output.end_step)], total)
    return output


PACKED_AGREEMENT: dict[str, dict[str, Any]] = {
    "float64": {
        "tested_rtol": 1e-10,
        "statement": "a lone run of this point follows the same course (status, end step, events, recorded "
        "steps) and agrees to rounding: vmapped kernels may sum in another order. Tested bitwise on "
        "elementwise toys, within relative 1e-10 (toys, 3000 steps) and 1e-12 (an MLP, 300 steps) on "
        "non-diverging runs. The dynamics amplify the difference: at the edge of stability, or when a "
        "run diverges, there is no bound.",
    },
    "float32": {
        "tested_rtol": 1e-5,
        "statement": "a lone run of this point follows the same course on short non-chaotic runs and agrees "
        "to a few float32 ulps per step: vmapped kernels may sum in another order. Tested within relative "
        "1e-5 on non-diverging MLP runs (4e-7 measured over 70 steps); a long float32 network run drifts "
        "further (5.6e-5 seen), and at the edge of stability, or when a run diverges, there is no bound.",
    },
}
"""Stored with every packed run (``run.json`` ``execution.agreement``, for its precision): what a lone
run of the same point is guaranteed to agree with, and the tolerance the tests hold it to."""


def _plan(spec: m.Spec) -> tuple[int, int]:
    """(steps measured, chunk length): steps 0..T are measured, T updates."""
    total = spec.train.steps + 1
    return total, min(spec.runtime.chunk, total)


def _output(
    spec: m.Spec,
    layout: Layout,
    host: HostProblem,
    chunks: Sequence[dict[str, np.ndarray]],
    state: State,
    timings: dict[str, float],
    resumed_from: int | None,
    pack: tuple[int, int] | None = None,
) -> ExecutionResult:
    """The ExecutionResult of a finished run from its chunks' outputs and its final (host) state."""
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    steps = np.concatenate([c["step"] for c in chunks])
    for name in series_of(spec, layout):
        valid = np.concatenate([c[f"{name}/valid"] for c in chunks])
        values = np.concatenate([c[name] for c in chunks])
        series[name] = (steps[valid].astype(np.int64), values[valid])

    labels = recorded_events(spec)
    events = [
        {"name": label, "kind": kind, "fired_at": int(at) if at >= 0 else None}
        for (label, kind), at in zip(labels, np.asarray(state.fired_at)[: len(labels)], strict=True)
    ]
    cause = int(state.stop_cause)
    execution: dict[str, Any] = {"mode": "alone"}
    if pack is not None:
        agreement = {"precision": spec.precision, **PACKED_AGREEMENT[spec.precision]}
        execution = {"mode": "packed", "index": pack[0], "size": pack[1], "agreement": agreement}
    return ExecutionResult(
        status=STATUS_NAMES[int(state.status)],
        end_step=int(state.end_step),
        series=series,
        events=events,
        stop_cause=labels[cause][0] if cause >= 0 else None,
        references=host.references,
        fingerprints=host.fingerprints,
        timings=timings,
        resumed_from=resumed_from,
        execution=execution,
    )


__all__ = [
    "Checkpoints",
    "ExecutionResult",
    "Progress",
    "chunk_length",
    "enable_x64",
    "execute",
    "layout_of",
    "prepare",
    "report_ended",
    "report_writing",
    "run_chunks",
    "triggers_of",
]
