"""Tests for eosdsl.spec.yamlio: YAML 1.2 loading, plain conversion, positions, located errors."""

from __future__ import annotations

import math

import pytest

from eosdsl.spec.errors import SpecError
from eosdsl.spec.yamlio import load_yaml, load_yaml_file, to_plain

SPEC = """\
name: demo
lr: 1e-3
eps: 1.0e-6
flag: yes
off_word: off
truth: true
nothing: ~
count: 12
optimizer:
  kind: heavy_ball
  beta: 0.9
events:
  - when: {kind: at, step: 5}
    do: stop
  - name: second
    steps: [1, 2, {deep: 3}]
"""


def _plain_types(value: object) -> set[type]:
    """All Python types appearing anywhere in a loaded value (keys included)."""
    found = {type(value)}
    if isinstance(value, dict):
        for k, v in value.items():
            found |= _plain_types(k) | _plain_types(v)
    elif isinstance(value, list):
        for v in value:
            found |= _plain_types(v)
    return found


def _pos_of(text: str, line: int, token: str) -> tuple[int, int]:
    """1-based (line, col) of the first ``token`` on 1-based ``line`` of ``text``."""
    return line, text.splitlines()[line - 1].index(token) + 1


def test_yaml_12_scalars() -> None:
    data, _ = load_yaml(SPEC)
    assert data["lr"] == 0.001 and type(data["lr"]) is float
    assert data["eps"] == 1e-6 and type(data["eps"]) is float
    assert data["flag"] == "yes"
    assert data["off_word"] == "off"
    assert data["truth"] is True
    assert data["nothing"] is None
    assert data["count"] == 12 and type(data["count"]) is int


def test_only_plain_python_types() -> None:
    data, _ = load_yaml(SPEC + "lit: |\n  text\nhex: 0x10\ninf: .inf\nwhen: 2024-01-02\n")
    assert _plain_types(data) <= {dict, list, str, int, float, bool, type(None)}
    assert data["lit"] == "text\n" and data["hex"] == 16 and math.isinf(data["inf"])
    assert data["when"] == "2024-01-02"


def test_positions_of_keys_and_items() -> None:
    _, pos = load_yaml(SPEC)
    assert pos[()] == (1, 1)
    assert pos[("name",)] == (1, 1)
    assert pos[("optimizer",)] == (9, 1)
    assert pos[("optimizer", "beta")] == _pos_of(SPEC, 11, "beta")
    assert pos[("events", 0)] == _pos_of(SPEC, 13, "when")
    assert pos[("events", 0, "do")] == _pos_of(SPEC, 14, "do")
    assert pos[("events", 1)] == _pos_of(SPEC, 15, "name")
    assert pos[("events", 1, "steps")] == _pos_of(SPEC, 16, "steps")


def test_positions_inside_flow_collections() -> None:
    _, pos = load_yaml(SPEC)
    assert pos[("events", 0, "when")] == _pos_of(SPEC, 13, "when")
    assert pos[("events", 0, "when", "kind")] == _pos_of(SPEC, 13, "kind")
    assert pos[("events", 0, "when", "step")] == _pos_of(SPEC, 13, "step")
    assert pos[("events", 1, "steps", 1)] == _pos_of(SPEC, 16, "2")
    assert pos[("events", 1, "steps", 2)] == _pos_of(SPEC, 16, "{")
    assert pos[("events", 1, "steps", 2, "deep")] == _pos_of(SPEC, 16, "deep")


def test_merged_keys_fall_back_to_parent_position() -> None:
    text = "base: &b {p: 1}\nchild:\n  <<: *b\n  q: 2\n"
    data, pos = load_yaml(text)
    assert data["child"] == {"q": 2, "p": 1}
    assert pos[("child", "q")] == (4, 3)
    assert pos[("child", "p")] == pos[("child",)] == (2, 1)


def _single_error(text: str) -> tuple[int | None, int | None, str]:
    with pytest.raises(SpecError) as info:
        load_yaml(text, "bad.yaml")
    [err] = info.value.errors
    assert info.value.filename == "bad.yaml"
    assert "\n" not in str(info.value) and "^" not in str(info.value)
    return err.line, err.col, err.message


def test_duplicate_key_is_error_at_second_occurrence() -> None:
    line, col, message = _single_error("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert (line, col) == (4, 3)
    assert "duplicate key" in message and '"c"' in message


def test_tab_indentation() -> None:
    line, col, message = _single_error("a: 1\nb:\n\tc: 1\n")
    assert line == 3 and col == 1
    assert "tab" in message


def test_unclosed_bracket() -> None:
    line, _, message = _single_error("a: [1, 2\nb: 3\n")
    assert line == 2
    assert "']'" in message and "flow sequence" in message and "line 1" in message


def test_bad_mapping_syntax() -> None:
    line, col, message = _single_error("a: 1\nb: c: d\n")
    assert (line, col) == (2, 5)
    assert "mapping values are not allowed" in message


def test_syntax_error_formatting() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml("a: 'open\n", "s.yaml")
    assert str(info.value).startswith("s.yaml:2:1 (top level): found unexpected end of stream")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- 1\n- 2\n", "just a string\n", "42\n"])
def test_top_level_must_be_mapping(text: str) -> None:
    line, col, message = _single_error(text)
    assert (line, col) == (1, 1)
    assert message == "a spec must be a mapping of keys to values"


def test_unsupported_tag_is_located() -> None:
    line, col, message = _single_error("a: 1\nb: !python/name:os.system x\n")
    assert (line, col) == (2, 1)
    assert "unsupported YAML tag" in message


def test_core_tags_resolve() -> None:
    data, _ = load_yaml("a: !!str 5\nb: !!float 1\n")
    assert data == {"a": "5", "b": 1.0}
    assert type(data["b"]) is float


def test_load_yaml_file(tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("optimizer:\n  lr: 1e-2\n")
    data, pos, filename = load_yaml_file(path)
    assert data == {"optimizer": {"lr": 0.01}}
    assert pos[("optimizer", "lr")] == (2, 3)
    assert filename == str(path)


def test_load_yaml_file_errors_use_filename(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(str(path))
    assert str(info.value).startswith(f"{path}:2:1 ")


def test_unreadable_file(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_yaml_file(missing)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(missing)) and "cannot read file" in text


def test_to_plain_converts_ruamel_objects() -> None:
    from ruamel.yaml import YAML

    raw = YAML(typ="rt").load("a: [1.5, {b: yes}]\n")
    assert _plain_types(to_plain(raw)) <= {dict, list, str, float}
    assert to_plain(raw) == {"a": [1.5, {"b": "yes"}]}
