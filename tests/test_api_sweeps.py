"""``eosdsl.open_sweep``: a sweep by id prefix as a read-only :class:`~eosdsl.api.SweepView` — spec, axes,
members with their swept values and runs, and a pandas table of swept values against summaries; and
``open_run`` on a sweep id (and the reverse) pointing at the other function."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import eosdsl
from eosdsl.api import PANDAS_HINT, RunView, SweepView, open_run, open_sweep
from eosdsl.registry import Registry, UnknownRun
from eosdsl.registry.sweeps import SummaryError


@pytest.fixture
def sweep(small_sweep: tuple[Path, str]) -> SweepView:
    root, sweep_id = small_sweep
    return open_sweep(sweep_id[:6], root)


def test_open_sweep_by_prefix(small_sweep: tuple[Path, str], sweep: SweepView) -> None:
    root, sweep_id = small_sweep
    assert eosdsl.open_sweep is open_sweep
    assert sweep.sweep_id == sweep_id and sweep.short_id == sweep_id[:12]
    assert sweep.name == "small-sweep"
    assert sweep.axes == ("case", "problem.alpha", "constants.eta")
    assert len(sweep) == 12 and len(list(sweep)) == 12
    spec = sweep.spec
    assert spec is not None and spec["sweep"]["grid"]["constants.eta"] == [0.001, 0.003, 0.1]
    first = sweep[0]
    assert first.case == "gd" and first.values == {"problem.alpha": 0.5, "constants.eta": 0.001}
    assert first.value("case") == "gd" and first.value("constants.eta") == 0.001
    assert isinstance(first.run, RunView) and first.run.run_key == first.run_key
    assert first.status == first.run.status == "completed"
    assert sweep[first.label] == first
    with pytest.raises(KeyError, match="no member 'nope'"):
        sweep["nope"]
    assert open_sweep(sweep_id, Registry(root)) == sweep
    assert "12 points over case, problem.alpha, constants.eta" in repr(sweep)


def test_sweep_view_is_read_only(sweep: SweepView) -> None:
    with pytest.raises(AttributeError, match="read-only"):
        sweep.name = "x"  # type: ignore[misc]
    spec = sweep.spec
    assert spec is not None
    spec["name"] = "changed"
    assert sweep.spec["name"] == "small-sweep"  # type: ignore[index]


def test_table_puts_axes_against_summaries(sweep: SweepView) -> None:
    pd = pytest.importorskip("pandas")
    table = sweep.table(["final.test_loss", "max.sharpness", "count.loss"])
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [
        "case", "problem.alpha", "constants.eta", "run", "status",
        "final.test_loss", "max.sharpness", "count.loss",
    ]  # fmt: skip
    assert list(table.index) == [m.label for m in sweep]
    member = sweep[0]
    steps, values = member.run.series("test_loss")  # type: ignore[union-attr]
    assert table.loc[member.label, "final.test_loss"] == pytest.approx(float(values[-1]))
    assert table.loc[member.label, "run"] == member.run_key[:12]
    diverged = table[table["status"] == "diverged"]
    assert len(diverged) and 0.001 not in set(diverged["constants.eta"])
    # default summaries: final sharpness and loss
    assert list(sweep.table().columns)[-2:] == ["final.sharpness", "final.loss"]
    records = sweep.records("final.loss")
    assert records[0]["label"] == member.label and math.isfinite(records[0]["final.loss"])


def test_bad_summary_lists_what_is_available(sweep: SweepView) -> None:
    with pytest.raises(SummaryError, match="available: .*test_loss"):
        sweep.records(["final.nope"])


def test_table_without_pandas_says_how_to_install(sweep: SweepView, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError) as info:
        sweep.table()
    assert str(info.value) == PANDAS_HINT
    assert len(sweep.records()) == 12  # records need no pandas


def test_run_and_sweep_ids_point_at_each_other(small_sweep: tuple[Path, str]) -> None:
    root, sweep_id = small_sweep
    with pytest.raises(UnknownRun, match=r"is a sweep, not a run: use eosdsl.open_sweep"):
        open_run(sweep_id[:8], root)
    run_key = open_sweep(sweep_id, root)[0].run_key
    with pytest.raises(UnknownRun, match=r"is a run, not a sweep: use eosdsl.open_run"):
        open_sweep(run_key[:8], root)
    with pytest.raises(UnknownRun, match="no sweep matches"):
        open_sweep("ffff0000", root)
    with pytest.raises(UnknownRun, match="no run matches"):
        open_run("ffff0000", root)


def test_member_runs_resolve_expressions(sweep: SweepView) -> None:
    """A heavy-ball member's ``beta: beta`` and ``lr: eta`` resolve to the swept numbers."""
    hb = next(m for m in sweep if m.case == "hb")
    assert hb.run is not None
    assert hb.run.spec["optimizer"]["beta"] == "beta"
    resolved = hb.run.resolved_spec
    assert resolved["optimizer"]["beta"] == 0.5
    assert resolved["optimizer"]["lr"] == hb.values["constants.eta"]
    assert hb.run.resolved("optimizer.kind") == "heavy_ball"


def test_sweeps_and_resolved_specs_need_no_jax(small_sweep: tuple[Path, str]) -> None:
    import subprocess

    root, sweep_id = small_sweep
    code = (
        "import sys, eosdsl\n"
        f"s = eosdsl.open_sweep({sweep_id[:8]!r}, {str(root)!r})\n"
        "s.records(['final.loss']); s[0].run.resolved_spec\n"
        "assert 'jax' not in sys.modules, 'reading sweeps must not need jax'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
