"""Reuse never serves a damaged run: every kind of stored file, deleted, truncated or altered, is caught
before reuse (shallow: the manifest, sizes and ids; ``deep``: also hashes and every series), the
run is quarantined with the reason, and it is recomputed bit-identically in its place. Reading a
damaged series is an error, never zeros."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eosdsl.orchestration import run_one
from eosdsl.registry import DamagedRun, Registry
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow

SPEC = """\
name: tamper-tiny
precision: float64
problem: {kind: relu_scalar, u0: 10.0, v0: 1.0e-3}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 60}
measure: [{kind: loss}, {kind: params}]
runtime: {chunk: 20, checkpoint_every: 20, checkpoint_min_seconds: 0}
"""


def _chunk(run_dir: Path, series: str = "loss", array: str = "value") -> Path:
    (chunk,) = (run_dir / "results.zarr" / series / array / "c").iterdir()
    return chunk


def _delete(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-3])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(name: str, key: str, value: object) -> Callable[[Path], None]:
    def edit(run_dir: Path) -> None:
        doc = json.loads((run_dir / name).read_text())
        doc[key] = value
        (run_dir / name).write_text(json.dumps(doc, indent=2, sort_keys=True))

    return edit


# (case, tampering of the committed run directory, deep verification needed to see it)
CASES: list[tuple[str, Callable[[Path], None], bool]] = [
    ("delete MANIFEST.json", lambda d: _delete(d / "MANIFEST.json"), False),
    ("delete spec.json", lambda d: _delete(d / "spec.json"), False),
    ("delete env.json", lambda d: _delete(d / "env.json"), False),
    ("delete run.json", lambda d: _delete(d / "run.json"), False),
    ("truncate run.json", lambda d: _truncate(d / "run.json"), False),
    ("truncate MANIFEST.json", lambda d: _truncate(d / "MANIFEST.json"), False),
    ("edit spec.json", _edit_json("spec.json", "seed", 1), False),
    ("edit env.json", _edit_json("env.json", "isa", "sse2"), False),
    ("delete a value chunk", lambda d: _delete(_chunk(d)), False),
    ("delete a step chunk", lambda d: _delete(_chunk(d, "params.u", "step")), False),
    ("truncate a value chunk", lambda d: _truncate(_chunk(d)), False),
    ("delete results.zarr", lambda d: _delete(d / "results.zarr"), False),
    ("delete zarr metadata", lambda d: _delete(d / "results.zarr" / "loss" / "zarr.json"), False),
    ("add a stray file", lambda d: (d / "stray.txt").write_text("x"), False),
    ("delete the checkpoints", lambda d: _delete(d / "checkpoints"), False),
    ("flip a byte of a value chunk", lambda d: _flip(_chunk(d)), True),
    ("flip a byte of run.json", lambda d: _flip(d / "run.json"), True),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[Path, str, dict]:
    root = tmp_path_factory.mktemp("tamper") / "registry"
    spec = load("tamper.yaml", text=SPEC).spec
    run = run_one(spec, Registry(root)).run
    return root, run.run_key, {n: run.series(n) for n in run.series_names()}


@pytest.mark.parametrize(("case", "tamper", "deep"), CASES, ids=[c[0] for c in CASES])
def test_a_damaged_run_is_quarantined_and_recomputed(case, tamper, deep, stored, tmp_path) -> None:
    source, key, expected = stored
    root = tmp_path / "registry"
    shutil.copytree(source, root)
    registry = Registry(root)
    tamper(registry.object_path(key))

    spec = load("tamper.yaml", text=SPEC).spec
    # deep: same sizes, so the cheap check cannot see it; the caller asks for hashes
    outcome = run_one(spec, registry, deep=deep)
    assert not outcome.reused, f"{case}: a damaged run was served"
    assert outcome.notice is not None and "quarantined" in outcome.notice, outcome.notice
    run = outcome.run
    assert run.run_key == key
    for name, (steps, values) in expected.items():
        got_steps, got = run.series(name)
        np.testing.assert_array_equal(got_steps, steps)
        assert got.tobytes() == values.tobytes(), name
    (quarantined,) = registry.quarantine_dir.iterdir()
    assert quarantined.name.startswith(key)
    assert json.loads((quarantined / "QUARANTINE.json").read_text())["problems"]
    assert run_one(spec, registry).reused  # the recomputed run is sound


def test_reading_a_damaged_series_is_an_error_never_zeros(stored, tmp_path) -> None:
    source, key, _ = stored
    root = tmp_path / "registry"
    shutil.copytree(source, root)
    run = Registry(root).get(key)
    _delete(_chunk(run.path))
    with pytest.raises(DamagedRun, match="missing"):
        run.series("loss")
    _truncate(_chunk(run.path, "params.u"))
    with pytest.raises(DamagedRun, match="cannot be read"):
        run.series("params.u")
