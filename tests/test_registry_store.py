"""On-disk registry: staging/commit protocol, lookup, listing, sweeps, Zarr series, root selection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from eosdsl.registry import store, zarr_io
from eosdsl.registry.manifest import write_manifest
from eosdsl.registry.store import (
    AmbiguousRun,
    Registry,
    RegistryError,
    StoredRun,
    UnknownRun,
    default_root,
)

KEY_A = "ab12" + "0" * 60
KEY_B = "ab12" + "f" * 60  # shares the 4-char prefix "ab12" with KEY_A
KEY_C = "cd" + "3" * 62


def _series() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    steps = np.arange(0, 50, 5, dtype=np.int64)
    return {
        "loss": (steps, np.linspace(1.0, 0.1, 10)),
        "params.u": (steps, np.arange(30, dtype=np.float32).reshape(10, 3)),
        "sharpness.residual": (steps[:4], np.array([1e-3, 2e-3, 3e-3, 4e-3], dtype=np.float64)),
        "diverged": (steps, np.zeros(10, dtype=bool)),
        "hessian.top_k": (steps[:2], np.ones((2, 3, 4), dtype=np.float16)),
        "count": (steps, np.arange(10, dtype=np.int32)),
    }


def _stage_full(reg: Registry, key: str, name: str = "run", finished_at: str | None = None):
    staged = reg.stage(key)
    staged.write_json("spec.json", {"name": name, "optimizer": {"lr": np.float64(0.1)}})
    staged.write_json("env.json", {"backend": "cpu"})
    info = {"status": "ok", "checks": [{"name": "finite", "ok": True}]}
    if finished_at is not None:
        info["finished_at"] = finished_at
    staged.write_json("run.json", info)
    return staged


def _commit(reg: Registry, key: str, name: str = "run", finished_at: str | None = None) -> StoredRun:
    return _stage_full(reg, key, name, finished_at).commit()


def _objects(reg: Registry) -> list[Path]:
    return sorted(reg.objects_dir.rglob("*")) if reg.objects_dir.exists() else []


# ------------------------------------------------------------------------------------------ round trip


def test_stage_commit_round_trip(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    assert not (tmp_path / "reg").exists()  # lazy creation
    series = _series()
    staged = _stage_full(reg, KEY_A, name="quad")
    staged.write_series(series, attrs={"steps": np.int64(50), "label": "x"})
    assert staged.path == reg.staging_dir / KEY_A  # the run's fixed work directory
    assert _objects(reg) == []  # nothing visible before commit

    run = staged.commit()
    assert run.path == reg.objects_dir / "ab" / KEY_A
    assert not staged.path.exists()
    assert sorted(p.name for p in run.path.iterdir()) == [
        "MANIFEST.json",
        "env.json",
        "results.zarr",
        "run.json",
        "spec.json",
    ]
    manifest = json.loads((run.path / "MANIFEST.json").read_text())
    assert manifest["run_key"] == KEY_A
    assert {"spec.json", "env.json", "run.json"} <= set(manifest["files"])
    assert reg.get(KEY_A) == run
    assert reg.resolve(KEY_A) == run
    assert reg.resolve(KEY_A[:6]) == run
    assert reg.resolve(KEY_A[:6].upper()) == run

    assert run.short_id == KEY_A[:12]
    assert run.name == "quad"
    assert run.spec["optimizer"]["lr"] == 0.1
    assert run.env == {"backend": "cpu"}
    assert run.status == "ok"
    assert run.checks == [{"name": "finite", "ok": True}]
    assert run.series_names() == sorted(series)
    for name, (steps, values) in series.items():
        got_steps, got_values = run.series(name)
        assert got_steps.dtype == np.int64
        np.testing.assert_array_equal(got_steps, steps)
        assert got_values.dtype == values.dtype, name
        assert got_values.shape == values.shape, name
        np.testing.assert_array_equal(got_values, values)
    assert zarr_io.read_attrs(run.path / "results.zarr") == {"steps": 50, "label": "x"}


def test_missing_series_lists_available(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    staged = _stage_full(reg, KEY_A)
    staged.write_series({"loss": (np.arange(3), np.zeros(3))})
    run = staged.commit()
    with pytest.raises(KeyError, match="loss"):
        run.series("nope")
    bare = _commit(reg, KEY_C)
    assert bare.series_names() == []
    with pytest.raises(KeyError):
        bare.series("loss")


def test_write_json_is_pretty_sorted_and_strict(tmp_path: Path) -> None:
    staged = Registry(tmp_path).stage(KEY_A)
    staged.write_json("run", {"b": 1, "a": np.array([1, 2])})
    text = (staged.path / "run.json").read_text()
    assert text == json.dumps({"a": [1, 2], "b": 1}, indent=2, sort_keys=True) + "\n"
    with pytest.raises(ValueError, match=r"\$\.loss"):
        staged.write_json("bad.json", {"loss": float("nan")})
    assert not (staged.path / "bad.json").exists()
    with pytest.raises(ValueError):
        staged.write_json("../escape.json", {})


# ------------------------------------------------------------------------------------------ protocol


def test_abort_removes_staging(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    staged = _stage_full(reg, KEY_A)
    staged.abort()
    assert not staged.path.exists()
    assert _objects(reg) == []
    with pytest.raises(RegistryError):
        staged.write_json("x.json", {})


def test_context_manager_keeps_work_dir_on_exception_for_resume(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RuntimeError), _stage_full(reg, KEY_A) as staged:
        (staged.scratch / "checkpoint").write_text("step 10")
        raise RuntimeError("boom")
    assert staged.path == reg.staging_dir / KEY_A
    assert (staged.path / "scratch" / "checkpoint").read_text() == "step 10"  # kept for resume
    assert reg.get(KEY_A) is None
    assert _objects(reg) == []

    with pytest.raises(RuntimeError), reg.stage(KEY_A) as resumed:
        assert resumed.path == staged.path  # the same work directory, reused
        assert (resumed.path / "spec.json").is_file()
        resumed.commit()
        raise RuntimeError("after commit")
    run = reg.get(KEY_A)
    assert run is not None
    assert not (run.path / "scratch").exists()  # working state is dropped at commit
    assert not resumed.path.exists()


def test_second_stage_reuses_the_work_dir(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    first = _stage_full(reg, KEY_A, name="first")
    second = reg.stage(KEY_A)
    assert second.path == first.path
    assert json.loads((second.path / "spec.json").read_text())["name"] == "first"


def test_commit_requires_core_files(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    staged = reg.stage(KEY_A)
    staged.write_json("spec.json", {})
    with pytest.raises(RegistryError, match="env.json"):
        staged.commit()
    assert staged.path.exists()
    assert _objects(reg) == []


def test_commit_when_target_exists_keeps_existing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    run1 = _stage_full(reg, KEY_A, name="first").commit()
    second = _stage_full(reg, KEY_A, name="second")  # e.g. a process that missed the first commit
    run2 = second.commit()
    assert run2 == run1
    assert run2.name == "first"
    assert not second.path.exists()
    assert list(reg.staging_dir.iterdir()) == []
    with pytest.raises(RegistryError):
        second.commit()


def test_commit_race_on_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process commits between our existence check and our rename."""
    reg = Registry(tmp_path)
    # The other process's copy, staged elsewhere on the same file system (our work dir is per key).
    winner = _stage_full(Registry(tmp_path / "other"), KEY_A, name="winner")
    write_manifest(winner.path, KEY_A)
    loser = _stage_full(reg, KEY_A, name="loser")
    real_rename = os.rename

    def racing_rename(src, dst):
        real_rename(winner.path, dst)  # the other process wins first
        return real_rename(src, dst)  # ours now hits a non-empty directory

    monkeypatch.setattr(store.os, "rename", racing_rename)
    run = loser.commit()
    assert run.name == "winner"
    assert not loser.path.exists()


def test_invalid_keys(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(ValueError):
        reg.stage("../../etc")
    with pytest.raises(ValueError):
        reg.stage(KEY_A.upper())
    assert reg.get("../../etc") is None
    assert reg.get(KEY_A) is None


# ------------------------------------------------------------------------------------------ lookup


def test_resolve_ambiguous_and_unknown(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _commit(reg, KEY_A, name="alpha")
    _commit(reg, KEY_B, name="beta")
    with pytest.raises(AmbiguousRun) as info:
        reg.resolve("ab12")
    assert info.value.candidates == [KEY_A, KEY_B]
    message = str(info.value)
    assert KEY_A[:12] in message and KEY_B[:12] in message
    assert "alpha" in message and "beta" in message
    assert reg.resolve("ab120").run_key == KEY_A
    assert reg.resolve("ab12f").run_key == KEY_B
    with pytest.raises(UnknownRun):
        reg.resolve("ab13")
    with pytest.raises(UnknownRun):
        reg.resolve("ffff")
    with pytest.raises(UnknownRun, match="hex"):
        reg.resolve("ab1")  # too short
    with pytest.raises(UnknownRun):
        reg.resolve("zzzz")
    with pytest.raises(UnknownRun):
        Registry(tmp_path / "empty").resolve("abcd")
    assert issubclass(AmbiguousRun, RegistryError) and issubclass(UnknownRun, RegistryError)


def test_runs_newest_first_and_skips_malformed(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _commit(reg, KEY_A, name="old", finished_at="2024-01-01T00:00:00+00:00")
    _commit(reg, KEY_B, name="new", finished_at="2024-06-01T00:00:00Z")
    _commit(reg, KEY_C, name="naive", finished_at="2024-03-01T00:00:00")

    no_run_json = reg.objects_dir / "ee" / ("e" * 64)
    no_run_json.mkdir(parents=True)
    (no_run_json / "spec.json").write_text("{}")
    (no_run_json / "env.json").write_text("{}")
    bad_json = reg.objects_dir / "dd" / ("d" * 64)
    bad_json.mkdir(parents=True)
    for name in ("spec.json", "env.json", "run.json"):
        (bad_json / name).write_text("{not json")
    list_json = reg.objects_dir / "cc" / ("c" * 64)
    list_json.mkdir(parents=True)
    for name in ("spec.json", "env.json", "run.json"):
        (list_json / name).write_text("[]")
    (reg.objects_dir / "ab" / "not-a-key").mkdir()
    (reg.objects_dir / "stray.txt").write_text("x")
    misplaced = reg.objects_dir / "00" / KEY_C
    misplaced.mkdir(parents=True)

    assert [r.name for r in reg.runs()] == ["new", "naive", "old"]
    assert reg.get("e" * 64) is None
    with pytest.raises(UnknownRun):
        reg.resolve("eeee")


def test_runs_falls_back_to_mtime(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    older = _commit(reg, KEY_A, name="older")
    newer = _commit(reg, KEY_C, name="newer")
    os.utime(older.path, (1_000_000, 1_000_000))
    os.utime(newer.path, (2_000_000, 2_000_000))
    assert [r.name for r in reg.runs()] == ["newer", "older"]
    assert Registry(tmp_path / "none").runs() == []


# ------------------------------------------------------------------------------------------ sweeps


def test_sweeps_atomic_write_and_prefix_lookup(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    sweep_a = "5eed" + "0" * 60
    sweep_b = "5eed" + "1" * 60
    path = reg.write_sweep(sweep_a, {"name": "lr-sweep", "runs": [KEY_A], "lr": np.float32(0.5)})
    assert path == reg.sweeps_dir / f"{sweep_a}.json"
    assert reg.read_sweep("5eed")["runs"] == [KEY_A]
    reg.write_sweep(sweep_a, {"name": "lr-sweep", "runs": [KEY_A, KEY_B]})  # replace
    assert reg.read_sweep(sweep_a)["runs"] == [KEY_A, KEY_B]
    assert sorted(p.name for p in reg.sweeps_dir.iterdir()) == [f"{sweep_a}.json"]  # no temp files left

    reg.write_sweep(sweep_b, {"name": "other"})
    with pytest.raises(AmbiguousRun, match="lr-sweep") as info:
        reg.read_sweep("5eed")
    assert info.value.candidates == [sweep_a, sweep_b]
    assert reg.read_sweep("5eed1")["name"] == "other"
    with pytest.raises(UnknownRun):
        reg.read_sweep("abcd")
    with pytest.raises(UnknownRun):
        Registry(tmp_path / "none").read_sweep("abcd")


def test_write_sweep_failure_keeps_previous(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    sweep = "ab" * 32
    reg.write_sweep(sweep, {"v": 1})
    with pytest.raises(ValueError):
        reg.write_sweep(sweep, {"v": float("inf")})
    assert reg.read_sweep(sweep) == {"v": 1}
    with pytest.raises(ValueError):
        reg.write_sweep("../x", {})


# ------------------------------------------------------------------------------------------ zarr names


@pytest.mark.parametrize("name", ["params.u", "a/b", "__meta", ".", "..", "50%", "ünï code", "~x"])
def test_odd_series_names_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / "r.zarr"
    zarr_io.write_series(path, {name: (np.arange(2), np.array([1.5, 2.5]))})
    assert zarr_io.series_names(path) == [name]
    steps, values = zarr_io.read_series(path, name)
    np.testing.assert_array_equal(values, [1.5, 2.5])
    assert [p.name for p in path.iterdir() if p.is_dir()] == [zarr_io.encode_series_name(name)]


def test_series_up_to_the_limit_are_one_chunk_and_larger_ones_are_split(tmp_path: Path) -> None:
    """A 10⁵-step series is one chunk per array (one file each); one above ``ONE_CHUNK_BYTES`` keeps zarr's
    automatic chunking; an empty series round-trips. Values come back bitwise."""
    import zarr

    small = np.random.default_rng(0).normal(size=100_000)
    big = np.arange(zarr_io.ONE_CHUNK_BYTES // 8 + 1, dtype=np.float64)
    path = tmp_path / "r.zarr"
    series = {
        "small": (np.arange(small.size), small),
        "big": (np.arange(big.size), big),
        "empty": (np.arange(0), np.zeros(0)),
    }
    zarr_io.write_series(path, series)
    group = zarr.open_group(path, mode="r")
    assert group["small/value"].nchunks == 1 and group["small/step"].nchunks == 1
    assert group["big/value"].nchunks > 1
    for name, (steps, values) in series.items():
        got_steps, got_values = zarr_io.read_series(path, name)
        np.testing.assert_array_equal(got_steps, steps)
        assert got_values.tobytes() == values.tobytes()


def test_encoding_keeps_dots_and_is_injective() -> None:
    assert zarr_io.encode_series_name("params.u") == "params.u"
    assert zarr_io.encode_series_name("sharpness.residual") == "sharpness.residual"
    names = ["a/b", "a%2Fb", "__x", "%5F_x", ".", "%2E", "..", "_x", "x"]
    assert len({zarr_io.encode_series_name(n) for n in names}) == len(names)
    with pytest.raises(ValueError):
        zarr_io.encode_series_name("")


def test_write_series_validation(tmp_path: Path) -> None:
    path = tmp_path / "r.zarr"
    with pytest.raises(ValueError, match="T=3"):
        zarr_io.write_series(path, {"x": (np.arange(3), np.zeros(4))})
    with pytest.raises(ValueError, match="integer"):
        zarr_io.write_series(path, {"x": (np.arange(3.0), np.zeros(3))})
    with pytest.raises(ValueError, match="dtype"):
        zarr_io.write_series(path, {"x": (np.arange(2), np.array(["a", "b"]))})
    with pytest.raises(ValueError, match="case"):
        zarr_io.write_series(path, {"Loss": (np.arange(1), np.zeros(1)), "loss": (np.arange(1), np.zeros(1))})
    assert not path.exists()  # validation happens before anything is written
    zarr_io.write_series(path, {"empty": (np.zeros(0, np.int64), np.zeros((0, 2), np.float32))})
    steps, values = zarr_io.read_series(path, "empty")
    assert steps.shape == (0,) and values.shape == (0, 2) and values.dtype == np.float32
    with pytest.raises(FileExistsError):
        zarr_io.write_series(path, {})


def test_bfloat16_is_widened_and_recorded(tmp_path: Path) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path = tmp_path / "r.zarr"
    zarr_io.write_series(path, {"w": (np.arange(2), np.array([1.0, 2.0], dtype=ml_dtypes.bfloat16))})
    _, values = zarr_io.read_series(path, "w")
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, [1.0, 2.0])


# ------------------------------------------------------------------------------------------ root


def test_default_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOSDSL_REGISTRY", str(tmp_path / "from-env"))
    assert default_root(tmp_path / "override") == tmp_path / "override"
    assert default_root() == tmp_path / "from-env"

    monkeypatch.delenv("EOSDSL_REGISTRY")
    repo = tmp_path / "repo"
    monkeypatch.setattr(store, "_dev_repo_root", lambda package_dir=None: repo)
    assert default_root() == repo / "registry"

    monkeypatch.setattr(store, "_dev_repo_root", lambda package_dir=None: None)
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path / "registry"

    monkeypatch.setenv("EOSDSL_REGISTRY", "")  # empty means unset
    assert default_root() == tmp_path / "registry"


def test_dev_repo_root_detection(tmp_path: Path) -> None:
    package_dir = tmp_path / "eosdsl"
    package_dir.mkdir()
    assert store._dev_repo_root(package_dir) is None  # no pyproject (site-packages)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert store._dev_repo_root(package_dir) is None
    (tmp_path / "pyproject.toml").write_text("not [valid toml")
    assert store._dev_repo_root(package_dir) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "eosdsl"\n')
    assert store._dev_repo_root(package_dir) == tmp_path


def test_default_root_in_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EOSDSL_REGISTRY", raising=False)
    repo = Path(store.__file__).resolve().parents[2]
    if store._dev_repo_root() is None:
        pytest.skip("eosdsl is not installed from a source checkout")
    assert default_root() == repo / "registry"
