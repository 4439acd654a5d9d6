"""Tests for eosdsl.spec.errors and eosdsl.spec.pydantic_errors: pydantic errors → located, readable
``file:line:col path: message``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eosdsl.spec.errors import LocatedError, SpecError, locate
from eosdsl.spec.pydantic_errors import TypeName, from_validation_error, resolve_loc, validate_model
from eosdsl.spec.yamlio import load_yaml

# --------------------------------------------------------------------------------------- test models

Expr = Annotated[str, TypeName("an expression string")]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GD(Closed):
    kind: Literal["gd"]
    lr: float


class HeavyBall(Closed):
    kind: Literal["heavy_ball"]
    lr: float
    beta: float = 0.9


class Adam(Closed):
    kind: Literal["adam"]
    lr: float
    b1: float = 0.9


Optimizer = Annotated[GD | HeavyBall | Adam, Field(discriminator="kind")]


class At(Closed):
    kind: Literal["at"]
    step: int


class Every(Closed):
    kind: Literal["every"]
    every: int = Field(gt=0)


class Event(Closed):
    when: Annotated[At | Every, Field(discriminator="kind")]
    action: str


class Spec(Closed):
    name: str
    optimizer: Optimizer
    events: list[Event] = []
    scale: float | Expr = 1.0
    dtype: Literal["float32", "float64"] = "float32"
    fallback: GD | HeavyBall | None = None
    steps: int = 10
    extras: dict[str, int] = {}
    learning_rate: float = Field(0.1, alias="learning-rate")

    @field_validator("steps")
    @classmethod
    def _not_thirteen(cls, v: int) -> int:
        if v == 13:
            raise ValueError("steps must not be 13")
        return v


def _errors(text: str, model: type[BaseModel] = Spec, filename: str = "spec.yaml") -> SpecError:
    data, positions = load_yaml(text, filename)
    with pytest.raises(SpecError) as info:
        validate_model(model, data, positions, filename)
    return info.value


def _lines(text: str) -> list[str]:
    return str(_errors(text)).splitlines()


def _line_for(text: str, path: str) -> str:
    """The single formatted error line about ``path``."""
    hits = [ln for ln in _lines(text) if re.match(rf"^\S+ {re.escape(path)}: ", ln)]
    assert len(hits) == 1, _lines(text)
    return hits[0]


GOOD = "name: x\noptimizer:\n  kind: gd\n  lr: 0.1\n"


def test_valid_spec_passes() -> None:
    data, positions = load_yaml(GOOD)
    spec = validate_model(Spec, data, positions, "spec.yaml")
    assert isinstance(spec.optimizer, GD)


# ----------------------------------------------------------------------------------------------- format


def test_located_error_format() -> None:
    assert (
        LocatedError(("events", 0, "when"), "boom", 3, 7).format("f.yaml") == "f.yaml:3:7 events.0.when: boom"
    )
    assert LocatedError((), "boom", 1, 1).format("f.yaml") == "f.yaml:1:1 (top level): boom"
    assert LocatedError(("a",), "boom").format("f.yaml") == "f.yaml: a: boom"


def test_spec_error_sorts_by_position() -> None:
    err = SpecError(
        [
            LocatedError(("b",), "second", 5, 1),
            LocatedError(("a",), "first", 2, 3),
            LocatedError(("c",), "x"),
        ],
        "f.yaml",
    )
    assert str(err).splitlines() == ["f.yaml:2:3 a: first", "f.yaml:5:1 b: second", "f.yaml: c: x"]


def test_locate_longest_prefix() -> None:
    positions = {(): (1, 1), ("a",): (2, 1), ("a", "b"): (3, 3)}
    assert locate(("a", "b", "c", 0), positions) == (3, 3)
    assert locate(("a", "z"), positions) == (2, 1)
    assert locate(("q",), positions) == (1, 1)
    assert locate(("q",), {}) == (None, None)


# ------------------------------------------------------------------------------------------ resolve_loc


def test_resolve_loc_drops_discriminated_union_tags() -> None:
    assert resolve_loc(Spec, ("optimizer", "heavy_ball", "betaa")) == (("optimizer", "betaa"), HeavyBall)
    assert resolve_loc(Spec, ("events", 0, "when", "at", "step")) == (("events", 0, "when", "step"), At)


def test_resolve_loc_drops_plain_union_labels() -> None:
    assert resolve_loc(Spec, ("fallback", "GD", "lr")) == (("fallback", "lr"), GD)
    assert resolve_loc(Spec, ("scale", "float")) == (("scale",), Spec)


def test_resolve_loc_plain_paths() -> None:
    assert resolve_loc(Spec, ("extras", "k")) == (("extras", "k"), None)
    assert resolve_loc(Spec, ("steps",)) == (("steps",), Spec)
    assert resolve_loc(Spec, ("learning-rate",)) == (("learning-rate",), Spec)
    assert resolve_loc(Spec, ("nope", "deeper")) == (("nope", "deeper"), None)


def test_pydantic_loc_shapes_are_as_documented() -> None:
    """Guard the loc shapes resolve_loc relies on (see the errors module docstring)."""
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(
            {"name": "x", "optimizer": {"kind": "heavy_ball", "lr": 1, "x": 1}, "fallback": 3, "scale": []}
        )
    locs = {e["loc"] for e in info.value.errors()}
    assert ("optimizer", "heavy_ball", "x") in locs
    assert {("fallback", "GD"), ("fallback", "HeavyBall")} <= locs
    assert {("scale", "float"), ("scale", "str")} <= locs


# ------------------------------------------------------------------------------------------- messages


def test_unknown_key_with_did_you_mean() -> None:
    text = "name: x\noptimizer:\n  kind: gd\n  lr: 0.1\n  lrr: 0.2\n"
    line = _line_for(text, "optimizer.lrr")
    assert (
        line
        == "spec.yaml:5:3 optimizer.lrr: unknown key 'lrr'; did you mean 'lr'? (expected one of: kind, lr)"
    )


def test_unknown_key_inside_discriminated_union_uses_member_fields() -> None:
    text = "name: x\noptimizer:\n  kind: heavy_ball\n  lr: 0.1\n  betaa: 0.5\n"
    line = _line_for(text, "optimizer.betaa")
    assert line.startswith("spec.yaml:5:3 optimizer.betaa: unknown key 'betaa'; did you mean 'beta'?")
    assert "(expected one of: beta, kind, lr)" in line
    assert "heavy_ball" not in line.split(":")[2]


def test_unknown_key_without_close_match() -> None:
    line = _line_for(GOOD + "zzzzz: 1\n", "zzzzz")
    assert line.startswith("spec.yaml:5:1 zzzzz: unknown key 'zzzzz' (expected one of: ")
    assert "did you mean" not in line
    assert "learning-rate" in line  # aliases are listed as written in YAML


def test_wrong_type_reports_expected_and_got() -> None:
    text = "name: x\noptimizer:\n  kind: gd\n  lr: abc\n"
    assert _line_for(text, "optimizer.lr") == "spec.yaml:4:3 optimizer.lr: expected a number, got 'abc' (str)"


def test_integer_expected() -> None:
    line = _line_for(GOOD + "steps: 2.5\n", "steps")
    assert line == "spec.yaml:5:1 steps: expected an integer, got 2.5 (float)"


def test_literal_expected() -> None:
    line = _line_for(GOOD + "dtype: float16\n", "dtype")
    assert line == "spec.yaml:5:1 dtype: expected one of 'float32', 'float64', got 'float16' (str)"


def test_constraint_keeps_pydantic_message_and_value() -> None:
    text = GOOD + "events:\n  - when: {kind: every, every: 0}\n    action: stop\n"
    line = _line_for(text, "events.0.when.every")
    assert line == "spec.yaml:6:25 events.0.when.every: Input should be greater than 0, got 0"


def test_validator_value_error_prefix_is_stripped() -> None:
    assert _line_for(GOOD + "steps: 13\n", "steps") == "spec.yaml:5:1 steps: steps must not be 13"


def test_missing_key_located_at_parent() -> None:
    text = "name: x\noptimizer:\n  kind: heavy_ball\n"
    assert _line_for(text, "optimizer") == "spec.yaml:2:1 optimizer: missing required key 'lr'"


def test_missing_top_level_key() -> None:
    assert _lines("name: x\n") == ["spec.yaml:1:1 (top level): missing required key 'optimizer'"]


def test_unknown_union_tag_with_suggestion() -> None:
    text = "name: x\noptimizer:\n  kind: heavyball\n  lr: 0.1\n"
    assert _lines(text) == [
        "spec.yaml:2:1 optimizer: unknown kind 'heavyball'; did you mean 'heavy_ball'? "
        "(expected one of: adam, gd, heavy_ball)"
    ]


def test_missing_union_tag() -> None:
    text = "name: x\noptimizer:\n  lr: 0.1\n"
    assert _lines(text) == ["spec.yaml:2:1 optimizer: missing 'kind' (expected one of: adam, gd, heavy_ball)"]


def test_plain_union_collapses_to_one_message() -> None:
    line = _line_for(GOOD + "scale: [1, 2]\n", "scale")
    assert line == "spec.yaml:5:1 scale: expected a number or an expression string, got [1, 2] (list)"


def test_plain_union_of_models_keeps_best_branch() -> None:
    lines = _lines(GOOD + "fallback: {kind: gd, lr: abc}\n")
    assert lines == ["spec.yaml:5:22 fallback.lr: expected a number, got 'abc' (str)"]


def test_plain_union_of_models_wrong_type() -> None:
    assert _lines(GOOD + "fallback: 3\n") == ["spec.yaml:5:1 fallback: expected a mapping, got 3 (int)"]


def test_dict_values_and_null() -> None:
    text = GOOD + "extras: {a: 1, b: two}\nname2: 1\n"
    assert _line_for(text, "extras.b") == "spec.yaml:5:16 extras.b: expected an integer, got 'two' (str)"
    lines = _lines("name: ~\noptimizer: {kind: gd, lr: 1}\n")
    assert lines == ["spec.yaml:1:1 name: expected a string, got null"]


def test_long_inputs_are_truncated() -> None:
    text = GOOD + "steps: " + "x" * 200 + "\n"
    line = _line_for(text, "steps")
    assert "..." in line and len(line) < 120


# ------------------------------------------------------------------------------------- nested + many


NESTED = """\
name: demo
optimizer:
  kind: heavy_ball
  lrr: 0.1
events:
  - when: {kind: at, step: abc}
    action: stop
  - when: {kind: evry, every: 2}
    action: stop
  - when:
      kind: every
      every: 3
      extra: 1
dtype: float16
"""


def test_every_error_reported_sorted_with_paths_without_tags() -> None:
    err = _errors(NESTED)
    lines = str(err).splitlines()
    assert lines == [
        "spec.yaml:2:1 optimizer: missing required key 'lr'",
        "spec.yaml:4:3 optimizer.lrr: unknown key 'lrr'; did you mean 'lr'? "
        "(expected one of: beta, kind, lr)",
        "spec.yaml:6:22 events.0.when.step: expected an integer, got 'abc' (str)",
        "spec.yaml:8:5 events.1.when: unknown kind 'evry'; did you mean 'every'? "
        "(expected one of: at, every)",
        "spec.yaml:10:5 events.2: missing required key 'action'",
        "spec.yaml:13:7 events.2.when.extra: unknown key 'extra' (expected one of: every, kind)",
        "spec.yaml:14:1 dtype: expected one of 'float32', 'float64', got 'float16' (str)",
    ]
    assert all(e.line is not None for e in err.errors)
    for tag in ("heavy_ball", ".at.", ".every.when"):
        assert not any(tag in ln.split(" ")[1] for ln in lines)


def test_from_validation_error_directly() -> None:
    data, positions = load_yaml(NESTED, "n.yaml")
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(data)
    err = from_validation_error(info.value, Spec, data, positions, "n.yaml")
    assert isinstance(err, SpecError) and err.filename == "n.yaml"
    assert len(err.errors) == 7
    assert [e.line for e in err.errors] == sorted(e.line for e in err.errors)


def test_duplicates_collapse() -> None:
    text = "name: x\noptimizer:\n  kind: gd\n  lr: 0.1\nfallback: {kind: heavy_ball, lr: 1, beta: x}\n"
    lines = _lines(text)
    assert lines == ["spec.yaml:5:37 fallback.beta: expected a number, got 'x' (str)"]


class Schedule(Closed):
    kind: Literal["cosine"]
    peak: float


Scalar = Annotated[
    float | str, Field(description="number or expression"), TypeName("a number or an expression")
]


class Named(Closed):
    a: Scalar
    b: Scalar | Annotated[Schedule | GD, Field(discriminator="kind")] = 0.0


def test_type_name_on_whole_union_and_nested_unions() -> None:
    err = _errors("a: [1]\nb: [2]\n", model=Named)
    assert str(err).splitlines() == [
        "spec.yaml:1:1 a: expected a number or an expression, got [1] (list)",
        "spec.yaml:2:1 b: expected a number or an expression or a mapping, got [2] (list)",
    ]


def test_tag_error_inside_plain_union_wins_over_type_rejections() -> None:
    err = _errors("a: 1\nb: {kind: cosin, peak: 1}\n", model=Named)
    assert str(err) == (
        "spec.yaml:2:1 b: unknown kind 'cosin'; did you mean 'cosine'? (expected one of: cosine, gd)"
    )
    err = _errors("a: 1\nb: {kind: cosine, peak: x}\n", model=Named)
    assert str(err) == "spec.yaml:2:19 b.peak: expected a number, got 'x' (str)"
