"""Checkpoints of a run in progress: Orbax for the program state, ``.npz`` files for recorded outputs.

Layout inside the run's work directory ``staging/<run_key>/``:

- ``checkpoints/<position>/`` — Orbax ``CheckpointManager`` steps holding the engine's
  :class:`~eosdsl.engine.program.State` (parameters, displacement, optimizer and schedule state,
  event state, step). ``position`` counts scan iterations, a multiple of the chunk length. These are
  kept with the committed run (the final one lets a run be continued later).
- ``scratch/chunks/<start>.npz`` — the recorded outputs of the chunks since the previous checkpoint
  (from scan position ``start``), written before the checkpoint that covers them, so a restored
  checkpoint always finds every output before its position. Scratch is
  dropped at commit, when the outputs are in ``results.zarr``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from eosdsl.registry.atomic import atomic_write
from eosdsl.registry.store import CHECKPOINTS


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
        self.manager = ocp.CheckpointManager(
            (work_dir / CHECKPOINTS).absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=2, enable_async_checkpointing=False, create=True
            ),
        )
        self.pending: list[tuple[int, dict[str, np.ndarray]]] = []
        self.last_saved = self.manager.latest_step() or 0

    def position(self) -> int:
        """Scan iterations covered by the latest usable checkpoint (0: none, the run starts from scratch;
        checkpoints without the outputs before them are discarded, see :meth:`restore`)."""
        position = self.manager.latest_step()
        if position is None:
            return 0
        if self._outputs_before(position, steps_only=True) is None:
            self.discard()
            return 0
        return position

    def restore(self, template: Any) -> tuple[Any, int, list[dict[str, np.ndarray]]] | None:
        """(state, position, outputs before position) of the latest checkpoint, or ``None``.

        A checkpoint is only usable with the recorded outputs of every chunk before it: if they do not
        tile [0, position) — a commit interrupted after it dropped ``scratch/``, or files lost — the
        checkpoints are discarded and ``None`` says to start over (deterministic: the same bits).
        """
        position = self.manager.latest_step()
        if position is None:
            return None
        outputs = self._outputs_before(position)
        if outputs is None:
            self.discard()
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        state = self.manager.restore(position, args=ocp.args.StandardRestore(abstract))
        return state, position, outputs

    def _outputs_before(
        self, position: int, steps_only: bool = False
    ) -> list[dict[str, np.ndarray]] | None:
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
        for step in list(self.manager.all_steps()):
            self.manager.delete(step)
        for part in self.parts.glob("*.npz"):
            part.unlink(missing_ok=True)
        self.pending, self.last_saved = [], 0

    def due(self, position: int) -> bool:
        """Whether a checkpoint is due at scan ``position``: ``every`` steps and ``min_seconds`` since the
        last one."""
        waited = time.monotonic() - self.saved_at >= self.min_seconds
        return position - self.last_saved >= self.every and waited

    def after_chunk(
        self, state: Any, position: int, output: dict[str, np.ndarray], ended: bool, save: bool | None = None
    ) -> None:
        """Keep the chunk's outputs; persist them and the state when the run ended or a checkpoint is due
        (``save``: the caller's decision, e.g. one for every member of a pack; None: :meth:`due`)."""
        length = len(output["step"])
        self.pending.append((position - length, output))
        if self.heartbeat is not None:
            self.heartbeat()
        if ended or (self.due(position) if save is None else save):
            start = self.pending[0][0]  # one file for the chunks since the last checkpoint
            merged = {k: np.concatenate([out[k] for _, out in self.pending]) for k in self.pending[0][1]}
            _save_npz(self.parts / f"{start}.npz", merged)
            self.pending = []
            self.manager.save(position, args=ocp.args.StandardSave(state), force=True)
            self.manager.wait_until_finished()
            self.last_saved = position
            self.saved_at = time.monotonic()

    def close(self) -> None:
        self.manager.close()


def _escape(name: str) -> str:
    return name.replace("/", "__slash__")


def _unescape(name: str) -> str:
    return name.replace("__slash__", "/")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path) as f:
        np.savez(f, **{_escape(k): np.asarray(v) for k, v in arrays.items()})
