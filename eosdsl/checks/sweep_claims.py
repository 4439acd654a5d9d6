"""Claims across sweep points (``sweep.checks``), evaluated on a table of the sweep's members.

Every member of a sweep is a :class:`Row`: its label, case label, values of the swept axes, status and
the per-run quantities the claims need (the final, largest or smallest value of an expression over the
run's series, :func:`run_quantity`). The claims are pure functions of that table
(:func:`evaluate_claim`); each returns a :class:`~eosdsl.checks.result.CheckResult` whose ``values``
hold the claim's statistic per group, keyed ``stat[group]`` (``stat`` alone when there is one group).

Groups. A claim along an axis (trend, first, fit) groups the points by case and by the values of every
other swept axis; a Spearman claim groups by case; a case ordering looks at each grid point. ``case``
keeps one case; ``relative_to`` divides its quantity by another case's at the same grid point (paper 000
Fig. 1: heavy ball's final test loss over GD's); ``within`` keeps the points whose axis values lie in
inclusive intervals.

Points without a usable value, by a documented rule:

- *missing* — a member with no stored run (failed, missing or damaged): with ``missing: fail`` (the
  default) the claim fails and names them; with ``skip`` it is evaluated without them. Either way the
  statistics are computed from the other points and ``values["missing"]`` counts them.
- *excluded* — a stored run whose quantity is not finite (a diverged run's ``inf`` or ``nan``, an
  expression that cannot be evaluated on that run, a non-positive value on a log scale): left out of
  trends, fits, correlations and case orderings, and never a crossing of a ``first`` claim;
  ``values["excluded"]`` counts them.
- a group with too few points for its statistic (2 for a trend, 3 for a fit or a correlation) fails
  the claim, with the statistic NaN: a sweep whose runs all diverged must not pass silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eosdsl.checks.result import CheckResult
from eosdsl.checks.series import Series, evaluate_series, final_value
from eosdsl.spec import sweep_checks as sc

__all__ = [
    "NO_RUN",
    "Row",
    "Table",
    "evaluate_claim",
    "first_crossing",
    "least_squares",
    "quantities_of",
    "quantity_key",
    "ranks",
    "run_quantity",
    "spearman",
    "trend_margin",
]

NO_RUN = frozenset({"failed", "missing", "damaged"})
"""Statuses of a member without a stored run."""


@dataclass(frozen=True)
class Row:
    """One member of a sweep: label, case label, swept values, status and quantities (NaN when a
    quantity could not be computed; ``problems`` then says why)."""

    label: str
    case: str | None
    axes: Mapping[str, Any]
    status: str
    quantities: Mapping[str, float] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return self.status not in NO_RUN


@dataclass(frozen=True)
class Table:
    """A sweep's members and its swept axes (grid and ``-m`` axes, in expansion order; not the paths
    that cases set)."""

    axes: tuple[str, ...]
    rows: tuple[Row, ...]


# ------------------------------------------------------------------------------------------ quantities


def quantity_key(of: str, at: str) -> str:
    """The name of a per-run quantity: ``final(test_loss)``, ``max(sharpness)``."""
    return f"{at}({of})"


def quantities_of(claim: Any) -> list[tuple[str, str]]:
    """The ``(of, at)`` quantities a claim reads from each run."""
    if isinstance(claim, sc.SpearmanClaim):
        return [(side.of, side.at) for side in (claim.x, claim.y) if isinstance(side, sc.Quantity)]
    return [(claim.of, claim.at)]


def run_quantity(of: str, at: str, series: Series, scalars: Mapping[str, float]) -> float:
    """``at`` of the expression ``of`` over one run: ``final`` evaluates it on the last recorded value
    of each series; ``max``/``min`` evaluate it at every recorded step and take the largest/smallest
    value, ignoring NaN (NaN when every value is NaN). A vector-valued expression is an error
    (ValueError); an unrecorded series a KeyError."""
    if at == "final":
        value = np.asarray(final_value(of, series, scalars), dtype=float)
    else:
        _, values = evaluate_series(of, series, scalars)
        values = np.asarray(values, dtype=float)
        if values.ndim != 1:
            raise ValueError(f"{of} is not a number per step")
        known = values[~np.isnan(values)]
        value = np.asarray(math.nan if known.size == 0 else (known.max() if at == "max" else known.min()))
    if value.ndim != 0:
        raise ValueError(f"{of} is not a number")
    return float(value)


# ------------------------------------------------------------------------------------------ statistics


def first_crossing(
    x: Sequence[float], y: Sequence[float], below: float | None = None, above: float | None = None
) -> float:
    """min{x_k : y_k < below} (or y_k > ``above``), NaN when no finite y_k satisfies it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    holds = np.isfinite(y) & ((y < below) if below is not None else (y > above))
    return float(np.min(x[holds])) if holds.any() else math.nan


def _sign(direction: str) -> float:
    return 1.0 if direction in ("increasing", "nondecreasing") else -1.0


def trend_margin(y: Sequence[float], direction: str, tol: float = 0.0) -> float:
    """min_k s·(y_{k+1} − y_k) + tol with s = +1 for (non)increasing and −1 for (non)decreasing, over
    ``y`` in axis order; NaN with fewer than two values. The trend holds iff the margin is > 0
    (``increasing``, ``decreasing``) or ≥ 0 (``nondecreasing``, ``nonincreasing``)."""
    y = np.asarray(y, dtype=float)
    if y.size < 2:
        return math.nan
    return float(np.min(_sign(direction) * np.diff(y))) + tol


def trend_holds(margin: float, direction: str) -> bool:
    """Whether a :func:`trend_margin` satisfies ``direction`` (False for NaN)."""
    return bool(margin > 0 if direction in ("increasing", "decreasing") else margin >= 0)


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1…n of ``values``, ties sharing the mean of the ranks they span (fractional ranking)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    out = np.empty(values.size, dtype=float)
    start = 0
    while start < values.size:
        stop = start + 1
        while stop < values.size and sorted_values[stop] == sorted_values[start]:
            stop += 1
        out[order[start:stop]] = (start + 1 + stop) / 2  # mean of the ranks start+1 … stop
        start = stop
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the fractional ranks, ρ = cov(R(x), R(y)) /
    (σ_R(x)·σ_R(y)) (with no ties, 1 − 6Σd²/(n(n² − 1))). NaN with fewer than two points or when
    either side is constant."""
    rx, ry = ranks(x), ranks(y)
    if rx.size < 2:
        return math.nan
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(np.sum(dx * dx) * np.sum(dy * dy)))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else math.nan


def least_squares(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """(slope, intercept, r²) of the least-squares line y ≈ a·x + b: a = Σ(x − x̄)(y − ȳ)/Σ(x − x̄)²,
    b = ȳ − a·x̄, r² = 1 − Σ(y − a·x − b)²/Σ(y − ȳ)² (1 when y is constant and fitted exactly). NaN
    with fewer than two points or a constant x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2:
        return math.nan, math.nan, math.nan
    dx = x - x.mean()
    sxx = float(np.sum(dx * dx))
    if sxx == 0:
        return math.nan, math.nan, math.nan
    slope = float(np.sum(dx * (y - y.mean()))) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    residual = float(np.sum((y - slope * x - intercept) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else math.nan)
    return slope, intercept, r2


# ------------------------------------------------------------------------------------------ selection


@dataclass(frozen=True)
class _Point:
    """A selected point: its label, case, swept values and the value the claim reads (None: no run)."""

    label: str
    case: str | None
    axes: Mapping[str, Any]
    value: float | None
    problem: str | None = None


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _inside(axes: Mapping[str, Any], within: Mapping[str, tuple[float | None, float | None]]) -> bool:
    for axis, (low, high) in within.items():
        value = axes.get(axis)
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _grid(axes: Mapping[str, Any], table_axes: Sequence[str]) -> tuple:
    return tuple(axes.get(a) for a in table_axes)


def _row_value(row: Row, key: str) -> tuple[float | None, str | None]:
    if not row.stored:
        return None, None
    return float(row.quantities.get(key, math.nan)), row.problems.get(key)


def _select(table: Table, claim: Any, key: str) -> list[_Point]:
    """The points a claim looks at: its case (each case without one), inside ``within``, the value of
    the quantity ``key`` — divided by that of ``relative_to`` at the same grid point when given."""
    within = getattr(claim, "within", {})
    case = getattr(claim, "case", None)
    relative_to = getattr(claim, "relative_to", None)
    rows = [r for r in table.rows if _inside(r.axes, within) and (case is None or r.case == case)]
    reference: dict[tuple, Row] = {}
    if relative_to is not None:
        reference = {_grid(r.axes, table.axes): r for r in table.rows if r.case == relative_to}
    points = []
    for row in rows:
        value, problem = _row_value(row, key)
        if relative_to is not None:
            ref = reference.get(_grid(row.axes, table.axes))
            ref_value, ref_problem = (None, None) if ref is None else _row_value(ref, key)
            problem = problem or ref_problem
            value = None if value is None or ref_value is None else _ratio(value, ref_value)
        points.append(_Point(row.label, row.case, row.axes, value, problem))
    return points


def _ratio(a: float, b: float) -> float:
    """a/b, NaN when undefined (b = 0 or either is NaN): an excluded value, never a crossing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b)) if b != 0 else math.nan


def _group_key(case: str | None, axes: Mapping[str, Any], keep: Sequence[str], with_case: bool) -> str:
    parts = ([case] if with_case and case is not None else []) + [f"{a}={_format(axes.get(a))}" for a in keep]
    return ",".join(parts)


def _groups(
    points: Sequence[_Point], table: Table, along: Sequence[str], claim: Any
) -> dict[str, list[_Point]]:
    """Points grouped by case (unless the claim keeps one) and by every swept axis not in ``along``."""
    keep = [a for a in table.axes if a not in along]
    with_case = getattr(claim, "case", None) is None
    groups: dict[str, list[_Point]] = {}
    for p in points:
        groups.setdefault(_group_key(p.case, p.axes, keep, with_case), []).append(p)
    return groups


def _key(stat: str, group: str) -> str:
    """The name of a statistic in ``CheckResult.values``: ``stat[group]``, ``stat`` for one group."""
    return f"{stat}[{group}]" if group else stat


def _labelled(group: str, text: str) -> str:
    return f"{group}: {text}" if group else text


def _at(group: str) -> str:
    return f" at {group}" if group else ""


# ------------------------------------------------------------------------------------------ the claims


@dataclass
class _Outcome:
    """What a claim collects before it becomes a CheckResult."""

    name: str
    values: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    excluded: int = 0
    problem: str | None = None

    def usable(self, points: Sequence[_Point]) -> list[_Point]:
        """The points with a finite value; counts the others as missing or excluded."""
        kept = []
        for p in points:
            if p.value is None:
                self.missing.append(p.label)
            elif not math.isfinite(p.value):
                self.excluded += 1
                self.problem = self.problem or p.problem
            else:
                kept.append(p)
        return kept

    def result(self, claim: Any, head: str) -> CheckResult:
        missing_fails = bool(self.missing) and claim.missing == "fail"
        if missing_fails:
            shown = ", ".join(self.missing[:5]) + (", …" if len(self.missing) > 5 else "")
            self.failures.insert(0, f"{len(self.missing)} points have no stored run ({shown})")
        self.values.update(missing=len(self.missing), excluded=self.excluded)
        finite = [m for m in self.margins if math.isfinite(m)]
        complete = finite and len(finite) == len(self.margins) and not missing_fails
        margin = min(finite) if complete else math.nan  # NaN: no margin stands for the whole claim
        notes = [f"{self.excluded} points excluded (not finite)"] if self.excluded else []
        if self.problem:
            notes.append(f"e.g. {self.problem}")
        detail = head + ": " + "; ".join(self.parts) if self.parts else head
        if self.failures or notes:
            detail += " — " + "; ".join(self.failures + notes)
        return CheckResult(self.name, not self.failures, margin, detail, self.values)


def _number(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


def _quantity_text(claim: Any) -> str:
    text = quantity_key(claim.of, claim.at)
    case = getattr(claim, "case", None)
    relative_to = getattr(claim, "relative_to", None)
    if case is not None:
        text += f" of {case}" + (f" / {relative_to}" if relative_to else "")
    return text


def _trend(claim: sc.TrendClaim, table: Table) -> CheckResult:
    out = _Outcome(claim.name or f"trend {_quantity_text(claim)} along {claim.along}")
    groups = _groups(_select(table, claim, quantity_key(claim.of, claim.at)), table, [claim.along], claim)
    for group, points in groups.items():
        kept = sorted(out.usable(points), key=lambda p: p.axes[claim.along])
        margin = trend_margin([p.value for p in kept], claim.direction, claim.tol)
        out.values[_key("margin", group)] = margin
        out.margins.append(margin)
        out.parts.append(_labelled(group, _number(margin)))
        if not trend_holds(margin, claim.direction):
            why = "fewer than 2 points" if len(kept) < 2 else f"margin {_number(margin)}"
            out.failures.append(f"not {claim.direction}{_at(group)} ({why})")
    if not groups:
        out.failures.append("no points selected")
    return out.result(claim, f"{claim.direction}, smallest signed step + tol (margin)")


def _first(claim: sc.FirstClaim, table: Table) -> CheckResult:
    relation = f"< {claim.below:g}" if claim.below is not None else f"> {claim.above:g}"
    out = _Outcome(claim.name or f"first {claim.along} where {_quantity_text(claim)} {relation}")
    groups = _groups(_select(table, claim, quantity_key(claim.of, claim.at)), table, [claim.along], claim)
    found: dict[str, tuple[Mapping[str, Any], str | None, float]] = {}
    for group, points in groups.items():
        kept = out.usable(points)
        x = [p.axes[claim.along] for p in kept]
        first = first_crossing(x, [p.value for p in kept], claim.below, claim.above)
        out.values[_key("first", group)] = first
        out.parts.append(_labelled(group, _number(first)))
        found[group] = (points[0].axes, points[0].case, first)
        if claim.require and not math.isfinite(first):
            out.failures.append(f"never{_at(group)}")
    if not groups:
        out.failures.append("no points selected")
    never = sum(not math.isfinite(v[2]) for v in found.values())
    if claim.require and never:
        out.margins.append(-float(never))  # minus the number of groups without a crossing
    if claim.trend is not None:
        _first_trend(claim, table, found, out)
    return out.result(claim, f"first {claim.along} with {_quantity_text(claim)} {relation}")


def _first_trend(
    claim: sc.FirstClaim,
    table: Table,
    found: Mapping[str, tuple[Mapping[str, Any], str | None, float]],
    out: _Outcome,
) -> None:
    """The first values, ordered along ``claim.trend.along`` within each case and remaining axes."""
    trend = claim.trend
    keep = [a for a in table.axes if a not in (claim.along, trend.along)]
    series: dict[str, list[tuple[Any, float]]] = {}
    for axes, case, first in found.values():
        key = _group_key(case, axes, keep, claim.case is None)
        series.setdefault(key, []).append((axes[trend.along], first))
    for key, pairs in series.items():
        values = [v for _, v in sorted(pairs, key=lambda pair: pair[0]) if math.isfinite(v)]
        margin = trend_margin(values, trend.direction, trend.tol)
        out.values[_key("trend_margin", key)] = margin
        out.margins.append(margin)
        holds = trend_holds(margin, trend.direction)
        out.parts.append(
            f"{trend.direction} along {trend.along}{_at(key)}: {'yes' if holds else 'no'} "
            f"(margin {_number(margin)})"
        )
        if not holds:
            out.failures.append(f"the first values are not {trend.direction} along {trend.along}")


def _case_order(claim: sc.CaseOrderClaim, table: Table) -> CheckResult:
    out = _Outcome(claim.name or f"case_order {quantity_key(claim.of, claim.at)} {claim.order} over "
                   f"{', '.join(claim.over)}")
    key = quantity_key(claim.of, claim.at)
    by_grid: dict[tuple, dict[str, _Point]] = {}
    for row in table.rows:
        if row.case in claim.over and _inside(row.axes, claim.within):
            value, problem = _row_value(row, key)
            point = _Point(row.label, row.case, row.axes, value, problem)
            by_grid.setdefault(_grid(row.axes, table.axes), {})[row.case] = point
    sign = 1.0 if claim.order == "increasing" else -1.0
    held = evaluated = 0
    gaps = []
    for grid, cases in by_grid.items():
        group = ",".join(f"{a}={_format(v)}" for a, v in zip(table.axes, grid, strict=True))
        points = [cases[c] for c in claim.over if c in cases]
        out.missing += [c + (f",{group}" if group else "") for c in claim.over if c not in cases]
        kept = out.usable(points)
        if len(kept) < len(claim.over):
            out.values[_key("gap", group)] = math.nan
            continue
        gap = float(np.min(sign * np.diff([p.value for p in kept]))) - claim.min_gap
        out.values[_key("gap", group)] = gap
        gaps.append(gap)
        evaluated += 1
        held += gap > 0
    fraction = held / evaluated if evaluated else math.nan
    out.values.update(fraction=fraction, held=held, points=evaluated)
    if claim.min_fraction < 1:
        out.margins.append(fraction - claim.min_fraction)
    else:
        out.margins.append(min(gaps) if gaps else math.nan)
    out.parts.append(f"ordered at {held} of {evaluated} grid points ({_number(fraction)}; "
                     f"needed {claim.min_fraction:g})")
    if not (evaluated and fraction >= claim.min_fraction):
        out.failures.append("too few grid points are ordered" if evaluated else "no grid point evaluated")
    relation = " < " if claim.order == "increasing" else " > "
    return out.result(claim, relation.join(claim.over) + f" (min gap {claim.min_gap:g})")


def _side(claim: sc.SpearmanClaim, side: sc.Quantity | str, table: Table) -> tuple[str, list[_Point]]:
    """The points of one side of a Spearman claim: a quantity, or an axis's values."""
    if isinstance(side, sc.Quantity):
        key = quantity_key(side.of, side.at)
        return key, _select(table, claim, key)
    rows = [r for r in table.rows if _inside(r.axes, claim.within) and claim.case in (None, r.case)]
    return side, [_Point(r.label, r.case, r.axes, float(r.axes[side])) for r in rows]


def _spearman(claim: sc.SpearmanClaim, table: Table) -> CheckResult:
    x_name, xs = _side(claim, claim.x, table)
    y_name, ys = _side(claim, claim.y, table)
    out = _Outcome(claim.name or f"spearman {x_name} vs {y_name}")
    groups: dict[str, list[tuple[_Point, _Point]]] = {}
    for px, py in zip(xs, ys, strict=True):
        groups.setdefault(px.case if claim.case is None and px.case is not None else "", []).append((px, py))
    for group, pairs in groups.items():
        kept = []
        for px, py in pairs:
            if px.value is None or py.value is None:
                out.missing.append(px.label)
            elif not (math.isfinite(px.value) and math.isfinite(py.value)):
                out.excluded += 1
                out.problem = out.problem or px.problem or py.problem
            else:
                kept.append((px.value, py.value))
        rho = spearman(*zip(*kept, strict=True)) if len(kept) >= 3 else math.nan
        out.values[_key("rho", group)] = rho
        out.values[_key("n", group)] = len(kept)
        out.parts.append(_labelled(group, f"ρ = {_number(rho)} (n = {len(kept)})"))
        slacks = _range_slacks(rho, claim.above, claim.below)
        out.margins.append(min(slacks))
        if not all(s > 0 for s in slacks):
            out.failures.append(
                f"ρ{_at(group)} is outside ({claim.above}, {claim.below})"
                if len(kept) >= 3
                else f"fewer than 3 points{_at(group)}"
            )
    if not groups:
        out.failures.append("no points selected")
    return out.result(claim, "Spearman ρ")


def _range_slacks(value: float, above: float | None, below: float | None) -> list[float]:
    """value − above and below − value for the bounds given (NaN when the value is)."""
    slacks = [value - above] if above is not None else []
    return slacks + ([below - value] if below is not None else [])


def _fit(claim: sc.FitClaim, table: Table) -> CheckResult:
    out = _Outcome(claim.name or f"fit {_quantity_text(claim)} against {claim.along} ({claim.scale})")
    groups = _groups(_select(table, claim, quantity_key(claim.of, claim.at)), table, [claim.along], claim)
    log_x, log_y = claim.scale in ("logx", "loglog"), claim.scale in ("logy", "loglog")
    for group, points in groups.items():
        kept = []
        for p in out.usable(points):
            x = float(p.axes[claim.along])
            if (log_x and x <= 0) or (log_y and p.value <= 0):
                out.excluded += 1
                continue
            kept.append((math.log10(x) if log_x else x, math.log10(p.value) if log_y else p.value))
        fit = least_squares(*zip(*kept, strict=True)) if len(kept) >= 3 else (math.nan,) * 3
        stats = dict(zip(("slope", "intercept", "r2"), fit, strict=True))
        out.values.update({_key(s, group): v for s, v in stats.items()})
        out.values[_key("n", group)] = len(kept)
        text = f"slope {_number(stats['slope'])}, intercept {_number(stats['intercept'])}, "
        out.parts.append(_labelled(group, text + f"r² {_number(stats['r2'])} (n = {len(kept)})"))
        if len(kept) < 3:
            out.failures.append(f"fewer than 3 points{_at(group)}")
            out.margins.append(math.nan)
            continue
        for stat in ("slope", "intercept", "r2"):
            bounds = getattr(claim, stat)
            if bounds is None:
                continue
            slacks = _range_slacks(stats[stat], bounds.above, bounds.below)
            out.margins.append(min(slacks))
            if not all(s > 0 for s in slacks):
                out.failures.append(f"{stat}{_at(group)} is outside ({bounds.above}, {bounds.below})")
    if not groups:
        out.failures.append("no points selected")
    return out.result(claim, f"least squares ({claim.scale})")


def evaluate_claim(claim: Any, table: Table) -> CheckResult:
    """The result of one sweep claim on the table of its sweep's members."""
    evaluators = {
        sc.TrendClaim: _trend,
        sc.FirstClaim: _first,
        sc.CaseOrderClaim: _case_order,
        sc.SpearmanClaim: _spearman,
        sc.FitClaim: _fit,
    }
    return evaluators[type(claim)](claim, table)
