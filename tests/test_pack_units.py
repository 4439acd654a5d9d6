"""Pack units: the runs of a pack that end together are stored as one unit (their series stacked in
one Zarr group, their final states in one Orbax checkpoint), each run referring to its row.

Oracle: the same points computed and stored alone (``pack=1``), whose series and final states must
come back bit for bit the same through the unit (the toy programs are elementwise, so a packed member
computes exactly what it computes alone: tests/test_packing.py), and the registry's own guarantees —
verification finds damage, quarantine and gc clean it up, an exported run is standalone.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

from eosdsl.orchestration import run_points
from eosdsl.orchestration.stages import _restore_inputs
from eosdsl.registry import Registry, zarr_io
from eosdsl.registry.checkpoints import final_state, kept_positions
from eosdsl.registry.claims import try_claim
from eosdsl.registry.integrity import export_zip, gc, verify, verify_run
from eosdsl.registry.manifest import manifest_problems
from eosdsl.registry.store import PACK_INFO, RESULTS, DamagedRun
from eosdsl.spec.load import load

pytestmark = pytest.mark.slow  # runs the engine

SCALAR = """
name: unit-scalar
precision: float64
constants: {eps: 0.01, u0: 10.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: heavy_ball, lr: (2 + eps) / u0**2, beta: 0.5}
train: {steps: 1000}
measure: [{kind: loss, every: 10}, {kind: params}]
checks:
  - {kind: final, of: loss, below: 1.0}
"""

TOY = """
name: unit-toy
precision: float64
constants: {lr: 0.001}
problem: {kind: product_chain, theta0: [-0.1, 10.0], z: [0.0, 0.0, 1.0]}
optimizer: {kind: gd, lr: lr}
train: {steps: 3000}
measure: [{kind: loss}, {kind: params}]
"""

BETAS = ["optimizer.beta=0.0,0.3,0.6,0.9"]


def _stored(text: str, axes: list[str], root: Path, pack: int):
    loaded = load("unit.yaml", text=text, multirun=axes)
    outcomes, _, _ = run_points(loaded.spec, loaded.points, Registry(root), pack=pack)
    return [o.run for o in outcomes]


def _same_series(a, b) -> None:
    assert a.series_names() == b.series_names()
    for name in a.series_names():
        for x, y in zip(a.series(name), b.series(name), strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


def _final_params(run):
    _, _, template = _restore_inputs(run)
    return jax.device_get(final_state(run, template).params)


def test_runs_that_end_together_share_one_unit_and_read_back_as_if_stored_alone(tmp_path: Path) -> None:
    packed = _stored(SCALAR, BETAS, tmp_path / "packed", pack=4)
    alone = _stored(SCALAR, BETAS, tmp_path / "alone", pack=1)
    units = {run.stored_in[0] for run in packed}
    assert len(units) == 1
    unit = units.pop()
    assert json.loads((unit / PACK_INFO).read_text())["members"] == [r.run_key for r in packed]
    assert [r.stored_in[1] for r in packed] == [0, 1, 2, 3]
    assert all(r.stored_in is None and (r.path / RESULTS).is_dir() for r in alone)
    assert not any((r.path / RESULTS).exists() for r in packed)
    for p, a in zip(packed, alone, strict=True):
        assert p.run_key == a.run_key  # storage is not identity
        _same_series(p, a)
        assert kept_positions(p) == kept_positions(a)
        fp, fa = _final_params(p), _final_params(a)
        assert jax.tree.all(jax.tree.map(lambda x, y: x.tobytes() == y.tobytes(), fp, fa))
        assert [c["passed"] for c in p.checks] == [c["passed"] for c in a.checks] == [True]
    assert all(verify_run(r, deep=True) == [] for r in packed)


def test_members_that_end_apart_are_stored_apart(tmp_path: Path) -> None:
    """The diverging point ends chunks before the others: it is stored alone, the two that complete
    together in one unit of two."""
    axes = ["constants.lr=0.001,0.011,0.05"]
    packed = _stored(TOY, axes, tmp_path / "packed", pack=3)
    alone = _stored(TOY, axes, tmp_path / "alone", pack=1)
    assert [r.status for r in packed] == ["completed", "completed", "diverged"]
    assert packed[2].stored_in is None and (packed[2].path / RESULTS).is_dir()
    assert packed[0].stored_in[0] == packed[1].stored_in[0]
    for p, a in zip(packed, alone, strict=True):
        _same_series(p, a)


def test_a_damaged_unit_quarantines_its_runs_gc_removes_it_and_they_are_recomputed(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    runs = _stored(SCALAR, BETAS, root, pack=4)
    unit = runs[0].stored_in[0]
    shard = next(p for p in sorted((unit / RESULTS).rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert verify(Registry(root), deep=False, quarantine=False)[0].ok  # same size: only deep sees it
    findings = verify(Registry(root), deep=True)
    assert [f.action for f in findings] == ["quarantined"] * 4
    assert all("sha256" in " ".join(f.problems) for f in findings)
    removed = gc(Registry(root), dry_run=False, min_age_s=0)
    assert (unit, "pack unit no run refers to") in [(path, why) for path, _, why in removed]
    assert not unit.exists()
    again = _stored(SCALAR, BETAS, root, pack=4)
    assert [r.run_key for r in again] == [r.run_key for r in runs]
    assert all(verify_run(r, deep=True) == [] for r in again)


def test_gc_keeps_units_that_runs_refer_to(tmp_path: Path) -> None:
    runs = _stored(SCALAR, BETAS, tmp_path, pack=4)
    assert not [c for c in gc(Registry(tmp_path), dry_run=True, min_age_s=0) if "pack" in c[2]]
    assert runs[0].stored_in[0].is_dir()


def test_an_exported_member_is_a_standalone_run(tmp_path: Path) -> None:
    packed = _stored(SCALAR, BETAS, tmp_path / "packed", pack=4)
    alone = _stored(SCALAR, BETAS, tmp_path / "alone", pack=1)
    target = export_zip(packed[2], tmp_path / "member.zip")
    with zipfile.ZipFile(target) as archive:
        archive.extractall(tmp_path / "out")
    copy = tmp_path / "out" / packed[2].run_key
    assert manifest_problems(copy, deep=True) == []
    assert "stored_in" not in json.loads((copy / "run.json").read_text())
    assert sorted(zarr_io.series_names(copy / RESULTS)) == alone[2].series_names()
    for name in alone[2].series_names():
        for x, y in zip(zarr_io.read_series(copy / RESULTS, name), alone[2].series(name), strict=True):
            assert np.array_equal(x, y) and x.dtype == y.dtype
    assert zarr_io.read_attrs(copy / RESULTS) == zarr_io.read_attrs(alone[2].path / RESULTS)
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == [str(kept_positions(alone[2])[-1])]


def test_a_truncated_unit_is_an_error_for_each_of_its_runs_never_garbage(tmp_path: Path) -> None:
    runs = _stored(SCALAR, BETAS, tmp_path, pack=4)
    unit = runs[0].stored_in[0]
    shard = unit / RESULTS / "loss" / "value" / "c" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-3])
    for run in runs:
        with pytest.raises(DamagedRun, match="cannot be read"):
            run.series("loss")
        assert any("size of results.zarr/loss/value/c/0/0" in p for p in verify_run(run))


def test_runs_sealed_before_their_unit_failed_are_recomputed_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's write fails after the runs' own files and manifests are written (a full disk, a kill):
    no run is committed, and the next attempt drops their manifests (their unit is missing), computes
    them again and stores them as a sweep that never failed would."""
    import eosdsl.orchestration.commit as commit

    def failing(unit, members):
        deadline = time.monotonic() + 120  # the runs' own files and manifests are written meanwhile
        while not any((c.staged.path / "MANIFEST.json").is_file() for c, _, _ in members):
            assert time.monotonic() < deadline, "no run was sealed while its unit was written"
            time.sleep(0.01)
        unit.abort()
        raise OSError("injected: no space left on device")

    monkeypatch.setattr(commit, "store_pack", failing)
    loaded = load("unit.yaml", text=SCALAR, multirun=BETAS)
    registry = Registry(tmp_path / "reg")
    outcomes, _, _ = run_points(loaded.spec, loaded.points, registry, pack=4)
    assert [o.status for o in outcomes] == ["failed"] * 4 and "no space" in outcomes[0].error
    assert registry.runs() == []
    assert any((p / "MANIFEST.json").is_file() for p in registry.staging_dir.iterdir())
    monkeypatch.undo()
    again = _stored(SCALAR, BETAS, tmp_path / "reg", pack=4)
    alone = _stored(SCALAR, BETAS, tmp_path / "alone", pack=1)
    for p, a in zip(again, alone, strict=True):
        assert p.stored_in is not None and verify_run(p, deep=True) == []
        _same_series(p, a)


def test_runs_whose_unit_was_published_finish_their_commit_in_a_registry_named_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the unit was published but before the runs were renamed into place: the next
    attempt publishes the staged runs with their unit (not recomputed), wherever the registry is."""
    import eosdsl.orchestration.commit as commit

    def killed(*args):
        raise KeyboardInterrupt  # after prepare_member sealed the run and store_pack published the unit

    root = tmp_path / "objects"  # the registry's own folder may be called anything
    loaded = load("unit.yaml", text=SCALAR, multirun=BETAS)
    with monkeypatch.context() as patch:
        patch.setattr(commit, "_publish", killed)
        with pytest.raises(KeyboardInterrupt):
            run_points(loaded.spec, loaded.points, Registry(root), pack=4, fail_fast=True)
    assert Registry(root).runs() == [] and len(list((root / "packs").glob("*/*"))) == 1
    outcomes, _, _ = run_points(loaded.spec, loaded.points, Registry(root), pack=4)
    assert [o.notice for o in outcomes] == ["finished the commit of an interrupted run"] * 4
    alone = _stored(SCALAR, BETAS, tmp_path / "alone", pack=1)
    for o, a in zip(outcomes, alone, strict=True):
        assert verify_run(o.run, deep=True) == []
        _same_series(o.run, a)


def test_gc_keeps_a_unit_whose_runs_are_staged_or_claimed(tmp_path: Path) -> None:
    runs = _stored(SCALAR, BETAS, tmp_path, pack=4)
    registry, unit = Registry(tmp_path), runs[0].stored_in[0]
    for run in runs:  # as if killed after the unit was published, before the runs' renames
        run.path.rename(registry.staging_dir / run.run_key)
    held = [try_claim(registry.root, run.run_key) for run in runs]  # a process finishing their commit
    assert [p for p, _, _ in gc(registry, dry_run=True, min_age_s=0) if p == unit] == []
    for claim in held:
        claim.release()
    removed = gc(registry, dry_run=False, min_age_s=0)  # the abandoned staged runs go, and so does the unit
    assert (unit, "pack unit no run refers to") in [(path, why) for path, _, why in removed]


def test_a_packed_run_keeps_the_checkpoints_a_lone_run_keeps(tmp_path: Path) -> None:
    text = SCALAR + "runtime: {chunk: 100, checkpoint_every: 200, checkpoint_min_seconds: 0}\n"
    packed = _stored(text, BETAS, tmp_path / "packed", pack=4)
    alone = _stored(text, BETAS, tmp_path / "alone", pack=1)
    assert kept_positions(alone[0]) == [1000, 1100]  # the last periodic checkpoint and the final state
    assert all(kept_positions(p) == kept_positions(a) for p, a in zip(packed, alone, strict=True))


def test_a_run_whose_record_fails_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eosdsl.orchestration.commit as commit

    real = commit.record_of

    def flaky(spec, out, sid, key, started):
        if spec.optimizer.beta == 0.3:
            raise ValueError("injected: a derived series that cannot be computed")
        return real(spec, out, sid, key, started)

    monkeypatch.setattr(commit, "record_of", flaky)
    loaded = load("unit.yaml", text=SCALAR, multirun=BETAS)
    outcomes, _, _ = run_points(loaded.spec, loaded.points, Registry(tmp_path), pack=4)
    assert [o.status for o in outcomes] == ["completed", "failed", "completed", "completed"]
    assert "injected" in outcomes[1].error
    assert len({o.run.stored_in[0] for o in outcomes if o.run is not None}) == 1  # the other three: one unit


def test_a_malformed_pack_json_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    runs = _stored(SCALAR, BETAS, tmp_path, pack=4)
    unit = runs[0].stored_in[0]
    (unit / PACK_INFO).write_text('{"members": {"a": 1}}')
    findings = verify(Registry(tmp_path), quarantine=False)
    assert all(not f.ok and any("does not list run keys" in p for p in f.problems) for f in findings)


def test_show_says_where_a_packed_run_is_stored(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eosdsl.cli import app

    runs = _stored(SCALAR, BETAS, tmp_path, pack=4)
    result = CliRunner().invoke(app, ["show", runs[2].short_id, "--registry", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"stored with its pack: {runs[2].stored_in[0]} (member 2)" in result.output
    assert "params.u  1001 values" in result.output  # its series, read from the unit
