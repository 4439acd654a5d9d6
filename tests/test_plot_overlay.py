"""`eosdsl plot RUN1 RUN2 [SWEEP] -s …`: several runs overlaid on shared axes (eosdsl.plot.overlay), on
real stored runs of tiny specs; pretty labels; references that never set the range; event markers;
formats by suffix; and the rough edges of the run and sweep figures (log step axes, off-scale
references, heatmap values in cells)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_plot import FakeRun, toy_series
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.orchestration import run_one
from eosdsl.plot import OverlayOptions, SweepPlotOptions, entries_of
from eosdsl.plot.labels import difference_labels, pretty, wrap_title
from eosdsl.plot.overlay import OverlayError, overlay_figure
from eosdsl.plot.run_plots import loss_figure, sharpness_figure
from eosdsl.plot.sweep_plots import sweep_curves, sweep_heatmap
from eosdsl.registry import Registry
from eosdsl.registry.sweeps import load_sweep
from eosdsl.spec.models import Spec

pytestmark = pytest.mark.usefixtures("no_open_figures")

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

BASE = {
    "problem": {"kind": "relu_scalar"},
    "train": {"steps": 40},
    "measure": [{"kind": "loss"}, {"kind": "sharpness"}, {"kind": "mss", "every": 10}],
}
EVENTS = [{"name": "halt", "when": {"step": {"at": 30}}, "do": {"stop": True}}]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Three 40-step ReLU-scalar runs: GD at η = 0.0201 and 0.0199 (η a constant), and one that stops at
    an event at step 30."""
    root = tmp_path_factory.mktemp("overlay") / "registry"
    reg = Registry(root)
    specs = {
        "fast": {**BASE, "constants": {"eta": 0.0201}, "optimizer": {"kind": "gd", "lr": "eta"}},
        "slow": {**BASE, "constants": {"eta": 0.0199}, "optimizer": {"kind": "gd", "lr": "eta"}},
        "halted": {
            **BASE,
            "constants": {"eta": 0.0201},
            "optimizer": {"kind": "gd", "lr": "eta"},
            "events": EVENTS,
        },
    }
    ids = {}
    for name, spec in specs.items():
        ids[name] = run_one(Spec.model_validate({**spec, "name": name}), reg).run.run_key
    return root, ids


def stored(root: Path, *keys: str) -> list:
    reg = Registry(root)
    return entries_of([("run", reg.get(key)) for key in keys])[0]


def lines_of(ax) -> list:
    return [
        line for line in ax.get_lines() if not str(line.get_label()).startswith("_") and len(line.get_xdata())
    ]


# --------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("constants.eta_f", "η_f"),
        ("constants.alpha", "α"),
        ("problem.alpha", "α"),
        ("optimizer.beta", "β"),
        ("optimizer.lr", "η"),
        ("optimizer.kind", "optimizer"),
        ("train.steps", "steps"),
        ("test_loss", "test loss"),
    ],
)
def test_pretty_names(path: str, name: str) -> None:
    assert pretty(path) == name


def test_labels_say_what_differs() -> None:
    specs = [
        {"constants": {"eta": 0.01}, "optimizer": {"kind": "gd"}},
        {"constants": {"eta": 0.02}, "optimizer": {"kind": "gd"}},
    ]
    assert difference_labels([None, None], specs, ["a", "b"]) == ["η=0.01", "η=0.02"]
    swept = [{"case": "gd", "constants.eta_f": 0.1}, {"case": "hb", "constants.eta_f": 0.1}]
    assert difference_labels(swept, specs, ["a", "b"]) == ["gd", "hb"]
    same = [{"x": 1}, {"x": 1}]
    assert difference_labels([None, None], same, ["a (1)", "b (2)"]) == ["a (1)", "b (2)"]
    both = [
        {"problem": {"alpha": 1}, "constants": {"alpha": 2}},
        {"problem": {"alpha": 3}, "constants": {"alpha": 4}},
    ]
    assert difference_labels([None, None], both, ["a", "b"]) == [
        "problem.alpha=1, constants.alpha=2",
        "problem.alpha=3, constants.alpha=4",
    ]


def test_long_titles_are_wrapped_not_cut() -> None:
    title = "small-sweep[hb,problem.alpha=0.5,constants.eta=0.003,train.steps=100000] (0123456789ab)"
    wrapped = wrap_title(title, 40)
    assert wrapped.count("\n") >= 2 and wrapped.replace("\n", "") == title
    assert wrapped.splitlines()[0].endswith(",")  # broken after a comma
    assert all(len(line) <= 40 for line in wrapped.splitlines())


# --------------------------------------------------------------------------------------------- overlay


def test_two_runs_overlaid_one_panel_per_series_labelled_by_eta(runs) -> None:
    root, ids = runs
    fig, drawn = overlay_figure(stored(root, ids["fast"], ids["slow"]), OverlayOptions(("sharpness", "loss")))
    try:
        assert drawn.labels == ["η=0.0201", "η=0.0199"] and drawn.series == ["sharpness", "loss"]
        assert len(fig.axes) == 2
        for ax, name in zip(fig.axes, ["sharpness", "loss"], strict=True):
            assert ax.get_ylabel() == name
            data = lines_of(ax)
            assert [line.get_label() for line in data] == drawn.labels
            assert data[0].get_color() != data[1].get_color()
            assert len(data[0].get_xdata()) == 41  # steps 0..40
        assert fig.axes[1].get_xlabel() == "step"
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts[:2] == drawn.labels
        assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 5.4))
    finally:
        plt.close(fig)


def test_log_axes(runs) -> None:
    root, ids = runs
    options = OverlayOptions(("loss",), logx=True, logy=True)
    fig, _ = overlay_figure(stored(root, ids["fast"], ids["slow"]), options)
    try:
        (ax,) = fig.axes
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert min(ax.get_xlim()) > 0 and all(min(line.get_xdata()) >= 1 for line in lines_of(ax))
    finally:
        plt.close(fig)


def test_against_draws_a_phase_portrait_at_common_steps(runs) -> None:
    """``--against``: the sharpness (every step) against the MSS (every 10 steps) is drawn at the steps
    both recorded, x the MSS values; references are refused, events not drawn."""
    root, ids = runs
    entries = stored(root, ids["fast"], ids["halted"])
    fig, _ = overlay_figure(entries, OverlayOptions(("sharpness",), against="mss"))
    try:
        (ax,) = fig.axes
        assert ax.get_xlabel() == "mss"
        for line, entry in zip(lines_of(ax), entries, strict=True):
            steps, mss = entry.run.series("mss")
            s_steps, sharp = entry.run.series("sharpness")
            np.testing.assert_array_equal(line.get_xdata(), np.asarray(mss, float))
            np.testing.assert_array_equal(line.get_ydata(), np.asarray(sharp, float)[np.isin(s_steps, steps)])
        assert not [line for line in ax.get_lines() if str(line.get_gid()).startswith("event")]
    finally:
        plt.close(fig)
    with pytest.raises(OverlayError, match="not with --against"):
        overlay_figure(entries, OverlayOptions(("sharpness",), refs=("mss",), against="mss"))
    with pytest.raises(OverlayError, match="unknown series nope"):
        overlay_figure(entries, OverlayOptions(("sharpness",), against="nope"))


def test_references_are_drawn_but_never_set_the_range(runs) -> None:
    root, ids = runs
    entries = stored(root, ids["fast"], ids["slow"])
    plain, _ = overlay_figure(entries, OverlayOptions(("loss", "sharpness")))
    with_refs, _ = overlay_figure(entries, OverlayOptions(("loss", "sharpness"), refs=("2/lr", "mss")))
    try:
        for before, after in zip(plain.axes, with_refs.axes, strict=True):
            assert before.get_ylim() == after.get_ylim() and before.get_xlim() == after.get_xlim()
        sharp = with_refs.axes[1]
        refs = [line for line in sharp.get_lines() if str(line.get_gid()).startswith("ref:")]
        assert {line.get_gid() for line in refs} == {"ref:2/lr", "ref:mss"}
        two_over_eta = [line for line in refs if line.get_gid() == "ref:2/lr"]
        assert sorted(line.get_ydata()[0] for line in two_over_eta) == pytest.approx([2 / 0.0201, 2 / 0.0199])
        legend = [t.get_text() for t in with_refs.axes[0].get_legend().get_texts()]
        assert any(text.startswith("2/η (per run)") for text in legend)
        assert any(text.startswith("MSS") for text in legend)
    finally:
        plt.close(plain)
        plt.close(with_refs)


def test_unknown_series_or_reference_names_what_is_available(runs) -> None:
    root, ids = runs
    entries = stored(root, ids["fast"])
    with pytest.raises(OverlayError, match="unknown series sharpnes.*available: loss, mss, sharpness"):
        overlay_figure(entries, OverlayOptions(("sharpnes",)))
    with pytest.raises(OverlayError, match="--ref nope: unknown reference; references: mss, 2/lr"):
        overlay_figure(entries, OverlayOptions(("loss",), refs=("nope",)))


def test_events_are_dotted_vertical_lines_in_every_panel(runs) -> None:
    root, ids = runs
    fig, drawn = overlay_figure(
        stored(root, ids["fast"], ids["halted"]), OverlayOptions(("sharpness", "loss"))
    )
    try:
        assert drawn.labels == ["fast (" + ids["fast"][:12] + ")", "events=halt"]
        for ax in fig.axes:
            events = [line for line in ax.get_lines() if line.get_gid() == "event"]
            assert len(events) == 1 and list(events[0].get_xdata()) == [30, 30]
            assert events[0].get_linestyle() == ":"
            assert events[0].get_color() == lines_of(ax)[1].get_color()  # the halted run's colour
        names = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "event-label"]
        assert names == ["halt"]
    finally:
        plt.close(fig)


def test_sweep_members_labelled_by_case_and_swept_values(small_sweep) -> None:
    root, sweep_id = small_sweep
    registry = Registry(root)
    sweep = load_sweep(registry, sweep_id, registry.read_sweep(sweep_id))
    entries, notes = entries_of([("sweep", sweep)])
    assert len(entries) == 12 and notes == []
    fig, drawn = overlay_figure(entries, OverlayOptions(("loss",), logy=True))
    try:
        assert drawn.labels[0] == "gd, α=0.5, η=0.001"
        assert len(set(drawn.labels)) == 12
        assert fig.legends, "12 runs: the legend goes outside the axes"
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------- command


def test_command_overlays_runs_into_the_file_named_by_out(runs, tmp_path) -> None:
    root, ids = runs
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", b"\x89PNG")):
        out = tmp_path / f"fig{suffix}"
        result = invoke(
            "plot",
            ids["fast"][:8],
            ids["slow"][:8],
            "-s",
            "sharpness",
            "-s",
            "loss",
            "--out",
            out,
            "--registry",
            root,
        )
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == str(out)
        assert out.read_bytes().startswith(magic)


def test_command_default_names_differ_with_references(runs, tmp_path) -> None:
    root, ids = runs
    args = [
        "plot",
        ids["fast"][:8],
        ids["slow"][:8],
        "-s",
        "sharpness",
        "--out",
        tmp_path,
        "--registry",
        root,
    ]
    plain, refs = invoke(*args), invoke(*args, "--ref", "mss", "--logx")
    assert plain.exit_code == 0 and refs.exit_code == 0, plain.output + refs.output
    assert plain.output.splitlines()[0] == str(tmp_path / "sharpness.png")
    assert refs.output.splitlines()[0] == str(tmp_path / "sharpness-ref-mss-logx.png")
    assert (tmp_path / "sharpness.png").is_file() and (tmp_path / "sharpness-ref-mss-logx.png").is_file()


def test_command_mixes_a_run_and_a_sweep_and_refuses_phase_diagram_options(small_sweep, tmp_path) -> None:
    root, sweep_id = small_sweep
    registry = Registry(root)
    member = load_sweep(registry, sweep_id, registry.read_sweep(sweep_id)).members[0]
    out = tmp_path / "mixed" / "fig.png"
    result = invoke(
        "plot", member.run_key[:10], sweep_id[:8], "-s", "loss,test_loss", "--out", out, "--registry", root
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(out)] and out.is_file()  # the member is drawn once
    only = invoke(
        "plot", sweep_id[:8], "--overlay", "-s", "loss", "--out", tmp_path / "sweep.svg", "--registry", root
    )
    assert only.exit_code == 0 and (tmp_path / "sweep.svg").is_file()
    implied = invoke("plot", sweep_id[:8], "-s", "loss", "--out", tmp_path / "s.pdf", "--registry", root)
    assert implied.exit_code == 0 and (tmp_path / "s.pdf").is_file()  # -s on a sweep overlays its members
    args = ["plot", member.run_key[:10], sweep_id[:8], "--out", tmp_path / "bad", "--registry", root]
    bad = invoke(*args, "--heatmap")
    assert bad.exit_code == 2 and "--heatmap: for a sweep's phase diagram" in bad.output
    unknown = invoke(*args, "-s", "nope")
    assert (
        unknown.exit_code == 2
        and "unknown series nope in the runs; available: loss, sharpness," in unknown.output
    )
    assert not (tmp_path / "bad").exists()


def test_a_single_run_keeps_its_figures_and_takes_logx_and_a_file(runs, tmp_path) -> None:
    root, ids = runs
    result = invoke("plot", ids["fast"][:8], "--out", tmp_path / "std", "--logx", "--registry", root)
    assert result.exit_code == 0, result.output
    assert [Path(line).name for line in result.output.splitlines()] == ["loss.png", "sharpness.png"]
    svg = invoke(
        "plot", ids["fast"][:8], "--series", "loss,sharpness", "--out", tmp_path / "s.svg", "--registry", root
    )
    assert svg.exit_code == 0 and (tmp_path / "s.svg").read_bytes().startswith(b"<?xml")
    refd = invoke(
        "plot",
        ids["halted"][:8],
        "-s",
        "sharpness",
        "--ref",
        "mss",
        "--out",
        tmp_path / "std",
        "--registry",
        root,
    )
    assert refd.exit_code == 0 and refd.output.splitlines()[0] == str(
        tmp_path / "std" / "sharpness-ref-mss.png"
    )


@pytest.mark.slow  # a fresh interpreter
def test_overlay_command_does_not_import_jax(runs, tmp_path) -> None:
    root, ids = runs
    probe = (
        "import json, sys\nfrom eosdsl.cli import app\n"
        "try:\n    app(sys.argv[1:], prog_name='eosdsl')\nexcept SystemExit as e:\n    code = e.code\n"
        "print(json.dumps({'code': code, 'jax': 'jax' in sys.modules}), file=sys.stderr)\n"
    )
    args = [
        "plot",
        ids["fast"][:8],
        ids["slow"][:8],
        "-s",
        "loss",
        "--out",
        str(tmp_path / "f.png"),
        "--registry",
        str(root),
    ]
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "jax": False}, done.stderr


# ------------------------------------------------------------------------------ run and sweep figures


def test_a_tiny_reference_does_not_stretch_the_log_loss_axis() -> None:
    series = toy_series()
    fig = loss_figure(FakeRun(series, references={"test_loss.min_l1": 2e-28}))
    try:
        ax = fig.axes[0]
        assert min(ax.get_ylim()) > 1e-12
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("min-ℓ1" in text and "off scale" in text for text in labels)
    finally:
        plt.close(fig)


def test_run_figures_take_a_log_step_axis() -> None:
    steps = np.arange(100_001)
    run = FakeRun({"loss": (steps, 1.0 / (1.0 + steps)), "sharpness": (steps, np.full(steps.size, 3.0))})
    for build in (loss_figure, sharpness_figure):
        fig = build(run, logx=True)
        try:
            assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_xlim()[0] > 0
        finally:
            plt.close(fig)


def test_small_heatmaps_write_their_values_and_labels_are_pretty(small_sweep) -> None:
    root, sweep_id = small_sweep
    registry = Registry(root)
    sweep = load_sweep(registry, sweep_id, registry.read_sweep(sweep_id))
    fig, drawn = sweep_heatmap(sweep, SweepPlotOptions(heatmap=True))
    try:
        for ax, panel in zip(fig.axes[: len(drawn.panels)], drawn.panels, strict=True):
            written = [t for t in ax.texts if t.get_gid() == "cell-value"]
            assert len(written) == int(np.isfinite(panel.values).sum()) > 0
            assert ax.get_xlabel() == "α" and ax.get_ylabel() == "η"
    finally:
        plt.close(fig)
    fig, drawn = sweep_curves(sweep, SweepPlotOptions(x="constants.eta", by="case"))
    try:
        assert [ax.get_title() for ax in fig.axes] == ["α=0.5", "α=0.1"]
        assert [panel.title for panel in drawn.panels] == [
            "problem.alpha=0.5",
            "problem.alpha=0.1",
        ]  # data: raw
        assert fig.axes[0].get_xlabel() == "η"
    finally:
        plt.close(fig)
