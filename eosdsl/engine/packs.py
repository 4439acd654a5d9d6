"""Packs: specs of one structure run as one ``vmap``-ped program, and what deciding a pack needs
(which specs can share a program, the memory a member adds, a timed trial chunk).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from eosdsl.engine.execute import (
    Checkpoints,
    ExecutionResult,
    Progress,
    _output,
    _plan,
    enable_x64,
    layout_of,
    report_ended,
    report_writing,
)
from eosdsl.engine.program import (
    Hyper,
    Layout,
    State,
    Structure,
    hyperparameters,
    init_pack,
    init_state,
    run_chunk,
    run_pack_chunk,
)
from eosdsl.problems.build import HostProblem
from eosdsl.spec import models as m


def execute_pack(
    specs: Sequence[m.Spec],
    hosts: Sequence[HostProblem],
    progress: Progress | None = None,
    checkpoints: Sequence[Checkpoints] | None = None,
    on_done: Callable[[list[tuple[int, ExecutionResult]]], None] | None = None,
) -> list[ExecutionResult]:
    """Run specs of one structure as one ``vmap``-ped program (a *pack*); one output per spec.

    The specs must share :class:`Structure` key, layout, parameter and data shapes (see
    :func:`pack_key`); their hyperparameters, seeds and initial parameters are stacked along a
    leading axis, their data too unless every member has the same dataset (then it is shared). A member
    that ends (stop rule, event, divergence) stops changing while the others go on; ``on_done(ended)``
    is called with ``[(i, out), ...]`` for the members that ended in a chunk as soon as they have, so
    they can be stored (together) before the pack finishes.

    With ``checkpoints`` (one per member), every member checkpoints as a lone run would, and the pack
    resumes from them: all members must then be at the same position (group them by
    ``Checkpoints.position``).
    """
    enable_x64()
    started = time.perf_counter()
    if len({pack_key(s, h) for s, h in zip(specs, hosts, strict=True)}) != 1:
        raise ValueError("a pack needs specs of one structure with equal parameter and data shapes")
    spec0, n = specs[0], len(specs)
    structure, layout, hparams, state, data, data_axis = _pack_inputs(specs, hosts)

    total, length = _plan(spec0)
    chunks: list[list[dict[str, np.ndarray]]] = [[] for _ in specs]
    position, resumed_from = 0, None
    if checkpoints:
        template = _member(state, 0)  # jax arrays; the members' shapes and dtypes are the same
        restored = [c.restore(template) for c in checkpoints]
        if any(r is not None for r in restored):
            if any(r is None for r in restored) or len({r[1] for r in restored}) != 1:
                raise ValueError("the members of a pack must resume from the same position")
            state = _stack([r[0] for r in restored])
            position, chunks = restored[0][1], [list(r[2]) for r in restored]
            resumed_from = int(np.max(np.asarray(jax.device_get(state.t))))

    outputs: list[ExecutionResult | None] = [None] * n
    compile_done = None
    host_state = jax.device_get(state)

    def finish(ended: list[int]) -> None:
        elapsed = time.perf_counter() - started
        timings = {"total_s": elapsed, "first_chunk_s": (compile_done or time.perf_counter()) - started}
        for i in ended:
            member = _member(host_state, i)
            outputs[i] = _output(
                specs[i], layout, hosts[i], chunks[i], member, timings, resumed_from, pack=(i, n)
            )
        if on_done and ended:
            report_writing(progress, len(ended))
            on_done([(i, outputs[i]) for i in ended])

    finish([i for i in range(n) if int(host_state.status[i]) != 0])  # ended before the checkpoint resumed
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
            output = {name: values[i] for name, values in out.items()}
            chunks[i].append(output)
            ended = int(host_state.status[i]) != 0
            if checkpoints:  # a member's state is only cut out when it is kept
                kept = _member(host_state, i) if save or ended else None
                checkpoints[i].after_chunk(kept, position, output, ended, save)
            if ended:
                ended_now.append(i)
        if progress:  # steps measured, reported before the ended members are stored
            progress(int(np.max(host_state.t)) + (len(ended_now) == len(running)), total)
        finish(ended_now)
    if any(o is None for o in outputs):
        raise RuntimeError("execute_pack: a member neither ended nor reached the last step")
    report_ended(progress, [(o.status, o.end_step) for o in outputs], total)
    return list(outputs)


def _pack_inputs(specs: Sequence[m.Spec], hosts: Sequence[HostProblem]) -> tuple:
    """(structure, layout, stacked hyperparameters, stacked initial state, data, data axis) of a pack:
    the data shared (axis None) when every member has the same dataset, else stacked (axis 0)."""
    spec0 = specs[0]
    structure, layout = Structure.of(spec0), layout_of(spec0, hosts[0])
    hparams = _stack([hyperparameters(s) for s in specs])
    state = init_pack(structure, hparams, layout, _stack([h.params for h in hosts]))
    shared = len({data_key(h) for h in hosts}) == 1
    data, data_axis = (hosts[0].data, None) if shared else (_stack([h.data for h in hosts]), 0)
    return structure, layout, hparams, state, data, data_axis


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


TRIAL_STEPS = 16
"""Steps of the trial chunks :func:`trial_chunk_seconds` times: enough that a step's fixed cost (dispatch,
loop) is shared as in a real chunk, few enough that a compute-bound trial costs little."""


TRIAL_WARM_S = 0.5
"""Below this, a trial chunk's first run is followed by a second (:func:`trial_chunk_seconds`)."""


def trial_chunk_seconds(specs: Sequence[m.Spec], hosts: Sequence[HostProblem]) -> float:
    """Wall seconds of one chunk of ``min(TRIAL_STEPS, chunk)`` steps of ``specs`` as one program: alone
    for one spec, else a pack (as :func:`execute_pack` runs it). The program is compiled first (not
    run: its compilation is not timed); then it runs once, a second time if that took under
    :data:`TRIAL_WARM_S`, and again while the runs so far total less than 20 ms (at most 10 runs: a
    fast program is timed above the clock's noise), and the least time is returned (the run least
    disturbed by whatever else the machine does). A program's first run is slower than the next ones
    (13.5 against ~1 ms for a small network's lone chunk), hence the second run; above
    :data:`TRIAL_WARM_S`, the first run's extra cost is noise. Nothing is stored; the runs themselves
    start afresh."""
    enable_x64()
    spec0, host0 = specs[0], hosts[0]
    structure, layout = Structure.of(spec0), layout_of(spec0, host0)
    length = min(TRIAL_STEPS, _plan(spec0)[1])
    if len(specs) == 1:
        hparams = hyperparameters(spec0)
        state = init_state(structure, hparams, layout, host0.params)
        args = (structure, hparams, layout, length, state, host0.data)
        program = run_chunk.compile(*args)
    else:
        _, _, hparams, state, data, data_axis = _pack_inputs(specs, hosts)
        args = (structure, hparams, layout, length, state, data, data_axis)
        program = run_pack_chunk.compile(*args)
    best, timed, repeats = math.inf, 0.0, 0
    while repeats < 1 or (repeats < 2 and best < TRIAL_WARM_S) or (timed < 0.02 and repeats < 10):
        started = time.perf_counter()
        jax.block_until_ready(program(*args))
        elapsed = time.perf_counter() - started
        best, timed, repeats = min(best, elapsed), timed + elapsed, repeats + 1
    return best


def _nbytes(tree: Any) -> int:
    """Bytes of the arrays (or shape-dtype structs) of a pytree."""
    return sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _member(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


__all__ = ["array_layout", "data_key", "execute_pack", "member_bytes", "pack_key", "trial_chunk_seconds"]
