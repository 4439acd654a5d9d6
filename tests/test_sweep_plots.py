"""Phase diagrams of a stored sweep (conftest ``small_sweep``): the data drawn, the files, bad options."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.plot import SweepPlotOptions, plot_sweep
from eosdsl.plot.sweep_plots import SweepPlotError, sweep_curves
from eosdsl.registry import Registry
from eosdsl.registry.sweeps import SummaryError, Sweep, load_sweep

pytestmark = pytest.mark.usefixtures("no_open_figures")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALPHAS, ETAS = [0.1, 0.5], [0.001, 0.003, 0.1]  # sorted; the spec lists α as [0.5, 0.1]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)




@pytest.fixture
def copied(small_sweep, tmp_path) -> tuple[Path, str]:
    root, sweep_id = small_sweep
    shutil.copytree(root, tmp_path / "registry")
    return tmp_path / "registry", sweep_id


def loaded(root: Path, sweep_id: str) -> Sweep:
    registry = Registry(root)
    return load_sweep(registry, sweep_id, registry.read_sweep(sweep_id))


def expected(root: Path, sweep_id: str, series: str) -> dict[tuple[str, float, float], float]:
    """``{(case, α, η): last value of series}`` read from the stored runs, NaN for a diverged or gone run."""
    registry = Registry(root)
    found = {}
    for member in json.loads((root / "sweeps" / f"{sweep_id}.json").read_text())["members"]:
        run = registry.get(member["run_key"])
        value = math.nan
        if run is not None and run.status != "diverged":
            value = float(run.series(series)[1][-1])
        found[member["case"], member["values"]["problem.alpha"], member["values"]["constants.eta"]] = value
    return found


# --------------------------------------------------------------------------------------------- heatmap


def test_heatmap_grid_equals_the_final_values_of_the_runs(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    options = SweepPlotOptions(value="final.test_loss", heatmap=True)
    drawn = plot_sweep(loaded(root, sweep_id), tmp_path / "plots", options)
    assert drawn.path == tmp_path / "plots" / "final.test_loss-over-problem.alpha-and-constants.eta.png"
    assert drawn.path.read_bytes()[:8] == PNG_MAGIC
    assert drawn.axes == ("problem.alpha", "constants.eta")
    assert [panel.title for panel in drawn.panels] == ["gd", "hb"]
    want = expected(root, sweep_id, "test_loss")
    for panel in drawn.panels:
        assert panel.x == ALPHAS and panel.y == ETAS
        grid = np.array([[want[panel.title, a, e] for a in ALPHAS] for e in ETAS])
        np.testing.assert_array_equal(panel.values, grid)  # NaN where diverged, in the same cells
        assert np.isnan(grid).any() and np.isfinite(grid).any()
        reasons = [[r for r in row] for row in panel.reasons]
        assert reasons == [[None if np.isfinite(v) else "diverged" for v in row] for row in grid]
    diverged = sum(np.isnan(panel.values).sum() for panel in drawn.panels)
    assert len(drawn.excluded) == diverged and all(e.endswith(": diverged") for e in drawn.excluded)


def test_heatmap_with_swapped_axes_transposes_the_grid(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    sweep = loaded(root, sweep_id)
    default = plot_sweep(sweep, tmp_path, SweepPlotOptions(heatmap=True))
    swapped = plot_sweep(
        sweep, tmp_path, SweepPlotOptions(heatmap=True, x="constants.eta", y="problem.alpha")
    )
    for a, b in zip(default.panels, swapped.panels, strict=True):
        np.testing.assert_array_equal(a.values, b.values.T)


def test_heatmap_over_case_and_an_axis_has_one_panel_per_remaining_value(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    options = SweepPlotOptions(value="final.loss", heatmap=True, x="constants.eta", y="case", logz=True)
    drawn = plot_sweep(loaded(root, sweep_id), tmp_path, options)
    assert [panel.title for panel in drawn.panels] == ["problem.alpha=0.5", "problem.alpha=0.1"]
    want = expected(root, sweep_id, "loss")
    for panel, alpha in zip(drawn.panels, (0.5, 0.1), strict=True):
        assert panel.y == ["gd", "hb"]
        grid = np.array([[want[case, alpha, e] for e in ETAS] for case in ("gd", "hb")])
        np.testing.assert_array_equal(panel.values, grid)


# --------------------------------------------------------------------------------------------- curves


def test_default_curves_loss_against_the_first_axis_per_value_of_the_second(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    drawn = plot_sweep(loaded(root, sweep_id), tmp_path, SweepPlotOptions())
    assert drawn.path.name == "final.loss-vs-problem.alpha-by-constants.eta.png" and drawn.path.is_file()
    assert [panel.title for panel in drawn.panels] == ["gd", "hb"]
    want = expected(root, sweep_id, "loss")
    for panel in drawn.panels:
        assert [curve.label for curve in panel.curves] == [f"constants.eta={e:g}" for e in ETAS]
        for curve, eta in zip(panel.curves, ETAS, strict=True):
            np.testing.assert_array_equal(curve.x, ALPHAS)  # sorted
            np.testing.assert_array_equal(curve.y, [want[panel.title, a, eta] for a in ALPHAS])
            assert curve.reasons == [None if np.isfinite(v) else "diverged" for v in curve.y]


def test_several_values_and_run_quantities_share_one_axis(small_sweep, tmp_path):
    """``--value`` repeated draws one curve per value on each panel; a ``NAME=EXPR`` value is a per-run
    number of the claims' series algebra, labelled NAME: ``final(loss)`` equals the ``final.loss``
    summary and ``2 * final(loss)`` twice it, point for point."""
    root, sweep_id = small_sweep
    options = SweepPlotOptions("final.loss", by="case", also=("twice=2 * final(loss)", "final(loss)"))
    with pytest.raises(SweepPlotError, match="several --value: one curve each, so no --by"):
        plot_sweep(loaded(root, sweep_id), tmp_path, options)
    drawn = plot_sweep(loaded(root, sweep_id), tmp_path, replace(options, by=None, x="problem.alpha"))
    assert drawn.path.name.startswith("final.loss+twice+final_loss_-vs-problem.alpha")
    for panel in drawn.panels:
        plain, twice, again = panel.curves
        assert [c.label for c in panel.curves] == ["final.loss", "twice", "final(loss)"]
        finite = np.isfinite(plain.y)
        np.testing.assert_allclose(twice.y[finite], 2 * plain.y[finite], rtol=1e-12)
        np.testing.assert_array_equal(again.y[finite], plain.y[finite])
    bad = SweepPlotOptions("final.loss", x="problem.alpha", also=("x=nope(loss)",))
    with pytest.raises(SweepPlotError, match="--value nope"):
        plot_sweep(loaded(root, sweep_id), tmp_path, bad)


def test_curves_by_case_with_constant_references_draw_one_dashed_line_each(small_sweep):
    root, sweep_id = small_sweep
    options = SweepPlotOptions(
        value="final.test_loss",
        x="constants.eta",
        by="case",
        refs=("test_loss.min_l2",),
        logx=True,
        logy=True,
    )
    fig, drawn = sweep_curves(loaded(root, sweep_id), options)
    try:
        assert [panel.title for panel in drawn.panels] == ["problem.alpha=0.5", "problem.alpha=0.1"]
        registry = Registry(root)
        reference = registry.get(loaded(root, sweep_id).members[0].run_key).info["references"]
        for ax, panel in zip(fig.axes, drawn.panels, strict=True):
            assert [curve.label for curve in panel.curves] == ["gd", "hb"]
            for curve in panel.curves:
                np.testing.assert_array_equal(curve.x, ETAS)
                np.testing.assert_allclose(
                    curve.references["test_loss.min_l2"], reference["test_loss.min_l2"]
                )
            dashed = [line for line in ax.get_lines() if line.get_label().startswith("test loss of min-ℓ2")]
            assert len(dashed) == 1 and dashed[0].get_ydata()[0] == reference["test_loss.min_l2"]
            labels = [text.get_text() for text in ax.get_legend().get_texts()]
            assert "diverged (no value)" in labels
            assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    finally:
        plt.close(fig)


def test_diverged_points_are_marked_at_the_top_not_dropped(small_sweep):
    root, sweep_id = small_sweep
    fig, drawn = sweep_curves(loaded(root, sweep_id), SweepPlotOptions(x="constants.eta", by="case"))
    try:
        for ax, panel in zip(fig.axes, drawn.panels, strict=True):
            markers = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
            marked = sorted(x for line in markers for x in line.get_xdata())
            unplotted = sorted(x for c in panel.curves for x, y in zip(c.x, c.y, strict=True) if np.isnan(y))
            assert marked == unplotted and marked
    finally:
        plt.close(fig)


def test_a_missing_run_is_excluded_and_named(copied, tmp_path):
    root, sweep_id = copied
    sweep = loaded(root, sweep_id)
    gone = sweep.members[0]  # gd, α=0.5, η=0.001: completed
    shutil.rmtree(Registry(root).object_path(gone.run_key))
    drawn = plot_sweep(loaded(root, sweep_id), tmp_path, SweepPlotOptions(heatmap=True))
    assert f"{gone.label}: missing" in drawn.excluded
    gd = drawn.panels[0]
    assert gd.reasons[0][ALPHAS.index(0.5)] == "missing" and np.isnan(gd.values[0, ALPHAS.index(0.5)])
    curves = plot_sweep(loaded(root, sweep_id), tmp_path, SweepPlotOptions())
    assert f"{gone.label}: missing" in curves.excluded


# --------------------------------------------------------------------------------------------- the command


def test_plot_command_writes_the_figure_and_notes_each_point_without_a_value(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    options = [
        "--value",
        "final.test_loss",
        "--x",
        "constants.eta",
        "--by",
        "case",
        "--ref",
        "test_loss.min_l1",
    ]
    result = invoke("plot", sweep_id[:8], "--out", tmp_path, *options, "--logx", "--registry", root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == str(tmp_path / "final.test_loss-vs-constants.eta-by-case.png")
    assert Path(lines[0]).read_bytes()[:8] == PNG_MAGIC
    notes = [line for line in lines[1:] if line.startswith("note: no value (marked near the top): ")]
    assert notes and len(notes) == len(lines) - 1 and all(line.endswith(": diverged") for line in notes)


def test_plot_defaults_to_plots_slash_the_short_id(small_sweep, tmp_path, monkeypatch):
    root, sweep_id = small_sweep
    monkeypatch.chdir(tmp_path)
    result = invoke("plot", sweep_id[:8], "--heatmap", "--registry", root)
    assert result.exit_code == 0, result.output
    assert (
        tmp_path / "plots" / sweep_id[:12] / "final.loss-over-problem.alpha-and-constants.eta.png"
    ).is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--x", "problem.alhpa"], "--x problem.alhpa: not a swept axis of sweep"),
        (["--by", "seed"], "axes: problem.alpha, constants.eta, case"),
        (["--x", "case"], "--x case: not a numeric axis; numeric axes: problem.alpha, constants.eta"),
        (["--x", "constants.eta", "--by", "constants.eta"], "--by constants.eta is also --x"),
        (["--value", "final.tset_loss"], "has the series 'tset_loss'; available: loss, sharpness"),
        (["--value", "status"], "'status' is not a per-run summary"),
        (["--ref", "test_loss.min_l3"], "references: test_loss.min_l1, test_loss.min_l2"),
        (
            ["--heatmap", "--logy", "--by", "case"],
            "--by, --logy: for curves; a heatmap takes --x, --y and --logz",
        ),
        (["--logz", "--y", "case"], "--y, --logz: for --heatmap; curves take --x, --by"),
        (["--heatmap", "--y", "nope"], "--y nope: not a swept axis"),
    ],
)
def test_bad_options_exit_2_naming_what_is_available(small_sweep, tmp_path, options, message):
    root, sweep_id = small_sweep
    result = invoke("plot", sweep_id[:8], "--out", tmp_path, *options, "--registry", root)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.png"))


def test_sweep_options_on_a_run_exit_2(small_sweep, tmp_path):
    root, sweep_id = small_sweep
    run_key = loaded(root, sweep_id).members[0].run_key
    result = invoke("plot", run_key[:10], "--out", tmp_path, "--heatmap", "--x", "a", "--registry", root)
    assert result.exit_code == 2 and "--x, --heatmap: for sweeps" in result.output


def test_an_old_record_cannot_be_plotted_but_says_why(copied, tmp_path):
    root, sweep_id = copied
    path = root / "sweeps" / f"{sweep_id}.json"
    record = json.loads(path.read_text())
    del record["axes"]
    path.write_text(json.dumps(record))
    with pytest.raises(SweepPlotError, match="records no swept axes"):
        plot_sweep(loaded(root, sweep_id), tmp_path, SweepPlotOptions())
    result = invoke("plot", sweep_id[:8], "--out", tmp_path, "--registry", root)
    assert result.exit_code == 2 and "run the sweep again" in result.output


def test_a_logx_axis_with_non_positive_values_is_refused(small_sweep):
    root, sweep_id = small_sweep
    sweep = loaded(root, sweep_id)
    members = tuple(replace(m, values={**m.values, "constants.eta": 0.0}) for m in sweep.members)
    zeroed = replace(sweep, members=members)
    with pytest.raises(SweepPlotError, match="--logx: the axis constants.eta has values <= 0"):
        sweep_curves(zeroed, SweepPlotOptions(x="constants.eta", logx=True))
    with pytest.raises(SummaryError):
        sweep_curves(sweep, SweepPlotOptions(value="max.nothing"))
