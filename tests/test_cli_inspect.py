"""`eosdsl ls / query / show / diff / registry reindex` on real stored runs (through typer's runner)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.orchestration import run_one, run_points
from eosdsl.registry import Registry
from eosdsl.registry.index import INDEX_FILE
from eosdsl.registry.manifest import MANIFEST
from eosdsl.spec.load import load
from eosdsl.spec.models import Spec

runner = CliRunner()

BASE = {
    "problem": {"kind": "relu_scalar"},
    "optimizer": {"kind": "gd", "lr": 0.0201},
    "train": {"steps": 40},
    "measure": [{"kind": "loss"}, {"kind": "sharpness"}],
    "checks": [{"kind": "lemma6"}, {"kind": "final", "of": "sharpness", "below": 99.9}],
}
SWEEP = """\
name: tiny-sweep
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: 0.0201}
train: {steps: 41}  # not BASE's 40: checks are not identity, so the gd case would be the gd run
measure: [{kind: loss}, {kind: sharpness}]
checks:
  - {kind: ordering, of: sharpness, order: decreasing, over: [gd, slow]}
sweep:
  cases:
    - {label: gd}
    - label: slow
      set: {optimizer: {kind: gd, lr: 0.0199}}
"""


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A registry with a GD run, a heavy-ball run and a two-point sweep; ``ids`` maps names to keys."""
    base = tmp_path_factory.mktemp("cli")
    root = base / "registry"
    reg = Registry(root)
    ids = {}
    optimizers = {"gd": {"kind": "gd", "lr": 0.0201}, "hb": {"kind": "heavy_ball", "lr": 0.0201, "beta": 0.5}}
    for name, optimizer in optimizers.items():
        spec = Spec.model_validate({**BASE, "name": name, "optimizer": optimizer})
        run = run_one(spec, reg).run
        ids[name] = run.run_key
    (base / "sweep.yaml").write_text(SWEEP)
    loaded = load(base / "sweep.yaml")
    outcomes, _, sweep = run_points(loaded.spec, loaded.points, reg)
    for outcome in outcomes:
        ids[outcome.run.name] = outcome.run.run_key
    ids["sweep"] = sweep
    return root, ids


@pytest.fixture
def reg(built, tmp_path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "registry"
    shutil.copytree(built[0], root)
    return root, built[1]


def test_built_registry_has_gd_heavy_ball_and_sweep(built):
    _, ids = built
    assert set(ids) == {"gd", "hb", "tiny-sweep[gd]", "tiny-sweep[slow]", "sweep"}


# --------------------------------------------------------------------------------------------- ls


def test_ls_lists_runs_with_hyperparameters_and_checks(reg):
    root, ids = reg
    result = invoke("ls", "--registry", root)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "note: rebuilt" not in text  # run_one keeps the index current
    for name in ("gd", "hb", "tiny-sweep[gd]", "tiny-sweep[slow]"):
        assert ids[name][:12] in text
    assert "heavy_ball" in text and "beta=0.5" in text and "lr=0.0199" in text
    assert "1/2" in text and "completed" in text
    again = invoke("ls", "--registry", root)
    assert "note:" not in again.output  # repaired once


def test_ls_limit(reg):
    root, ids = reg
    result = invoke("ls", "-n", "1", "--registry", root)
    assert result.exit_code == 0
    assert len(re.findall(r"^[0-9a-f]{12} ", result.output, flags=re.M)) == 1


def test_ls_on_an_empty_or_missing_registry(tmp_path):
    result = invoke("ls", "--registry", tmp_path / "none")
    assert result.exit_code == 0 and "no runs" in result.output
    assert not (tmp_path / "none").exists()


def test_ls_survives_a_garbage_index_a_stale_claim_and_a_half_written_run(reg):
    root, ids = reg
    (root / INDEX_FILE).write_bytes(b"\xff" * 4096)
    for suffix in ("-wal", "-shm"):
        (root / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    (root / "claims").mkdir(exist_ok=True)
    (root / "claims" / f"{'e' * 64}.json").write_text('{"pid": 999999999, "host": "gone"}')
    half = root / "objects" / "ee" / ("e" * 64)
    half.mkdir(parents=True)
    (half / "spec.json").write_text("{}")  # no env.json, run.json: never committed
    (root / "staging" / ("d" * 64)).mkdir(parents=True)
    result = invoke("ls", "--registry", root)
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output
    assert ids["gd"][:12] in result.output and "eeeeeeee" not in result.output


# --------------------------------------------------------------------------------------------- query


def test_query_lists_matching_runs(reg):
    root, ids = reg
    result = invoke("query", 'optimizer.kind = "heavy_ball" and final.sharpness < 101', "--registry", root)
    assert result.exit_code == 0, result.output
    assert ids["hb"][:12] in result.output and ids["gd"][:12] not in result.output
    lower = invoke("query", "optimizer.lr < 0.02 or check.`final sharpness` = true", "--registry", root)
    assert ids["tiny-sweep[slow]"][:12] in lower.output and ids["gd"][:12] not in lower.output


def test_query_without_matches_and_typo_hints(reg):
    root, _ = reg
    result = invoke("query", "optimizer.betta = 0.5 and final.sharpnes > 1", "--registry", root)
    assert result.exit_code == 0
    assert "no runs match" in result.output
    assert "did you mean 'optimizer.beta'" in result.output and "did you mean 'sharpness'" in result.output


def test_query_error_exits_2_with_the_column(reg):
    root, _ = reg
    result = invoke("query", "final.sharpness <", "--registry", root)
    assert result.exit_code == 2
    assert "expected a value after '<' at column 18" in result.output
    unknown = invoke("query", 'optimiser.kind = "gd"', "--registry", root)
    assert unknown.exit_code == 2 and "did you mean 'optimizer'" in unknown.output


# --------------------------------------------------------------------------------------------- show


def test_show_prints_spec_environment_status_summaries_and_checks(reg):
    root, ids = reg
    result = invoke("show", ids["hb"][:8], "--registry", root)
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"run {ids['hb']}" in text and "completed at step 40" in text
    assert "environment:" in text and "x64: True" in text
    assert re.search(r"sharpness\s+41 values, final \S+ at step 40, min \S+ at step \d+", text)
    assert "n/a lemma6" in text and "✗ final sharpness" in text
    assert re.search(r"checks — judged \S+ by eosdsl \S+ \(1/2 passed\)", text)
    assert "spec:" in text and "kind: heavy_ball" in text and "beta: 0.5" in text


def test_show_ambiguous_prefix_lists_the_candidates(reg):
    root, ids = reg
    registry = Registry(root)
    source = registry.object_path(ids["gd"])
    twin = ids["gd"][:8] + ("0" if ids["gd"][8] != "0" else "1") + ids["gd"][9:]
    shutil.copytree(source, registry.object_path(twin))
    result = invoke("show", ids["gd"][:8], "--registry", root)
    assert result.exit_code == 2
    assert "ambiguous" in result.output
    assert f"{ids['gd'][:12]}  gd" in result.output and f"{twin[:12]}  gd" in result.output
    assert invoke("show", ids["gd"][:10], "--registry", root).exit_code == 0


def test_show_sweep_lists_members_and_sweep_checks(reg):
    root, ids = reg
    result = invoke("show", ids["sweep"][:10], "--registry", root)
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"sweep {ids['sweep']}" in text and "tiny-sweep" in text
    assert re.search(rf"gd\s+{ids['tiny-sweep[gd]'][:12]}\s+completed\s+\S+\s+\S+", text)
    assert ids["tiny-sweep[slow]"][:12] in text
    assert "sweep checks (" in text and "ordering sharpness" in text


def test_show_unknown_damaged_and_without_manifest(reg):
    root, ids = reg
    assert invoke("show", "ffffffff", "--registry", root).exit_code == 2
    assert "not an id prefix" in invoke("show", "zz", "--registry", root).output
    run_dir = Registry(root).object_path(ids["gd"])
    (run_dir / "spec.json").write_text("{ torn")
    damaged = invoke("show", ids["gd"][:8], "--registry", root)
    assert damaged.exit_code == 1 and "damaged" in damaged.output and "Traceback" not in damaged.output
    (run_dir / MANIFEST).unlink()  # no longer a committed run: not served, but explained
    unserved = invoke("show", ids["gd"][:8], "--registry", root)
    assert unserved.exit_code == 2
    assert "no run matches" in unserved.output and "no MANIFEST.json" in unserved.output


# --------------------------------------------------------------------------------------------- diff


def test_diff_shows_spec_changes_added_and_removed(reg):
    root, ids = reg
    result = invoke("diff", ids["gd"][:8], ids["hb"][:8], "--registry", root)
    assert result.exit_code == 0, result.output
    text = result.output
    assert 'optimizer.kind: "gd" → "heavy_ball"' in text
    assert "+ optimizer.beta: 0.5" in text and '+ optimizer.lr_convention: "gd_equivalent"' in text
    assert 'name: "gd" → "hb"' in text
    assert "identical environment" in text and "identical provenance" in text
    back = invoke("diff", ids["hb"][:8], ids["gd"][:8], "--registry", root)
    assert "- optimizer.beta: 0.5" in back.output


def test_diff_of_a_run_with_itself_and_with_another_environment(reg):
    root, ids = reg
    same = invoke("diff", ids["gd"][:8], ids["gd"], "--registry", root)
    assert same.exit_code == 0 and "identical specs" in same.output
    env = Registry(root).object_path(ids["hb"]) / "env.json"
    env.write_text(json.dumps({**json.loads(env.read_text()), "backend": "gpu"}))
    changed = invoke("diff", ids["gd"][:8], ids["hb"][:8], "--registry", root)
    assert 'backend: "cpu" → "gpu"' in changed.output
    assert invoke("diff", ids["gd"][:8], ids["sweep"][:8], "--registry", root).exit_code == 2


# --------------------------------------------------------------------------------------------- reindex


def test_registry_reindex_reports_counts_and_problems(reg):
    root, ids = reg
    (root / INDEX_FILE).unlink()
    result = invoke("registry", "reindex", "--registry", root)
    assert result.exit_code == 0, result.output
    assert f"indexed 4 run(s) into {root / INDEX_FILE}" in result.output
    (Registry(root).object_path(ids["hb"]) / MANIFEST).unlink()
    (Registry(root).object_path(ids["gd"]) / "run.json").write_text("[")
    again = invoke("registry", "reindex", "--registry", root)
    assert "indexed 2 run(s)" in again.output
    assert f"skipped {ids['gd'][:12]}: unreadable" in again.output
    assert "ignored 1 entry under objects/" in again.output and ids["hb"][:12] in again.output
    listed = invoke("ls", "--registry", root)
    assert listed.exit_code == 0 and "note:" not in listed.output
    assert ids["hb"][:12] not in listed.output and ids["gd"][:12] not in listed.output


def test_runs_removed_by_verify_drop_out_of_the_index(reg):
    root, ids = reg
    assert invoke("ls", "--registry", root).exit_code == 0
    (Registry(root).object_path(ids["hb"]) / "env.json").write_text('{"backend": "tampered"}')
    verified = invoke("registry", "verify", "--registry", root)
    assert verified.exit_code == 1
    listed = invoke("ls", "--registry", root)
    assert "no longer stored" in listed.output and ids["hb"][:12] not in listed.output


def test_diff_hides_fields_null_on_one_side_and_absent_on_the_other():
    from eosdsl.cli.inspect import diff_lines

    a = {"optimizer": {"kind": "gd", "lr": 0.1}, "train": {"steps": 5, "max_time": None}}
    b = {"optimizer": {"kind": "heavy_ball", "lr": 0.1, "beta": 0.5, "nesterov": None}, "train": {"steps": 5}}
    assert diff_lines(a, b) == ["  + optimizer.beta: 0.5", '  optimizer.kind: "gd" → "heavy_ball"']
    assert diff_lines({"x": None}, {"x": 1}) == ["  x: null → 1"]


def test_ls_shows_expressions_as_numbers_and_fits_80_columns(tmp_path):
    """``lr: eta``, ``beta: b`` and a warmup schedule's ends show as numbers; no line is wider than the
    terminal (CliRunner's 80 columns) and a long name ends in "…"."""
    reg = Registry(tmp_path / "registry")
    long_name = "a-name-much-longer-than-the-name-column-of-ls-at-eighty-columns"
    for name, optimizer in (
        (long_name, {"kind": "heavy_ball", "lr": "eta", "beta": "b"}),
        ("warm", {"kind": "gd", "lr": {"kind": "linear_warmup", "start": 0.001, "end": "eta", "steps": 10}}),
    ):
        spec = {**BASE, "name": name, "constants": {"eta": 0.0201, "b": 0.5}, "optimizer": optimizer}
        run_one(Spec.model_validate(spec), reg)
    result = invoke("ls", "--registry", reg.root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    text = " ".join(lines)
    assert "lr=0.0201" in text and "beta=0.5" in text and "beta=b" not in text and "lr=eta" not in text
    assert "warmup(0.001→0.0201)" in text
    assert long_name not in text and "a-name-much-" in text and "…" in text
