"""The notebook API: ``eosdsl.open_run(prefix)`` and the read-only :class:`~eosdsl.api.RunView`."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eosdsl
from eosdsl.api import XARRAY_HINT, RunView, open_run
from eosdsl.checks.result import CheckResult
from eosdsl.orchestration import JobOutcome, run_one
from eosdsl.registry import AmbiguousRun, Registry, StoredRun, UnknownRun, spec_id
from eosdsl.spec import models as m
from eosdsl.spec.load import load

# GD just above the edge of stability on the ReLU scalar net, stopped by an event at step 18 so that
# status and end step differ from a plain completed run. Series are recorded on three step grids:
# every step (loss, params.u, params.v), every 2nd (mss) and every 5th plus the last (sharpness, ...).
TINY = """
name: api-tiny
constants: {eps: 0.01, u0: 10.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: gd, lr: (2 + eps) / u0**2}
events:
  - {name: halt, when: {step: {at: 18}}, do: {stop: true}}
train: {steps: 20}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: mss, every: 2}
  - {kind: sharpness, every: 5}
checks:
  - {kind: final, of: sharpness, below: mss}
  - {kind: lemma6}
runtime: {chunk: 10}
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobOutcome]:
    """A registry holding one real run of ``TINY`` (computed once for the module)."""
    root = tmp_path_factory.mktemp("registry")
    outcome = run_one(load("api-tiny.yaml", text=TINY).spec, Registry(root))
    assert not outcome.reused
    return root, outcome


@pytest.fixture
def view(stored: tuple[Path, JobOutcome]) -> RunView:
    root, outcome = stored
    return open_run(outcome.run.run_key[:6], root)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ documents


def test_open_run_by_six_char_prefix(stored: tuple[Path, JobOutcome], view: RunView) -> None:
    _, outcome = stored
    run = outcome.run
    assert isinstance(view, RunView)
    assert view.run is not None and view.run == run
    assert view.run_key == run.run_key
    assert view.short_id == run.run_key[:12]
    assert view.path == run.path
    assert view.name == "api-tiny"
    assert view.status == run.status == "stopped"
    assert view.end_step == 18


def test_documents_equal_the_stored_json(view: RunView) -> None:
    spec_json = _read_json(view.path / "spec.json")
    assert view.spec == spec_json
    assert view.env == _read_json(view.path / "env.json")
    assert view.info == _read_json(view.path / "run.json")
    assert view.spec_id == view.info["spec_id"] == spec_id(spec_json)

    model = view.spec_model
    assert isinstance(model, m.Spec)
    assert model.model_dump(mode="json") == spec_json
    assert model == load("api-tiny.yaml", text=TINY).spec


def test_view_is_read_only(view: RunView) -> None:
    with pytest.raises(AttributeError, match="read-only"):
        view.status = "completed"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        view.anything = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="read-only"):
        del view.status  # type: ignore[misc]

    spec, info = view.spec, view.info
    spec["train"]["steps"] = 1
    info["status"] = "tampered"
    view["loss"][...] = np.nan
    assert view.spec["train"]["steps"] == 20
    assert view.info["status"] == "stopped"
    assert np.isfinite(view["loss"]).all()


# ------------------------------------------------------------------------------------------ results


def test_series_equal_the_registry_series(stored: tuple[Path, JobOutcome], view: RunView) -> None:
    run: StoredRun = stored[1].run
    names = run.series_names()
    assert view.series_names == names
    assert {"loss", "mss", "params.u", "params.v", "sharpness"} <= set(names)
    assert list(view) == names
    assert "loss" in view and "nope" not in view and 3 not in view

    everything = view.to_dict()
    assert list(everything) == names
    for name in names:
        steps, values = view.series(name)
        want_steps, want_values = run.series(name)
        assert isinstance(steps, np.ndarray) and isinstance(values, np.ndarray)
        np.testing.assert_array_equal(steps, want_steps)
        np.testing.assert_array_equal(values, want_values)
        np.testing.assert_array_equal(view[name], want_values)
        np.testing.assert_array_equal(everything[name][0], want_steps)
        np.testing.assert_array_equal(everything[name][1], want_values)

    np.testing.assert_array_equal(view.series("loss")[0], np.arange(19))
    np.testing.assert_array_equal(view.series("mss")[0], np.arange(0, 19, 2))
    np.testing.assert_array_equal(view.series("sharpness")[0], [0, 5, 10, 15, 18])

    with pytest.raises(KeyError, match="available"):
        view.series("nope")
    with pytest.raises(KeyError):
        view["nope"]


def test_checks_are_check_results(view: RunView) -> None:
    checks = view.checks
    assert "checks" not in view.info  # judgements are stored beside the run, not in run.json
    stored = view.run.verdict["results"]
    assert len(checks) == len(stored) == 2
    assert all(isinstance(c, CheckResult) for c in checks)
    assert [c.to_dict() for c in checks] == stored
    assert [c.name for c in checks] == [record["name"] for record in stored]
    lemma6 = checks[1]
    assert lemma6.name == "lemma6" and lemma6.passed and math.isfinite(lemma6.margin)


def test_repr_is_one_line_with_id_name_status_end_step_and_checks(view: RunView) -> None:
    passed = sum(c.passed for c in view.checks)
    text = repr(view)
    assert "\n" not in text
    assert text == f"RunView({view.short_id} 'api-tiny' stopped, end step 18, checks {passed}/2 passed)"


# ------------------------------------------------------------------------------------------ lookup


def test_registry_argument_forms(stored: tuple[Path, JobOutcome], monkeypatch: pytest.MonkeyPatch) -> None:
    root, outcome = stored
    key = outcome.run.run_key
    assert open_run(key, str(root)).run_key == key
    assert open_run(key[:4].upper(), Registry(root)).run_key == key
    monkeypatch.setenv("EOSDSL_REGISTRY", str(root))
    assert open_run(key[:8]).run_key == key  # registry=None -> default_root() -> $EOSDSL_REGISTRY


def test_unknown_and_ambiguous_prefixes(stored: tuple[Path, JobOutcome], tmp_path: Path) -> None:
    root, outcome = stored
    key = outcome.run.run_key
    with pytest.raises(UnknownRun):
        open_run("0" * 64 if not key.startswith("0") else "f" * 64, root)
    with pytest.raises(UnknownRun):
        open_run("xyz!", root)
    with pytest.raises(UnknownRun):
        open_run(key[:6], tmp_path / "empty-registry")

    # A second committed run sharing the first 10 characters makes a 6-character prefix ambiguous.
    copy_root = tmp_path / "registry"
    shutil.copytree(root, copy_root)
    twin = key[:10] + ("0" if key[10] != "0" else "1") * 54
    registry = Registry(copy_root)
    shutil.copytree(registry.object_path(key), registry.object_path(twin))
    with pytest.raises(AmbiguousRun) as info:
        open_run(key[:6], copy_root)
    assert info.value.candidates == sorted([key, twin])
    assert open_run(key, copy_root).run_key == key


def test_open_run_is_exported_lazily() -> None:
    """``import eosdsl`` stays cheap: ``eosdsl.api`` (and zarr) load on first access of ``open_run``."""
    code = (
        "import sys, eosdsl\n"
        "assert 'eosdsl.api' not in sys.modules and 'zarr' not in sys.modules and 'jax' not in sys.modules\n"
        "assert 'open_run' in dir(eosdsl) and 'open_sweep' in eosdsl.__all__\n"
        "from eosdsl import open_run\n"
        "import eosdsl.api\n"
        "assert open_run is eosdsl.api.open_run is eosdsl.open_run\n"
        "assert 'jax' not in sys.modules, 'opening runs must not need jax'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert eosdsl.open_run is open_run
    with pytest.raises(AttributeError, match="no attribute 'not_there'"):
        _ = eosdsl.not_there  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ xarray


def _hand_made_run(root: Path, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> RunView:
    """A committed run written directly through the store (no engine), for shape edge cases."""
    registry = Registry(root)
    key = "ab" + "c" * 62
    with registry.stage(key) as staged:
        staged.write_json("spec.json", {"name": "hand-made"})
        staged.write_json("env.json", {})
        staged.write_json("run.json", {"status": "completed", "end_step": 4, "checks": []})
        staged.write_series(series)
        staged.commit()
    return open_run("abcc", root)


def test_to_xarray_uses_one_step_dimension_per_grid(view: RunView) -> None:
    xr = pytest.importorskip("xarray", reason="xarray is optional (not an eosdsl dependency)")
    ds = view.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert sorted(ds.data_vars) == view.series_names
    assert ds["loss"].dims == ("step_loss",)
    assert ds["params.u"].dims == ds["params.v"].dims == ("step_loss",)
    assert ds["mss"].dims == ("step_mss",)
    assert ds["sharpness"].dims == ("step_sharpness",)
    for name in view.series_names:
        steps, values = view.series(name)
        dim = ds[name].dims[0]
        np.testing.assert_array_equal(ds[dim].values, steps)
        np.testing.assert_array_equal(ds[name].values, values)
    passed = sum(c.passed for c in view.checks)
    assert ds.attrs == {
        "run_key": view.run_key,
        "spec_id": view.spec_id,
        "name": "api-tiny",
        "status": "stopped",
        "end_step": 18,
        "checks_passed": passed,
        "checks_total": 2,
    }


def test_to_xarray_shared_steps_vector_values_and_name_clashes(tmp_path: Path) -> None:
    pytest.importorskip("xarray", reason="xarray is optional (not an eosdsl dependency)")
    steps = np.arange(5)
    view = _hand_made_run(
        tmp_path,
        {
            "loss": (steps, np.linspace(1.0, 0.0, 5)),
            "w": (steps, np.arange(15.0).reshape(5, 3)),
            "step": (steps, steps * 2),  # a series named like the shared dimension
        },
    )
    ds = view.to_xarray()
    assert ds["loss"].dims == ("step_",)
    assert ds["w"].dims == ("step_", "w_dim1")
    assert ds["step"].dims == ("step_",)
    np.testing.assert_array_equal(ds["step_"].values, steps)
    np.testing.assert_array_equal(ds["w"].values, np.arange(15.0).reshape(5, 3))
    np.testing.assert_array_equal(ds["step"].values, steps * 2)
    assert ds.attrs["checks_total"] == 0 and "spec_id" not in ds.attrs  # None attrs are left out

    plain = _hand_made_run(tmp_path / "plain", {"loss": (steps, np.ones(5)), "lr": (steps, np.ones(5))})
    assert plain.to_xarray()["loss"].dims == ("step",)


def test_to_xarray_without_xarray_says_how_to_install(view: RunView, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xarray", None)  # makes `import xarray` raise ImportError
    with pytest.raises(ImportError, match="pip install xarray") as info:
        view.to_xarray()
    assert str(info.value) == XARRAY_HINT
    # Everything else keeps working without xarray.
    assert view.to_dict().keys() == set(view.series_names)


# ------------------------------------------------------------------------------------------ resolved


def test_resolved_spec_evaluates_expressions_over_constants(view: RunView) -> None:
    assert view.spec["optimizer"]["lr"] == "(2 + eps) / u0**2"
    resolved = view.resolved_spec
    assert resolved["optimizer"]["lr"] == pytest.approx((2 + 0.01) / 10.0**2, rel=1e-15)
    assert view.resolved("optimizer.lr") == resolved["optimizer"]["lr"]
    assert resolved["problem"]["u0"] == 10.0  # `u0: u0` is the constant's value
    # names, kinds and thresholds over series stay as they are
    assert resolved["name"] == "api-tiny" and resolved["optimizer"]["kind"] == "gd"
    assert resolved["checks"][0]["below"] == "mss" and resolved["checks"][0]["of"] == "sharpness"
    assert view.resolved("checks.0.below") == "mss"
    # the rest of the tree is the spec's
    assert {k: v for k, v in resolved.items() if k not in ("optimizer", "problem")} == {
        k: v for k, v in view.spec.items() if k not in ("optimizer", "problem")
    }
    with pytest.raises(KeyError, match="no 'optimizer.nope'"):
        view.resolved("optimizer.nope")
