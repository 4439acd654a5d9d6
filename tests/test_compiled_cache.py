"""The start-up caches of a run (``eosdsl.engine.compiled``, ``eosdsl.cache.cached_params``): a second run
loads its compiled programs and initial parameters instead of tracing, compiling and initializing, and
computes bit for bit what a run without the caches computes; damaged entries are rebuilt; JAX's own
persistent cache, when a user configures it, is left to itself.

The engine tests run in subprocesses (each a fresh process, as ``eosdsl run`` is): an executable loaded
from disk runs without the lowering that binds jaxlib's LAPACK kernels, which only a fresh process shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eosdsl import cache

ROOT = Path(__file__).resolve().parents[1]

# A supervised network (initial parameters from flax) with an eigensolver measure (LAPACK ``eigh`` in
# the Rayleigh–Ritz step) and a checkpointed chunking, in float64.
SPEC = """
name: cached-programs
precision: float64
problem:
  kind: supervised
  data: {source: rank2, d: 4, n: 16}
  pipeline: [scale]
  model: {kind: mlp, widths: [6], activation: tanh}
  loss: {kind: mse}
optimizer: {kind: gd, lr: 0.05}
train: {steps: 12}
measure:
  - {kind: loss}
  - {kind: sharpness, method: lobpcg, k: 2, every: 3}
runtime: {chunk: 5}
"""

DRIVER = r"""
import json, sys
import numpy as np
from eosdsl.orchestration import run_points
from eosdsl.registry import Registry
from eosdsl.spec.load import load

loaded = load("c.yaml", text=open(sys.argv[1]).read())
outcomes, _, _ = run_points(loaded.spec, loaded.points, Registry(sys.argv[2]))
run = outcomes[0].run
series = {name: [np.asarray(a).tobytes().hex() for a in run.series(name)] for name in run.series_names()}
print(json.dumps({"key": run.run_key, "series": series}))
"""


def _run(tmp_path: Path, cache_dir: str, name: str, env: dict[str, str] | None = None) -> dict:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(spec), str(tmp_path / f"registry-{name}")],
        env={**os.environ, cache.CACHE_ENV: cache_dir, **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} if root.exists() else {}


@pytest.mark.slow
def test_second_run_loads_programs_and_params_and_matches_bitwise(tmp_path: Path) -> None:
    """Run 1 compiles and stores; run 2 (a fresh process, a fresh registry) only reads the caches; both
    equal, bit for bit, a run with the caches off (same run key: nothing cached enters identity)."""
    root = tmp_path / "cache"
    first = _run(tmp_path, str(root), "first")
    programs, params = _entries(root / "programs"), _entries(root / "params")
    assert len(programs) >= 2 and len(params) == 1  # init_state and run_chunk (5 and the last 2 steps)
    second = _run(tmp_path, str(root), "second")
    assert _entries(root / "programs") == programs and _entries(root / "params") == params  # read only
    plain = _run(tmp_path, "off", "plain")
    assert first == second == plain


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_program_entry_is_compiled_again(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "cache"
    first = _run(tmp_path, str(root), "first")
    for path in (root / "programs").rglob("*.bin"):
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"not an executable")
    again = _run(tmp_path, str(root), "again")
    assert again == first
    assert all(p.stat().st_size > 1000 for p in (root / "programs").rglob("*.bin"))  # rewritten whole


@pytest.mark.slow
def test_jax_persistent_cache_of_the_user_is_left_alone(tmp_path: Path) -> None:
    """With ``JAX_COMPILATION_CACHE_DIR`` set, eosdsl stores no programs of its own: an executable JAX
    loaded from its cache would serialize into an entry that fails to run."""
    root = tmp_path / "cache"
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax")}
    assert _run(tmp_path, str(root), "a", env) == _run(tmp_path, str(root), "b", env)
    assert not (root / "programs").exists()


# ------------------------------------------------------------------------------- initial parameters


def test_cached_params_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested dicts come back equal (values, dtypes, nesting); the key is the document."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    tree = {
        "dense_0": {"w": np.arange(6.0).reshape(2, 3), "b": np.zeros(3, np.float32)},
        "out": {"w": np.ones(3)},
    }
    built: list[int] = []

    def build() -> dict:
        built.append(1)
        return tree

    assert cache.cached_params({"seed": 0}, build) is tree
    served = cache.cached_params({"seed": 0}, build)
    assert built == [1]
    assert served.keys() == tree.keys() and served["dense_0"].keys() == tree["dense_0"].keys()
    for got, want in (
        (served["dense_0"]["w"], tree["dense_0"]["w"]),
        (served["dense_0"]["b"], tree["dense_0"]["b"]),
    ):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    cache.cached_params({"seed": 1}, build)
    assert built == [1, 1]  # another document, another entry


def test_cached_params_rebuilds_damaged_entries_and_skips_other_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    tree = {"a": np.ones(2)}
    cache.cached_params({"n": 1}, lambda: tree)
    (entry,) = (tmp_path / "params").rglob("*.npz")
    entry.write_bytes(b"garbage")
    assert np.array_equal(cache.cached_params({"n": 1}, lambda: tree)["a"], tree["a"])
    assert entry.stat().st_size > len(b"garbage")  # rewritten
    listed = [np.ones(2)]  # not nested dicts: built every time, never stored
    assert cache.cached_params({"n": 2}, lambda: listed) is listed
    assert len(list((tmp_path / "params").rglob("*.npz"))) == 1
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert cache.cached_params({"n": 1}, lambda: listed) is listed
