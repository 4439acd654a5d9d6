"""Tests for eosdsl.spec.overrides: KEY=VALUE overrides, multirun sweeps and grids."""

from __future__ import annotations

import numpy as np
import pytest

from eosdsl.spec.overrides import (
    OverrideError,
    apply_overrides,
    expand_grid,
    format_path,
    parse_multirun,
    parse_override,
    split_dotted,
)

# --------------------------------------------------------------------------------------- parse_override


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("optimizer.lr=1e-3", ("optimizer", "lr"), 0.001),
        ("optimizer.beta=0.9", ("optimizer", "beta"), 0.9),
        ("train.steps=100", ("train", "steps"), 100),
        ("flag=true", ("flag",), True),
        ("word=yes", ("word",), "yes"),
        ("x=null", ("x",), None),
        ("x=[1,2]", ("x",), [1, 2]),
        ("x=[1, [2, 3]]", ("x",), [1, [2, 3]]),
        ("optimizer={kind: gd, lr: 0.1}", ("optimizer",), {"kind": "gd", "lr": 0.1}),
        ("optimizer.kind=heavy_ball", ("optimizer", "kind"), "heavy_ball"),
        ("x='1e-3'", ("x",), "1e-3"),
        ("x=u**2 + v", ("x",), "u**2 + v"),
        ("x=", ("x",), ""),
        ("events.0.when.step.at=5", ("events", 0, "when", "step", "at"), 5),
    ],
)
def test_parse_override_values(text: str, path: tuple, value: object) -> None:
    got_path, got = parse_override(text)
    assert got_path == path
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("optimizer.lr", "KEY=VALUE"),
        ("=3", "empty key"),
        ("a..b=1", "empty component"),
        ("a=[1, 2", "invalid value"),
        ("a=x: y", "flow syntax"),
        ("a=!tag 1", "unsupported YAML tag"),
    ],
)
def test_parse_override_errors(text: str, fragment: str) -> None:
    with pytest.raises(OverrideError) as info:
        parse_override(text)
    assert fragment in str(info.value)
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_paths() -> None:
    assert split_dotted("optimizer.lr") == ("optimizer", "lr")
    assert split_dotted("events.0.when") == ("events", 0, "when")
    assert format_path(("events", 0, "when")) == "events.0.when"
    with pytest.raises(OverrideError):
        split_dotted("a.")


# -------------------------------------------------------------------------------------- apply_overrides

BASE = {"optimizer": {"kind": "gd", "lr": 0.1}, "events": [{"when": {"step": {"at": 3}}}], "steps": 10}


def test_apply_sets_values_on_a_copy() -> None:
    out = apply_overrides(BASE, [(("optimizer", "lr"), 0.2), (("events", 0, "when", "step", "at"), 7)])
    assert out["optimizer"]["lr"] == 0.2
    assert out["events"][0]["when"]["step"]["at"] == 7
    assert BASE["optimizer"]["lr"] == 0.1 and BASE["events"][0]["when"]["step"]["at"] == 3


def test_apply_creates_intermediate_mappings_and_replaces_whole_values() -> None:
    out = apply_overrides(
        BASE, [(("sweep", "grid", "x"), [1, 2]), (("optimizer",), {"kind": "adam", "lr": 1})]
    )
    assert out["sweep"] == {"grid": {"x": [1, 2]}}
    assert out["optimizer"] == {"kind": "adam", "lr": 1}


def test_apply_values_are_not_shared() -> None:
    value = {"a": [1]}
    out = apply_overrides({}, [(("x",), value), (("y",), value)])
    out["x"]["a"].append(2)
    assert out["y"] == {"a": [1]} and value == {"a": [1]}


def test_apply_later_overrides_win() -> None:
    assert apply_overrides(BASE, [(("steps",), 1), (("steps",), 2)])["steps"] == 2


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (("events", 5, "when"), "index 5 out of range"),
        (("events", 1), "index 1 out of range"),
        (("steps", "x"), "'steps' is 10, not a mapping"),
        (("optimizer", "lr", "x", "y"), "'optimizer.lr' is 0.1"),
        (("events", "first"), "numeric index"),
    ],
)
def test_apply_errors_name_the_override(path: tuple, fragment: str) -> None:
    with pytest.raises(OverrideError) as info:
        apply_overrides(BASE, [(path, 1)])
    assert fragment in str(info.value)
    assert format_path(path) in str(info.value)


# ------------------------------------------------------------------------------------------ multirun


def test_multirun_comma_list() -> None:
    assert parse_multirun("optimizer.lr=0.1,0.2,0.3") == (("optimizer", "lr"), [0.1, 0.2, 0.3])
    assert parse_multirun("kind=gd, heavy_ball") == (("kind",), ["gd", "heavy_ball"])


def test_multirun_single_value() -> None:
    assert parse_multirun("seed=3") == (("seed",), [3])
    assert parse_multirun("x=[1,2]") == (("x",), [[1, 2]])


def test_multirun_commas_inside_brackets_and_quotes() -> None:
    assert parse_multirun("a=[1,2],[3,4]")[1] == [[1, 2], [3, 4]]
    assert parse_multirun("a={p: 1, q: 2},{p: 3}")[1] == [{"p": 1, "q": 2}, {"p": 3}]
    assert parse_multirun("a='x,y',z")[1] == ["x,y", "z"]


def test_multirun_linspace() -> None:
    path, values = parse_multirun("optimizer.lr=linspace(0.01, 0.02, 5)")
    assert path == ("optimizer", "lr")
    assert len(values) == 5 and all(type(v) is float for v in values)
    assert values[0] == 0.01 and values[-1] == 0.02  # endpoints exact
    assert values == np.linspace(0.01, 0.02, 5).tolist()
    assert parse_multirun("x=linspace(0.1, 0.3, 3)")[1][-1] == 0.3
    assert parse_multirun("x=linspace(2, 2, 1)")[1] == [2.0]


def test_multirun_range() -> None:
    assert parse_multirun("seed=range(5)")[1] == [0, 1, 2, 3, 4]
    assert parse_multirun("seed=range(1, 10, 2)")[1] == [1, 3, 5, 7, 9]
    assert parse_multirun("seed=range(5, 0, -2)")[1] == [5, 3, 1]
    assert all(type(v) is int for v in parse_multirun("seed=range(3)")[1])


def test_multirun_logspace() -> None:
    values = parse_multirun("x=logspace(-3, -1, 3)")[1]
    assert values == pytest.approx([1e-3, 1e-2, 1e-1], rel=1e-12)
    assert values == np.logspace(-3, -1, 3).tolist()
    assert parse_multirun("x=logspace(0, 3, 4, 2)")[1] == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x=range(1.5)", "integers"),
        ("x=range(0)", "no values"),
        ("x=range(1, 5, 0)", "zero"),
        ("x=linspace(0, 1)", "3 arguments"),
        ("x=linspace(0, 1, 0)", "positive integer"),
        ("x=linspace(a, 1, 3)", "numbers"),
        ("x=1,,2", "empty value"),
        ("x=[1,2", "unclosed"),
        ("x=1]", "unbalanced"),
        ("x", "KEY=VALUE"),
    ],
)
def test_multirun_errors(text: str, fragment: str) -> None:
    with pytest.raises(OverrideError) as info:
        parse_multirun(text)
    assert fragment in str(info.value)


# ------------------------------------------------------------------------------------------------ grid


def test_expand_grid_order_last_axis_fastest() -> None:
    lr, seed = ("optimizer", "lr"), ("seed",)
    points = expand_grid([(lr, [0.1, 0.2]), (seed, [0, 1, 2])])
    assert [(p[lr], p[seed]) for p in points] == [(0.1, 0), (0.1, 1), (0.1, 2), (0.2, 0), (0.2, 1), (0.2, 2)]
    assert all(list(p) == [lr, seed] for p in points)


def test_expand_grid_edge_cases() -> None:
    assert expand_grid([]) == [{}]
    with pytest.raises(OverrideError, match="more than once"):
        expand_grid([(("a",), [1]), (("a",), [2])])
    with pytest.raises(OverrideError, match="no values"):
        expand_grid([(("a",), [])])


def test_grid_from_spec_dotted_keys() -> None:
    grid = {"optimizer.lr": [0.1, 0.2], "events.0.when.step.at": [5]}
    points = expand_grid([(split_dotted(k), v) for k, v in grid.items()])
    assert len(points) == 2
    out = apply_overrides(BASE, points[1].items())
    assert out["optimizer"]["lr"] == 0.2 and out["events"][0]["when"]["step"]["at"] == 5


def test_multirun_axes_feed_grid() -> None:
    axes = [parse_multirun("optimizer.lr=0.1,0.2"), parse_multirun("seed=range(2)")]
    points = expand_grid(axes)
    assert [tuple(p.values()) for p in points] == [(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)]


def test_empty_collections_are_values():
    """`key=[]` and `key={}` clear a list or mapping (e.g. `events=[]`)."""
    assert parse_override("events=[]") == (("events",), [])
    assert parse_override("constants={}") == (("constants",), {})
