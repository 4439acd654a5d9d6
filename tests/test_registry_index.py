"""The SQLite index of the registry: contents, the query language, repair, concurrency."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import eosdsl.orchestration.commit
from eosdsl.orchestration import run_one
from eosdsl.registry import Registry
from eosdsl.registry.index import (
    INDEX_FILE,
    SCHEMA_VERSION,
    Index,
    flatten,
    open_index,
    series_summary,
    update_index,
)
from eosdsl.registry.query import QueryError, compile_query
from eosdsl.spec.models import Spec

BASE = {
    "problem": {"kind": "relu_scalar"},
    "optimizer": {"kind": "gd", "lr": 0.0201},
    "train": {"steps": 50},
    "measure": [{"kind": "loss"}, {"kind": "sharpness"}, {"kind": "params"}],
    "checks": [{"kind": "lemma6"}, {"kind": "final", "of": "sharpness", "below": 99.9}],
}
VARIANTS = {
    "gd-a": {},
    "gd-b": {"optimizer": {"kind": "gd", "lr": 0.0195}},
    "hb": {"optimizer": {"kind": "heavy_ball", "lr": 0.0201, "beta": 0.5}},
    "expr": {"constants": {"eps": 0.01}, "optimizer": {"kind": "gd", "lr": "(2 + eps) / 100"}},
    "switch": {
        "events": [
            {
                "name": "go heavy",
                "when": {"step": {"at": 20}},
                "do": {"switch_optimizer": {"kind": "heavy_ball", "beta": 0.5}},
            }
        ]
    },
}


def spec_of(name: str, **changes) -> Spec:
    return Spec.model_validate({**BASE, **VARIANTS.get(name, {}), **changes, "name": name})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A registry with the five VARIANTS runs (each indexed with update_index), built once."""
    root = tmp_path_factory.mktemp("built") / "registry"
    reg = Registry(root)
    for name in VARIANTS:
        update_index(reg, run_one(spec_of(name), reg).run)
    return root


@pytest.fixture
def reg(built, tmp_path) -> Registry:
    """A private copy of the built registry (tests may damage it)."""
    root = tmp_path / "registry"
    shutil.copytree(built, root)
    return Registry(root)


@pytest.fixture(scope="module")
def shared(built) -> Registry:
    """The built registry itself, for tests that only read it."""
    return Registry(built)


def keys_by_name(reg: Registry) -> dict[str, str]:
    return {run.name: run.run_key for run in reg.runs()}


def names(reg: Registry, keys: list[str]) -> set[str]:
    by_key = {v: k for k, v in keys_by_name(reg).items()}
    return {by_key[k] for k in keys}


def rows(index: Index, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(index.path) as conn:
        return conn.execute(sql, params).fetchall()


# --------------------------------------------------------------------------------------------- contents


def test_runs_table_newest_first_with_kinds_and_check_counts(reg):
    index = open_index(reg)
    assert index.repaired is None  # update_index kept it current
    listed = index.runs()
    assert [r["run_key"] for r in listed] == [r.run_key for r in reg.runs()]
    by_name = {r["name"]: r for r in listed}
    assert by_name["hb"]["optimizer_kind"] == "heavy_ball"
    assert by_name["hb"]["problem_kind"] == "relu_scalar"
    assert by_name["hb"]["precision"] == "float64"
    assert by_name["hb"]["status"] == "completed" and by_name["hb"]["end_step"] == 50
    assert by_name["hb"]["checks_total"] == 2 and by_name["hb"]["checks_failed"] == 1
    assert len(index.runs(limit=2)) == 2


def test_leaves_are_typed(shared):
    index = open_index(shared)
    keys = keys_by_name(shared)

    def leaf(name, path):
        found = rows(
            index, "SELECT kind, num, text FROM leaves WHERE run_key = ? AND path = ?", (keys[name], path)
        )
        return found[0] if found else None

    assert leaf("gd-a", "optimizer.lr") == ("num", 0.0201, None)
    assert leaf("expr", "optimizer.lr") == ("text", None, "(2 + eps) / 100")
    assert leaf("expr", "constants.eps") == ("num", 0.01, None)
    assert leaf("gd-a", "train.steps") == ("num", 50.0, None)
    assert leaf("gd-a", "sweep") == ("null", None, None)
    assert leaf("gd-a", "checks.0.tol") == ("null", None, None)
    assert leaf("switch", "events.0.do.switch_optimizer.kind") == ("text", None, "heavy_ball")
    assert leaf("switch", "events.0.do.stop") == ("bool", 0.0, None)
    assert leaf("switch", "events.0.when.step.at") == ("num", 20.0, None)
    assert leaf("gd-a", "constants") is None  # empty containers have no leaf
    # every scalar leaf of the stored spec is indexed
    run = shared.get(keys["switch"])
    scalar_paths = {p for p, v in flatten(run.spec) if not isinstance(v, dict | list)}
    indexed = {r[0] for r in rows(index, "SELECT path FROM leaves WHERE run_key = ?", (run.run_key,))}
    assert indexed == scalar_paths
    assert index.leaves([run.run_key])[run.run_key]["train.steps"] == 50


def test_summaries_match_numpy_on_the_stored_series(shared):
    index = open_index(shared)
    run = shared.get(keys_by_name(shared)["hb"])
    summaries = {s["series"]: s for s in index.summaries(run.run_key)}
    assert set(summaries) == {
        "loss",
        "sharpness",
        "sharpness.residual",
        "sharpness.hvps",
        "sharpness.iterations",
        "sharpness.capped",
        "params.u",
        "params.v",
    }
    for name, s in summaries.items():
        steps, values = run.series(name)
        assert s["count"] == values.size
        assert s["final"] == pytest.approx(values[-1], rel=0, abs=0)
        assert s["final_step"] == steps[-1]
        assert s["min"] == np.nanmin(values) and s["max"] == np.nanmax(values)
        assert s["argmin"] == steps[np.nanargmin(values)] and s["argmax"] == steps[np.nanargmax(values)]


def test_check_rows_carry_outcomes_and_margins(shared):
    index = open_index(shared)
    run = shared.get(keys_by_name(shared)["gd-a"])
    checks = index.checks(run.run_key)
    assert [c["name"] for c in checks] == [c["name"] for c in run.checks]
    for row, check in zip(checks, run.checks, strict=True):
        assert bool(row["passed"]) == check["passed"]
        assert bool(row["applicable"]) == check["applicable"]
        assert row["margin"] == pytest.approx(check["margin"])


def test_series_summary_ignores_nan_and_skips_non_scalar_series():
    steps = np.array([0, 5, 10, 15, 20])
    s = series_summary(steps, np.array([3.0, np.nan, -1.0, 7.0, np.nan]))
    assert s == {
        "count": 5,
        "final": None,
        "final_step": 20,
        "min": -1.0,
        "max": 7.0,
        "argmin": 10,
        "argmax": 15,
    }
    all_nan = series_summary(steps[:2], np.array([np.nan, np.nan]))
    assert all_nan["min"] is None and all_nan["argmax"] is None and all_nan["count"] == 2
    assert series_summary(steps[:2], np.array([True, False]))["max"] == 1.0
    assert series_summary(steps[:0], np.array([]))["final"] is None
    assert series_summary(steps[:2], np.ones((2, 3))) is None  # 2-D
    assert series_summary(steps[:2], np.ones(3)) is None  # length mismatch


# --------------------------------------------------------------------------------------------- queries

QUERIES = [
    ('optimizer.kind = "heavy_ball"', {"hb"}),
    ("optimizer.kind == 'heavy_ball'", {"hb"}),
    ('optimizer.kind != "gd"', {"hb"}),
    ("optimizer.lr = 0.0201", {"gd-a", "hb", "switch"}),
    ("optimizer.lr < 0.02", {"gd-b"}),
    ("optimizer.lr <= 0.0195", {"gd-b"}),
    ("optimizer.lr > 0.0196", {"gd-a", "hb", "switch"}),
    ("optimizer.lr >= 2.01e-2", {"gd-a", "hb", "switch"}),
    ('optimizer.lr = "(2 + eps) / 100"', {"expr"}),
    ("optimizer.lr != 0.0201", {"gd-b"}),  # the expression string is not a number: no match
    ('optimizer.lr < "a"', {"expr"}),  # string comparison only sees string leaves
    ("constants.eps = 1e-2", {"expr"}),
    ("optimizer.beta = null", {"gd-a", "gd-b", "expr", "switch"}),  # absent counts as null
    ("optimizer.beta != null", {"hb"}),
    ("sweep = null", set(VARIANTS)),
    ("optimizer = null", set()),  # a dict is not null
    ('events.0.do.switch_optimizer.kind = "heavy_ball"', {"switch"}),
    ("events.0.do.stop = false", {"switch"}),
    ("events.0.do.stop", set()),  # a bare field means = true
    ('events.*.do.switch_optimizer.kind = "heavy_ball"', {"switch"}),
    ('measure.*.kind = "sharpness"', set(VARIANTS)),
    ("final.sharpness < 99.9", set()),
    ("final.sharpness > 99", set(VARIANTS)),
    ("final.sharpness.residual < 1", set(VARIANTS)),
    ("final.params.u <= 10", set(VARIANTS)),
    ("count.loss = 51", set(VARIANTS)),
    ("argmax.sharpness >= 0", set(VARIANTS)),
    ("final.nonexistent < 1", set()),
    ("final.nonexistent = null", set(VARIANTS)),
    ("check.lemma6", set(VARIANTS)),
    ("check.lemma6 = true", set(VARIANTS)),
    ("check.`final sharpness` = false", set(VARIANTS)),
    ("check.`final sharpness`.margin < 0", set(VARIANTS)),
    ("checks.failed = 1 and checks.total = 2", set(VARIANTS)),
    ("checks.failed = 0", set()),
    ('status = "completed"', set(VARIANTS)),
    ('name = "gd-b"', {"gd-b"}),
    ("end_step = 50", set(VARIANTS)),
    ("stop_cause = null", set(VARIANTS)),
    ('optimizer.kind = "gd" and optimizer.lr < 0.02', {"gd-b"}),
    ('optimizer.kind = "heavy_ball" or name = "expr"', {"hb", "expr"}),
    ('not optimizer.kind = "gd"', {"hb"}),
    ('NOT (optimizer.kind = "gd" OR name = "hb")', set()),
    ('(name = "gd-a" or name = "gd-b") and not optimizer.lr < 0.02', {"gd-a"}),
    ('name = "gd-a" or name = "gd-b" and optimizer.lr < 0.02', {"gd-a", "gd-b"}),  # and binds tighter
    ("not not check.lemma6", set(VARIANTS)),
]


@pytest.mark.parametrize(("text", "expected"), QUERIES)
def test_query(shared, text, expected):
    index = open_index(shared)
    assert names(shared, index.query(text)) == expected


def test_query_results_are_newest_first(shared):
    index = open_index(shared)
    order = [r.run_key for r in shared.runs()]
    found = index.query("check.lemma6")
    assert found == [k for k in order if k in found]
    assert index.query(f'id = "{order[0][:6]}"') == [order[0]]


ERRORS = [
    ("final.sharpness <", 18, "expected a value after '<' at column 18"),
    ('optimizer.kind = "heavy_ball" and final.sharpness < and', 53, "expected a value after '<'"),
    ("optimiser.kind = 1", 1, "did you mean 'optimizer'"),
    ("optimizer.kind = heavy_ball", 18, 'quote strings: "heavy_ball"'),
    ('(name = "a"', 12, "expected ')'"),
    ('name = "a")', 11, "unexpected ')'"),
    ('name = "a" name = "b"', 12, "expected 'and', 'or'"),
    ("name = 'open", 8, "unterminated string"),
    ("name # 1", 6, "unexpected character '#'"),
    ("", 1, "empty query"),
    ("and", 1, "expected a field name"),
    ("final = 1", 1, "needs a series name"),
    ('final.loss = "low"', 14, "is a number"),
    ("status < 3", 10, "is text"),
    ("check.lemma6 = 1", 16, "true or false"),
    ("optimizer.lr < true", 16, "needs a number or a string"),
    ("final.loss", 11, "expected a comparison operator"),
    ("check.`unterminated = true", 7, "unterminated backquoted name"),
]


@pytest.mark.parametrize(("text", "column", "words"), ERRORS)
def test_query_errors_name_the_column(text, column, words):
    with pytest.raises(QueryError) as caught:
        compile_query(text)
    assert caught.value.column == column
    assert words in str(caught.value)
    if "column" in str(caught.value):
        assert f"column {column}" in str(caught.value)


def test_values_are_bound_never_spliced(shared):
    index = open_index(shared)
    evil = "x'; DROP TABLE runs; --\" OR 1=1"
    compiled = compile_query(f"name = {json.dumps(evil)} or optimizer.kind = 'a\\'b'")
    assert evil in compiled.params and "a'b" in compiled.params and "DROP" not in compiled.sql
    assert index.query(f"name = {json.dumps(evil)}") == []
    assert index.query("check.`x'; DROP TABLE checks; --` = true") == []
    assert len(index.runs()) == len(VARIANTS)  # every table is still there
    assert len(index.query("check.lemma6")) == len(VARIANTS)


# --------------------------------------------------------------------------------------------- repair

SOME_QUERIES = [q for q, _ in QUERIES[::3]]


def answers(index: Index) -> list[list[str]]:
    return [index.query(q) for q in SOME_QUERIES]


def test_rebuild_after_deleting_the_index_gives_identical_results(reg):
    index = open_index(reg)
    before = answers(index), index.runs()
    (reg.root / INDEX_FILE).unlink()
    again = open_index(reg)
    assert again.repaired == "the index is missing"
    assert (answers(again), again.runs()) == before
    assert again.rebuild(reg) == len(VARIANTS)
    assert (answers(again), again.runs()) == before


def test_corrupt_index_file_is_rebuilt(reg):
    before = answers(open_index(reg))
    for suffix in ("-wal", "-shm"):
        (reg.root / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    (reg.root / INDEX_FILE).write_bytes(b"this is not a database\x00" * 200)
    index = open_index(reg)
    assert "unreadable" in index.repaired
    assert answers(index) == before
    assert Index(reg.root).problem(reg) is None
    assert not list(reg.root.glob(".index.sqlite.*"))  # the temporary build file was moved into place


def test_truncated_index_file_is_rebuilt(reg):
    before = answers(open_index(reg))
    path = reg.root / INDEX_FILE
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path.write_bytes(path.read_bytes()[:1500])
    index = open_index(reg)
    assert index.repaired is not None
    assert answers(index) == before


def test_run_committed_without_update_index_is_detected_and_indexed(reg, monkeypatch):
    """A process that died between commit and index update leaves the index stale; it is repaired."""
    index = open_index(reg)
    monkeypatch.setattr(eosdsl.orchestration.commit, "update_index_many", lambda registry, items: None)
    fresh = run_one(spec_of("late", optimizer={"kind": "gd", "lr": 0.0199}), reg).run
    assert index.problem(reg) == "the index is stale: 1 run(s) not indexed"
    index = open_index(reg)
    assert index.repaired.startswith("the index is stale")
    assert index.query('name = "late"') == [fresh.run_key]
    assert len(index.runs()) == len(VARIANTS) + 1


def test_removed_run_is_detected(reg):
    key = keys_by_name(reg)["expr"]
    shutil.rmtree(reg.object_path(key))
    index = open_index(reg)
    assert "no longer stored" in index.repaired
    assert index.query('name = "expr"') == []


def test_other_schema_version_is_rebuilt(reg):
    path = reg.root / INDEX_FILE
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    index = open_index(reg)
    assert "schema version" in index.repaired
    assert len(index.runs()) == len(VARIANTS)


def test_unreadable_run_is_skipped_once_not_rebuilt_forever(reg):
    key = keys_by_name(reg)["gd-b"]
    (reg.object_path(key) / "run.json").write_text("{ half written")
    (reg.root / INDEX_FILE).unlink()
    index = open_index(reg)
    assert index.repaired is not None
    assert key in index.skipped() and "JSONDecodeError" in index.skipped()[key]
    assert len(index.runs()) == len(VARIANTS) - 1
    assert open_index(reg).repaired is None  # the skipped run is accounted for


def test_run_without_manifest_is_not_indexed_and_not_rebuilt_forever(reg):
    from eosdsl.registry.index import stray_entries
    from eosdsl.registry.manifest import MANIFEST

    key = keys_by_name(reg)["gd-b"]
    (reg.object_path(key) / MANIFEST).unlink()  # half-written: the store does not serve it
    index = open_index(reg)
    assert "no longer stored" in index.repaired
    assert index.query('name = "gd-b"') == [] and key not in index.skipped()
    assert stray_entries(reg) == [reg.object_path(key)]
    assert open_index(reg).repaired is None


def test_damaged_series_store_still_indexes_the_run(reg):
    run = reg.get(keys_by_name(reg)["hb"])
    shutil.rmtree(run.results_path / "loss")
    (run.results_path / "zarr.json").write_text("garbage")
    index = Index(reg.root)
    index.rebuild(reg)
    assert index.query('name = "hb"') == [run.run_key]
    assert index.summaries(run.run_key) == []


def test_missing_registry_root_gives_an_empty_index_and_creates_nothing(tmp_path):
    reg = Registry(tmp_path / "nowhere")
    index = open_index(reg)
    assert index.runs() == [] and index.query("check.lemma6") == []
    assert not (tmp_path / "nowhere").exists()


def test_update_index_swallows_errors(reg):
    path = reg.root / INDEX_FILE
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()  # sqlite cannot open a directory
    update_index(reg, reg.runs()[0])  # no exception


def test_concurrent_update_index_from_threads(reg):
    (reg.root / INDEX_FILE).unlink()
    runs = reg.runs()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(2):
                for run in runs:
                    Index(reg.root).add(run)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    index = Index(reg.root)
    assert index.problem(reg) is None
    assert rows(index, "PRAGMA integrity_check") == [("ok",)]
    assert len(index.runs()) == len(runs)
    assert rows(index, "SELECT COUNT(*) FROM checks") == [(2 * len(runs),)]


WRITER = """
import sys
from eosdsl.registry import Registry
from eosdsl.registry.index import Index
reg = Registry(sys.argv[1])
for _ in range(3):
    for run in reg.runs():
        Index(reg.root).add(run)
"""


def test_two_processes_adding_at_once(reg):
    (reg.root / INDEX_FILE).unlink()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(reg.root)], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    index = Index(reg.root)
    assert index.problem(reg) is None
    assert rows(index, "PRAGMA integrity_check") == [("ok",)]


def test_rebuild_while_writers_add(reg):
    runs = reg.runs()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for run in runs * 2:
                Index(reg.root).add(run)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    for _ in range(2):
        Index(reg.root).rebuild(reg)
    thread.join()
    assert errors == []
    assert Index(reg.root).problem(reg) is None
