"""End-to-end tests of the `eosdsl` command line (in-process through typer's runner)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import eosdsl.orchestration.running
from eosdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "bad_specs"
QUICKSTART = ROOT / "specs" / "examples" / "quickstart.yaml"

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


# Each malformed spec, the location the error must point at, and words the message must contain.
BAD_SPECS = [
    ("misspelled_key.yaml", "6:3 optimizer.betaa", ["unknown key 'betaa'", "did you mean 'beta'"]),
    ("wrong_type.yaml", "5:3 train.steps", ["expected an integer", "'many'"]),
    ("unknown_name.yaml", "4:23 optimizer.lr", ["unknown name 'epss'", "did you mean 'eps'"]),
    ("forbidden_construct.yaml", "5:3 problem.objective", ["attribute access", "not allowed"]),
    ("malformed.yaml", "3:10", ["expected ',' or '}'"]),
    ("unknown_kind.yaml", "3:1 optimizer", ["unknown kind 'heavyball'", "did you mean 'heavy_ball'"]),
]


@pytest.mark.parametrize(("name", "where", "words"), BAD_SPECS)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_spec_gives_located_error_and_exit_2(command, name, where, words, tmp_path):
    """A bad spec is one readable `file:line:col key.path: message` line, exit 2, no traceback."""
    path = BAD / name
    args = [command, path] + (["--registry", tmp_path] if command == "run" else [])
    result = invoke(*args)
    assert result.exit_code == 2
    text = result.output
    assert f"{path}:{where}" in text
    for word in words:
        assert word in text
    assert "Traceback" not in text


def test_bad_override_is_reported(tmp_path):
    """A malformed command-line override is an input error (exit 2), named in the message."""
    result = invoke("run", QUICKSTART, "train.steps", "--registry", tmp_path)
    assert result.exit_code == 2
    assert "train.steps" in result.output


@pytest.mark.slow
def test_run_stores_then_reuses_without_recomputing(tmp_path, monkeypatch):
    """Running a stored spec again returns the same run id and never calls the engine."""
    first = invoke("run", QUICKSTART, "--registry", tmp_path)
    assert first.exit_code == 0, first.output
    run_id = re.search(r"run ([0-9a-f]{12})", first.output).group(1)
    assert "stored in" in first.output and str(tmp_path) in first.output

    def no_recompute(*args, **kwargs):
        raise AssertionError("the engine ran for a stored spec")

    monkeypatch.setattr(eosdsl.orchestration.running, "execute", no_recompute)
    second = invoke("run", QUICKSTART, "--registry", tmp_path)
    assert second.exit_code == 0, second.output
    assert f"run {run_id}" in second.output and "reused" in second.output
    assert len(list((tmp_path / "objects").glob("*/*"))) == 1


@pytest.mark.slow
def test_override_changes_identity_and_show_plot_ls(tmp_path):
    """An override is a different run; `show`, `ls` and `plot` work on stored runs."""
    a = invoke("run", QUICKSTART, "train.steps=300", "--registry", tmp_path)
    b = invoke("run", QUICKSTART, "train.steps=400", "--registry", tmp_path)
    id_a = re.search(r"run ([0-9a-f]{12})", a.output).group(1)
    id_b = re.search(r"run ([0-9a-f]{12})", b.output).group(1)
    assert id_a != id_b
    shown = invoke("show", id_a[:6], "--registry", tmp_path)
    assert shown.exit_code == 0 and "completed at step 300" in shown.output
    listed = invoke("ls", "--registry", tmp_path)
    assert id_a in listed.output and id_b in listed.output
    plotted = invoke("plot", id_a, "--out", tmp_path / "figs", "--registry", tmp_path)
    assert plotted.exit_code == 0
    assert {"loss.png", "sharpness.png", "params.png"} <= {p.name for p in (tmp_path / "figs").iterdir()}
    missing = invoke("show", "ffffffff", "--registry", tmp_path)
    assert missing.exit_code == 2


@pytest.mark.slow
def test_multirun_grid_makes_one_run_per_point(tmp_path):
    """`-m key=linspace(...)` runs each point as its own stored run and records the sweep."""
    result = invoke(
        "run",
        QUICKSTART,
        "train.steps=200",
        "-m",
        "constants.eps=linspace(0.01, 0.03, 3)",
        "--registry",
        tmp_path,
    )
    # 200 steps are too few for the sharpness (u² = 100) to fall below 2/η: each point's "final
    # sharpness < 2/η" check fails, so the command exits 1 (a check failed), deterministically.
    assert result.exit_code == 1, result.output
    assert result.output.count("] run ") == 3
    assert len(list((tmp_path / "objects").glob("*/*"))) == 3
    (sweep,) = (tmp_path / "sweeps").glob("*.json")
    members = json.loads(sweep.read_text())["members"]
    assert [m["label"] for m in members] == [f"constants.eps={v:g}" for v in (0.01, 0.02, 0.03)]


def test_schema_is_json_schema():
    """`eosdsl schema` prints a JSON Schema whose properties are the spec's top-level keys."""
    result = invoke("schema")
    schema = json.loads(result.output)
    assert {"name", "problem", "optimizer", "train", "measure", "checks", "sweep"} <= set(
        schema["properties"]
    )


@pytest.mark.slow
def test_case_ordering_is_checked_at_each_grid_point(tmp_path):
    """Cases × a `-m` grid: an ordering over case labels holds among the cases at every grid point."""
    spec = ROOT / "specs" / "phb-catapults" / "relu-scalar-four-scenarios.yaml"
    result = invoke("run", spec, "-m", "train.steps=2500,3000", "--registry", tmp_path)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "ordering sharpness" in line]
    assert len(lines) == 2 and all("✓" in line for line in lines)
    assert "[train.steps=2500]" in lines[0] and "[train.steps=3000]" in lines[1]


EVENT_SPEC = """\
name: events-and-two-finals
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 40}
measure: [{kind: loss}, {kind: sharpness}]
events:
  - {name: halt, when: {step: {at: 30}}, do: {stop: true}}
  - {name: never, when: {loss: {below: -1}}, do: {freeze_schedule: true}}
checks:
  - {kind: final, of: sharpness, below: 1000}
  - {kind: final, of: sharpness, above: 9}
"""


def test_run_prints_events_and_numbers_same_named_checks(tmp_path):
    """`eosdsl run` says which events fired; two `final` checks of one series (both named "final
    sharpness") are told apart as #1 and #2, in `run`, `show` and `check`."""
    spec = tmp_path / "events.yaml"
    spec.write_text(EVENT_SPEC)
    result = invoke("run", spec, "--registry", tmp_path / "registry")
    assert result.exit_code == 0, result.output
    assert "  event halt: fired at step 30\n" in result.output
    assert "  event never: did not fire\n" in result.output
    assert "✓ final sharpness #1: sharpness = " in result.output
    assert "✓ final sharpness #2: sharpness = " in result.output
    run_id = re.search(r"run ([0-9a-f]{12})", result.output).group(1)
    shown = invoke("show", run_id, "--registry", tmp_path / "registry").output
    assert "event halt: fired at step 30" in shown and "final sharpness #2:" in shown
    checked = invoke("check", run_id, "--spec", spec, "--registry", tmp_path / "registry").output
    assert "final sharpness #1:" in checked and "final sharpness #2:" in checked


MIXED = """\
name: mixed
constants: {eps: 0.01}
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: (2 + epss) / 100}
train: {steps: 40}
measure: [{kind: loss}, {kind: sharpness}]
checks:
  - {kind: final, of: sharpness, below: mss}
  - {kind: final, of: sharpness, abov: 9}
  - {kind: lemma6, tol: nope}
"""


def test_validate_reports_expression_errors_with_structural_ones(tmp_path):
    """Expression (semantic) errors of the parts that validated come in the same report as the
    structural errors: a check with a bad key does not hide a bad name in the learning rate, and the
    checks after it keep their indices."""
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    result = invoke("validate", path)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{path}:4:23 optimizer.lr: unknown name 'epss'")
    needs = "final needs the series mss: add `{kind: mss}` to measure"
    assert lines[1] == f"{path}:8:34 checks.0.below: {needs}"
    assert lines[2].startswith(f"{path}:9:34 checks.1.abov: unknown key 'abov'")
    assert lines[3].startswith(f"{path}:10:20 checks.2.tol: expected a number")
    assert len(lines) == 4
    # a measure with a structural error: the checks' semantic errors (which may follow from it) are not
    # reported, the optimizer's are
    broken = MIXED.replace("{kind: sharpness}]", "{kind: sharpness, evry: 2}]")
    path.write_text(broken)
    text = invoke("validate", path).output
    assert "measure.1.evry" in text and "optimizer.lr: unknown name 'epss'" in text
    assert "checks.0.below" not in text
