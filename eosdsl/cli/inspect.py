"""Commands that look up stored runs: ls, query, show, diff, and ``registry reindex``.

Listing and querying go through the SQLite index (:mod:`eosdsl.registry.index`), which is repaired on
the way when it is missing, corrupt or stale; ``show`` and ``diff`` read the run directories directly.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from eosdsl.cli.common import (
    RegistryOption,
    app,
    err,
    event_lines,
    fail,
    open_registry,
    out,
    print_check,
    print_checks,
    registry_app,
    resolve_run,
)

if TYPE_CHECKING:
    from eosdsl.registry.sweeps import Summary, Sweep

_MISSING = object()
_HIDDEN_PREFIXES = ("name", "description", "tags", "runtime", "measure", "checks", "sweep", "events")
_SHOWN_PATHS = {"problem.kind", "optimizer.kind", "optimizer.lr", "optimizer.lr.kind", "optimizer.beta"}
_PRIORITY = ("constants", "optimizer", "problem", "train", "precision", "seed")
_MAX_EXTRA = 3

# ------------------------------------------------------------------------------------------- formatting


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _short(value: Any, width: int = 28) -> str:
    """A compact rendering of a spec leaf for tables."""
    if value is None or value is _MISSING:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return _number(value)
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _literal(value: Any) -> str:
    """A leaf as JSON (strings quoted), for diffs."""
    if value is _MISSING:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False)


def _when(stamp: Any) -> str:
    """``2026-11-23T18:39:55+00:00`` → ``11-23 18:39`` this year, else ``2025-11-23``."""
    if not isinstance(stamp, str):
        return ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%m-%d %H:%M" if moment.year == datetime.now().year else "%Y-%m-%d")


def _value(value: Any) -> str:
    if value is None:
        return "nan"
    return _number(value) if isinstance(value, int | float) else str(value)


def _path_key(path: str) -> tuple:
    """Sort key for dotted paths: list indices in numeric order."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("."))


# ------------------------------------------------------------------------------------------- the index


def _open_index(registry: Path | None) -> tuple[Any, Any]:
    """The registry and its index (repaired if needed, which is reported on stderr)."""
    from eosdsl.registry.index import open_index

    reg = open_registry(registry)
    try:
        index = open_index(reg)
    except (sqlite3.Error, OSError) as error:
        fail(f"cannot build the run index of {reg.root}: {error}", code=1)
    if index.repaired:
        err.print(f"note: rebuilt the run index ({index.repaired})", markup=False)
    return reg, index


def _hints(index: Any, compiled: Any) -> list[str]:
    """Notes for names in a query that no indexed run has (likely typos)."""
    import difflib

    notes = []
    for what, names, label in (
        ("paths", [p for p in compiled.paths if "*" not in p], "spec field"),
        ("series", compiled.series, "series"),
        ("checks", compiled.checks, "check"),
    ):
        known = index.known(what) if names else []
        for name in dict.fromkeys(names):
            if name in known or (what == "paths" and any(k.startswith(f"{name}.") for k in known)):
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            notes.append(f"note: no indexed run has the {label} '{name}'{hint}")
    return notes


# ------------------------------------------------------------------------------------------- ls / query


def _resolved(leaves: Mapping[str, Any], path: str) -> str:
    """A spec leaf for a table, an expression over constants (``eta``, ``(2 + eps) / u0**2``) shown as
    its number (evaluated with NumPy, as ``RunView.resolved_spec`` does)."""
    value = leaves.get(path, _MISSING)
    if isinstance(value, str):
        from eosdsl.api import _constant_number

        constants = {
            p.removeprefix("constants."): v
            for p, v in leaves.items()
            if p.startswith("constants.") and isinstance(v, int | float) and not isinstance(v, bool)
        }
        number = _constant_number(value, constants)
        if number is not None:
            return _number(number)
    return _short(value)


_SCHEDULE_TEXT = {
    "constant": ("value",),
    "linear_warmup": ("start", "end"),
    "cosine": ("peak", "end"),
    "measured": ("value",),
}


def _lr_text(leaves: Mapping[str, Any]) -> str | None:
    """``0.0201``; a schedule as ``warmup(0.001→0.0201)``, ``cosine(0.02→0)``, ``piecewise(0.02→…→0.01)``."""
    if "optimizer.lr" in leaves:
        return _resolved(leaves, "optimizer.lr")
    kind = leaves.get("optimizer.lr.kind")
    if kind is None:
        return None
    if kind == "piecewise":
        ends = sorted((p for p in leaves if p.startswith("optimizer.lr.values.")), key=_path_key)
        ends = ends[:1] + ends[-1:] if len(ends) > 1 else ends
        return "piecewise(" + "→…→".join(_resolved(leaves, p) for p in ends) + ")"
    fields = _SCHEDULE_TEXT.get(str(kind))
    if fields is None:
        return f"{kind} schedule"
    values = "→".join(_resolved(leaves, f"optimizer.lr.{f}") for f in fields)
    return ("warmup" if kind == "linear_warmup" else str(kind)) + f"({values})"


def _events_text(leaves: Mapping[str, Any]) -> str:
    """``switch→heavy_ball, stop`` for the events of a spec (empty if none)."""
    actions = []
    index = 0
    while any(path.startswith(f"events.{index}.") for path in leaves):
        target = leaves.get(f"events.{index}.do.switch_optimizer.kind")
        if target:
            actions.append(f"switch→{target}")
        if leaves.get(f"events.{index}.do.freeze_schedule"):
            actions.append("freeze")
        if leaves.get(f"events.{index}.do.stop"):
            actions.append("stop")
        index += 1
    return ", ".join(actions)


def _rank(path: str) -> tuple:
    head = path.split(".")[0]
    return (_PRIORITY.index(head) if head in _PRIORITY else len(_PRIORITY), path.count("."), path)


def _differing(all_leaves: Sequence[Mapping[str, Any]]) -> list[str]:
    """Spec paths whose values differ among the listed runs (hyperparameters only), most telling first.

    A leaf that only some runs have (``optimizer.form`` of heavy ball among GD runs) differs only if
    two runs disagree on it, except constants, whose presence alone is telling.
    """
    if len(all_leaves) < 2:
        return []
    paths = {p for leaves in all_leaves for p in leaves}
    found = []
    for path in paths:
        if path in _SHOWN_PATHS or path.split(".")[0] in _HIDDEN_PREFIXES:
            continue
        present = [json.dumps(leaves[path]) for leaves in all_leaves if path in leaves]
        partial = len(present) < len(all_leaves) and path.startswith("constants.")
        if len(set(present)) > 1 or partial:
            found.append(path)
    return sorted(found, key=_rank)


def _label(path: str) -> str:
    return path.removeprefix("constants.")


def _hyperparameters(leaves: Mapping[str, Any], extra: Sequence[str]) -> str:
    """``relu_scalar · heavy_ball lr=0.0201 beta=0.9 · eps=0.02`` for one run."""
    setup = " · ".join(str(leaves[k]) for k in ("problem.kind", "optimizer.kind") if k in leaves)
    parts = [setup] if setup else []
    lr = _lr_text(leaves)
    if lr is not None:
        parts.append(f"lr={lr}")
    if "optimizer.beta" in leaves:
        parts.append(f"beta={_resolved(leaves, 'optimizer.beta')}")
    events = _events_text(leaves)
    if events:
        parts.append(f"[{events}]")
    # a constant that lr or beta is (``lr: eta``) is already shown as their number
    shown = {f"constants.{leaves.get(p)}" for p in ("optimizer.lr", "optimizer.beta")}
    parts += [f"{_label(p)}={_resolved(leaves, p)}" for p in extra if p in leaves and p not in shown]
    return " ".join(parts)


def _checks_cell(row: Mapping[str, Any]) -> Text:
    total, passed = row.get("checks_total") or 0, row.get("checks_passed") or 0
    if not total:
        return Text("")
    return Text(f"{passed}/{total}", style="red" if passed < total else "green")


def _status_cell(status: str) -> Text:
    style = {"completed": "", "stopped": "yellow", "diverged": "red"}.get(status, "yellow")
    return Text(status, style=style)


def _runs_table(index: Any, rows: Sequence[Mapping[str, Any]]) -> tuple[Table, int]:
    """The table of runs and how many differing spec fields did not fit."""
    leaves = index.leaves(row["run_key"] for row in rows)
    per_run = [leaves.get(row["run_key"], {}) for row in rows]
    differing = _differing(per_run)
    extra, more = differing[:_MAX_EXTRA], max(len(differing) - _MAX_EXTRA, 0)
    # Fitted to the terminal: a long name ends in "…" (`eosdsl show ID` has it in full), hyperparameters
    # wrap between words; below 100 columns the finish time is left out.
    width = out.size.width
    statuses = [str(row.get("status") or "") for row in rows]
    steps = ["" if row.get("end_step") is None else str(row["end_step"]) for row in rows]
    finished = width >= 100
    fixed = [12, max(len("status"), *map(len, statuses)), max(len("step"), *map(len, steps)), 6]
    fixed += [11] if finished else []
    longest = max((len(row.get("name") or "") for row in rows), default=0)
    name_width = max(4, min(longest, max(12, width // 6)))
    hyper_width = max(16, width - sum(fixed) - name_width - 2 * len(fixed) - 2)
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, width=12)
    table.add_column("name", no_wrap=True, overflow="ellipsis", width=name_width)
    table.add_column("status", no_wrap=True, width=fixed[1])
    table.add_column("step", justify="right", no_wrap=True, width=fixed[2])
    table.add_column("hyperparameters", overflow="fold", width=hyper_width)
    table.add_column("checks", justify="right", no_wrap=True, width=6)
    if finished:
        table.add_column("finished", no_wrap=True, width=11)
    for row, run_leaves in zip(rows, per_run, strict=True):
        table.add_row(
            Text(row["run_key"][:12]),
            Text(row.get("name") or ""),
            _status_cell(str(row.get("status") or "")),
            Text("" if row.get("end_step") is None else str(row["end_step"])),
            Text(_hyperparameters(run_leaves, extra)),
            _checks_cell(row),
            *([Text(_when(row.get("finished_at")))] if finished else []),
        )
    return table, more


def _print_runs(index: Any, rows: Sequence[Mapping[str, Any]], empty: str) -> None:
    if not rows:
        out.print(empty, markup=False)
        return
    table, more = _runs_table(index, rows)
    out.print(table)
    if more:
        out.print(f"(+{more} more spec fields differ; compare two runs with `eosdsl diff A B`)", markup=False)


@app.command(name="ls")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest N runs.")] = 20,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Only the runs that start from this run (an id prefix)."),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """List stored runs, newest first: id, name, status, key hyperparameters, checks."""
    reg, index = _open_index(registry)
    if start is None:
        _print_runs(index, index.runs(limit), f"no runs in {reg.root}")
        return
    upstream = resolve_run(start, registry)
    rows = index.find(f'start.run = "{upstream.run_key}"', limit)  # a run key is hex: nothing to escape
    _print_runs(index, rows, f"no stored run starts from {upstream.short_id}")


MAX_QUERY_CHARS = 4000
"""Longest query accepted."""
MAX_QUERY_DEPTH = 32
"""Deepest nesting of parentheses and ``not`` in a query."""
MAX_QUERY_OPERATORS = 64
"""Most ``and``/``or``/``not`` in a query (SQLite refuses deep expression trees)."""


def query_limit_error(text: str) -> str | None:
    """Why ``text`` is too large or deep to compile, naming the column; ``None`` if it is within bounds
    (malformed queries are left to the query compiler, which reports them)."""
    from eosdsl.registry.query import QueryError, tokenize

    if len(text) > MAX_QUERY_CHARS:
        return f"the query is longer than {MAX_QUERY_CHARS} characters (at column {MAX_QUERY_CHARS + 1})"
    try:
        tokens = tokenize(text)
    except QueryError:
        return None
    nots, operators = [0], 0
    for token in tokens:
        if token.kind == "lparen":
            nots.append(0)
        elif token.kind == "rparen" and len(nots) > 1:
            nots.pop()
        elif token.kind == "keyword" and token.value in ("and", "or", "not"):
            operators += 1
            if operators > MAX_QUERY_OPERATORS:
                return f"more than {MAX_QUERY_OPERATORS} and/or/not operators (at column {token.column})"
            nots[-1] = nots[-1] + 1 if token.value == "not" else 0
        if len(nots) - 1 + sum(nots) > MAX_QUERY_DEPTH:
            return f"parentheses and `not` nested deeper than {MAX_QUERY_DEPTH} (at column {token.column})"
    return None


@app.command()
def query(
    expression: Annotated[
        str, typer.Argument(help="e.g. 'optimizer.kind = \"heavy_ball\" and final.sharpness < 90'.")
    ],
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="Newest N matches.")] = None,
    registry: RegistryOption = None,
) -> None:
    """List the stored runs matching a query (spec fields, final./min./max. series values, checks)."""
    from eosdsl.registry.query import QueryError, compile_query

    problem = query_limit_error(expression)
    if problem is not None:
        fail(f"query error: {problem}")
    try:
        compiled = compile_query(expression)
    except QueryError as error:
        fail(f"query error: {error}")
    except RecursionError:  # not expected within the limits above
        fail("query error: the query is nested too deeply")
    _, index = _open_index(registry)
    try:
        rows = index.find(expression, limit)
    except (QueryError, sqlite3.OperationalError) as error:
        fail(f"query error: {error}")
    for note in _hints(index, compiled):
        err.print(note, markup=False)
    _print_runs(index, rows, "no runs match")


# ------------------------------------------------------------------------------------------- show


def _kind_first(value: Any) -> Any:
    """Nested dicts with ``kind`` as their first key (how specs are written)."""
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda kv: kv[0] != "kind")
        return {key: _kind_first(item) for key, item in ordered}
    if isinstance(value, list):
        return [_kind_first(item) for item in value]
    return value


SPEC_FIELDS = (
    "name",
    "description",
    "tags",
    "seed",
    "precision",
    "constants",
    "problem",
    "optimizer",
    "events",
    "train",
    "measure",
    "checks",
    "sweep",
    "stages",
    "start",
    "runtime",
)
"""The top-level fields of ``eosdsl.spec.models.Spec`` in its order (a test keeps them equal): ``show``
prints a stored spec in this order without importing the spec models, which import jax and flax."""


def _yaml(document: Any) -> str:
    """A spec as YAML: top-level keys in the spec model's order, ``kind`` first, leaf lists inline."""
    from ruamel.yaml import YAML

    document = _kind_first(document)
    if isinstance(document, dict):
        rank = {key: i for i, key in enumerate(SPEC_FIELDS)}
        document = dict(sorted(document.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None  # innermost collections inline: `- {kind: loss, every: 1}`
    yaml.sort_base_mapping_type_on_output = False
    yaml.width = 120
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip("\n").split("\n"))


def _print_status(run: Any, info: Mapping[str, Any]) -> None:
    out.print(f"run {run.run_key}", markup=False)
    out.print(f"  name: {run.name}", markup=False)
    out.print(f"  path: {run.path}", markup=False)
    if info.get("stored_in") is not None:  # docs/registry.md, Pack units
        try:
            unit, member = run.stored_in
            where = f"{unit} (member {member})"
        except Exception as error:  # noqa: BLE001 — a malformed reference is shown, not fatal here
            where = f"unreadable reference ({error})"
        out.print(f"  stored with its pack: {where}", markup=False)
    out.print(f"  spec id: {info.get('spec_id', '?')}", markup=False)
    status = f"  status: {run.status} at step {info.get('end_step')}"
    if info.get("stop_cause"):
        status += f" (stopped by {info['stop_cause']})"
    out.print(status, markup=False)
    out.print(
        f"  started {info.get('started_at', '?')}, finished {info.get('finished_at', '?')}", markup=False
    )
    for line in event_lines(info):
        out.print(f"  {line}", markup=False)
    references = info.get("references")
    for name, value in (references if isinstance(references, dict) else {}).items():
        out.print(f"  reference {name} = {_value(value)}", markup=False)


def _print_environment(env: Any) -> None:
    out.print("environment:", markup=False)
    for key, value in sorted(env.items()) if isinstance(env, dict) else []:
        out.print(f"  {key}: {value}", markup=False)


def _print_summaries(run: Any) -> None:
    """One line per 1-D numeric series: count, final, min and max with the steps they occur at."""
    from eosdsl.registry.index import run_summaries

    summaries = run_summaries(run)
    if not summaries:
        return
    out.print("series:", markup=False)
    width = max(len(name) for name in summaries)
    for name, s in summaries.items():
        line = f"  {name:<{width}}  {s['count']} values"
        if s["count"]:
            line += f", final {_value(s['final'])} at step {s['final_step']}"
        if s["min"] is not None:
            line += f", min {_value(s['min'])} at step {s['argmin']}"
            line += f", max {_value(s['max'])} at step {s['argmax']}"
        out.print(line, markup=False)


def _print_checks(checks: Iterable[Any], title: str = "checks") -> None:
    checks = [c for c in checks if isinstance(c, dict)]
    if not checks:
        return
    passed = sum(bool(c.get("passed")) for c in checks)
    out.print(f"{title} ({passed}/{len(checks)} passed):", markup=False)
    print_checks([{"name": "?", "passed": False, "detail": "", **check} for check in checks])


def _read_run(run: Any) -> tuple[dict, dict, dict]:
    """``(spec, env, info)`` of a run, or exit 1 saying it is damaged (``registry verify`` finds why)."""
    try:
        parts = run.spec, run.env, run.info
    except (OSError, ValueError) as error:
        fail(f"run {run.short_id} is damaged: {error}", code=1)
    if not all(isinstance(part, dict) for part in parts):
        fail(f"run {run.short_id} is damaged: spec.json, env.json or run.json is not a JSON object", code=1)
    return parts


def _print_start(spec: Mapping[str, Any]) -> None:
    """The run this one starts from (``start``, eosdsl.spec.stages) and the values read from it."""
    start, constants = spec.get("start"), spec.get("constants")
    if not isinstance(start, dict) or not start.get("run"):
        return
    constants = constants if isinstance(constants, dict) else {}
    at = start.get("at", "final")
    if isinstance(at, dict) and "step" in at:
        state = f"state at step {at['step']}"
    elif isinstance(at, dict) and "event" in at:
        state = f"state at the first firing of event '{at['event']}'"
    else:
        state = "final state"
    upstream = f"stage {start['stage']}, run" if start.get("stage") else "the run of another spec, run"
    line = f"  starts from: {upstream} {start['run']} ({state})"
    out.print(line, markup=False)
    for name, source in (start.get("values") or {}).items():
        out.print(f"    {name} = {_value(constants.get(name))}  ({source} of that run)", markup=False)


def _show_run(run: Any) -> None:
    spec, env, info = _read_run(run)
    _print_status(run, info)
    _print_start(spec)
    # eigensolver cap hits (a separate note, kept apart from the status lines)
    from eosdsl.cli.solver_note import solver_notes

    for note in solver_notes(run):
        out.print(f"  note: {note}", markup=False)
    _print_environment(env)
    _print_summaries(run)
    verdict = run.verdict
    judged = f" — judged {verdict.get('evaluated_at')} by eosdsl {verdict.get('eosdsl')}" if verdict else ""
    _print_checks(run.checks, title=f"checks{judged}")
    out.print("spec:", markup=False)
    out.print(_indent(_yaml(spec)), markup=False)


def _summary_cell(value: Any) -> str:
    """A summary value in a table: ✓/✗ for a check, ``n/a``, a number, or blank when there is none."""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return "" if value is None else _value(value)


def _member_columns(sweep: Sweep) -> list[str]:
    """The columns naming a member: its case and swept values, or its label for an old record."""
    from eosdsl.registry.sweeps import CASE

    if not sweep.axes and not sweep.cases:
        return ["label"]
    return [CASE, *sweep.axes] if sweep.cases else list(sweep.axes)


def _show_sweep(sweep: Sweep, summaries: Sequence[Summary]) -> None:
    """A sweep's members (swept values, run, status, summaries) and its sweep-level checks."""
    from eosdsl.registry.sweeps import summary_value

    out.print(f"sweep {sweep.sweep_id}", markup=False)
    out.print(f"  name: {sweep.name}\n  created: {sweep.created_at}", markup=False)
    columns = _member_columns(sweep)
    rows = [
        [
            *(member.label if c == "label" else _short(member.value(c)) for c in columns),
            member.run_key[:12],
            member.status,
            *(_summary_cell(summary_value(member.run, s)) for s in summaries),
        ]
        for member in sweep.members
    ]
    for line in _aligned([*columns, "run", "status", *(s.text for s in summaries)], rows):
        out.print(line, markup=False)
    for member in sweep.members:
        if member.error:
            out.print(f"note: {member.label} failed: {member.error}", markup=False)
    checks = [c for c in sweep.checks if isinstance(c, dict)]
    if checks:
        passed = sum(bool(c.get("passed")) for c in checks)
        out.print(f"sweep checks ({passed}/{len(checks)} passed):", markup=False)
    for check in checks:
        print_check({"name": "?", "passed": False, "detail": "", **check})
        _print_check_values(check)


_STAT_ORDER = ("first", "trend_margin", "rho", "slope", "intercept", "r2", "margin", "gap", "fraction")
"""How a sweep check's statistics are listed (the record stores them sorted by name); then the rest,
with the counts of missing and excluded points last."""


def _stat_rank(key: str) -> tuple[int, int]:
    stat = key.partition("[")[0]
    order = _STAT_ORDER.index(stat) if stat in _STAT_ORDER else len(_STAT_ORDER)
    return (stat in ("missing", "excluded"), order)


def _group_rank(group: str) -> tuple:
    """Groups (``phb,constants.eta_f=0.0015``) in the order of their labels and numeric axis values."""
    ranked = []
    for part in group.split(","):
        name, _, value = part.partition("=")
        try:
            ranked.append((name, 0, float(value), ""))
        except ValueError:
            ranked.append((name, 1, 0.0, value))
    return tuple(ranked)


def check_value_table(
    values: Mapping[str, Any],
) -> tuple[list[tuple[str, Any]], list[str], list[tuple[str, dict[str, Any]]]]:
    """A check's stored statistics split for display: ``(plain, stats, rows)`` — the ``(key, value)``
    pairs without a group, then the ``stat[group]`` ones as a table: its statistic columns (first seen
    first) and one ``(group, {stat: value})`` row per group, in group order (:func:`_group_rank`)."""
    table: dict[str, dict[str, Any]] = {}
    plain = []
    for key, value in sorted(values.items(), key=lambda kv: _stat_rank(str(kv[0]))):
        stat, _, group = str(key).partition("[")
        if group.endswith("]"):
            table.setdefault(group[:-1], {})[stat] = value
        else:
            plain.append((str(key), value))
    stats = list(dict.fromkeys(stat for row in table.values() for stat in row))
    return plain, stats, [(group, table[group]) for group in sorted(table, key=_group_rank)]


def _print_check_values(check: Mapping[str, Any]) -> None:
    """A sweep check's stored statistics under it: ``stat[group]`` values as a table (a row per group,
    a column per statistic), the others on one line, the counts of missing and excluded points last."""
    values = check.get("values")
    if not isinstance(values, Mapping) or not values:
        return
    plain, stats, table = check_value_table(values)
    if plain:
        out.print(f"      {', '.join(f'{key} {_value(value)}' for key, value in plain)}", markup=False)
    rows = [[f"      {group}", *(_value(row.get(stat)) for stat in stats)] for group, row in table]
    for line in _aligned(["      group", *stats], rows) if rows else []:
        out.print(line, markup=False)


def _aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Header and rows as left-aligned columns two spaces apart, never wrapped or truncated."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]


def _sweep_summaries(sweep: Sweep, texts: Sequence[str]) -> list[Summary]:
    """The summaries named on the command line (default: final sharpness and loss); exit 2 if bad."""
    from eosdsl.registry.sweeps import SummaryError, default_summaries, parse_summaries

    if not texts:
        return default_summaries(sweep)
    try:
        return parse_summaries(texts, sweep)
    except SummaryError as error:
        fail(str(error))


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run or sweep id (a unique prefix).")],
    summary: Annotated[
        list[str] | None,
        typer.Option(
            "--summary",
            "-s",
            help="Sweeps: a column per summary, e.g. final.test_loss, max.sharpness, check.lemma6 "
            "(repeat; default final.sharpness and final.loss).",
        ),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Show a stored run (status, events, environment, series summaries, checks, spec) or a sweep."""
    from eosdsl.cli.lookup import resolve_any

    kind, found = resolve_any(open_registry(registry), run_id)
    if kind == "sweep":
        _show_sweep(found, _sweep_summaries(found, summary or []))
    elif summary:
        fail(f"--summary is for sweeps; {run_id!r} is a run (`eosdsl show` summarizes all its series)")
    else:
        _show_run(found)


# ------------------------------------------------------------------------------------------- diff


def _leaf_map(document: Any) -> dict[str, Any]:
    from eosdsl.registry.index import flatten

    return dict(flatten(document, empty=True)) if isinstance(document, dict | list) else {}


def diff_lines(a: Any, b: Any) -> list[str]:
    """``path: a → b`` for changed leaves, ``+ path: b`` added, ``- path: a`` removed; sorted by path.
    A null leaf counts as absent: a field null on one side and absent on the other is no difference."""
    left, right = _leaf_map(a), _leaf_map(b)
    lines = []
    for path in sorted(set(left) | set(right), key=_path_key):
        old, new = left.get(path, _MISSING), right.get(path, _MISSING)
        if old in (None, _MISSING) and new in (None, _MISSING):
            continue
        if old is _MISSING:
            lines.append(f"  + {path}: {_literal(new)}")
        elif new is _MISSING:
            lines.append(f"  - {path}: {_literal(old)}")
        elif json.dumps(old) != json.dumps(new):
            lines.append(f"  {path}: {_literal(old)} → {_literal(new)}")
    return lines


def _provenance(info: Mapping[str, Any]) -> dict[str, Any]:
    prov = info.get("provenance") if isinstance(info.get("provenance"), dict) else {}
    git = prov.get("git") if isinstance(prov.get("git"), dict) else {}
    return {"git.commit": git.get("commit"), "git.dirty": git.get("dirty"), "hostname": prov.get("hostname")}


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="First run id (a unique prefix).")],
    b: Annotated[str, typer.Argument(help="Second run id (a unique prefix).")],
    registry: RegistryOption = None,
) -> None:
    """Show how two stored runs differ: spec leaves, environment, provenance (git commit, host)."""
    from eosdsl.cli.lookup import resolve_any

    reg = open_registry(registry)
    runs = []
    for prefix in (a, b):
        kind, run = resolve_any(reg, prefix)
        if kind != "run":
            fail(f"{prefix!r} is a sweep; diff compares two runs")
        runs.append(run)
    first, second = runs
    parts = [_read_run(r) for r in runs]
    out.print(
        f"a: {first.run_key[:12]} ({first.name})\nb: {second.run_key[:12]} ({second.name})", markup=False
    )
    spec_lines = diff_lines(parts[0][0], parts[1][0])
    out.print("spec:" if spec_lines else "identical specs", markup=False)
    for line in spec_lines:
        out.print(line, markup=False)
    for title, left, right in (
        ("environment", parts[0][1], parts[1][1]),
        ("provenance", _provenance(parts[0][2]), _provenance(parts[1][2])),
    ):
        lines = diff_lines(left, right)
        out.print(f"{title}:" if lines else f"identical {title}", markup=False)
        for line in lines:
            out.print(line, markup=False)


# ------------------------------------------------------------------------------------------- reindex


@registry_app.command()
def reindex(registry: RegistryOption = None) -> None:
    """Rebuild the SQLite index (index.sqlite) from the stored runs under objects/."""
    from eosdsl.registry.index import Index, stray_entries

    reg = open_registry(registry)
    if not reg.root.is_dir():
        fail(f"no registry at {reg.root}")
    index = Index(reg.root)
    try:
        count = index.rebuild(reg)
    except (sqlite3.Error, OSError) as error:
        fail(f"cannot rebuild {index.path}: {error}", code=1)
    for key, reason in index.skipped().items():
        err.print(f"skipped {key[:12]}: unreadable ({reason})", markup=False)
    stray = stray_entries(reg)
    if stray:
        listed = ", ".join(path.name[:12] for path in stray[:5]) + (", …" if len(stray) > 5 else "")
        err.print(
            f"ignored {len(stray)} entr{'y' if len(stray) == 1 else 'ies'} under objects/ that "
            f"{'is' if len(stray) == 1 else 'are'} not a committed run (no MANIFEST.json or missing files): "
            f"{listed}; `eosdsl registry verify` reports them",
            markup=False,
        )
    out.print(f"indexed {count} run(s) into {index.path}", markup=False)
