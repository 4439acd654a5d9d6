"""Judging stored runs: a run's per-run checks into its verdict, a sweep's checks and claims into its
record. Checks are not part of a run's identity, so judging never touches a committed run's files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eosdsl.checks.evaluate import final_value, ordering, run_checks, scalars_of
from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import Series, expression_name
from eosdsl.checks.sweep_claims import Row, Table, evaluate_claim, quantities_of, quantity_key, run_quantity
from eosdsl.engine.execute import (
    enable_x64,
)
from eosdsl.registry import Registry, StoredRun
from eosdsl.registry.index import update_index
from eosdsl.registry.manifest import utc_timestamp
from eosdsl.registry.verdicts import find_verdict, write_verdict
from eosdsl.spec import models as m
from eosdsl.spec.overrides import format_path, split_dotted
from eosdsl.spec.scope import parse
from eosdsl.spec.sweep import Point

if TYPE_CHECKING:
    from eosdsl.orchestration.jobs import JobOutcome


def judge(
    run: StoredRun,
    spec: m.Spec,
    registry: Registry,
    series: Series | None = None,
    force: bool = False,
    index: bool = True,
    results: list[dict] | None = None,
) -> list[CheckResult]:
    """The verdict of ``spec``'s per-run checks on a stored run, stored beside it and indexed.

    Checks are not part of a run's identity: the stored verdict of exactly these checks (and this
    eosdsl version) is served if there is one, else they are evaluated on the stored series (or on
    ``series``, the ones just committed) and stored as a new verdict, which becomes the run's current
    one (what ``show``, ``ls`` and ``query`` see). ``force`` evaluates even when a verdict is stored
    (``eosdsl check``). The committed run's files are never touched. ``index=False`` leaves indexing
    to the caller (a commit batch indexes its runs in one transaction). ``results``: the checks
    already evaluated on ``series`` (:func:`evaluate_checks`, before the run was committed).
    """
    enable_x64()  # checks evaluate in float64, as the run did
    checks = [c.model_dump(mode="json") for c in spec.checks]
    before = run.verdict
    found = None if force else find_verdict(registry.root, run.run_key, checks)
    if found is None:
        if results is None:
            if series is None:
                needed = [c for c in spec.checks if not isinstance(c, m.OrderingCheck)]
                series = {n: run.series(n) for n in run.series_names()} if needed else {}
            results = evaluate_checks(spec, series, run.info.get("references", {}))
        found = write_verdict(registry.root, run.run_key, checks, results)
    if index and (force or before is None or before.get("verdict_id") != found["verdict_id"]):
        # the current verdict changed (a reused run judged as before needs no index write): a cache,
        # errors are swallowed, and a run missing from it makes the next reader rebuild it
        update_index(registry, run)
    return [CheckResult.from_dict(r) for r in found["results"]]


def evaluate_checks(spec: m.Spec, series: Series, references: dict) -> list[dict]:
    """The results of ``spec``'s per-run checks on a run's ``series`` (and reference values), as a
    verdict stores them."""
    return [c.to_dict() for c in run_checks(spec, series, references)]


def sweep_checks(spec: m.Spec, outcomes: Sequence[JobOutcome]) -> list[CheckResult]:
    """The sweep-level checks of ``spec`` over its points: the ``ordering`` checks over the stored runs,
    then the claims of ``sweep.checks`` over every point (:mod:`eosdsl.checks.sweep_claims`; a point
    without a stored run is *missing* there).

    An ordering whose ``over`` names case labels is checked among the cases at each grid point (one
    result per grid point when there is a grid); otherwise it orders the points by their full labels.
    """
    claims = spec.sweep.checks if spec.sweep is not None else []
    table = claims_table(spec, outcomes, claims) if claims else None
    outcomes = [o for o in outcomes if o.run is not None]
    results = []
    for check in spec.checks:
        if not isinstance(check, m.OrderingCheck):
            continue
        finals = [_final_of(check.of, o) for o in outcomes]
        cases = {o.point.case for o in outcomes}
        by_case = check.over is not None and set(check.over) <= cases and any(o.point.grid for o in outcomes)
        if not by_case:
            labels = [o.label or o.run.short_id for o in outcomes]
            results.append(ordering(check, labels, finals))
            continue
        groups: dict[str, list[int]] = {}
        for i, o in enumerate(outcomes):
            groups.setdefault(o.point.grid, []).append(i)
        for grid, members in groups.items():
            result = ordering(check, [outcomes[i].point.case for i in members], [finals[i] for i in members])
            results.append(dataclasses.replace(result, name=f"{result.name} [{grid}]"))
    return results + [_claim_result(claim, table) for claim in claims]


def _claim_result(claim: Any, table: Table) -> CheckResult:
    """A sweep claim's result; one that cannot be evaluated fails (the sweep's runs are kept)."""
    try:
        return evaluate_claim(claim, table)
    except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as err:
        name = claim.name or claim.kind
        return CheckResult(name, False, math.nan, f"could not be evaluated: {type(err).__name__}: {err}", {})


def claims_table(spec: m.Spec, outcomes: Sequence[JobOutcome], claims: Sequence[Any]) -> Table:
    """The table the sweep claims see: per point its case, swept values (not the paths cases set),
    status and the quantities the claims read, computed from its stored run (NaN, with the reason, where
    one cannot be: an unrecorded series, a vector)."""
    cases = spec.sweep.cases if spec.sweep else []
    set_by_cases = {format_path(split_dotted(k)) for case in cases for k in case.set}
    axes = tuple(a for a in swept_axes([o.point for o in outcomes if o.point]) if a not in set_by_cases)
    needed = list(dict.fromkeys(q for claim in claims for q in quantities_of(claim)))
    try:  # read only the series the quantities use
        names: set[str] | None = {n for of, _ in needed for n in parse(of).names}
    except ValueError:  # an expression the plain parser does not take: read every series
        names = None
    rows = []
    for o in outcomes:
        point = o.point
        quantities: dict[str, float] = {}
        problems: dict[str, str] = {}
        if o.run is not None:
            wanted = [s for s in o.run.series_names() if names is None or expression_name(s) in names]
            series = {s: o.run.series(s) for s in wanted}
            scalars = scalars_of(o.spec, o.run.info.get("references", {}))
            for of, at in needed:
                key = quantity_key(of, at)
                try:
                    quantities[key] = run_quantity(of, at, series, scalars)
                except (KeyError, ValueError, TypeError, ArithmeticError, IndexError) as err:
                    quantities[key], problems[key] = math.nan, f"{o.label}: {err}"
        rows.append(
            Row(
                label=o.label or "",
                case=point.case if point else None,
                axes={a: point.assignments[a] for a in axes if point and a in point.assignments},
                status=o.status,
                quantities=quantities,
                problems=problems,
            )
        )
    return Table(axes, tuple(rows))


def _final_of(source: str, outcome: JobOutcome) -> float:
    run = outcome.run
    series = {name: run.series(name) for name in run.series_names()}
    return final_value(source, series, scalars_of(outcome.spec, run.info.get("references", {})))


def rejudge_sweep(
    base: m.Spec, outcomes: Sequence[JobOutcome], registry: Registry, sid: str, record: dict[str, Any]
) -> list[CheckResult]:
    """Evaluate ``base``'s sweep-level checks on a stored sweep again and store them in its record
    (``eosdsl check <sweep>``): the members' runs are judged separately (:func:`judge`)."""
    checks = sweep_checks(base, outcomes)
    registry.write_sweep(
        sid,
        {
            **record,
            "spec": base.model_dump(mode="json"),
            "checks": [c.to_dict() for c in checks],
            "judged_at": utc_timestamp(),
        },
    )
    return checks


def swept_axes(points: Sequence[Point]) -> list[str]:
    """The swept spec paths in expansion order (case assignments first), each listed once."""
    axes: dict[str, None] = {}
    for point in points:
        axes.update(dict.fromkeys(point.assignments))
    return list(axes)
