"""Execute one validated spec: the only loop in eosdsl.

The host drives jitted chunks of ``lax.scan``; between chunks it reports progress and keeps the
measured values. Nothing here touches the disk: the caller stores the returned :class:`RunOutput`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from eosdsl.cache import enable_compilation_cache
from eosdsl.engine.program import (
    STATUS_NAMES,
    Hyper,
    Layout,
    State,
    Structure,
    dtype_of,
    hyperparameters,
    init_pack,
    init_state,
    run_chunk,
    run_pack_chunk,
    series_of,
    triggers_of,
)
from eosdsl.problems.build import HostProblem, host_problem
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

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
        state: State,
        position: int,
        output: dict[str, np.ndarray],
        ended: bool,
        save: bool | None = None,
    ) -> None:
        """Called after every chunk; saves a checkpoint when due (or as ``save`` says). When the run ended,
        the final state is kept for whoever stores the finished run (``on_done``) to save."""


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
    """eosdsl runs with 64-bit types enabled; float32 specs use explicit float32 arrays. Also turns on
    JAX's persistent compilation cache (``eosdsl.cache``; ``EOSDSL_CACHE_DIR=off`` keeps it off), which
    must be set before the first compilation: every entry point calls this first."""
    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()


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
    return Layout(names, groups, host.network)


def _event_labels(spec: m.Spec) -> list[tuple[str, str]]:
    labels = [(e.name or f"event {i}", "event") for i, e in enumerate(spec.events)]
    return labels + [(f"stop rule {i}", "stop") for i in range(len(spec.train.stop))]


def execute(
    spec: m.Spec,
    host: HostProblem | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    on_done: Callable[[int, RunOutput], None] | None = None,
) -> RunOutput:
    """Run ``spec`` to its end (completed, stopped by a rule or event, or diverged).

    With ``checkpoints``, the run starts from the latest checkpoint if there is one. ``on_done(0, out)``
    (storing the run) is called before ``progress`` hears that the run ended, as in :func:`execute_pack`.
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
    finished = time.perf_counter()
    timings = {"total_s": finished - started, "first_chunk_s": (compile_done or finished) - started}
    output = _output(spec, layout, host, chunks, jax.device_get(state), timings, resumed_from)
    if on_done:
        report_writing(progress, 1)
        on_done(0, output)
    report_ended(progress, [(output.status, output.end_step)], total)
    return output


def execute_pack(
    specs: Sequence[m.Spec],
    hosts: Sequence[HostProblem],
    progress: Progress | None = None,
    checkpoints: Sequence[Checkpoints] | None = None,
    on_done: Callable[[int, RunOutput], None] | None = None,
) -> list[RunOutput]:
    """Run specs of one structure as one ``vmap``-ped program (a *pack*); one output per spec.

    The specs must share :class:`Structure` key, layout, parameter and data shapes (see
    :func:`pack_key`); their hyperparameters, seeds and initial parameters are stacked along a
    leading axis, their data too unless every member has the same dataset (then it is shared). A member
    that ends (stop rule, event, divergence) stops changing while the others go on; ``on_done(i, out)``
    is called as soon as member ``i`` has ended, so it can be stored before the pack finishes.

    With ``checkpoints`` (one per member), every member checkpoints as a lone run would, and the pack
    resumes from them: all members must then be at the same position (group them by
    ``Checkpoints.position``).
    """
    enable_x64()
    started = time.perf_counter()
    if len({pack_key(s, h) for s, h in zip(specs, hosts, strict=True)}) != 1:
        raise ValueError("a pack needs specs of one structure with equal parameter and data shapes")
    spec0, n = specs[0], len(specs)
    structure = Structure.of(spec0)
    layout = layout_of(spec0, hosts[0])
    hparams = _stack([hyperparameters(s) for s in specs])
    state = init_pack(structure, hparams, layout, _stack([h.params for h in hosts]))
    shared = len({data_key(h) for h in hosts}) == 1
    data, data_axis = (hosts[0].data, None) if shared else (_stack([h.data for h in hosts]), 0)

    total, length = _plan(spec0)
    chunks: list[list[dict[str, np.ndarray]]] = [[] for _ in specs]
    position, resumed_from = 0, None
    if checkpoints:
        restored = [c.restore(_member(state, i)) for i, c in enumerate(checkpoints)]  # jax-array templates
        if any(r is not None for r in restored):
            if any(r is None for r in restored) or len({r[1] for r in restored}) != 1:
                raise ValueError("the members of a pack must resume from the same position")
            state = _stack([r[0] for r in restored])
            position, chunks = restored[0][1], [list(r[2]) for r in restored]
            resumed_from = int(np.max(np.asarray(jax.device_get(state.t))))

    outputs: list[RunOutput | None] = [None] * n
    compile_done = None
    host_state = jax.device_get(state)

    def finish(i: int) -> None:
        elapsed = time.perf_counter() - started
        timings = {"total_s": elapsed, "first_chunk_s": (compile_done or time.perf_counter()) - started}
        member = _member(host_state, i)
        outputs[i] = _output(
            specs[i], layout, hosts[i], chunks[i], member, timings, resumed_from, pack=(i, n)
        )
        if on_done:
            on_done(i, outputs[i])

    resumed_ended = [i for i in range(n) if int(host_state.status[i]) != 0]
    if on_done:
        report_writing(progress, len(resumed_ended))
    for i in resumed_ended:
        finish(i)  # ended before the checkpoint it resumed from
    limit = math.ceil(total / length) * length
    while any(o is None for o in outputs) and position < limit:
        state, out = run_pack_chunk(structure, hparams, layout, length, state, data, data_axis)
        out, host_state = jax.device_get((out, state))
        position += length
        compile_done = compile_done or time.perf_counter()
        running = [i for i in range(n) if outputs[i] is None]
        save = checkpoints[running[0]].due(position) if checkpoints else False  # all members in step
        ended_now = []
        for i in running:
            output = _member(out, i)
            chunks[i].append(output)
            ended = int(host_state.status[i]) != 0
            if checkpoints:
                checkpoints[i].after_chunk(_member(host_state, i), position, output, ended, save)
            if ended:
                ended_now.append(i)
        if progress:  # steps measured, reported before the ended members are stored
            progress(int(np.max(host_state.t)) + (len(ended_now) == len(running)), total)
        if on_done:
            report_writing(progress, len(ended_now))
        for i in ended_now:
            finish(i)
    if any(o is None for o in outputs):
        raise RuntimeError("execute_pack: a member neither ended nor reached the last step")
    report_ended(progress, [(o.status, o.end_step) for o in outputs], total)
    return list(outputs)


def pack_key(spec: m.Spec, host: HostProblem) -> tuple:
    """Specs with equal keys can run in one pack: one structure, chunking, and parameter/data shapes."""
    return (
        Structure.of(spec).key,
        layout_of(spec, host),
        spec.runtime.chunk,
        spec.runtime.checkpoint_every,
        spec.runtime.checkpoint_min_seconds,
        array_layout(host.params),
        array_layout(host.data),
    )


def array_layout(tree: Any) -> tuple:
    """(path, shape, dtype) of every array of a pytree: what a compiled program is specialized to."""
    return tuple(
        (str(path), np.shape(x), np.asarray(x).dtype.str)
        for path, x in jax.tree_util.tree_leaves_with_path(tree)
    )


def data_key(host: HostProblem) -> tuple:
    """Equal for two problems exactly when their data arrays are interchangeable: the same content
    (fingerprints) in the same layout (dtype, shape)."""
    return tuple(sorted(host.fingerprints.items())), array_layout(host.data)


def _abstract(spec: m.Spec, host: HostProblem) -> tuple[Structure, Layout, Hyper, State]:
    """The program's static parts, traced inputs and the shape of its initial state (nothing computed)."""
    structure, layout = Structure.of(spec), layout_of(spec, host)
    hparams = hyperparameters(spec)
    state = jax.eval_shape(lambda p: init_state(structure, hparams, layout, p), host.params)
    return structure, layout, hparams, state


def member_bytes(spec: m.Spec, host: HostProblem, own_data: bool) -> int:
    """Memory one member adds to a pack, roughly: 4× its state (exact shapes: parameters, optimizer
    moments, warm-start blocks, rotation rings, companions; ×4 for the step's temporaries and the copy
    sent to the host), one chunk of its recorded outputs (exact), and its data when members do not share
    them. Activations inside a step are not counted: set ``--pack`` for networks on large batches."""
    structure, layout, hparams, state = _abstract(spec, host)
    length = _plan(spec)[1]
    outputs = jax.eval_shape(
        lambda s, d: run_chunk(structure, hparams, layout, length, s, d), state, host.data
    )[1]
    return 4 * _nbytes(state) + _nbytes(outputs) + (_nbytes(host.data) if own_data else 0)


TRIAL_STEPS = 64
"""Steps of the trial chunks :func:`trial_chunk_seconds` times: long enough that a step's fixed cost
(dispatch, loop) is shared as in a real chunk, short enough that a compute-bound trial costs little."""


def trial_chunk_seconds(specs: Sequence[m.Spec], hosts: Sequence[HostProblem]) -> float:
    """Wall seconds of one chunk of ``min(TRIAL_STEPS, chunk)`` steps of ``specs`` as one program: alone
    for one spec, else a pack (as :func:`execute_pack` runs it). The program is compiled and run once
    first; the least of the timed runs is returned (the one least disturbed by whatever else the machine
    does): at least 2 of them, more for a fast program until 20 ms were timed, at most 10. Nothing is
    stored; the runs themselves start afresh."""
    enable_x64()
    spec0, host0 = specs[0], hosts[0]
    structure, layout = Structure.of(spec0), layout_of(spec0, host0)
    length = min(TRIAL_STEPS, _plan(spec0)[1])
    if len(specs) == 1:
        hparams = hyperparameters(spec0)
        state = init_state(structure, hparams, layout, host0.params)

        def chunk() -> Any:
            return run_chunk(structure, hparams, layout, length, state, host0.data)

    else:
        hparams = _stack([hyperparameters(s) for s in specs])
        state = init_pack(structure, hparams, layout, _stack([h.params for h in hosts]))
        shared = len({data_key(h) for h in hosts}) == 1
        data, data_axis = (host0.data, None) if shared else (_stack([h.data for h in hosts]), 0)

        def chunk() -> Any:
            return run_pack_chunk(structure, hparams, layout, length, state, data, data_axis)

    jax.block_until_ready(chunk())  # compiles
    best, timed, repeats = math.inf, 0.0, 0
    while repeats < 2 or (timed < 0.02 and repeats < 10):
        started = time.perf_counter()
        jax.block_until_ready(chunk())
        elapsed = time.perf_counter() - started
        best, timed, repeats = min(best, elapsed), timed + elapsed, repeats + 1
    return best


def _nbytes(tree: Any) -> int:
    """Bytes of the arrays (or shape-dtype structs) of a pytree."""
    return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


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


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _member(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def _output(
    spec: m.Spec,
    layout: Layout,
    host: HostProblem,
    chunks: Sequence[dict[str, np.ndarray]],
    state: State,
    timings: dict[str, float],
    resumed_from: int | None,
    pack: tuple[int, int] | None = None,
) -> RunOutput:
    """The RunOutput of a finished run from its chunks' outputs and its final (host) state."""
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
    execution: dict[str, Any] = {"mode": "alone"}
    if pack is not None:
        agreement = {"precision": spec.precision, **PACKED_AGREEMENT[spec.precision]}
        execution = {"mode": "packed", "index": pack[0], "size": pack[1], "agreement": agreement}
    return RunOutput(
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
    "RunOutput",
    "execute",
    "execute_pack",
    "member_bytes",
    "pack_key",
    "trial_chunk_seconds",
    "prepare",
    "report_ended",
    "report_writing",
    "triggers_of",
]
