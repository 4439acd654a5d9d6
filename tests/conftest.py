"""Shared test setup: eosdsl always runs with 64-bit types, so the tests do too; caches off; a small stored
sweep.

``eosdsl.engine.execute.execute`` enables ``jax_enable_x64`` itself; tests that call the optimizer and
schedule functions directly need it before they build their first array.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

# Tests never write caches into the user's home (eosdsl.cache): JAX's compilation cache and the dataset
# cache are off; tests of the caches point EOSDSL_CACHE_DIR at a temporary directory themselves.
os.environ["EOSDSL_CACHE_DIR"] = "off"

SPECS = Path(__file__).resolve().parent / "specs"


def spec_text(name: str) -> str:
    """The text of ``tests/specs/<name>.yaml``, a spec that several test modules share (e.g. as the base
    a test mutates; error positions are then lines of that file). ``from conftest import spec_text``."""
    return (SPECS / f"{name}.yaml").read_text(encoding="utf-8")


QUARTIC_OBJECTIVE = "0.25*(w[0]**2 + w[1]**2)**2 + w[0]*w[1]*w[2] + w[3]**4 + 0.5*w[2]**2 + 0.3*w[1]*w[3]**2"
"""A quartic toy in 4 parameters whose Hessian changes along GD (``from conftest import quartic``):
the objective as a spec writes it, and :func:`quartic`, the same function in JAX for dense oracles."""


def quartic(w):
    """:data:`QUARTIC_OBJECTIVE` as a JAX function of the parameter vector ``w`` (4,)."""
    return (
        0.25 * (w[0] ** 2 + w[1] ** 2) ** 2
        + w[0] * w[1] * w[2]
        + w[3] ** 4
        + 0.5 * w[2] ** 2
        + (0.3 * w[1] * w[3] ** 2)
    )


@pytest.fixture
def no_open_figures():
    """Fails a test that leaves a matplotlib figure open (``pytestmark = usefixtures(...)``)."""
    import matplotlib.pyplot as plt

    yield
    assert plt.get_fignums() == [], "a figure was left open"


SMALL_SWEEP = """\
name: small-sweep
precision: float64
constants: {eta: 0.01, beta: 0.5}
problem: {kind: ldn_regression, n: 8, d: 12, sparsity: 2, alpha: 0.1}
optimizer: {kind: gd, lr: eta}
train: {steps: 150}
measure:
  - {kind: loss}
  - {kind: test_loss}
  - {kind: sharpness, every: 50}
checks:
  - {kind: final, of: loss, below: 0.05}
sweep:
  grid:
    problem.alpha: [0.5, 0.1]
    constants.eta: [0.001, 0.003, 0.1]
  cases:
    - {label: gd}
    - label: hb
      set: {optimizer: {kind: heavy_ball, beta: beta, lr: eta, lr_convention: gd_equivalent}}
"""


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(registry root, sweep id)`` of a stored 2 cases × 2 α × 3 η sweep of a tiny linear diagonal
    network (150 steps), where the largest rates diverge. Copy the root before changing it."""
    from eosdsl.orchestration import run_points
    from eosdsl.registry import Registry
    from eosdsl.spec.load import load

    base = tmp_path_factory.mktemp("small-sweep")
    (base / "sweep.yaml").write_text(SMALL_SWEEP)
    loaded = load(base / "sweep.yaml")
    _, _, sweep_id = run_points(loaded.spec, loaded.points, Registry(base / "registry"))
    return base / "registry", sweep_id


class MemoryCheckpoints:
    """Checkpoints held in memory: the state and outputs after the chunk that ends at step ``at`` are
    kept, then the run is killed there (KeyboardInterrupt, as a dying process); the next ``execute``
    with the same object resumes from them."""

    def __init__(self, at: int) -> None:
        self.at, self.saved = at, None

    def position(self) -> int:
        return 0 if self.saved is None else self.saved[1]

    def restore(self, template):  # noqa: ANN001, ANN201
        return self.saved

    def due(self, position: int) -> bool:
        return position == self.at

    def after_chunk(self, state, position, output, ended, save=None) -> None:  # noqa: ANN001
        if self.saved is None:
            self.outputs = [*getattr(self, "outputs", []), output]
            if position == self.at:
                self.saved = (jax.device_get(state), position, list(self.outputs))
                raise KeyboardInterrupt


def assert_resume_is_bitwise(spec, at: int, store: Path | None = None, host=None):  # noqa: ANN001, ANN201
    """Execute ``spec`` uninterrupted; execute it again killed right after its checkpoint at step ``at``,
    then resume it; assert every series of the resumed run equals the uninterrupted run's bit for bit.
    ``store``: a directory for real (Orbax) checkpoints (``registry.checkpoints.RunCheckpoints``; the
    spec's ``runtime`` must checkpoint at ``at``), else in memory (:class:`MemoryCheckpoints`). Returns
    the uninterrupted run's result (``from conftest import assert_resume_is_bitwise``). ``host``: the
    run's host inputs when they are not ``prepare(spec)``'s (a run that starts from another run)."""
    from eosdsl.engine.execute import execute

    whole = execute(spec, host)
    if store is None:
        first = again = MemoryCheckpoints(at)
    else:
        from eosdsl.registry.checkpoints import RunCheckpoints

        class Killed(RunCheckpoints):
            def after_chunk(self, state, position, output, ended, *args, **kwargs) -> None:  # noqa: ANN001
                super().after_chunk(state, position, output, ended, *args, **kwargs)
                if position == at:
                    raise KeyboardInterrupt  # the process dies after its checkpoint

        first = Killed(store / "work", store / "scratch", at)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, host, checkpoints=first)
    if store is not None:
        first.close()
        again = RunCheckpoints(store / "work", store / "scratch", at)
    resumed = execute(spec, host, checkpoints=again)
    if store is not None:
        again.close()
    assert resumed.resumed_from == at
    assert whole.series.keys() == resumed.series.keys()
    for name, (steps, values) in whole.series.items():
        np.testing.assert_array_equal(resumed.series[name][0], steps)
        assert resumed.series[name][1].tobytes() == values.tobytes(), name
    return whole


def assert_pack_is_bitwise(specs, hosts=None):  # noqa: ANN001, ANN201
    """Execute ``specs`` (one structure) as one vmap-packed program and each alone; assert every series
    of every member equals its lone run bit for bit (elementwise toys vectorize exactly). Returns the
    packed results (``from conftest import assert_pack_is_bitwise``). ``hosts``: the members' host
    inputs when they are not ``prepare(spec)``'s (runs that start from another run)."""
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.engine.packs import execute_pack

    hosts = hosts if hosts is not None else [prepare(s) for s in specs]
    packed = execute_pack(specs, hosts)
    for spec, host, b in zip(specs, hosts, packed, strict=True):
        a = execute(spec, host)
        assert b.execution["mode"] == "packed"
        assert a.series.keys() == b.series.keys()
        for name, (steps, values) in a.series.items():
            np.testing.assert_array_equal(b.series[name][0], steps)
            assert b.series[name][1].tobytes() == values.tobytes(), name
    return packed
