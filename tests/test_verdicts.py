"""Checks are judgements, not identity: verdicts stored beside a run, re-judged without recomputing."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import eosdsl.orchestration.running
from eosdsl.cli import app
from eosdsl.registry import Registry, spec_id
from eosdsl.registry.integrity import verify_run
from eosdsl.registry.verdicts import current_verdict, find_verdict, verdict_id, write_verdict
from eosdsl.spec.load import load

runner = CliRunner()

SPEC = """\
name: verdict-tiny
precision: float64
problem: {kind: toy, params: {w: 1.0}, objective: "0.5 * w**2"}
optimizer: {kind: gd, lr: 0.1}
train: {steps: 50}
measure: [{kind: loss}, {kind: params}]
checks:
  - {kind: final, of: loss, below: 1.0e-2}
"""
EXTRA = "  - {kind: final, of: w, below: 1.0e-9}\n"  # w_50 = 0.9^50 ≈ 5.2e-3: fails

SWEEP = SPEC + """\
sweep:
  grid: {optimizer.lr: [0.05, 0.1, 0.2]}
"""
TREND = """\
  checks:
    - {kind: trend, of: loss, along: optimizer.lr, direction: decreasing}
"""


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file of a committed run."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def test_verdict_records_are_keyed_by_checks_and_version(tmp_path) -> None:
    key = "ab" * 32
    a, b = [{"kind": "final", "of": "loss"}], [{"kind": "lemma6"}]
    assert verdict_id(a, "1.0") != verdict_id(b, "1.0") != verdict_id(a, "1.1")
    assert current_verdict(tmp_path, key) is None and find_verdict(tmp_path, key, a) is None
    first = write_verdict(tmp_path, key, a, [{"name": "x", "passed": True}])
    time.sleep(0.01)
    write_verdict(tmp_path, key, b, [{"name": "y", "passed": False}])
    assert current_verdict(tmp_path, key)["checks"] == b  # the newest judgement is current
    time.sleep(0.01)
    assert find_verdict(tmp_path, key, a) == first  # using a stored verdict makes it current again
    assert current_verdict(tmp_path, key)["checks"] == a
    (tmp_path / "verdicts" / key[:2] / key / "zz.json").write_text("{not json")  # damaged: ignored
    assert current_verdict(tmp_path, key)["checks"] == a


def test_spec_id_ignores_checks() -> None:
    plain = load("a.yaml", text=SPEC).spec.model_dump(mode="json")
    more = load("a.yaml", text=SPEC + EXTRA).spec.model_dump(mode="json")
    assert plain["checks"] != more["checks"]
    assert spec_id(plain) == spec_id(more)


@pytest.mark.slow
def test_adding_a_check_judges_the_stored_run_without_recomputing(tmp_path, monkeypatch) -> None:
    registry = tmp_path / "registry"
    (tmp_path / "a.yaml").write_text(SPEC)
    (tmp_path / "b.yaml").write_text(SPEC + EXTRA)
    first = invoke("run", tmp_path / "a.yaml", "--registry", registry)
    assert first.exit_code == 0, first.output
    run_id = re.search(r"run ([0-9a-f]{12})", first.output).group(1)
    run = Registry(registry).resolve(run_id)
    before = _snapshot(run.path)

    def no_recompute(*args, **kwargs):
        raise AssertionError("the engine ran for a stored run")

    monkeypatch.setattr(eosdsl.orchestration.running, "execute", no_recompute)
    monkeypatch.setattr(eosdsl.orchestration.running, "execute_pack", no_recompute)
    second = invoke("run", tmp_path / "b.yaml", "--registry", registry)
    assert f"run {run_id}" in second.output and "(reused)" in second.output
    assert "✗ final w" in second.output and second.exit_code == 1  # the new check, judged and failing
    assert len(list((registry / "objects").glob("*/*"))) == 1
    assert _snapshot(run.path) == before and verify_run(run, deep=True) == []  # committed run untouched

    verdict = current_verdict(registry, run.run_key)
    assert [c["kind"] for c in verdict["checks"]] == ["final", "final"]
    assert [r["passed"] for r in verdict["results"]] == [True, False]
    assert verdict["results"][1]["values"]["value"] == pytest.approx(0.9**50, rel=1e-12)

    failing = invoke("query", "check.`final w` = false", "--registry", registry)
    assert run_id in failing.output, failing.output
    passing = invoke("query", "check.`final loss` = true", "--registry", registry)
    assert run_id in passing.output
    assert "1/2" in invoke("ls", "--registry", registry).output

    # `eosdsl check` re-evaluates: with the run's own last checks, or with another spec file's
    rechecked = invoke("check", run_id, "--registry", registry)
    assert rechecked.exit_code == 1 and "2 checks judged" in rechecked.output
    back = invoke("check", run_id, "--spec", tmp_path / "a.yaml", "--registry", registry)
    assert back.exit_code == 0 and "1 checks judged" in back.output
    assert run_id not in invoke("query", "check.`final w` = false", "--registry", registry).output
    (tmp_path / "other.yaml").write_text(SPEC.replace("lr: 0.1", "lr: 0.2"))
    other = invoke("check", run_id, "--spec", tmp_path / "other.yaml", "--registry", registry)
    assert other.exit_code == 2 and "is the spec of run" in other.output
    assert _snapshot(run.path) == before


@pytest.mark.slow
def test_a_new_sweep_claim_keeps_the_sweep_and_its_runs(tmp_path, monkeypatch) -> None:
    registry = tmp_path / "registry"
    (tmp_path / "s.yaml").write_text(SWEEP)
    first = invoke("run", tmp_path / "s.yaml", "--registry", registry)
    assert first.exit_code == 0, first.output
    sweep = re.search(r"sweep ([0-9a-f]{12})", first.output).group(1)
    running = eosdsl.orchestration.running
    monkeypatch.setattr(running, "execute_pack", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr(running, "execute", lambda *a, **k: pytest.fail("recomputed"))
    (tmp_path / "t.yaml").write_text(SWEEP + TREND)
    second = invoke("run", tmp_path / "t.yaml", "--registry", registry)
    assert f"sweep {sweep}" in second.output and second.output.count("(reused)") == 3
    assert "trend" in second.output
    checked = invoke("check", sweep, "--registry", registry)
    assert "trend" in checked.output and checked.output.count("checks judged") == 3
    assert len(list((registry / "sweeps").glob("*.json"))) == 1
