"""Crash safety and concurrency of runs, with real processes.

- A run killed by SIGKILL resumes from its last checkpoint when the command is re-run, and its
  stored arrays are bitwise identical to an uninterrupted run's (on CPU).
- Two processes started on the same spec: one computes, the other waits and returns the same run.
- A claim left by a dead process is taken over.
- A sweep killed midway recomputes only its unfinished points when re-run: committed points are
  reused, interrupted packs resume from their members' checkpoints (bitwise equal to an uninterrupted
  pack on CPU).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eosdsl.engine.execute import prepare
from eosdsl.engine.packs import execute_pack
from eosdsl.orchestration import run_one
from eosdsl.registry import Registry
from eosdsl.registry.claims import claim_path
from eosdsl.registry.identity import environment_difference
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

# Heavy ball on paper 000's ReLU scalar net: 600k steps in chunks of 20k, a checkpoint every 100k.
LONG_SPEC = """
name: resume-test
constants: {eps: 0.01, u0: 10.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: heavy_ball, beta: 0.9, lr: (2 + eps) / u0**2}
train: {steps: 600000}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: sharpness, every: 100}
runtime: {chunk: 20000, checkpoint_every: 100000, checkpoint_min_seconds: 0}
"""


def _cli(spec: Path, registry: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CI": "true", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "eosdsl.cli", "run", str(spec), "--registry", str(registry), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _committed_checkpoints(registry: Path) -> list[int]:
    steps = []
    for path in registry.glob("staging/*/checkpoints/*"):
        if path.name.isdigit() and (path / "_CHECKPOINT_METADATA").exists():
            steps.append(int(path.name))
    return steps


def _checkpointed_runs(registry: Path) -> set[str]:
    """Run keys (in staging) with at least one complete checkpoint."""
    return {
        path.parents[1].name
        for path in registry.glob("staging/*/checkpoints/*")
        if path.name.isdigit() and (path / "_CHECKPOINT_METADATA").exists()
    }


def _all_series(run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: run.series(name) for name in run.series_names()}


def _bitwise(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_killed_run_resumes_bit_identically(tmp_path):
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(LONG_SPEC)
    killed = tmp_path / "killed"
    proc = _cli(spec_file, killed)
    deadline = time.monotonic() + 120
    while not _committed_checkpoints(killed):
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(killed.glob("objects/*/*")), "a killed run must leave no committed run"
    assert list(killed.glob("claims/*.json")), "the dead process's claim is still there"

    resumed = _cli(spec_file, killed)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resumed from the checkpoint at step" in out
    (run_dir,) = killed.glob("objects/*/*")

    reference = run_one(load(spec_file).spec, Registry(tmp_path / "uninterrupted")).run
    resumed_env = Registry(killed).get(run_dir.name).env
    assert reference.run_key == run_dir.name, environment_difference(resumed_env, reference.env)
    stored = _all_series(Registry(killed).get(run_dir.name))
    expected = _all_series(reference)
    assert stored.keys() == expected.keys()
    for name, (steps, values) in expected.items():
        assert _bitwise(stored[name][0], steps), name
        assert _bitwise(stored[name][1], values), name
    assert len(expected["loss"][0]) == 600001


def test_two_processes_compute_once(tmp_path):
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(LONG_SPEC.replace("600000", "200000"))
    registry = tmp_path / "shared"
    procs = [_cli(spec_file, registry) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    ids = {o[0].split()[1] for o in outputs}
    assert len(ids) == 1, outputs
    reused = [o[0] for o in outputs if "(reused)" in o[0]]
    assert len(reused) == 1, outputs  # exactly one of the two computed
    assert "computed by another process" in reused[0]
    assert len(list(registry.glob("objects/*/*"))) == 1


def test_claim_of_a_dead_process_is_taken_over(tmp_path):
    spec = load("short.yaml", text=LONG_SPEC.replace("600000", "5000")).spec
    registry = Registry(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    probe = run_one(spec, Registry(tmp_path / "probe"))  # only to learn the run key
    path = claim_path(tmp_path, probe.run.run_key)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "token": "x"}))
    outcome = run_one(spec, registry, poll=0.05)
    assert not outcome.reused and outcome.notice == "took over an abandoned claim"
    assert not path.exists()


def test_killed_sweep_recomputes_only_its_unfinished_points(tmp_path):
    """Four points in packs of two: killed (SIGKILL) once the first pack is committed and the second has
    checkpointed, the same command reuses the first two points and resumes the other two."""
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(LONG_SPEC)
    axis = "constants.eps=0.01,0.02,0.03,0.04"
    killed = tmp_path / "killed"
    proc = _cli(spec_file, killed, "-m", axis, "--pack", "2")
    deadline = time.monotonic() + 240
    while len(list(killed.glob("objects/*/*"))) < 2 or len(_checkpointed_runs(killed)) < 2:
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the first pack did not commit within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name for p in killed.glob("objects/*/*")}
    assert len(first) == 2

    again = _cli(spec_file, killed, "-m", axis, "--pack", "2")
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out + err
    assert out.count("(reused)") == 2 and out.count("resumed from the checkpoint at step") == 2, out
    assert " 2     2       0         0       4" in out  # done / reused / diverged / failed / total
    registry = Registry(killed)
    loaded = load(spec_file, [], [axis])
    resumed = [p for p in loaded.points if p.label.endswith(("0.03", "0.04"))]
    reference = execute_pack([p.spec for p in resumed], [prepare(p.spec) for p in resumed])
    runs = [r for r in (registry.get(k.name) for k in killed.glob("objects/*/*")) if r.run_key not in first]
    by_eps = {r.spec["constants"]["eps"]: r for r in runs}
    for point, expected in zip(resumed, reference, strict=True):
        stored = _all_series(by_eps[point.spec.constants["eps"]])
        for name, (steps, values) in expected.series.items():
            assert _bitwise(stored[name][0], steps), name
            assert _bitwise(stored[name][1], values), name
