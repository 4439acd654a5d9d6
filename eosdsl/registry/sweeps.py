"""Sweep records read back: each member's swept values and stored run, and per-member summaries.

A sweep record (``sweeps/<sweep_id>.json``, written by :func:`eosdsl.orchestration.run_points`) lists its
members in expansion order with their run keys. Records that have ``axes`` also give each member's case label
and swept values; older records give labels only (:attr:`Sweep.axes` is then empty). A member's run may
be gone (garbage-collected, never stored) or unreadable: the member is kept, with no run and the status
``missing``, ``failed`` (as recorded) or ``damaged``.

Summaries are fields of the ``eosdsl query`` language (:func:`eosdsl.registry.query.parse_field`):
``final.S``, ``min.S``, ``max.S``, ``argmin.S``, ``argmax.S``, ``count.S`` of a 1-D series ``S`` (computed
by :func:`eosdsl.registry.index.series_summary`, as the index does), and ``check.NAME`` (passed, ``"n/a"``
when not applicable), ``check.NAME.margin``, ``check.NAME.applicable``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eosdsl.registry.index import series_summary
from eosdsl.registry.query import Field, QueryError, parse_field
from eosdsl.registry.store import Registry, StoredRun

__all__ = [
    "CASE",
    "DEFAULT_SUMMARIES",
    "Member",
    "Summary",
    "SummaryError",
    "Sweep",
    "default_summaries",
    "find_sweep",
    "is_number",
    "load_sweep",
    "as_number",
    "parse_summaries",
    "references_of",
    "summary_value",
]

CASE = "case"
"""The pseudo-axis naming a member's case label (e.g. ``--by case``)."""

DEFAULT_SUMMARIES = ("final.sharpness", "final.loss")
"""What ``eosdsl show`` lists for a sweep when no summary is asked for (those some run has)."""

Value = float | int | bool | str | None


class SummaryError(ValueError):
    """A summary a sweep cannot give: malformed, not per-run, or naming what no member run has."""


# --------------------------------------------------------------------------------------------- members


@dataclass(frozen=True)
class Member:
    """One point of a sweep: its label, run key, status, case label, swept values and stored run, and
    the error that failed it (``None`` unless its status is ``failed``)."""

    label: str
    run_key: str
    status: str
    case: str | None
    values: Mapping[str, Any]
    run: StoredRun | None
    error: str | None = None

    def value(self, axis: str) -> Any:
        """The member's value of a swept axis (its case label for :data:`CASE`; None if it has none)."""
        return self.case if axis == CASE else self.values.get(axis)


@dataclass(frozen=True)
class Sweep:
    """A sweep record with its members' runs looked up.

    ``axes`` are the swept spec paths that no case sets (the grid and ``-m`` axes), in expansion order;
    ``cases`` says whether the members have case labels.
    """

    sweep_id: str
    name: str
    created_at: str
    axes: tuple[str, ...]
    cases: bool
    members: tuple[Member, ...]
    checks: tuple[dict, ...]
    spec: Mapping[str, Any] | None = None
    """The base spec the sweep expanded (as recorded; None for a record without one)."""

    @property
    def short_id(self) -> str:
        return self.sweep_id[:12]

    def runs(self) -> list[StoredRun]:
        """The stored runs of the members, in member order."""
        return [member.run for member in self.members if member.run is not None]

    def numeric_axes(self) -> list[str]:
        """The axes whose every member value is a number (booleans are not)."""
        return [axis for axis in self.axes if all(is_number(m.value(axis)) for m in self.members)]

    def series_names(self) -> list[str]:
        """Every series some member run stored."""
        return sorted({name for run in self.runs() for name in _series_names(run)})

    def check_names(self) -> list[str]:
        """Every check name some member run recorded."""
        return sorted({str(c.get("name")) for run in self.runs() for c in run.checks if isinstance(c, dict)})

    def reference_names(self) -> list[str]:
        """Every numeric reference value some member run recorded (``test_loss.min_l1``, …)."""
        return sorted({name for run in self.runs() for name in references_of(run)})


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _series_names(run: StoredRun) -> list[str]:
    try:
        return run.series_names()
    except Exception:  # an unreadable results.zarr: the run has no series to offer
        return []


def references_of(run: Any) -> dict[str, float]:
    """The numeric reference values a run (a :class:`Run` or anything with its ``info``) recorded."""
    references = (run.info or {}).get("references")
    return {
        str(name): float(value)
        for name, value in (references.items() if isinstance(references, Mapping) else [])
        if is_number(value)
    }


def load_sweep(registry: Registry, sweep_id: str, record: Mapping[str, Any]) -> Sweep:
    """The sweep ``sweep_id`` from its record, each member's run looked up in ``registry``."""
    entries = [entry for entry in record.get("members") or [] if isinstance(entry, Mapping)]
    members = tuple(_member(registry, entry) for entry in entries)
    recorded = record.get("axes")
    axes = [str(a) for a in recorded] if isinstance(recorded, list) else []
    set_by_cases = _case_paths(record.get("spec"))
    checks = record.get("checks")
    return Sweep(
        sweep_id=sweep_id,
        name=str(record.get("name") or "?"),
        created_at=str(record.get("created_at", "?")),
        axes=tuple(a for a in axes if a not in set_by_cases),
        cases=bool(axes) and any(m.case is not None for m in members),
        members=members,
        checks=tuple(c for c in checks if isinstance(c, dict)) if isinstance(checks, list) else (),
        spec=record.get("spec") if isinstance(record.get("spec"), Mapping) else None,
    )


def find_sweep(registry: Registry, prefix: str) -> Sweep:
    """The sweep whose id starts with ``prefix``, its members' runs looked up.

    Raises :class:`~eosdsl.registry.UnknownRun` (no sweep matches) or
    :class:`~eosdsl.registry.AmbiguousRun` as :meth:`Registry.read_sweep` does.
    """
    record = registry.read_sweep(prefix)
    if not isinstance(record, Mapping):
        raise ValueError(f"the sweep record {prefix!r} is not a JSON object")
    norm = prefix.strip().lower()
    matches = sorted(registry.sweeps_dir.glob(f"{norm}*.json"))
    sweep_id = matches[0].name.removesuffix(".json") if matches else norm
    return load_sweep(registry, sweep_id, record)


def _member(registry: Registry, entry: Mapping[str, Any]) -> Member:
    key = str(entry.get("run_key", ""))
    run, status = registry.get(key), "failed" if entry.get("status") == "failed" else "missing"
    if run is not None:
        try:
            status = run.status
        except (OSError, ValueError, AttributeError):  # torn run.json: `registry verify` says more
            run, status = None, "damaged"
    values = entry.get("values")
    case = entry.get("case")
    return Member(
        label=str(entry.get("label") or key[:12]),
        run_key=key,
        status=status,
        case=None if case is None else str(case),
        values=dict(values) if isinstance(values, Mapping) else {},
        run=run,
        error=None if entry.get("error") is None else str(entry["error"]),
    )


def _case_paths(spec: Any) -> set[str]:
    """The spec paths the base spec's ``sweep.cases`` set."""
    sweep = spec.get("sweep") if isinstance(spec, Mapping) else None
    cases = sweep.get("cases") if isinstance(sweep, Mapping) else None
    paths: set[str] = set()
    for case in cases if isinstance(cases, list) else []:
        assigned = case.get("set") if isinstance(case, Mapping) else None
        paths.update(str(path).strip() for path in (assigned if isinstance(assigned, Mapping) else {}))
    return paths


# --------------------------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class Summary:
    """A per-run summary: its text (``final.test_loss``) and the query field it names."""

    text: str
    field: Field


def parse_summaries(texts: Iterable[str], sweep: Sweep) -> list[Summary]:
    """The summaries named by ``texts``; :class:`SummaryError` for a malformed one, one that is not
    per-run, or one naming a series or check that no member run has (the message lists what is)."""
    summaries = []
    for text in texts:
        try:
            field = parse_field(text)
        except QueryError as error:
            raise SummaryError(f"bad summary {text!r}: {error}") from None
        if field.kind == "summary":
            _known(text, "series", field.name, sweep.series_names(), sweep)
        elif field.kind == "check":
            _known(text, "check", field.name, sweep.check_names(), sweep)
        else:
            raise SummaryError(
                f"{text!r} is not a per-run summary; use final.S, min.S, max.S, argmin.S, argmax.S or "
                "count.S of a series S, or check.NAME[.margin|.applicable]"
            )
        summaries.append(Summary(text, field))
    return summaries


def _known(text: str, what: str, name: str, available: Sequence[str], sweep: Sweep) -> None:
    if name not in available:
        listed = ", ".join(available) or "(none: no member run is stored)"
        raise SummaryError(
            f"{text!r}: no run of sweep {sweep.short_id} has the {what} {name!r}; available: {listed}"
        )


def default_summaries(sweep: Sweep) -> list[Summary]:
    """:data:`DEFAULT_SUMMARIES` whose series some member run has."""
    present = set(sweep.series_names())
    return [
        Summary(text, parse_field(text)) for text in DEFAULT_SUMMARIES if text.split(".", 1)[1] in present
    ]


def summary_value(run: StoredRun | None, summary: Summary) -> Value:
    """The value of ``summary`` for ``run``; None when there is no run or it lacks the series or check.

    A series summary is a number, NaN for a NaN final value or the min/max of an all-NaN series (which
    the index stores as NULL); None for a series that is not 1-D. ``check.NAME`` is True, False or
    ``"n/a"`` (not applicable).
    """
    if run is None:
        return None
    field = summary.field
    if field.kind != "summary":
        return _check_value(run, field)
    try:
        computed = series_summary(*run.series(field.name))
    except Exception:  # absent or unreadable series: no value
        return None
    if computed is None:
        return None
    value = computed[field.attr]
    return math.nan if value is None else value


def _check_value(run: StoredRun, field: Field) -> Value:
    for check in run.checks:
        if isinstance(check, dict) and check.get("name") == field.name:
            applicable = bool(check.get("applicable", True))
            if field.attr == "applicable":
                return applicable
            if field.attr == "margin":
                margin = check.get("margin")
                return float(margin) if applicable and is_number(margin) else None
            return bool(check.get("passed")) if applicable else "n/a"
    return None


def as_number(value: Value) -> float:
    """A summary value as a float for plotting: booleans are 1/0, anything else not a number is NaN."""
    if isinstance(value, bool):
        return float(value)
    return float(value) if is_number(value) and math.isfinite(value) else math.nan
