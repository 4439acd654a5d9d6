"""`eosdsl show <sweep>` and :mod:`eosdsl.registry.sweeps` on a real stored sweep (``small_sweep``)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.registry import Registry
from eosdsl.registry.sweeps import (
    CASE,
    SummaryError,
    default_summaries,
    load_sweep,
    parse_summaries,
    summary_value,
)

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def table(output: str) -> list[dict[str, str]]:
    """The rows of the member table in ``show`` output, cut at the header's column starts."""
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(r"(case|label|problem\.alpha)\s", line))
    header = lines[at]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    rows = []
    for line in lines[at + 1 :]:
        if not line or line.startswith(("sweep checks", "note:", " ")):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def final(run, name: str) -> float:
    """The last recorded value of a series, read directly."""
    _, values = run.series(name)
    return float(values[-1])


def expected_cell(value: float) -> str:
    return f"{value:.6g}"


@pytest.fixture
def copied(small_sweep, tmp_path) -> tuple[Path, str]:
    """A private copy of the small sweep's registry, to damage."""
    root, sweep_id = small_sweep
    shutil.copytree(root, tmp_path / "registry")
    return tmp_path / "registry", sweep_id


def record_path(root: Path, sweep_id: str) -> Path:
    return root / "sweeps" / f"{sweep_id}.json"


# --------------------------------------------------------------------------------------------- the table


def test_default_table_lists_axes_run_status_and_final_values_of_the_stored_runs(small_sweep):
    root, sweep_id = small_sweep
    result = invoke("show", sweep_id[:8], "--registry", root)
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    header = next(line for line in result.output.splitlines() if line.startswith("case"))
    assert header.split() == [
        "case",
        "problem.alpha",
        "constants.eta",
        "run",
        "status",
        "final.sharpness",
        "final.loss",
    ]
    record = json.loads(record_path(root, sweep_id).read_text())
    assert len(rows) == len(record["members"]) == 12
    registry = Registry(root)
    for row, member in zip(rows, record["members"], strict=True):  # expansion order
        run = registry.get(member["run_key"])
        assert row["case"] == member["case"]
        assert float(row["problem.alpha"]) == member["values"]["problem.alpha"]
        assert float(row["constants.eta"]) == member["values"]["constants.eta"]
        assert row["run"] == member["run_key"][:12] and row["status"] == run.info["status"]
        assert row["final.loss"] == expected_cell(final(run, "loss"))
        assert row["final.sharpness"] == expected_cell(final(run, "sharpness"))
    assert {row["status"] for row in rows} == {"completed", "diverged"}


def test_chosen_summaries_and_checks_equal_values_computed_from_the_series(small_sweep):
    root, sweep_id = small_sweep
    summaries = [
        "final.test_loss",
        "min.loss",
        "count.sharpness",
        "check.`final loss`",
        "check.`final loss`.margin",
    ]
    options = [option for text in summaries for option in ("-s", text)]
    result = invoke("show", sweep_id[:8], *options, "--summary", "max.loss", "--registry", root)
    assert result.exit_code == 0, result.output
    registry = Registry(root)
    seen = set()
    for row in table(result.output):
        run = registry.resolve(row["run"])
        _, loss = run.series("loss")
        assert row["final.test_loss"] == expected_cell(final(run, "test_loss"))
        assert row["min.loss"] == expected_cell(float(np.nanmin(loss)))
        assert row["max.loss"] == expected_cell(float(np.nanmax(loss)))
        assert row["count.sharpness"] == str(run.series("sharpness")[0].size)
        (check,) = run.checks
        assert row["check.`final loss`"] == ("✓" if check["passed"] else "✗")
        seen.add(check["passed"])
        margin = check["margin"]
        assert row["check.`final loss`.margin"] == ("" if margin is None else expected_cell(margin))
    assert seen == {True, False}


def test_summaries_through_the_api(small_sweep):
    root, sweep_id = small_sweep
    registry = Registry(root)
    sweep = load_sweep(registry, sweep_id, registry.read_sweep(sweep_id))
    assert sweep.axes == ("problem.alpha", "constants.eta") and sweep.cases
    assert sweep.numeric_axes() == ["problem.alpha", "constants.eta"]
    assert [m.value(CASE) for m in sweep.members] == ["gd"] * 6 + ["hb"] * 6
    assert [s.text for s in default_summaries(sweep)] == ["final.sharpness", "final.loss"]
    (summary,) = parse_summaries(["max.test_loss"], sweep)
    for member in sweep.members:
        _, values = member.run.series("test_loss")
        expected = np.nanmax(values) if not np.isnan(values).all() else math.nan
        assert summary_value(member.run, summary) == pytest.approx(expected, nan_ok=True)
    assert summary_value(None, summary) is None


# ------------------------------------------------------------------------------------------- missing members


def test_a_member_whose_run_is_gone_shows_as_missing(copied):
    root, sweep_id = copied
    record = json.loads(record_path(root, sweep_id).read_text())
    gone = record["members"][1]
    shutil.rmtree(Registry(root).object_path(gone["run_key"]))
    result = invoke("show", sweep_id[:8], "-s", "final.test_loss", "--registry", root)
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert rows[1] == {
        "case": "gd",
        "problem.alpha": "0.5",
        "constants.eta": "0.003",
        "run": gone["run_key"][:12],
        "status": "missing",
        "final.test_loss": "",
    }
    assert all(row["status"] != "missing" for i, row in enumerate(rows) if i != 1)


def test_a_failed_member_shows_its_status_and_error(copied):
    root, sweep_id = copied
    path = record_path(root, sweep_id)
    record = json.loads(path.read_text())
    record["members"][0].update(run_key="f" * 64, status="failed", error="RuntimeError: out of memory")
    path.write_text(json.dumps(record))
    result = invoke("show", sweep_id[:8], "--registry", root)
    assert result.exit_code == 0, result.output
    first = table(result.output)[0]
    assert first["status"] == "failed" and first["final.loss"] == "" and first["run"] == "f" * 12
    assert f"note: {record['members'][0]['label']} failed: RuntimeError: out of memory" in result.output


def test_an_old_record_without_axes_lists_labels(copied):
    root, sweep_id = copied
    path = record_path(root, sweep_id)
    record = json.loads(path.read_text())
    del record["axes"]
    for member in record["members"]:
        del member["case"], member["values"]
    path.write_text(json.dumps(record))
    result = invoke("show", sweep_id[:8], "--registry", root)
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert [row["label"] for row in rows] == [m["label"] for m in record["members"]]
    assert rows[0]["label"] == "gd,problem.alpha=0.5,constants.eta=0.001"
    assert all(row["final.loss"] for row in rows)


# --------------------------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ("final.tset_loss", "has the series 'tset_loss'; available: loss, sharpness"),
        ("check.lemma6", "has the check 'lemma6'; available: final loss"),
        ("status", "'status' is not a per-run summary"),
        ("final", "needs a series name"),
        ("final.loss and", "expected one field"),
        ("", "expected one field"),
    ],
)
def test_a_bad_summary_exits_2_naming_what_is_available(small_sweep, summary, message):
    root, sweep_id = small_sweep
    result = invoke("show", sweep_id[:8], "-s", summary, "--registry", root)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_summary_error_is_a_value_error(small_sweep):
    root, sweep_id = small_sweep
    registry = Registry(root)
    sweep = load_sweep(registry, sweep_id, registry.read_sweep(sweep_id))
    with pytest.raises(SummaryError, match="available: loss, sharpness, .*test_loss"):
        parse_summaries(["min.nope"], sweep)


def test_summary_on_a_run_exits_2(small_sweep):
    root, sweep_id = small_sweep
    record = json.loads(record_path(root, sweep_id).read_text())
    result = invoke("show", record["members"][0]["run_key"][:10], "-s", "final.loss", "--registry", root)
    assert result.exit_code == 2 and "--summary is for sweeps" in result.output
