"""Checkpoints of a run in progress: Orbax for the program state, ``.npz`` files for recorded outputs.

Layout inside the run's work directory ``staging/<run_key>/``:

- ``checkpoints/<position>/`` — Orbax ``CheckpointManager`` steps holding the engine's
  :class:`~eosdsl.engine.program.State` (parameters, displacement, optimizer and schedule state,
  event state, step). ``position`` counts scan iterations, a multiple of the chunk length. These are
  kept with the committed run (the final one lets a run be continued later). Runs stored with their
  pack keep their final state in the pack unit instead: one checkpoint of the members' stacked states
  (:func:`save_stacked`), read back per member by :func:`final_state` and :func:`kept_state`.
- ``scratch/chunks/<start>.npz`` — the recorded outputs of the chunks since the previous checkpoint
  (from scan position ``start``), written before the checkpoint that covers them, so a restored
  checkpoint always finds every output before its position. Scratch is
  dropped at commit, when the outputs are in ``results.zarr``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from eosdsl.atomic import atomic_write
from eosdsl.lazy import lazy_module
from eosdsl.registry.store import CHECKPOINTS, StoredRun, pack_members

jax = lazy_module("jax")
ocp = lazy_module("orbax.checkpoint")  # imported when a run first saves or restores a checkpoint


class RunCheckpoints:
    """Saves every ``every`` steps (rounded up to whole chunks) once ``min_seconds`` of wall time have
    passed since the last save, and always at the end; restores the latest."""

    def __init__(
        self, work_dir: Path, scratch: Path, every: int, heartbeat: Any = None, min_seconds: float = 0.0
    ) -> None:
        self.every = every
        self.min_seconds = min_seconds
        self.saved_at = time.monotonic()
        self.heartbeat = heartbeat
        self.parts = scratch / "chunks"
        self.parts.mkdir(parents=True, exist_ok=True)
        self.folder = (work_dir / CHECKPOINTS).absolute()
        self._manager: Any = None
        self.pending: list[tuple[int, dict[str, np.ndarray]]] = []
        self.final: tuple[int, Any] | None = None
        self.last_saved = (self.manager.latest_step() or 0) if self.folder.is_dir() else 0

    @property
    def manager(self) -> Any:
        """The Orbax ``CheckpointManager``, created on first use (a run too short to checkpoint before
        it ends creates it at its end: Orbax is imported then, not when the run starts)."""
        if self._manager is None:
            self._manager = ocp.CheckpointManager(
                self.folder,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=2, enable_async_checkpointing=False, create=True
                ),
            )
        return self._manager

    def position(self) -> int:
        """Scan iterations covered by the latest usable checkpoint (0: none, the run starts from scratch;
        see :meth:`restore`)."""
        usable = self._usable(steps_only=True)
        return 0 if usable is None else usable[0]

    def restore(self, template: Any) -> tuple[Any, int, list[dict[str, np.ndarray]]] | None:
        """(state, position, outputs before position) of the latest usable checkpoint, or ``None``.

        A checkpoint is only usable with the recorded outputs of every chunk before it. The final
        checkpoint of an ended run has none (they go to ``results.zarr``), so a crash between it and the
        commit falls back to the checkpoint before; if no checkpoint's outputs tile [0, position) — files
        lost, or a commit interrupted after it dropped ``scratch/`` — they are all discarded and ``None``
        says to start over (deterministic: the same bits).
        """
        usable = self._usable()
        if usable is None:
            return None
        position, outputs = usable
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        state = self.manager.restore(position, args=ocp.args.StandardRestore(abstract))
        return state, position, outputs

    def _usable(self, steps_only: bool = False) -> tuple[int, list[dict[str, np.ndarray]]] | None:
        """(position, outputs before it) of the latest checkpoint whose outputs tile [0, position);
        newer ones without their outputs are deleted, and everything is discarded if none qualifies."""
        if not self.folder.is_dir():
            return None
        for position in sorted(self.manager.all_steps(), reverse=True):
            outputs = self._outputs_before(position, steps_only)
            if outputs is not None:
                return position, outputs
            self.manager.delete(position)
        self.discard()
        return None

    def _outputs_before(self, position: int, steps_only: bool = False) -> list[dict[str, np.ndarray]] | None:
        """The saved outputs of the chunks in [0, position), in order; None unless they tile it.
        ``steps_only``: read just each file's ``step`` array (enough to tell whether they tile)."""
        starts = sorted(int(p.stem) for p in self.parts.glob("*.npz") if p.stem.isdigit())
        outputs, covered = [], 0
        for start in (s for s in starts if s < position):
            if start != covered:
                return None
            try:
                with np.load(self.parts / f"{start}.npz") as f:
                    names = [k for k in f.files if k == "step"] if steps_only else f.files
                    outputs.append({_unescape(k): f[k] for k in names})
            except (OSError, ValueError, EOFError):
                return None
            covered += len(outputs[-1].get("step", ()))
        return outputs if covered == position else None

    def discard(self) -> None:
        """Delete every checkpoint and saved output: the run starts over from step 0."""
        if self.folder.is_dir():
            for step in list(self.manager.all_steps()):
                self.manager.delete(step)
        for part in self.parts.glob("*.npz"):
            part.unlink(missing_ok=True)
        self.pending, self.final, self.last_saved = [], None, 0

    def due(self, position: int) -> bool:
        """Whether a checkpoint is due at scan ``position``: ``every`` steps and ``min_seconds`` since the
        last one."""
        waited = time.monotonic() - self.saved_at >= self.min_seconds
        return position - self.last_saved >= self.every and waited

    def after_chunk(
        self, state: Any, position: int, output: dict[str, np.ndarray], ended: bool, save: bool | None = None
    ) -> None:
        """Keep the chunk's outputs; persist them and the state when a checkpoint is due (``save``: the
        caller's decision, e.g. one for every member of a pack; None: :meth:`due`). When the run ended,
        the final checkpoint is only held until :meth:`save_final`, which the commit calls (possibly in
        another thread, so the engine goes on meanwhile)."""
        length = len(output["step"])
        self.pending.append((position - length, output))
        if self.heartbeat is not None:
            self.heartbeat()
        if ended:
            self.final = (position, state)
        elif self.due(position) if save is None else save:
            self._save(position, state)

    def take_final(self) -> tuple[int, Any] | None:
        """The ended run's (position, final state), handed over to be saved with its pack
        (:func:`save_stacked`) instead of by :meth:`save_final`; None unless the run ended since."""
        final, self.final, self.pending = self.final, None, []
        return final

    def keep_latest(self) -> None:
        """Delete all but the latest periodic checkpoint: a run whose final state is kept in its pack
        unit then keeps what a run stored alone keeps (``max_to_keep=2``: the final state and the last
        periodic one). Called before the run's manifest is written."""
        if self.folder.is_dir():
            for position in sorted(self.manager.all_steps())[:-1]:
                self.manager.delete(position)

    def save_final(self) -> None:
        """Save the ended run's final state: the checkpoint kept with the committed run. Its outputs are
        not saved again (the commit writes them to ``results.zarr``), so it is not a resume point
        (:meth:`restore`). A no-op unless the run ended since the last call."""
        if self.final is not None:
            self._save_state(*self.final)
            self.final, self.pending = None, []

    def _save(self, position: int, state: Any) -> None:
        start = self.pending[0][0]  # one file for the chunks since the last checkpoint
        merged = {k: np.concatenate([out[k] for _, out in self.pending]) for k in self.pending[0][1]}
        _save_npz(self.parts / f"{start}.npz", merged)
        self.pending = []
        self._save_state(position, state)

    def _save_state(self, position: int, state: Any) -> None:
        self.manager.save(position, args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()
        self.last_saved = position
        self.saved_at = time.monotonic()

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()


def save_stacked(folder: Path, position: int, states: list[Any]) -> None:
    """Save the final states of runs that ended together (at scan ``position``) as one checkpoint of
    their stacked state, ``folder/<position>/`` (a pack unit's ``checkpoints/``): one Orbax save for
    the pack instead of one per run."""
    stacked = jax.tree.map(lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]), *states)
    manager = _manager(Path(folder), create=True)
    try:
        manager.save(position, args=ocp.args.StandardSave(stacked), force=True)
        manager.wait_until_finished()
    finally:
        manager.close()


def save_member(folder: Path, member: int, target: Path) -> None:
    """Save member ``member`` of the stacked states in a pack unit's checkpoint ``folder`` as a run's own
    checkpoint in ``target`` (at the same position): what a run stored alone would have kept."""
    for position in _positions(folder):
        manager = _manager(folder, create=False)
        try:
            stacked = manager.restore(position, args=ocp.args.StandardRestore())
        finally:
            manager.close()
        own = _manager(Path(target), create=True)
        try:
            own.save(
                position, args=ocp.args.StandardSave(jax.tree.map(lambda a: a[member], stacked)), force=True
            )
            own.wait_until_finished()
        finally:
            own.close()


def final_state(run: StoredRun, template: Any) -> Any:
    """The final engine state kept with a committed run (its latest kept checkpoint: saved by
    :meth:`RunCheckpoints.save_final`, or with its pack by :func:`save_stacked`), restored into the
    structure, shapes and dtypes of ``template`` (a state of the run's spec). ``FileNotFoundError`` if
    the run kept none."""
    kept = [(p, folder, member) for folder, member, positions in _kept(run) for p in positions]
    if not kept:
        raise FileNotFoundError(f"run {run.short_id} kept no final state (no {CHECKPOINTS}/)")
    position, folder, member = max(kept, key=lambda item: item[0])
    return _restore(folder, position, template, member)


def kept_positions(run: StoredRun) -> list[int]:
    """The scan positions of the checkpoints kept with a committed run (its ``checkpoints/<position>/``:
    the final state and at most one periodic one before it, ``max_to_keep=2``; a run stored with its
    pack has its final state there), ascending; [] if none."""
    return sorted({p for _, _, positions in _kept(run) for p in positions})


def kept_state(run: StoredRun, position: int, template: Any) -> Any:
    """The engine state of the checkpoint at scan ``position`` kept with a committed run (one of
    :func:`kept_positions`), restored into the structure, shapes and dtypes of ``template``."""
    for folder, member, positions in _kept(run):
        if position in positions:
            return _restore(folder, position, template, member)
    raise FileNotFoundError(f"run {run.short_id} kept no checkpoint at position {position}")


def _restore(folder: Path, position: int, template: Any, member: int | None) -> Any:
    """The state at ``position`` in ``folder``; of ``member``, when it holds a pack's stacked states
    (all members are restored, one kept)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    if member is not None:
        count = len(pack_members(folder.parent))
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct((count, *a.shape), a.dtype), abstract)
    manager = _manager(folder, create=False)
    try:
        state = manager.restore(position, args=ocp.args.StandardRestore(abstract))
    finally:
        manager.close()
    return state if member is None else jax.tree.map(lambda a: a[member], state)


def _kept(run: StoredRun) -> list[tuple[Path, int | None, list[int]]]:
    """The checkpoint folders of a committed run, each with the run's member index in it (None: its own
    folder; a run stored with its pack also has its unit's) and the positions it holds, listed once."""
    folders: list[tuple[Path, int | None]] = [(run.path / CHECKPOINTS, None)]
    if (packed := run.stored_in) is not None:
        folders.append((packed[0] / CHECKPOINTS, packed[1]))
    return [(folder, member, _positions(folder)) for folder, member in folders]


def _positions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    manager = _manager(folder, create=False)
    try:
        return [int(p) for p in manager.all_steps()]
    finally:
        manager.close()


def _manager(folder: Path, create: bool) -> Any:
    """An Orbax manager of a checkpoint folder (read-only unless ``create``); the caller closes it."""
    return ocp.CheckpointManager(folder.absolute(), options=ocp.CheckpointManagerOptions(create=create))


def _escape(name: str) -> str:
    return name.replace("/", "__slash__")


def _unescape(name: str) -> str:
    return name.replace("__slash__", "/")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path) as f:
        np.savez(f, **{_escape(k): np.asarray(v) for k, v in arrays.items()})
