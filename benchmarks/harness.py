"""What the benchmark scripts share: one compiled engine program driven chunk by chunk.

The scripts import it as a sibling module (``python benchmarks/<script>.py`` puts this folder first on
``sys.path``).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from eosdsl.engine.execute import layout_of, prepare
from eosdsl.engine.program import Structure, hyperparameters, init_state, run_chunk
from eosdsl.spec.load import load


class Variant:
    """One compiled program over the shared problem; ``run`` continues from a state for n steps."""

    def __init__(self, text: str) -> None:
        self.spec = load("benchmark.yaml", text=text).spec
        self.host = prepare(self.spec)
        self.structure = Structure.of(self.spec)
        self.hparams = hyperparameters(self.spec)
        self.layout = layout_of(self.spec, self.host)

    def start(self, params: Any) -> Any:
        return init_state(self.structure, self.hparams, self.layout, params)

    def run(self, state: Any, steps: int) -> tuple[Any, dict[str, np.ndarray], float]:
        """(state after ``steps`` steps, their recorded outputs, wall seconds)."""
        begin = time.perf_counter()
        state, out = run_chunk(self.structure, self.hparams, self.layout, steps, state, self.host.data)
        state = jax.block_until_ready(state)
        return state, jax.device_get(out), time.perf_counter() - begin
