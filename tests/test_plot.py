"""Figures of a run (eosdsl.plot) on small fake runs: files, masking, divergence, events, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from eosdsl.plot import plot_run, plot_series
from eosdsl.plot.run_plots import loss_figure, lr_figure, params_figure, sharpness_figure, two_parameters

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 300_000


class FakeRun:
    """The attributes and methods of eosdsl.registry.StoredRun that the plots read, over in-memory arrays."""

    def __init__(
        self,
        series: dict[str, tuple[np.ndarray, np.ndarray]],
        *,
        name: str = "fake-run",
        status: str = "completed",
        end_step: int | None = None,
        events: list[dict[str, Any]] | None = None,
        references: dict[str, float] | None = None,
    ) -> None:
        self._series = {k: (np.asarray(s, dtype=np.int64), np.asarray(v)) for k, (s, v) in series.items()}
        last = max((int(s[-1]) for s, _ in self._series.values() if len(s)), default=0)
        self.short_id = "0123456789ab"
        self.spec = {"name": name, "problem": {"kind": "relu_scalar"}, "optimizer": {"kind": "gd"}}
        self.info = {
            "status": status,
            "end_step": last if end_step is None else end_step,
            "events": events or [],
            "references": references or {},
            "checks": [],
        }

    def series_names(self) -> list[str]:
        return sorted(self._series)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._series:
            raise KeyError(f"no series {name!r}; available: {self.series_names()}")
        return self._series[name]


def toy_series(n: int = 400, mss_every: int = 50) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A ReLU-scalar-like run: u shrinks, v grows, sharpness u² falls below the MSS."""
    steps = np.arange(n)
    u = 10.0 - 6.0 * (1 - np.exp(-steps / 80))
    v = 1e-3 + 2.0 * (1 - np.exp(-steps / 60))
    lr = np.full(n, 0.0201)
    coarse = steps[::mss_every]
    return {
        "loss": (steps, 0.5 * u**2 * v**2 + 1e-8),
        "sharpness": (steps, u**2),
        "mss": (coarse, 2.0 / lr[::mss_every]),
        "lr": (steps, lr),
        "lr_applied": (steps, lr),
        "params.u": (steps, u),
        "params.v": (steps, v),
    }


def assert_png(path: Path, min_bytes: int = 5_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert min_bytes < len(data) < MAX_BYTES, f"{path.name} has {len(data)} bytes"


def legend_texts(fig: plt.Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


@pytest.fixture(autouse=True)
def _no_open_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------- plot_run


def test_plot_run_writes_the_standard_figures(tmp_path: Path) -> None:
    out = tmp_path / "figs" / "nested"
    paths = plot_run(FakeRun(toy_series()), out)
    assert [p.name for p in paths] == ["loss.png", "sharpness.png", "params.png", "lr.png"]
    for path in paths:
        assert path.parent == out
        assert_png(path)
    assert plt.get_fignums() == [], "plot_run must close its figures"


def test_only_existing_series_are_plotted(tmp_path: Path) -> None:
    steps = np.arange(50)
    run = FakeRun({"loss": (steps, np.exp(-steps / 10.0)), "grad_norm": (steps, np.ones(50))})
    paths = plot_run(run, tmp_path)
    assert [p.name for p in paths] == ["loss.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]


def test_titles_name_spec_and_short_id() -> None:
    fig = loss_figure(FakeRun(toy_series(), name="relu-gd"))
    assert fig.axes[0].get_title() == "relu-gd (0123456789ab)"
    assert fig.axes[0].get_yscale() == "log"


# --------------------------------------------------------------------------------------------- params.png


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"params.u": 1, "params.v": 1}, True),
        ({"params.w": 2}, True),
        ({"params.u": (1,), "params.v": (1,)}, True),  # width-1 vectors are scalars
        ({"params.theta": 5}, False),
        ({"params.a": 1, "params.b": 1, "params.c": 1}, False),
        ({"params.u": 1}, False),
        ({"params.u": 2, "params.v": 2}, False),
        ({}, False),
    ],
)
def test_params_png_only_for_two_parameter_toys(tmp_path: Path, params: dict, expected: bool) -> None:
    steps = np.arange(30)
    series = {"loss": (steps, np.exp(-steps / 5.0))}
    for name, width in params.items():
        shape = (30,) if width == 1 else (30, *width) if isinstance(width, tuple) else (30, width)
        series[name] = (steps, np.random.default_rng(0).normal(size=shape))
    names = [p.name for p in plot_run(FakeRun(series), tmp_path)]
    assert ("params.png" in names) is expected
    assert (tmp_path / "params.png").exists() is expected


def test_params_axes_are_named_and_vector_components_split() -> None:
    fig = params_figure(FakeRun(toy_series()))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("params.u", "params.v")
    assert {"start", "end", "trajectory"} <= set(legend_texts(fig))
    assert ax.get_title() == "fake-run (0123456789ab)"
    steps = np.arange(10)
    pair = two_parameters(FakeRun({"params.w": (steps, np.stack([steps, -steps], axis=1))}))
    assert pair is not None
    (x_name, x), (y_name, y) = pair
    assert (x_name, y_name) == ("params.w[0]", "params.w[1]")
    np.testing.assert_array_equal(y, -x)


def test_long_trajectory_is_thinned_but_keeps_the_last_point(tmp_path: Path) -> None:
    n = 100_001
    steps = np.arange(n)
    angle = steps / 3000.0
    run = FakeRun({"params.u": (steps, np.cos(angle) * (1 + angle)), "params.v": (steps, np.sin(angle))})
    fig = params_figure(run)
    trajectory = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("trajectory"))
    assert "1 point in 11 shown" in trajectory.get_label()
    xs = trajectory.get_xdata()
    assert len(xs) <= 10_001
    assert xs[-1] == pytest.approx(np.cos(angle[-1]) * (1 + angle[-1]))
    plt.close(fig)
    paths = plot_run(run, tmp_path)
    assert_png(tmp_path / "params.png")
    assert tmp_path / "params.png" in paths


# --------------------------------------------------------------------------------------------- loss.png


def test_non_positive_loss_is_masked_and_reported(tmp_path: Path) -> None:
    steps = np.arange(100)
    loss = np.exp(-steps / 20.0)
    loss[[10, 20]] = 0.0
    loss[30] = -1e-3
    run = FakeRun({"loss": (steps, loss), "test_loss": (steps, loss + 0.1)})
    fig = loss_figure(run)
    texts = legend_texts(fig)
    assert any("masked: 3 non-positive" in t for t in texts), texts
    assert not any("test_loss (" in t for t in texts), "nothing of test_loss was masked"
    line = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("loss"))
    assert np.isnan(np.asarray(line.get_ydata())[[10, 20, 30]]).all()
    plt.close(fig)
    assert_png(plot_run(run, tmp_path)[0], min_bytes=2_000)


def test_all_non_positive_loss_does_not_crash(tmp_path: Path) -> None:
    steps = np.arange(20)
    paths = plot_run(FakeRun({"loss": (steps, np.zeros(20))}), tmp_path)
    assert_png(paths[0], min_bytes=2_000)


def test_test_loss_references_are_dashed_labelled_lines() -> None:
    steps = np.arange(100)
    references = {"test_loss.min_l1": 0.02, "test_loss.min_l2": 0.3, "other.thing": 5.0}
    run = FakeRun(
        {"loss": (steps, np.exp(-steps / 20.0)), "test_loss": (steps, 0.02 + np.exp(-steps / 30.0))},
        references=references,
    )
    fig = loss_figure(run)
    texts = legend_texts(fig)
    assert any("min-ℓ1 interpolator" in t for t in texts), texts
    assert any("min-ℓ2 interpolator" in t for t in texts), texts
    assert not any("other" in t for t in texts)
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_ydata()[0] for line in dashed) == [0.02, 0.3]


def test_diverged_run_is_marked(tmp_path: Path) -> None:
    steps = np.arange(60)
    loss = np.exp(steps / 5.0)
    loss[-2:] = [np.inf, np.nan]
    run = FakeRun({"loss": (steps, loss), "sharpness": (steps, steps * 1.0)}, status="diverged", end_step=59)
    fig = loss_figure(run)
    ax = fig.axes[0]
    assert "diverged" in ax.get_title()
    red = [line for line in ax.get_lines() if line.get_color() == "red"]
    assert len(red) == 1 and list(red[0].get_xdata()) == [59, 59]
    assert any("masked: 2 non-finite" in t for t in legend_texts(fig))
    plt.close(fig)
    assert [p.name for p in plot_run(run, tmp_path)] == ["loss.png", "sharpness.png"]


def test_completed_run_is_not_marked_diverged() -> None:
    fig = loss_figure(FakeRun(toy_series()))
    assert "diverged" not in fig.axes[0].get_title()
    assert not [line for line in fig.axes[0].get_lines() if line.get_color() == "red"]


# --------------------------------------------------------------------------------------------- sharpness.png


def test_mss_is_a_red_dotted_step_line_over_its_own_steps() -> None:
    series = toy_series(n=400, mss_every=50)
    fig = sharpness_figure(FakeRun(series))
    mss = next(line for line in fig.axes[0].get_lines() if line.get_label() == "MSS")
    assert mss.get_color() == "red" and mss.get_linestyle() == ":"
    assert mss.get_drawstyle() == "steps-post"
    np.testing.assert_array_equal(mss.get_xdata(), series["mss"][0])  # not resampled
    assert "sharpness" in legend_texts(fig)


def test_event_lines_are_drawn_and_named() -> None:
    events = [
        {"name": "switch to PHB", "kind": "event", "fired_at": 120},
        {"name": "stop rule 0", "kind": "stop", "fired_at": None},
        {"name": "halve lr", "kind": "event", "fired_at": 300},
    ]
    fig = sharpness_figure(FakeRun(toy_series(), events=events))
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_gid() == "event"]
    assert sorted(line.get_xdata()[0] for line in lines) == [120, 300]
    labels = " | ".join(t.get_text() for t in ax.texts if t.get_gid() == "event-label")
    assert "switch to PHB" in labels and "halve lr" in labels and "stop rule 0" not in labels


def test_huge_warmup_mss_does_not_flatten_the_sharpness() -> None:
    steps = np.arange(200)
    lr = np.minimum(1e-6 + steps / 100.0, 1.0)  # mss from 2e6 down to 2
    run = FakeRun({"sharpness": (steps, np.full(200, 1.5)), "mss": (steps, 2.0 / lr)})
    bottom, top = sharpness_figure(run).axes[0].get_ylim()
    assert 1.5 < top < 10.0
    assert 0.0 < bottom < 1.5


# --------------------------------------------------------------------------------------------- lr.png


def test_lr_applied_is_drawn_only_when_it_differs() -> None:
    series = toy_series()
    same = [line.get_label() for line in lr_figure(FakeRun(series)).axes[0].get_lines()]
    assert same == ["lr"]
    steps, lr = series["lr"]
    series["lr_applied"] = (steps, 1.9 * lr)
    differs = [line.get_label() for line in lr_figure(FakeRun(series)).axes[0].get_lines()]
    assert differs == ["lr", "lr_applied"]


# --------------------------------------------------------------------------------------------- plot_series


def test_plot_series_writes_a_png(tmp_path: Path) -> None:
    steps = np.arange(100)
    run = FakeRun(
        {
            "loss": (steps, np.exp(-steps / 20.0)),
            "grad_norm": (steps, np.exp(-steps / 40.0)),
            "params.theta": (steps, np.random.default_rng(1).normal(size=(100, 3)) ** 2),
        }
    )
    out = plot_series(run, ["loss", "grad_norm", "params.theta"], tmp_path / "sub" / "ad-hoc.png", logy=True)
    assert out == tmp_path / "sub" / "ad-hoc.png"
    assert_png(out)
    assert plt.get_fignums() == []


def test_plot_series_unknown_name_lists_the_available_ones(tmp_path: Path) -> None:
    steps = np.arange(10)
    run = FakeRun({"loss": (steps, np.ones(10)), "sharpness": (steps, np.ones(10))})
    with pytest.raises(KeyError) as err:
        plot_series(run, ["loss", "sharpnes"], tmp_path / "x.png")
    message = str(err.value)
    assert "sharpnes" in message and "loss" in message and "sharpness" in message
    assert not (tmp_path / "x.png").exists()


def test_two_scalar_parameters_are_aligned_on_common_steps() -> None:
    run = FakeRun(
        {
            "params.a": (np.arange(10), np.arange(10.0)),
            "params.b": (np.arange(0, 10, 2), -np.arange(0, 10, 2.0)),
        }
    )
    (_, x), (_, y) = two_parameters(run)
    np.testing.assert_array_equal(x, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(y, -x)


def test_a_failing_figure_leaves_no_open_figures(tmp_path: Path) -> None:
    class Broken(FakeRun):
        def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
            if name == "mss":
                raise OSError("unreadable store")
            return super().series(name)

    plt.close("all")
    with pytest.raises(OSError, match="unreadable"):
        plot_run(Broken(toy_series()), tmp_path)
    assert plt.get_fignums() == []


def test_plot_series_strips_names_and_rejects_an_empty_list(tmp_path: Path) -> None:
    steps = np.arange(10)
    run = FakeRun({"loss": (steps, np.ones(10)), "sharpness": (steps, np.ones(10))})
    assert_png(plot_series(run, [" loss", "sharpness "], tmp_path / "a.png"), min_bytes=2_000)
    with pytest.raises(KeyError, match="available: loss, sharpness"):
        plot_series(run, ["", " "], tmp_path / "b.png")
