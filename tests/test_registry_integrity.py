"""Registry maintenance: verify (+ quarantine), gc, export, on real registries in tmp_path."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.registry import claims, identity
from eosdsl.registry.integrity import (
    QUARANTINE_INFO,
    export_zip,
    gc,
    verify,
    verify_run,
)
from eosdsl.registry.manifest import write_manifest
from eosdsl.registry.store import Registry, RegistryError, StoredRun

ENV = {"semantics": "1", "backend": "cpu", "x64": True}
OLD = 1_000_000_000  # an mtime far in the past: older than gc's min age
runner = CliRunner()


def make_run(reg: Registry, lr: float = 0.1, name: str = "quad", data: dict | None = None) -> StoredRun:
    """Stage and commit a fake run whose ids are consistent with its content."""
    spec = {"name": name, "optimizer": {"kind": "gd", "lr": lr}, "train": {"steps": 20}}
    sid = identity.spec_id(spec)
    data = data or {}
    key = identity.run_key(sid, ENV, data)
    staged = reg.stage(key)
    staged.write_json("spec.json", spec)
    staged.write_json("env.json", ENV)
    staged.write_json("run.json", {"status": "ok", "spec_id": sid, "run_key": key, "data": data})
    steps = np.arange(20, dtype=np.int64)
    staged.write_series({"loss": (steps, np.linspace(1.0, 0.0, 20) * lr), "sharpness": (steps, steps * 0.5)})
    return staged.commit()


def chunk_files(run: StoredRun) -> list[Path]:
    return sorted(p for p in (run.path / "results.zarr").rglob("*") if p.is_file() and p.parent.name == "c")


def flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def age(path: Path) -> None:
    """Make ``path`` and everything under it look untouched for a long time."""
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (OLD, OLD))


def by_key(findings: list) -> dict:
    return {f.run_key: f for f in findings}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------------------------- verify


def test_clean_registry_verifies_ok(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    runs = [make_run(reg, lr) for lr in (0.1, 0.2, 0.3)]
    for deep in (False, True):
        findings = verify(reg, deep=deep)
        assert [f.action for f in findings] == ["ok"] * 3
        assert {f.run_key for f in findings} == {r.run_key for r in runs}
        assert all(verify_run(r, deep=deep) == [] for r in runs)
    assert verify(Registry(tmp_path / "empty"), deep=True) == []


def test_flipped_chunk_byte_needs_deep_and_is_quarantined(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    good, bad = make_run(reg, 0.1), make_run(reg, 0.2)
    chunk = chunk_files(bad)[0]
    size = chunk.stat().st_size
    flip_byte(chunk)
    assert chunk.stat().st_size == size

    shallow = by_key(verify(reg, deep=False))
    assert shallow[bad.run_key].action == "ok"  # same size: only the hash can tell
    assert reg.get(bad.run_key) is not None

    deep = by_key(verify(reg, deep=True))
    finding = deep[bad.run_key]
    assert finding.action == "quarantined"
    assert any("sha256" in p and chunk.name in p for p in finding.problems)
    assert deep[good.run_key].action == "ok"
    assert not bad.path.exists()
    assert reg.get(bad.run_key) is None
    assert [r.run_key for r in reg.runs()] == [good.run_key]

    moved = finding.quarantined_to
    assert moved is not None and moved.parent == reg.quarantine_dir
    assert moved.name.startswith(f"{bad.run_key}.")
    record = json.loads((moved / QUARANTINE_INFO).read_text())
    assert set(record) >= {"reason", "problems", "at"}
    assert record["problems"] == finding.problems

    assert [f.action for f in verify(reg, deep=True)] == ["ok"]  # the registry is clean again
    listed = gc(reg, dry_run=True)
    assert [(p, why) for p, _, why in listed] == [(moved, "quarantined run")]
    assert listed[0][1] > 0

    again = make_run(reg, 0.2)  # re-running its spec recomputes it
    assert again.run_key == bad.run_key and reg.get(bad.run_key) == again


def test_undecodable_chunk_is_caught_by_reading_series(tmp_path: Path) -> None:
    """A chunk that no longer decodes is caught even if the manifest was rewritten to match it."""
    reg = Registry(tmp_path)
    run = make_run(reg)
    chunk = chunk_files(run)[0]
    chunk.write_bytes(b"not zstd at all")
    write_manifest(run.path, run.run_key)
    problems = verify_run(run, deep=True)
    assert any("cannot be read" in p for p in problems), problems
    assert verify_run(run, deep=False) == []


def test_missing_manifest_is_not_served_and_reported(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    run = make_run(reg)
    (run.path / "MANIFEST.json").unlink()
    assert reg.get(run.run_key) is None
    assert reg.runs() == []
    with pytest.raises(RegistryError):
        reg.resolve(run.run_key[:8])
    [finding] = verify(reg, quarantine=False)
    assert finding.action == "reported"
    assert any("MANIFEST.json" in p for p in finding.problems)
    assert run.path.exists()  # reported only
    [finding] = verify(reg)
    assert finding.action == "quarantined" and not run.path.exists()


def test_edited_spec_is_an_id_mismatch(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    run = make_run(reg, 0.1)
    spec_path = run.path / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["optimizer"]["lr"] = 0.9  # same length: the manifest's sizes still match
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    problems = verify_run(run)
    assert any("spec_id mismatch" in p for p in problems), problems
    assert any("run_key mismatch" in p for p in problems), problems
    [finding] = verify(reg, quarantine=False)
    assert finding.action == "reported" and finding.problems == problems


def test_garbage_under_objects_does_not_crash_ls_or_verify(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    run = make_run(reg)
    (reg.objects_dir / "zz" / "garbage").mkdir(parents=True)
    (reg.objects_dir / "ab" / ("ab" * 32)).mkdir(parents=True)  # a key-named, empty directory
    (reg.objects_dir / "stray.txt").write_text("x")
    assert reg.runs() == [run]

    result = invoke("ls", "--registry", tmp_path)
    assert result.exit_code == 0 and run.short_id in result.output

    findings = by_key(verify(reg))
    assert findings[run.run_key].action == "ok"
    assert findings["ab" * 32].action == "quarantined"
    assert findings["zz"].action == "quarantined"
    assert findings["stray.txt"].action == "reported"
    assert all(f.problems for k, f in findings.items() if k != run.run_key)
    assert reg.get(run.run_key) == run


# --------------------------------------------------------------------------------------------- gc


def _litter(reg: Registry) -> dict[str, Path]:
    """A committed run plus every kind of garbage gc collects, all aged past gc's min age."""
    committed = make_run(reg, 0.1)
    leftover = reg.stage(committed.run_key)  # staging of an already committed run
    (leftover.path / "spec.json").write_text("{}")
    abandoned = reg.stage("e" * 64)  # a crashed, never committed run
    (abandoned.scratch / "checkpoint.bin").write_bytes(b"\0" * 1000)
    bad = make_run(reg, 0.2)
    flip_byte(chunk_files(bad)[0])
    [moved] = [f.quarantined_to for f in verify(reg, deep=True) if f.action == "quarantined"]
    stale = claims.claim_path(reg.root, "d" * 64)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x"}))
    tomb = claims.claim_path(reg.root, "c" * 64).with_name(f"{'c' * 64}.json.stale.1234")
    tomb.write_text("{}")
    for path in (leftover.path, abandoned.path, stale, tomb):
        age(path)
    return {
        "committed": committed.path,
        "leftover": leftover.path,
        "abandoned": abandoned.path,
        "quarantined": moved,
        "stale": stale,
        "tomb": tomb,
    }


def test_gc_dry_run_lists_garbage_with_sizes_and_deletes_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    paths = _litter(reg)
    listed = {p: (size, why) for p, size, why in gc(reg, dry_run=True)}
    assert listed[paths["leftover"]] == (2, "staging of a committed run")
    assert listed[paths["abandoned"]] == (1000, "abandoned staging (no live claim)")
    assert listed[paths["quarantined"]][1] == "quarantined run"
    assert listed[paths["quarantined"]][0] > 1000
    assert listed[paths["stale"]][1] == "stale claim"
    assert listed[paths["tomb"]] == (2, "claim tomb (left by an interrupted takeover)")
    assert len(listed) == 5
    assert all(p.exists() for p in paths.values())  # dry run: nothing removed
    assert not any(p.is_relative_to(reg.objects_dir) for p in listed)


def test_gc_removes_garbage_but_never_objects(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    paths = _litter(reg)
    before = {p: p.read_bytes() for p in reg.objects_dir.rglob("*") if p.is_file()}
    removed = gc(reg, dry_run=False)
    assert len(removed) == 5
    assert [p for p in paths.values() if p.exists()] == [paths["committed"]]
    assert {p: p.read_bytes() for p in reg.objects_dir.rglob("*") if p.is_file()} == before
    assert verify(reg, deep=True)[0].action == "ok"
    assert gc(reg, dry_run=True) == []
    assert list(reg.staging_dir.iterdir()) == []


def test_gc_spares_live_claims_and_fresh_staging(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    claimed = reg.stage("a" * 64)
    (claimed.path / "partial").write_text("x")
    age(claimed.path)
    claim = claims.try_claim(reg.root, "a" * 64)
    assert claim is not None
    fresh = reg.stage("b" * 64)  # just written: maybe a writer is still at work
    (fresh.path / "partial").write_text("x")
    assert gc(reg, dry_run=True) == []
    assert gc(reg, dry_run=False) == []
    assert claimed.path.exists() and fresh.path.exists() and claim.path.exists()
    claim.release()
    assert [p for p, _, _ in gc(reg, dry_run=True)] == [claimed.path]
    assert [p for p, _, _ in gc(reg, dry_run=True, min_age_s=0)] == [claimed.path, fresh.path]


# --------------------------------------------------------------------------------------------- export


def test_export_zip_round_trip(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    run = make_run(reg)
    target = export_zip(run, tmp_path / "out" / "run.zip")
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert f"{run.run_key}/MANIFEST.json" in names
        assert all(n.startswith(f"{run.run_key}/") for n in names)
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
        archive.extractall(tmp_path / "unzipped")
    originals = {p.relative_to(run.path): p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    unzipped_root = tmp_path / "unzipped" / run.run_key
    unzipped = {p.relative_to(unzipped_root): p.read_bytes() for p in unzipped_root.rglob("*") if p.is_file()}
    assert unzipped == originals
    assert verify_run(unzipped_root, deep=True) == []  # the export is itself a verifiable run

    first = target.read_bytes()
    with pytest.raises(FileExistsError):
        export_zip(run, target)
    export_zip(run, target, overwrite=True)
    assert target.read_bytes() == first  # deterministic
    assert [p.name for p in target.parent.iterdir()] == ["run.zip"]  # no temp file left


# --------------------------------------------------------------------------------------------- CLI


def test_cli_verify_deep_quarantines_and_exits_1(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    make_run(reg, 0.1)
    bad = make_run(reg, 0.2)
    result = invoke("registry", "verify", "--deep", "--registry", tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 runs checked, 0 corrupted" in result.output

    flip_byte(chunk_files(bad)[0])
    result = invoke("registry", "verify", "--registry", tmp_path)
    assert result.exit_code == 0  # shallow misses a same-size flip
    result = invoke("registry", "verify", "--deep", "--no-quarantine", "--registry", tmp_path)
    assert result.exit_code == 1
    assert f"{bad.short_id} reported" in result.output and bad.path.exists()
    result = invoke("registry", "verify", "--deep", "--registry", tmp_path)
    assert result.exit_code == 1
    assert f"{bad.short_id} quarantined" in result.output
    assert "2 runs checked, 1 corrupted (1 quarantined)" in result.output
    assert "sha256" in result.output and "Traceback" not in result.output
    assert invoke("registry", "verify", "--deep", "--registry", tmp_path).exit_code == 0


def test_cli_gc_dry_run_then_real(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    abandoned = reg.stage("e" * 64)
    (abandoned.path / "partial.bin").write_bytes(b"\0" * 2048)
    age(abandoned.path)
    result = invoke("registry", "gc", "--dry-run", "--registry", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"staging/{'e' * 64}" in result.output and "2.0 KiB" in result.output
    assert "would remove 1 items, 2.0 KiB" in result.output
    assert abandoned.path.exists()
    assert invoke("registry", "gc", "--registry", tmp_path).exit_code == 0  # dry run by default
    assert abandoned.path.exists()
    result = invoke("registry", "gc", "--no-dry-run", "--registry", tmp_path)
    assert result.exit_code == 0 and "removed 1 items" in result.output
    assert not abandoned.path.exists()


def test_cli_export(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    run = make_run(reg)
    target = tmp_path / "out.zip"
    result = invoke("export", run.run_key[:8], "--zip", target, "--registry", reg.root)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        assert f"{run.run_key}/run.json" in archive.namelist()
    result = invoke("export", run.run_key[:8], "--zip", target, "--registry", reg.root)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (
        invoke("export", run.run_key[:8], "--zip", target, "--overwrite", "--registry", reg.root).exit_code
        == 0
    )
    result = invoke("export", "ffff", "--zip", tmp_path / "x.zip", "--registry", reg.root)
    assert result.exit_code == 2 and "Traceback" not in result.output
