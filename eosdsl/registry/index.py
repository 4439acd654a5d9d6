"""A SQLite index of the registry: a cache for listing and querying runs, rebuildable from ``objects/``.

``<root>/index.sqlite`` holds, per committed run:

* ``runs``: one row (key, spec id, name, status, end step, finish time, precision, problem and optimizer
  kinds, stop cause, check counts);
* ``leaves``: the flattened spec, one typed row per scalar leaf. Paths are dotted, list indices are
  numbers (``events.0.do.switch_optimizer.kind``); ``kind`` is ``num`` (ints, floats), ``text``,
  ``bool`` (``num`` 1/0) or ``null``. Empty lists and dicts have no leaf;
* ``summaries``: per 1-D numeric series: count, final value and step, min/max (NaN ignored) and the
  steps where they occur (``argmin``/``argmax``); a NaN final value is NULL;
* ``checks``: every check outcome of the run's current verdict (:mod:`eosdsl.registry.verdicts`)
  with its margin (NULL when not applicable);
* ``skipped``: committed-looking run directories whose JSON could not be read, with the reason, so
  they are reported instead of re-triggering a rebuild on every command.

The index is never the source of truth. :func:`open_index` rebuilds it when it is missing, unreadable,
of another schema version, or out of step with ``objects/`` (a run committed without
:func:`update_index`, a run removed by gc); ``eosdsl registry reindex`` rebuilds it on demand.

Concurrency: every operation opens its own connection (WAL journal, ``busy_timeout``) and writes in
one ``BEGIN IMMEDIATE`` transaction, so concurrent writers serialize and readers see either the old
or the new state of a run, never half of it. A rebuild of a healthy index replaces all rows in one
transaction (readers keep their snapshot until it commits). Only an index SQLite cannot read at all
is rebuilt into a temporary file that is then ``os.replace``-d into place: replacing a database file
that other connections have open is one of SQLite's documented ways to corrupt it (their WAL and
shared-memory files follow the name, not the file), so it is reserved for a file nobody can use.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eosdsl.registry.store import posix_time

__all__ = [
    "INDEX_FILE",
    "SCHEMA_VERSION",
    "Index",
    "committed_keys",
    "flatten",
    "open_index",
    "series_summary",
    "stray_entries",
    "update_index",
    "update_index_many",
]

INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000

_TABLES = ("runs", "leaves", "summaries", "checks", "skipped")
_SCHEMA = (
    """CREATE TABLE runs (
        run_key TEXT PRIMARY KEY, spec_id TEXT, name TEXT, status TEXT, end_step INTEGER,
        finished_at TEXT, sort_time REAL, precision TEXT, problem_kind TEXT, optimizer_kind TEXT,
        stop_cause TEXT, checks_total INTEGER, checks_passed INTEGER, checks_failed INTEGER)""",
    """CREATE TABLE leaves (
        run_key TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, num REAL, text TEXT,
        PRIMARY KEY (run_key, path))""",
    """CREATE TABLE summaries (
        run_key TEXT NOT NULL, series TEXT NOT NULL, count INTEGER, final REAL, final_step INTEGER,
        min REAL, max REAL, argmin INTEGER, argmax INTEGER, PRIMARY KEY (run_key, series))""",
    """CREATE TABLE checks (
        run_key TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT, passed INTEGER, applicable INTEGER,
        margin REAL, detail TEXT, PRIMARY KEY (run_key, idx))""",
    "CREATE TABLE skipped (run_key TEXT PRIMARY KEY, reason TEXT)",
    "CREATE INDEX leaves_path_num ON leaves (path, num)",
    "CREATE INDEX leaves_path_text ON leaves (path, text)",
    "CREATE INDEX summaries_series_final ON summaries (series, final)",
    "CREATE INDEX checks_name ON checks (name, passed)",
    "CREATE INDEX runs_newest ON runs (sort_time DESC, run_key DESC)",
)
_RUN_COLUMNS = (
    "run_key",
    "spec_id",
    "name",
    "status",
    "end_step",
    "finished_at",
    "sort_time",
    "precision",
    "problem_kind",
    "optimizer_kind",
    "stop_cause",
    "checks_total",
    "checks_passed",
    "checks_failed",
)
_NEWEST_FIRST = "ORDER BY r.sort_time DESC, r.run_key DESC"


class UnreadableRun(Exception):
    """A committed-looking run directory whose JSON files cannot be read; it is skipped, not indexed."""


# --------------------------------------------------------------------------------------------- rows


def flatten(obj: Any, prefix: str = "", *, empty: bool = False) -> Iterator[tuple[str, Any]]:
    """``(dotted path, scalar)`` for every leaf of nested dicts/lists; list indices become numbers.

    With ``empty=True`` an empty dict or list is a leaf itself (its value ``{}`` / ``[]``), which is
    what a diff wants; the index leaves them out.
    """
    if isinstance(obj, Mapping):
        items: Iterable[tuple[Any, Any]] = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    else:
        yield prefix, obj
        return
    seen = False
    for key, value in items:
        seen = True
        yield from flatten(value, f"{prefix}.{key}" if prefix else str(key), empty=empty)
    if not seen and empty and prefix:
        yield prefix, obj


def _leaf_row(run_key: str, path: str, value: Any) -> tuple | None:
    """The typed ``leaves`` row of one spec leaf, or None for something that is not a scalar."""
    if value is None:
        return (run_key, path, "null", None, None)
    if isinstance(value, bool):
        return (run_key, path, "bool", 1.0 if value else 0.0, None)
    if isinstance(value, int | float):
        return (run_key, path, "num", float(value), None)
    if isinstance(value, str):
        return (run_key, path, "text", None, value)
    return None


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def series_summary(steps: np.ndarray, values: np.ndarray) -> dict[str, Any] | None:
    """count/final/final_step/min/max/argmin/argmax of a 1-D numeric series, or None for other series.

    min and max ignore NaN (None if every value is NaN); ``argmin``/``argmax`` are the *steps* of the
    first minimum/maximum; ``final`` is the last value, None if it is NaN.
    """
    steps, values = np.asarray(steps), np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "biuf" or steps.shape != values.shape:
        return None
    numbers = values.astype(np.float64)
    summary: dict[str, Any] = {"count": int(numbers.size), "final": None, "final_step": None}
    summary.update(min=None, max=None, argmin=None, argmax=None)
    if numbers.size == 0:
        return summary
    summary["final"] = _finite_or_none(numbers[-1])
    summary["final_step"] = int(steps[-1])
    known = ~np.isnan(numbers)
    if known.any():
        masked_low = np.where(known, numbers, np.inf)
        masked_high = np.where(known, numbers, -np.inf)
        low, high = int(np.argmin(masked_low)), int(np.argmax(masked_high))
        summary.update(min=float(numbers[low]), argmin=int(steps[low]))
        summary.update(max=float(numbers[high]), argmax=int(steps[high]))
    return summary


def run_summaries(
    run: Any, series: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
) -> dict[str, dict[str, Any]]:
    """Summaries of every 1-D numeric series of ``run`` (unreadable series are left out); from
    ``series`` instead of the stored ones when given (the series a commit just wrote)."""
    found: dict[str, dict[str, Any]] = {}
    if series is not None:
        for name, (steps, values) in series.items():
            if (summary := series_summary(np.asarray(steps), np.asarray(values))) is not None:
                found[name] = summary
        return found
    try:
        names = run.series_names()
    except Exception:  # a damaged results.zarr must not stop indexing or `show`
        return found
    for name in names:
        try:
            steps, values = run.series(name)
        except Exception:  # same: skip the one series that cannot be read
            continue
        summary = series_summary(steps, values)
        if summary is not None:
            found[name] = summary
    return found


def _kind_of(spec: Mapping[str, Any], key: str) -> str | None:
    section = spec.get(key)
    kind = section.get("kind") if isinstance(section, Mapping) else None
    return kind if isinstance(kind, str) else None


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass
class RunRows:
    """Everything the index stores about one run."""

    run_key: str
    run: tuple
    leaves: list[tuple] = field(default_factory=list)
    summaries: list[tuple] = field(default_factory=list)
    checks: list[tuple] = field(default_factory=list)


def _check_rows(run_key: str, checks: Any) -> list[tuple]:
    rows = []
    for idx, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, Mapping):
            continue
        applicable = bool(check.get("applicable", True))
        margin = _finite_or_none(check.get("margin")) if applicable else None
        rows.append(
            (
                run_key,
                idx,
                str(check.get("name", f"check {idx}")),
                int(bool(check.get("passed"))),
                int(applicable),
                margin,
                _as_text(check.get("detail")),
            )
        )
    return rows


def run_rows(run: Any, series: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> RunRows:
    """The index rows of a committed run; :class:`UnreadableRun` if its JSON files cannot be read.
    ``series``: the run's stored series, when the caller has them in memory (see :func:`run_summaries`)."""
    try:
        spec, info = run.spec, run.info
    except (OSError, ValueError) as error:
        raise UnreadableRun(f"{type(error).__name__}: {error}") from error
    if not isinstance(spec, dict) or not isinstance(info, dict):
        raise UnreadableRun("spec.json or run.json is not a JSON object")
    key = run.run_key
    checks = _check_rows(key, run.checks if hasattr(run, "checks") else info.get("checks"))
    passed = sum(row[3] for row in checks)
    when = posix_time(info.get("finished_at"))
    if when is None:
        with contextlib.suppress(OSError):
            when = run.path.stat().st_mtime
    row = (
        key,
        _as_text(info.get("spec_id")),
        _as_text(spec.get("name")),
        str(info.get("status", "unknown")),
        _as_int(info.get("end_step")),
        _as_text(info.get("finished_at")),
        when or 0.0,
        _as_text(spec.get("precision")),
        _kind_of(spec, "problem"),
        _kind_of(spec, "optimizer"),
        _as_text(info.get("stop_cause")),
        len(checks),
        passed,
        len(checks) - passed,
    )
    leaves = [leaf for path, value in flatten(spec) if (leaf := _leaf_row(key, path, value)) is not None]
    summaries = [
        (key, name, s["count"], s["final"], s["final_step"], s["min"], s["max"], s["argmin"], s["argmax"])
        for name, s in sorted(run_summaries(run, series).items())
    ]
    return RunRows(key, row, leaves, summaries, checks)


# --------------------------------------------------------------------------------------------- sqlite


def _regexp(pattern: str, value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, busy timeout."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            with contextlib.suppress(sqlite3.OperationalError):  # another process is switching it
                conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.create_function("regexp", 2, _regexp, deterministic=True)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _connection(path: Path) -> Iterator[sqlite3.Connection]:
    conn = _connect(path)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _create_schema(conn: sqlite3.Connection) -> None:
    """Inside a transaction: drop every table and create the current schema."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if not table.startswith("sqlite_"):
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _schema_in_transaction(conn: sqlite3.Connection) -> None:
    """Inside a write transaction: make sure the current schema exists (re-created if another version)."""
    if _user_version(conn) != SCHEMA_VERSION:
        _create_schema(conn)


def _write_rows(conn: sqlite3.Connection, rows: RunRows) -> None:
    key = rows.run_key
    for table in _TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_key = ?", (key,))
    marks = ", ".join("?" * len(_RUN_COLUMNS))
    conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({marks})", rows.run)
    conn.executemany("INSERT OR REPLACE INTO leaves VALUES (?, ?, ?, ?, ?)", rows.leaves)
    conn.executemany("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.summaries)
    conn.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?, ?)", rows.checks)


def _write_skipped(conn: sqlite3.Connection, run_key: str, reason: str) -> None:
    for table in _TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_key = ?", (run_key,))
    conn.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?)", (run_key, reason))


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# --------------------------------------------------------------------------------------------- index


def _object_entries(registry: Any) -> Iterator[tuple[Path, bool]]:
    """Every entry under ``objects/<shard>/`` with whether the store serves it as a committed run."""
    for path, shape in registry.object_entries():
        if path.parent != registry.objects_dir:  # a stray top-level entry is no run
            yield path, not shape and registry.get(path.name) is not None


def committed_keys(registry: Any) -> set[str]:
    """Keys of the runs the store serves (core files and ``MANIFEST.json`` present).

    This is what the index must cover: each such run is either indexed or listed as skipped.
    """
    return {path.name for path, served in _object_entries(registry) if served}


def stray_entries(registry: Any) -> list[Path]:
    """Entries under ``objects/`` that are not committed runs (no manifest, missing files, bad names);
    the store ignores them and so does the index. ``eosdsl registry verify`` says what is wrong."""
    return sorted(path for path, served in _object_entries(registry) if not served)


@dataclass
class Collected:
    """The rows of every committed run, read from ``objects/`` before any database is touched."""

    rows: list[RunRows] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def collect(registry: Any) -> Collected:
    """Read every committed run of ``registry`` into index rows (unreadable runs go to ``skipped``)."""
    collected = Collected()
    for key in sorted(committed_keys(registry)):
        run = registry.get(key)
        if run is None:  # removed since it was listed
            continue
        try:
            collected.rows.append(run_rows(run))
        except UnreadableRun as error:
            collected.skipped[key] = str(error)
    return collected


class Index:
    """The SQLite index of a registry rooted at ``root`` (file ``root/index.sqlite`` unless ``path``)."""

    def __init__(self, root: Path, path: Path | None = None) -> None:
        self.root = Path(root)
        self.path = Path(path) if path is not None else self.root / INDEX_FILE
        self.repaired: str | None = None
        """Why :func:`open_index` rebuilt the index (None if it was usable as it was)."""

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r})"

    # -- writing

    def add(self, run: Any, series: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """Index (or re-index) one committed run, in one transaction."""
        self.add_many([(run, series)])

    def add_many(
        self, items: Sequence[tuple[Any, Mapping[str, tuple[np.ndarray, np.ndarray]] | None]]
    ) -> None:
        """Index (or re-index) committed runs, each with its series if in memory (else read back), in
        one transaction: a sweep's runs cost one connection and one commit, not one per run."""
        prepared: list[tuple[Any, RunRows | None, str]] = []
        for run, series in items:
            try:
                prepared.append((run, run_rows(run, series), ""))
            except UnreadableRun as error:
                prepared.append((run, None, str(error)))
        if not prepared:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _connection(self.path) as conn, _transaction(conn):
            _schema_in_transaction(conn)
            for run, rows, reason in prepared:
                if rows is None:
                    _write_skipped(conn, run.run_key, reason)
                else:
                    _write_rows(conn, rows)

    def rebuild(self, registry: Any) -> int:
        """Re-index every committed run of ``registry`` from ``objects/``; returns how many were indexed.

        The runs are read first; then a readable index has all its rows replaced in one transaction
        and an unreadable one is replaced by a freshly built file (see the module docstring).
        """
        collected = collect(registry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._replace_rows(collected)
        except sqlite3.DatabaseError:
            self._replace_file(collected)
        return len(collected.rows)

    def _fill(self, conn: sqlite3.Connection, collected: Collected) -> None:
        _create_schema(conn)
        for rows in collected.rows:
            _write_rows(conn, rows)
        for key, reason in collected.skipped.items():
            _write_skipped(conn, key, reason)

    def _replace_rows(self, collected: Collected) -> None:
        with _connection(self.path) as conn:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("index fails quick_check")
            with _transaction(conn):
                self._fill(conn, collected)

    def _replace_file(self, collected: Collected) -> None:
        """Build into a temporary file next to the index, then ``os.replace`` it into place."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = DELETE")
                with _transaction(conn):
                    self._fill(conn, collected)
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
            for suffix in ("-wal", "-shm", "-journal"):  # they belong to the unreadable file
                _unlink_quietly(self.path.with_name(self.path.name + suffix))
            os.replace(tmp, self.path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                _unlink_quietly(tmp.with_name(tmp.name + suffix))

    # -- health

    def problem(self, registry: Any) -> str | None:
        """Why this index cannot be trusted for ``registry`` (None if it can)."""
        if not self.path.is_file():
            return "the index is missing"
        try:
            with _connection(self.path) as conn:
                version = _user_version(conn)
                if version != SCHEMA_VERSION:
                    return f"the index has schema version {version}, expected {SCHEMA_VERSION}"
                if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    return "the index is corrupt"
                indexed = {row[0] for row in conn.execute("SELECT run_key FROM runs")}
                indexed |= {row[0] for row in conn.execute("SELECT run_key FROM skipped")}
        except sqlite3.DatabaseError as error:
            return f"the index is unreadable ({error})"
        on_disk = committed_keys(registry)
        if indexed == on_disk:
            return None
        missing, gone = len(on_disk - indexed), len(indexed - on_disk)
        parts = [f"{missing} run(s) not indexed"] if missing else []
        parts += [f"{gone} indexed run(s) no longer stored"] if gone else []
        return f"the index is stale: {', '.join(parts)}"

    # -- reading

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if not self.path.is_file():
            return []
        with _connection(self.path) as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    def runs(self, limit: int | None = None) -> list[dict]:
        """Indexed runs (``runs`` rows as dicts), newest first."""
        return self._select("1", [], limit)

    def _select(self, where: str, params: list[Any], limit: int | None) -> list[dict]:
        sql = f"SELECT r.* FROM runs r WHERE {where} {_NEWEST_FIRST}"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, max(int(limit), 0)]
        return [dict(row) for row in self._read(sql, params)]

    def find(self, text: str, limit: int | None = None) -> list[dict]:
        """``runs`` rows matching the query ``text`` (see :mod:`eosdsl.registry.query`), newest first."""
        from eosdsl.registry.query import compile_query

        compiled = compile_query(text)
        return self._select(compiled.sql, list(compiled.params), limit)

    def query(self, text: str) -> list[str]:
        """Keys of the runs matching the query ``text``, newest first; ``QueryError`` if it is malformed."""
        return [row["run_key"] for row in self.find(text)]

    def summaries(self, run_key: str) -> list[dict]:
        """Per-series summaries of one run, by series name."""
        rows = self._read("SELECT * FROM summaries WHERE run_key = ? ORDER BY series", [run_key])
        return [dict(row) for row in rows]

    def checks(self, run_key: str) -> list[dict]:
        """Check outcomes of one run, in ``run.json`` order."""
        return [
            dict(row) for row in self._read("SELECT * FROM checks WHERE run_key = ? ORDER BY idx", [run_key])
        ]

    def leaves(self, run_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{run_key: {path: value}}`` of the indexed spec leaves of the given runs."""
        keys = list(dict.fromkeys(run_keys))
        found: dict[str, dict[str, Any]] = {key: {} for key in keys}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT * FROM leaves WHERE run_key IN ({marks})"
            for row in self._read(sql, chunk):
                found[row["run_key"]][row["path"]] = _leaf_value(row)
        return found

    def skipped(self) -> dict[str, str]:
        """Committed-looking runs that could not be read, with the reason."""
        return {row["run_key"]: row["reason"] for row in self._read("SELECT * FROM skipped ORDER BY run_key")}

    def known(self, what: str) -> list[str]:
        """Distinct indexed values of ``what``: ``paths`` (spec leaves), ``series`` or ``checks`` (names)."""
        sql = {
            "paths": "SELECT DISTINCT path FROM leaves",
            "series": "SELECT DISTINCT series FROM summaries",
            "checks": "SELECT DISTINCT name FROM checks",
        }[what]
        return sorted(row[0] for row in self._read(sql))


def _leaf_value(row: Mapping[str, Any]) -> Any:
    """The Python value of a ``leaves`` row (integral numbers come back as ints)."""
    kind = row["kind"]
    if kind == "text":
        return row["text"]
    if kind == "bool":
        return bool(row["num"])
    if kind == "num":
        number = float(row["num"])
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return None


# --------------------------------------------------------------------------------------------- entry points


def _fallback_path(root: Path) -> Path:
    """Where to keep the index of a registry whose root cannot be written (read-only mounts)."""
    digest = hashlib.sha256(str(Path(root).absolute()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"eosdsl-index-{digest}.sqlite"


def open_index(registry: Any) -> Index:
    """The registry's index, rebuilt first if it is missing, unreadable, of another schema version or
    out of step with ``objects/``; ``index.repaired`` then says why. Prints nothing.

    A registry root that does not exist yet gets an empty index (nothing is created). If the root
    cannot be written, the index is kept in the temporary directory instead.
    """
    index = Index(registry.root)
    if not Path(registry.root).is_dir():
        return index
    problem = index.problem(registry)
    if problem is None:
        return index
    try:
        index.rebuild(registry)
    except (OSError, sqlite3.Error) as error:
        index = Index(registry.root, path=_fallback_path(registry.root))
        fallback_problem = index.problem(registry)
        if fallback_problem is not None:
            index.rebuild(registry)
        problem = f"{problem}; cannot write it ({error}), using {index.path}"
    index.repaired = problem
    return index


def update_index(
    registry: Any, run: Any, series: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
) -> None:
    """Index a just-committed run (with its ``series`` when in memory): :func:`update_index_many`."""
    update_index_many(registry, [(run, series)])


def update_index_many(
    registry: Any, items: Sequence[tuple[Any, Mapping[str, tuple[np.ndarray, np.ndarray]] | None]]
) -> None:
    """Index just-committed runs, each with its series when in memory, in one transaction. Best effort:
    the index is a cache, so any SQLite or OS error is swallowed (the next command that finds the index
    stale rebuilds it)."""
    with contextlib.suppress(sqlite3.Error, OSError):
        Index(registry.root).add_many(items)
