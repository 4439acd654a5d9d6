"""The spec library's paper figures, one ``eosdsl plot`` command each (docs/papers.md): the plotting
options they need, on small synthetic runs and sweeps, and the docs kept true (every image exists and is
small, every documented plot command uses options that exist and, for the fast specs, draws its figure
from a fresh run)."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import typer
from test_plot import FakeRun, toy_series
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.plot import OverlayOptions, SweepPlotOptions, entries_of
from eosdsl.plot.labels import series_label
from eosdsl.plot.overlay import Entry, OverlayError, overlay_figure, overlay_file_name
from eosdsl.plot.sweep_plots import (
    ROW_STEP,
    TOP_ROW,
    SweepPlotError,
    _label_of,
    sweep_curves,
    sweep_heatmap,
)
from eosdsl.registry.sweeps import Member, Sweep

pytestmark = pytest.mark.usefixtures("no_open_figures")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAPERS = DOCS / "papers.md"
MAX_FIGURE_BYTES = 150_000  # docs images stay small enough to keep the repository light
IMAGE = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+)\)")
runner = CliRunner()

ETA0, M = 0.01, 2.0
MIN_L1, MIN_L2 = 1e-28, 0.5


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def grid_sweep(diverged: tuple[int, ...] = ()) -> Sweep:
    """A synthetic sweep over ``constants.i`` = 0..3 with lr = eta0·m**i (eta0 = 0.01, m = 2), each run's
    test loss ending at 10**-i and recording the ℓ1/ℓ2 references 1e-28 and 0.5; members ``diverged``
    have the status ``diverged``."""
    members = []
    for i in range(4):
        steps = np.arange(11)
        run = FakeRun(
            {"test_loss": (steps, np.linspace(1.0, 10.0**-i, 11)), "loss": (steps, np.full(11, 0.1))},
            name=f"grid[i={i}]",
            status="diverged" if i in diverged else "completed",
            references={"test_loss.min_l1": MIN_L1, "test_loss.min_l2": MIN_L2},
        )
        run.spec = {**run.spec, "constants": {"eta0": ETA0, "m": M, "i": float(i)}}
        status = "diverged" if i in diverged else "completed"
        members.append(Member(f"constants.i={i}", f"key{i}", status, None, {"constants.i": i}, run))
    return Sweep("ab" * 32, "grid", "2026-01-01T00:00:00+00:00", ("constants.i",), False, tuple(members), ())


def close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------------------------- --x-as


def test_x_as_places_each_run_at_an_expression_of_its_constants() -> None:
    """Paper 004 Fig. 5a's x-axis: a grid over i drawn at η = eta0·m**i (oracle: the closed form)."""
    options = SweepPlotOptions(value="final.test_loss", x="constants.i", x_as="η=eta0 * m**i", logx=True)
    fig, drawn = sweep_curves(grid_sweep(), options)
    try:
        (curve,) = drawn.panels[0].curves
        np.testing.assert_allclose(curve.x, [ETA0 * M**i for i in range(4)], rtol=1e-15)
        np.testing.assert_allclose(curve.y, [10.0**-i for i in range(4)], rtol=1e-12)
        ax = fig.axes[0]
        assert ax.get_xlabel() == "η" and ax.get_xscale() == "log"
    finally:
        close(fig)


def test_x_as_is_refused_where_it_has_no_meaning() -> None:
    with pytest.raises(SweepPlotError, match="--x-as"):
        sweep_heatmap(grid_sweep(), SweepPlotOptions(heatmap=True, x_as="η=eta0"))
    with pytest.raises(SweepPlotError, match="--x-as η=nothing_here"):
        sweep_curves(grid_sweep(), SweepPlotOptions(value="final.test_loss", x_as="η=nothing_here"))


# --------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("C_u=at(u, first(u**2 < 99))", "C_u"),
        ("2/η − λ∞=2 / eta - final(sharpness)", "2/η − λ∞"),
        ("test accuracy=final(test_accuracy) if final(accuracy) >= 1 else inf", "test accuracy"),
        ("η=eta", "η"),
        # unnamed: an "=" only in a comparison or a keyword argument
        ("final(u) >= 1", "final(u) >= 1"),
        ("a == b", "a == b"),
        ("x != 1", "x != 1"),
        ("x <= 3", "x <= 3"),
        ("mean(x, where=u > 0)", "mean(x, where=u > 0)"),
        ("final.loss", "final.loss"),
    ],
)
def test_value_names_may_be_any_text_without_operators(text: str, label: str) -> None:
    assert _label_of(text) == label


def test_named_values_are_evaluated_and_labelled() -> None:
    """Paper 002's law: ``2/η − λ∞`` beside ``η``, each a per-run number (oracle: the constants)."""
    options = SweepPlotOptions(value="2/η=2 / (eta0 * m**i)", also=("η=eta0 * m**i",), x="constants.i")
    fig, drawn = sweep_curves(grid_sweep(), options)
    try:
        two_over_eta, eta = drawn.panels[0].curves
        assert (two_over_eta.label, eta.label) == ("2/η", "η")
        np.testing.assert_allclose(two_over_eta.y, [2 / (ETA0 * M**i) for i in range(4)], rtol=1e-15)
        np.testing.assert_allclose(eta.y, [ETA0 * M**i for i in range(4)], rtol=1e-15)
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert labels == ["2/η", "η"]
    finally:
        close(fig)


def test_a_measure_component_keeps_its_whole_name_on_the_axis() -> None:
    """``norm2.A`` (paper 001's ‖A‖²) is not labelled ``A``; plain names read as words."""
    assert series_label("norm2.A") == "norm2.A" and series_label("rotation.cos") == "rotation.cos"
    assert series_label("test_loss") == "test loss" and series_label("sharpness") == "sharpness"
    steps = np.arange(5)
    run = FakeRun({"sharpness": (steps, steps + 1.0), "norm2.A": (steps, steps**2 + 0.5)})
    fig, _ = overlay_figure([Entry(run)], OverlayOptions(("sharpness", "norm2.A")))
    try:
        assert [ax.get_ylabel() for ax in fig.axes] == ["sharpness", "norm2.A"]
    finally:
        close(fig)


def test_a_sweep_of_cases_is_labelled_by_its_cases() -> None:
    """Paper 002's loss × activation cases: a case that sets ``activation`` is still labelled by the case
    alone (the values a case sets are not swept axes)."""
    steps = np.arange(5)
    members = []
    for case, values in [("tanh", {}), ("relu", {"problem.model.activation": "relu"})]:
        run = FakeRun({"loss": (steps, np.full(5, 0.5))}, name=f"cases[{case}]")
        run.short_id = f"{case:0>12}"  # distinct runs (an overlay draws each run once)
        members.append(Member(case, f"key-{case}", "completed", case, values, run))
    sweep = Sweep("cd" * 32, "cases", "2026-01-01T00:00:00+00:00", (), True, tuple(members), ())
    entries, notes = entries_of([("sweep", sweep)])
    fig, drawn = overlay_figure(entries, OverlayOptions(("loss",)))
    close(fig)
    assert drawn.labels == ["tanh", "relu"] and notes == []


def test_a_recorded_reference_of_one_run_is_not_called_per_run() -> None:
    run = FakeRun(toy_series())
    fig, _ = overlay_figure([Entry(run)], OverlayOptions(("sharpness",), refs=("mss",)))
    try:
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "MSS" in labels and not any("per run" in label for label in labels)
    finally:
        close(fig)


# --------------------------------------------------------------------------------------------- --logy-of


def test_logy_of_puts_only_the_named_panels_on_a_log_axis() -> None:
    """Paper 000 Fig. 1 (c)–(f): a linear sharpness above a log training loss."""
    run = FakeRun(toy_series())
    options = OverlayOptions(("sharpness", "loss"), logy_of=("loss",))
    fig, _ = overlay_figure([Entry(run)], options)
    try:
        sharpness, loss = fig.axes
        assert sharpness.get_yscale() == "linear" and loss.get_yscale() == "log"
        steps, values = run.series("loss")
        drawn = [line for line in loss.get_lines() if len(line.get_xdata()) == len(steps)]
        np.testing.assert_array_equal(drawn[0].get_ydata(), values)
    finally:
        close(fig)
    assert overlay_file_name(options) == "sharpness+loss-logy-loss.png"
    with pytest.raises(OverlayError, match="--logy-of lr: not a panel; panels: sharpness, loss"):
        overlay_figure([Entry(run)], OverlayOptions(("sharpness", "loss"), logy_of=("lr",)))


# --------------------------------------------------------------------------------------------- sweep curves


def test_sweep_references_never_set_the_value_range() -> None:
    """A min-ℓ1 test loss of 1e-28 on a log axis is labelled off scale instead of stretching it to 1e-29
    (paper 000 Fig. 1 (a)–(b)); the ℓ2 one, inside the range, is drawn plainly."""
    options = SweepPlotOptions(
        value="final.test_loss", x="constants.i", refs=("test_loss.min_l1", "test_loss.min_l2"), logy=True
    )
    fig, _ = sweep_curves(grid_sweep(), options)
    try:
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        assert 1e-4 < low < 1e-3 and 1 <= high < 10  # from the values, 1e-3 … 1
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("min-ℓ1" in label and label.endswith("— off scale") for label in labels)
        assert any("min-ℓ2" in label and "off scale" not in label for label in labels)
    finally:
        close(fig)


@pytest.mark.parametrize("logy", [False, True])
def test_excluded_markers_sit_above_every_value(logy: bool) -> None:
    """The rows of × markers get room at the top of the panel: none hides a value."""
    options = SweepPlotOptions(value="final.test_loss", x="constants.i", logy=logy)
    fig, drawn = sweep_curves(grid_sweep(diverged=(3,)), options)
    try:
        ax = fig.axes[0]
        (curve,) = drawn.panels[0].curves
        assert drawn.excluded == ["constants.i=3: diverged"]
        finite = curve.y[np.isfinite(curve.y)]
        to_axes = ax.transAxes.inverted()
        points = [(x, y) for x, y in zip(curve.x, curve.y, strict=True) if math.isfinite(y)]
        tops = [to_axes.transform(ax.transData.transform(point))[1] for point in points]
        assert len(tops) == len(finite) == 3
        lowest_row = TOP_ROW - ROW_STEP * (len(drawn.panels[0].curves) - 1)
        assert max(tops) < lowest_row - ROW_STEP / 2
    finally:
        close(fig)


# --------------------------------------------------------------------------------------------- the docs


def images(text: str) -> list[str]:
    return IMAGE.findall(text)


def plot_commands(text: str) -> list[str]:
    """The ``$ eosdsl plot …`` lines of the console blocks, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    return [line.strip()[2:] for line in joined.splitlines() if line.strip().startswith("$ eosdsl plot ")]


def test_every_figure_in_the_docs_exists_and_is_small() -> None:
    referenced = set()
    for page in DOCS.glob("*.md"):
        for target in images(page.read_text()):
            path = DOCS / target
            assert path.is_file(), f"{page.name}: {target} does not exist"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
            assert path.stat().st_size <= MAX_FIGURE_BYTES, f"{target}: {path.stat().st_size} bytes"
            referenced.add(path.name)
    unused = sorted(p.name for p in (DOCS / "figures").glob("*") if p.name not in referenced)
    assert not unused, f"figures no page shows: {unused}"


def test_each_paper_figure_comes_after_its_plot_command() -> None:
    """In docs/papers.md every image follows, in its section, the ``eosdsl plot`` command that draws it."""
    text = PAPERS.read_text()
    assert len(images(text)) >= 9
    for section in re.split(r"\n(?=## )", text):
        for target in images(section):
            before = section[: section.index(target)]
            assert plot_commands(before), f"{target}: no `eosdsl plot` command before it in its section"


def test_documented_plot_commands_use_options_that_exist() -> None:
    command = typer.main.get_command(app).commands["plot"]  # type: ignore[attr-defined]
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    commands = plot_commands(PAPERS.read_text())
    assert len(commands) >= 8
    for line in commands:
        words = shlex.split(line)
        unknown = [w for w in words[2:] if w.startswith("-") and w.split("=")[0] not in known]
        assert not unknown, f"{line}: unknown options {unknown}"
        assert "--out" in words, f"{line}: the docs name the file they draw"


# Specs whose documented figure is drawn here from a fresh run (each runs in seconds).
FAST_SPECS = (
    "specs/eigenvector-rotation/product-chain-fig1.yaml",
    "specs/good-regularity/limiting-sharpness-eta-sweep.yaml",
)


def documented_plot(spec: str) -> str:
    """The ``eosdsl plot`` command that follows ``$ eosdsl run SPEC`` in docs/papers.md."""
    text = PAPERS.read_text().replace("\\\n", " ")
    after = text[text.index(f"$ eosdsl run {spec}\n") :]
    (line,) = plot_commands(after.split("```")[0])
    return line


@pytest.mark.slow
@pytest.mark.parametrize("spec", FAST_SPECS)
def test_documented_figures_draw_from_a_fresh_run(spec: str, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    result = invoke("run", ROOT / spec, "--registry", registry)
    assert result.exit_code == 0, result.output
    (sweep_id,) = re.findall(r"^sweep ([0-9a-f]{12}): \d+ runs", result.output, re.MULTILINE)
    words = shlex.split(documented_plot(spec))
    out = words.index("--out")
    words[out + 1] = str(tmp_path / Path(words[out + 1]).name)
    words = [sweep_id if w == "SWEEP" else w for w in words[1:]]
    result = invoke(*words, "--registry", registry)
    assert result.exit_code == 0, result.output
    drawn = Path(words[out])
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.output.splitlines()[0] == str(drawn)
    # --logy-of makes an overlay of the sweep's runs, so phase-diagram options are refused
    result = invoke("plot", sweep_id, "--logy-of", "loss", "--value", "final.loss", "--registry", registry)
    assert result.exit_code == 2 and "an overlay takes -s, --ref, --logx, --logy, --logy-of" in result.output
