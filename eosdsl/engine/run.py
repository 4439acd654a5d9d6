"""Execute one validated spec: the only loop in eosdsl.

The host drives jitted chunks of ``lax.scan``; between chunks it reports progress and keeps the
measured values. Nothing here touches the disk: the caller stores the returned :class:`RunOutput`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from eosdsl.engine.program import (
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
from eosdsl.problems.build import HostProblem, host_problem
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

Progress = Callable[[int, int], None]
"""Called after each chunk with (steps done, steps planned)."""


class Checkpoints(Protocol):
    """Where a run keeps its progress so a killed process can resume it (see eosdsl.registry.checkpoints).

    ``position`` counts scan iterations done (a multiple of the chunk length), so a resumed run replays
    exactly the chunks an uninterrupted run would — which is what makes resuming bit-exact on CPU.
    """

    def restore(self, template: State) -> tuple[State, int, list[dict[str, np.ndarray]]] | None:
        """(state, position, outputs of the chunks before ``position``) of the latest checkpoint."""

    def after_chunk(self, state: State, position: int, output: dict[str, np.ndarray], ended: bool) -> None:
        """Called after every chunk; saves a checkpoint when due and always when the run ended."""


def enable_x64() -> None:
    """eosdsl runs with 64-bit types enabled; float32 specs use explicit float32 arrays."""
    jax.config.update("jax_enable_x64", True)


@dataclass
class RunOutput:
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


def prepare(spec: m.Spec) -> HostProblem:
    """The host-side inputs of ``spec`` (initial parameters, data, reference values)."""
    enable_x64()
    dtype = dtype_of(spec)
    return host_problem(spec.problem, Scope(spec.constants, dtype), spec.seed)


def layout_of(spec: m.Spec, host: HostProblem) -> Layout:
    """The static facts about ``spec``'s problem the compiled program is specialized to."""
    groups = tuple(host.params)
    names = () if host.network is not None else groups
    return Layout(names, groups, host.network)


def _event_labels(spec: m.Spec) -> list[tuple[str, str]]:
    labels = [(e.name or f"event {i}", "event") for i, e in enumerate(spec.events)]
    return labels + [(f"stop rule {i}", "stop") for i in range(len(spec.train.stop))]


def execute(
    spec: m.Spec,
    host: HostProblem | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
) -> RunOutput:
    """Run ``spec`` to its end (completed, stopped by a rule or event, or diverged).

    With ``checkpoints``, the run starts from the latest checkpoint if there is one.
    """
    enable_x64()
    started = time.perf_counter()
    host = host or prepare(spec)
    structure = Structure.of(spec)
    hparams = hyperparameters(spec)
    layout = layout_of(spec, host)
    state = init_state(structure, hparams, layout, host.params)

    total = spec.train.steps + 1  # steps 0..T are measured; T updates
    length = min(spec.runtime.chunk, total)
    chunks: list[dict[str, np.ndarray]] = []
    position, resumed_from = 0, None
    restored = checkpoints.restore(state) if checkpoints else None
    if restored is not None:
        state, position, chunks = restored
        resumed_from = int(state.t)
    compile_done = None
    ended = int(state.status) != 0
    while not ended and position < math.ceil(total / length) * length:
        state, out = run_chunk(structure, hparams, layout, length, state, host.data)
        output = jax.device_get(out)
        chunks.append(output)
        position += length
        compile_done = compile_done or time.perf_counter()
        ended = int(state.status) != 0
        if checkpoints:
            checkpoints.after_chunk(state, position, output, ended)
        if progress:
            progress(int(state.t) + ended, total)  # steps measured so far
    state = jax.device_get(state)

    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    steps = np.concatenate([c["step"] for c in chunks])
    for name in series_of(spec, layout):
        valid = np.concatenate([c[f"{name}/valid"] for c in chunks])
        values = np.concatenate([c[name] for c in chunks])
        series[name] = (steps[valid].astype(np.int64), values[valid])

    labels = _event_labels(spec)
    events = [
        {"name": label, "kind": kind, "fired_at": int(at) if at >= 0 else None}
        for (label, kind), at in zip(labels, np.asarray(state.fired_at)[: len(labels)], strict=True)
    ]
    cause = int(state.stop_cause)
    finished = time.perf_counter()
    return RunOutput(
        status=STATUS_NAMES[int(state.status)],
        end_step=int(state.end_step),
        series=series,
        events=events,
        stop_cause=labels[cause][0] if cause >= 0 else None,
        references=host.references,
        fingerprints=host.fingerprints,
        timings={"total_s": finished - started, "first_chunk_s": (compile_done or finished) - started},
        resumed_from=resumed_from,
    )


__all__ = ["RunOutput", "execute", "prepare", "triggers_of"]
