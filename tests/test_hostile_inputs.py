"""Hostile specs, queries, export targets and terminal output.

Each case was a hang, a traceback, a silently accepted spec whose run then failed, or a CLI that wrote
where it must not; each is now a located error (exit 2) or a refusal, and user strings are printed with
their control characters escaped.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest
from conftest import spec_text
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.cli.common import terminal_safe
from eosdsl.cli.inspect import MAX_QUERY_DEPTH, MAX_QUERY_OPERATORS, query_limit_error
from eosdsl.cli.maintain import export_target_problem
from eosdsl.expr import ExprError, compile_expr
from eosdsl.spec.errors import MAX_REPORTED, LocatedError, SpecError, safe_text
from eosdsl.spec.load import load
from eosdsl.spec.yamlio import MAX_BYTES, MAX_DEPTH, MAX_NODES

runner = CliRunner()

BASE = spec_text("relu_scalar_min")  # error positions below are lines:columns of these two files
SUPERVISED = spec_text("supervised_min").replace("[scale]", "PIPELINE")
ALIAS_BOMB = "a0: &a0 [x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)
)


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def errors_of(text: str) -> list[LocatedError]:
    with pytest.raises(SpecError) as info:
        load("spec.yaml", text=text)
    return info.value.sorted_errors()


def one_error(text: str) -> str:
    """The first error, formatted; every error must be located."""
    errors = errors_of(text)
    assert all(e.line is not None for e in errors), errors
    return errors[0].format("spec.yaml")


# ------------------------------------------------------------------------------------------- item 3


def test_alias_bomb_is_refused_quickly_from_the_event_stream(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB + BASE)
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    result = invoke("validate", path)
    assert time.perf_counter() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}:5:" in result.output and f"more than {MAX_NODES} YAML nodes" in result.output


def test_size_and_depth_bounds():
    big = BASE + "tags: [" + ", ".join(["x"] * 200_000) + "]\n"
    assert f"is {len(big.encode())} bytes; the limit is {MAX_BYTES}" in one_error(big)
    deep = BASE + "tags: " + "[" * 300 + "]" * 300 + "\n"
    where = f"spec.yaml:5:{6 + MAX_DEPTH}"  # the bracket opening level MAX_DEPTH + 1 (the spec is level 1)
    assert f"{where} (top level): nesting deeper than {MAX_DEPTH} levels" in one_error(deep)
    many = BASE + "tags: [" + ", ".join(["x"] * (MAX_NODES + 10)) + "]\n"
    assert "YAML nodes" in one_error(many)
    ok = BASE + "tags: " + "[" * 10 + "]" * 10 + "\n"
    assert "nesting" not in one_error(ok)  # within the bound: a type error, not a bound error


def test_file_size_is_bounded_before_reading(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 100))
    result = invoke("validate", path)
    assert result.exit_code == 2 and f"{path}:1:1 (top level): the spec is larger than" in result.output


def test_error_output_is_capped_and_says_how_many_were_left_out():
    text = BASE + "".join(f"k{i}: 1\n" for i in range(3000))
    with pytest.raises(SpecError) as info:
        load("spec.yaml", text=text)
    lines = str(info.value).splitlines()
    assert len(info.value.errors) == 3000
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == f"spec.yaml: ... and {3000 - MAX_REPORTED} more errors not shown (3000 in all)"
    long_key = BASE + "k" * 5000 + ": 1\n"
    assert len(one_error(long_key)) < 1000


def test_integers_beyond_int64_are_refused():
    message = one_error(BASE + "seed: 18446744073709551616\n")
    assert "spec.yaml:5:1 seed: integer out of range" in message


# ------------------------------------------------------------------------------------------- item 4


def test_bad_explicit_tags_are_located():
    assert one_error(BASE.replace("lr: 0.02", "lr: !!float nan-ish")) == (
        "spec.yaml:3:27 (top level): 'nan-ish' is not a valid !!float value"
    )
    assert "is not a valid !!int" in one_error(BASE + "seed: !!int 1.5\n")
    assert "cannot tag a sequence" in one_error(BASE + "tags: !!map [1]\n")


@pytest.mark.parametrize("do", ["null", "[1]", "3"])
def test_event_do_of_the_wrong_type(do):
    text = BASE + f"events:\n  - when: {{step: {{at: 1}}}}\n    do: {do}\n"
    assert "spec.yaml:7:5 events.0.do: expected a mapping" in one_error(text)


def test_queries_too_deep_or_long_exit_2_with_a_column(tmp_path):
    cases = {
        "(" * 400 + "seed = 0" + ")" * 400: f"at column {MAX_QUERY_DEPTH + 1}",
        "not " * 900 + "seed = 0": "at column",
        "not " * 3000 + "seed = 0": "longer than",
        " and ".join(["seed = 0"] * 1000): "longer than",
        " and ".join(["a=1"] * 400): f"more than {MAX_QUERY_OPERATORS}",
    }
    for query, words in cases.items():
        result = invoke("query", query, "--registry", tmp_path)
        assert result.exit_code == 2, query[:40]
        assert "query error:" in result.output and words in result.output
        assert "Traceback" not in result.output
    assert query_limit_error("(seed = 0 and not (name = 'x'))") is None


# ------------------------------------------------------------------------------------------- item 5


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (BASE + "constants: {eps: .inf}\n", "5:13 constants.eps", "finite number"),
        (BASE.replace("lr: 0.02", "lr: .nan"), "3:23 optimizer.lr", "finite number"),
        (BASE.replace("lr: 0.02", 'lr: "1e400"'), "3:23 optimizer.lr", "`1e400` evaluates to inf"),
        (
            BASE.replace("lr: 0.02", "lr: {kind: cosine, peak: 0.1, decay_steps: 10, end: -inf}"),
            "3:70 optimizer.lr.end",
            "`-inf` evaluates to -inf",
        ),
        (BASE.replace("lr: 0.02", 'lr: "2**10000"'), "3:23 optimizer.lr", "beyond ±(2**63 - 1)"),
        (BASE.replace("lr: 0.02", 'lr: "1//0"'), "3:23 optimizer.lr", "zero in `1//0` (at column 2"),
        (BASE.replace("lr: 0.02", 'lr: "1 % 0"'), "3:23 optimizer.lr", "zero in `1 % 0` (at column 3"),
        (
            BASE.replace("lr: 0.02", 'lr: "eps[0]"') + "constants: {eps: 0.1}\n",
            "3:23 optimizer.lr",
            "too many indices (1) for a value of shape ()",
        ),
        (SUPERVISED.replace("PIPELINE", "[stakndardize]"), "5:14 problem.pipeline.0", "mean 'standardize'"),
        (
            SUPERVISED.replace("PIPELINE", "[{standardize: {mod: global}}]"),
            "5:14 problem.pipeline.0",
            "has no argument 'mod'; did you mean 'mode'?",
        ),
        (SUPERVISED.replace("PIPELINE", "[take_first]"), "5:14 problem.pipeline.0", "argument(s) n_train"),
        (
            SUPERVISED.replace("n: 8}", "n: 8, n_test: 18446744073709551616}"),
            "4:37 problem.data.n_test",
            "integer out of range",
        ),
        (
            "name: x\nproblem: {kind: toy, params: {u: 1.0, w: [1.0, 2.0]}, objective: 'u**2 + w[5]'}\n"
            "optimizer: {kind: gd, lr: 0.02}\ntrain: {steps: 10}\n",
            "2:55 problem.objective",
            "at the initial parameters: cannot evaluate `w[5]`: index 5 is out of range for axis 0 of size 2",
        ),
        (
            "name: x\nprecision: float32\nproblem: {kind: relu_scalar}\noptimizer: {kind: gd, lr: '1e39'}\n"
            "train: {steps: 10}\n",
            "4:23 optimizer.lr",
            "beyond the largest float32",
        ),
    ],
)
def test_validation_refuses_what_the_run_would_fail_on(text, where, words):
    message = one_error(text)
    assert f"spec.yaml:{where}: " in message and words in message, message


def test_integer_arithmetic_is_exact_or_refused():
    env = {"u": 3.0}
    assert float(compile_expr("2**10")(env)) == 1024.0
    assert float(compile_expr("7 // 2 + -3 % 2")(env)) == 4.0
    assert float(compile_expr("2**-1")(env)) == 0.5
    assert float(compile_expr("2**62 + (2**62 - 1)")(env)) == float(2**63 - 1)
    assert compile_expr("(1)")(env).dtype.kind == "f"
    for source, offset in [("2**10000", 0), ("1//0", 1), ("1 % 0", 2), ("3 / (2 - 2)", 2), ("0**-1", 0)]:
        with pytest.raises(ExprError) as info:
            compile_expr(source)
        assert info.value.offset == offset, source
    with pytest.raises(ExprError, match="beyond"):
        compile_expr("10**10**10")  # refused before computing
    assert float(compile_expr("u // 0")(env)) == float("inf")  # floats follow IEEE, as documented


def test_sweep_point_count_is_bounded():
    grid = "".join(f"    constants.{k}: [{', '.join(map(str, range(200)))}]\n" for k in "ab")
    text = BASE + f"constants: {{a: 1.0, b: 1.0}}\nsweep:\n  grid:\n{grid}"
    assert "sweep: the sweep has 40000 points; the limit is 10000" in one_error(text)


def test_the_library_still_validates():
    root = Path(__file__).resolve().parents[1] / "specs"
    for path in sorted(root.rglob("*.yaml")):
        load(path)


# ------------------------------------------------------------------------------------------- item 7


def test_safe_text_escapes_control_and_format_characters():
    assert safe_text("a\x1b[2Jb\x07\r\n\t\x9b\u202e\u200bc") == "a\\x1b[2Jb\\x07\\r\\n\\t\\x9b\\u202e\\u200bc"
    assert safe_text("—…‖ ✓ η") == "—…‖ ✓ η"
    assert safe_text("x" * 50, 10) == "xxxxxxx..."
    assert terminal_safe("a\x1b\nb\tc") == "a\\x1b\nb\tc"


EVIL = 'name: "evil\\x1b[2J\\x1b]0;t\\x07"\ndescription: "d\\x1b[31m"\ntags: ["t\\x1b[1m"]\n'


def test_ls_show_diff_escape_control_characters(tmp_path):
    spec = tmp_path / "evil.yaml"
    spec.write_text(EVIL + BASE.split("\n", 1)[1])
    registry = tmp_path / "registry"
    assert invoke("run", spec, "--registry", registry).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(BASE.replace("steps: 10", "steps: 11"))  # names are not part of a run's identity
    assert invoke("run", other, "--registry", registry).exit_code == 0
    runs = sorted(p.name for p in (registry / "objects").glob("*/*"))
    for args in (["ls"], ["show", runs[0][:8]], ["show", runs[1][:8]], ["diff", runs[0][:8], runs[1][:8]]):
        result = invoke(*args, "--registry", registry)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output, args
    listing = invoke("ls", "--registry", registry).output
    assert "evil\\x1b[2J" in listing


def _stored_run(tmp_path: Path) -> tuple[Path, str, Path]:
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE)
    registry = tmp_path / "registry"
    assert invoke("run", spec, "--registry", registry).exit_code == 0
    run_dir = next((registry / "objects").glob("*/*"))
    return registry, run_dir.name, run_dir


def test_export_refuses_targets_inside_the_registry(tmp_path):
    registry, run_id, run_dir = _stored_run(tmp_path)
    manifest = run_dir / "MANIFEST.json"
    before = manifest.read_bytes()
    for target in (manifest, registry / "x.zip", registry / "objects" / "new.zip"):
        result = invoke("export", run_id[:12], "--zip", target, "--overwrite", "--registry", registry)
        assert result.exit_code == 2 and "is inside the registry" in result.output
    assert manifest.read_bytes() == before and json.loads(before)
    # a symbolic link pointing into the registry is followed and refused as well
    link = tmp_path / "link.zip"
    link.symlink_to(manifest)
    assert export_target_problem(link, registry) is not None
    ok = tmp_path / "out.zip"
    assert invoke("export", run_id[:12], "--zip", ok, "--registry", registry).exit_code == 0 and ok.is_file()


def test_export_refuses_non_regular_files(tmp_path):
    registry, run_id, _ = _stored_run(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path, Path("/dev/null")):
        result = invoke("export", run_id[:12], "--zip", target, "--overwrite", "--registry", registry)
        assert result.exit_code == 2 and "not a regular file" in result.output, target
    assert Path("/dev/null").is_char_device()
    outside = tmp_path / "elsewhere.zip"
    outside.write_bytes(b"old")
    link = tmp_path / "link.zip"
    link.symlink_to(outside)
    assert "symbolic link" in (export_target_problem(link, registry) or "")
