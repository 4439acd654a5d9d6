"""A crash at any phase of a run leaves a state that the next run completes, bit-identical to a run
that was never interrupted.

Each case starts ``eosdsl run`` in a subprocess that dies (``os._exit(137)``, as a SIGKILL would
leave it: no cleanup, no ``finally``) at one phase — during the computation, while writing a
checkpoint, after the final checkpoint (which has no outputs beside it), around ``MANIFEST.json``,
after the rename into ``objects/``, while judging the checks or updating the index — then runs the
same command again and compares every stored array of the result bitwise with an uninterrupted
run's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from eosdsl.registry import Registry

pytestmark = pytest.mark.slow

SPEC = """\
name: crash-tiny
precision: float64
problem: {kind: relu_scalar, u0: 10.0, v0: 1.0e-3}
optimizer: {kind: heavy_ball, lr: 0.0201, beta: 0.5}
train: {steps: 100}
measure: [{kind: loss}, {kind: params}, {kind: sharpness, every: 5}]
checks: [{kind: final, of: sharpness, below: 200.0}]
runtime: {chunk: 10, checkpoint_every: 20, checkpoint_min_seconds: 0}
"""

# Runs the CLI with one function patched to kill the process at a phase. `through`: call the real
# function first, then die; `before`: die instead of calling it; `nth`: on the nth call.
DRIVER = textwrap.dedent(
    """
    import os, sys
    phase, spec, registry = sys.argv[1:4]
    import eosdsl.registry.checkpoints as checkpoints
    import eosdsl.registry.store as store
    import eosdsl.orchestration.commit as commit
    import eosdsl.orchestration.judging as judging

    def kill(owner, name, nth=1, through=False):
        real, calls = getattr(owner, name), [0]
        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] < nth:
                return real(*args, **kwargs)
            if through:
                real(*args, **kwargs)
            os._exit(137)
        setattr(owner, name, wrapped)

    if phase == "compute":
        kill(checkpoints.RunCheckpoints, "after_chunk", nth=5)
    elif phase == "checkpoint-outputs":
        kill(checkpoints, "_save_npz", nth=2, through=True)
    elif phase == "checkpoint-state":
        import orbax.checkpoint as ocp
        kill(ocp.CheckpointManager, "save", nth=2)
    elif phase == "final-checkpoint":
        kill(checkpoints.RunCheckpoints, "save_final", through=True)
    elif phase == "before-manifest":
        kill(store, "write_manifest")
    elif phase == "after-manifest":
        kill(store, "write_manifest", through=True)
    elif phase == "after-rename":
        kill(store.StagedRun, "commit", through=True)
    elif phase == "verdict":
        kill(judging, "write_verdict")
    elif phase == "index":
        kill(commit, "update_index_many")
    else:
        raise SystemExit(f"unknown phase {phase}")
    from eosdsl.cli import main
    sys.argv = ["eosdsl", "run", spec, "--registry", registry]
    main()
    """
)

PHASES = [
    "compute",
    "checkpoint-outputs",
    "checkpoint-state",
    "final-checkpoint",
    "before-manifest",
    "after-manifest",
    "after-rename",
    "verdict",
    "index",
]


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def _arrays(registry: Path) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    (run,) = Registry(registry).runs()
    return run.run_key, {name: run.series(name) for name in run.series_names()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, str, dict]:
    base = tmp_path_factory.mktemp("crash")
    spec = base / "spec.yaml"
    spec.write_text(SPEC)
    done = _cli("-m", "eosdsl.cli", "run", str(spec), "--registry", str(base / "reference"))
    assert done.returncode == 0, done.stderr
    return (spec, *_arrays(base / "reference"))


@pytest.mark.parametrize("phase", PHASES)
def test_a_crash_at_any_phase_is_completed_by_the_next_run_bit_identically(phase, reference, tmp_path):
    spec, key, expected = reference
    registry = tmp_path / "registry"
    killed = _cli("-c", DRIVER, phase, str(spec), str(registry))
    assert killed.returncode == 137, (killed.stdout, killed.stderr)

    again = _cli("-m", "eosdsl.cli", "run", str(spec), "--registry", str(registry))
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "✓ final sharpness" in again.stdout  # judged, even when the crash came before the verdict
    if phase == "final-checkpoint":  # the final one (position 110) has no outputs: the one before is used
        assert "resumed from the checkpoint at step 100" in again.stdout, again.stdout
    got_key, got = _arrays(registry)
    assert got_key == key
    assert sorted(got) == sorted(expected)
    for name, (steps, values) in expected.items():
        np.testing.assert_array_equal(got[name][0], steps)
        assert got[name][1].dtype == values.dtype and got[name][1].tobytes() == values.tobytes(), name
    assert not list((registry / "staging").glob("*")), "the work directory is gone after the commit"
    ls = _cli("-m", "eosdsl.cli", "ls", "--registry", str(registry))
    assert key[:12] in ls.stdout and "1/1" in ls.stdout  # the index knows the run and its verdict
