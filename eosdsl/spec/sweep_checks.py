"""Claims across sweep points: the spec models of ``sweep.checks``.

A sweep claim sees every member of a sweep as a row of a table — the member's case label, its values of
the swept axes and a per-run *quantity*, the final, largest or smallest value of an expression over the
run's recorded series (:class:`Quantity`) — and states something about how that quantity varies across
the points: a monotone trend along an axis, the first axis value where a condition holds, the order of
the cases at each grid point, a rank correlation, or a least-squares law. The claims are evaluated by
:mod:`eosdsl.checks.sweep_claims` after every point has run; each stores its statistic per group.

They live in ``sweep.checks``, not in the spec's ``checks``: a point's spec never contains its sweep, so
the claims are not part of any run's identity, and the axes and case labels they name are the sweep's
own (checked by :func:`claim_errors`, with the ``-m`` axes of the command line).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from eosdsl.spec.base import Model
from eosdsl.spec.errors import LocatedError

Path = tuple[str | int, ...]

Expression = Annotated[
    str,
    Field(description="An expression over a run's recorded series (by expression name) and constants."),
]
Axis = Annotated[str, Field(description="A swept axis: a dotted key path of `sweep.grid` or of `-m`.")]
Label = Annotated[str, Field(description="A case label of `sweep.cases`.")]
Interval = tuple[float | None, float | None]
At = Annotated[
    Literal["final", "max", "min"],
    Field(description="final: `of` at the last recorded values; max/min: over the steps (NaN ignored)."),
]


class Quantity(Model):
    """A per-run number: ``at`` (final, max or min) over the run's steps of the expression ``of``."""

    of: Expression
    at: At = "final"


class Range(Model):
    """Bounds on a statistic: ``above`` < value < ``below`` (each optional, at least one)."""

    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> Range:
        if self.above is None and self.below is None:
            raise ValueError("a range needs `above` and/or `below`")
        return self


class _Claim(Model):
    """Fields every claim over a per-run quantity shares (see docs/specs.md, `sweep.checks`)."""

    name: str | None = Field(None, description="What the results are called (default: from the fields).")
    of: Expression
    at: At = "final"
    case: Label | None = Field(None, description="Only the points of this case (default: each case apart).")
    relative_to: Label | None = Field(
        None, description="The quantity divided by that of this case at the same grid point."
    )
    within: dict[Axis, Interval] = Field(
        default_factory=dict,
        description="Only the points whose axis values lie in these inclusive [low, high] intervals "
        "(null: unbounded).",
    )
    missing: Literal["fail", "skip"] = Field(
        "fail",
        description="A selected point without a stored run (failed, missing): fail the claim, or skip it.",
    )

    @model_validator(mode="after")
    def _relative_needs_a_case(self) -> _Claim:
        if self.relative_to is not None and self.case is None:
            raise ValueError("`relative_to` compares one case with another: give `case` too")
        if self.relative_to is not None and self.relative_to == self.case:
            raise ValueError("`relative_to` must name another case than `case`")
        return self


Direction = Literal["increasing", "decreasing", "nondecreasing", "nonincreasing"]


class TrendClaim(_Claim):
    """The quantity is monotone along ``along``, for each value of the other axes (and each case).

    With signed steps d_k = ±(y_{k+1} − y_k) (+ for increasing directions), the margin is
    min_k d_k + ``tol``: ``increasing``/``decreasing`` need margin > 0, the non-strict directions ≥ 0.
    """

    kind: Literal["trend"]
    along: Axis
    direction: Direction
    tol: float = Field(0.0, ge=0, description="Slack on every step against the direction.")


class FirstTrend(Model):
    """How the first axis values move along another axis (e.g. ᾱ decreases as η_f grows)."""

    along: Axis
    direction: Direction
    tol: float = Field(0.0, ge=0)


class FirstClaim(_Claim):
    """The first value of ``along`` at which the quantity is below ``below`` (or above ``above``), for
    each value of the other axes (e.g. paper 000 Fig. 1's threshold ᾱ(η_f))."""

    kind: Literal["first"]
    along: Axis
    below: float | None = None
    above: float | None = None
    trend: FirstTrend | None = Field(None, description="The first values are monotone along another axis.")
    require: bool = Field(True, description="Fail when a group has no point where the condition holds.")

    @model_validator(mode="after")
    def _one_condition(self) -> FirstClaim:
        if (self.below is None) == (self.above is None):
            raise ValueError("a first claim needs exactly one of `below` and `above`")
        if self.trend is not None and self.trend.along == self.along:
            raise ValueError("the trend of the first values is along another axis than `along`")
        return self


class CaseOrderClaim(Model):
    """At each grid point, the quantity of the cases ``over`` is ordered (consecutive values differing by
    more than ``min_gap``); holds when it does at a fraction ≥ ``min_fraction`` of the grid points."""

    kind: Literal["case_order"]
    name: str | None = None
    of: Expression
    at: At = "final"
    over: list[Label] = Field(min_length=2, description="Case labels, in the stated order.")
    order: Literal["increasing", "decreasing"]
    min_gap: float = Field(0.0, ge=0)
    min_fraction: float = Field(1.0, gt=0, le=1, description="Share of grid points that must be ordered.")
    within: dict[Axis, Interval] = Field(default_factory=dict)
    missing: Literal["fail", "skip"] = "fail"


class SpearmanClaim(Model):
    """Spearman's rank correlation ρ between two per-point quantities (or a quantity and an axis), over
    the points of each case (or of ``case``), within ``above`` < ρ < ``below``."""

    kind: Literal["spearman"]
    name: str | None = None
    x: Quantity | Axis
    y: Quantity | Axis
    case: Label | None = None
    above: float | None = Field(None, description="ρ > above (ρ lies in [−1, 1]).")
    below: float | None = Field(None, description="ρ < below.")
    within: dict[Axis, Interval] = Field(default_factory=dict)
    missing: Literal["fail", "skip"] = "fail"

    @model_validator(mode="after")
    def _a_bound(self) -> SpearmanClaim:
        if self.above is None and self.below is None:
            raise ValueError("a spearman claim needs `above` and/or `below`")
        return self


class FitClaim(_Claim):
    """Least squares y = slope·x + intercept of the quantity (y) against ``along`` (x), for each value of
    the other axes; ``scale`` takes log10 of x and/or y first (``loglog``: y ∝ x^slope). Each of
    ``slope``, ``intercept`` and ``r2`` given must lie in its range; with none, the fit is recorded."""

    kind: Literal["fit"]
    along: Axis
    scale: Literal["linear", "logx", "logy", "loglog"] = "linear"
    slope: Range | None = None
    intercept: Range | None = None
    r2: Range | None = None


SweepClaim = Annotated[
    TrendClaim | FirstClaim | CaseOrderClaim | SpearmanClaim | FitClaim, Field(discriminator="kind")
]
"""A claim across the points of a sweep (``sweep.checks``)."""


# --------------------------------------------------------------------------------------------- validation


def claim_axes(claim: Any) -> list[tuple[str, Path]]:
    """Every axis a claim names, with the field path (relative to the claim) where it is named."""
    named: list[tuple[str, Path]] = []
    if isinstance(claim, TrendClaim | FirstClaim | FitClaim):
        named.append((claim.along, ("along",)))
    if isinstance(claim, FirstClaim) and claim.trend is not None:
        named.append((claim.trend.along, ("trend", "along")))
    if isinstance(claim, SpearmanClaim):
        sides = (("x", claim.x), ("y", claim.y))
        named += [(side, (field,)) for field, side in sides if isinstance(side, str)]
    named += [(axis, ("within", axis)) for axis in claim.within]
    return named


def claim_cases(claim: Any) -> list[tuple[str, Path]]:
    """Every case label a claim names, with its field path."""
    if isinstance(claim, CaseOrderClaim):
        return [(label, ("over", i)) for i, label in enumerate(claim.over)]
    return [
        (label, (field,))
        for field in ("case", "relative_to")
        if (label := getattr(claim, field, None)) is not None
    ]


def claim_expressions(claim: Any) -> list[tuple[str, Path]]:
    """Every expression a claim evaluates on a run, with its field path."""
    if isinstance(claim, SpearmanClaim):
        sides = (("x", claim.x), ("y", claim.y))
        return [(side.of, (field, "of")) for field, side in sides if isinstance(side, Quantity)]
    return [(claim.of, ("of",))]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def claim_errors(
    claims: Sequence[Any],
    axes: dict[str, Sequence[Any]],
    cases: Iterable[str],
    check_expression: Any = None,
) -> list[LocatedError]:
    """Errors of ``sweep.checks``: an axis that is not swept (``axes``: path → values, the grid's and
    the ``-m`` axes) or whose values are not all numbers (claims order, bound and fit axis values as
    numbers), and a case label that is not one of ``cases``. ``check_expression(source, path)``
    (optional) returns the errors of one expression."""
    errors: list[LocatedError] = []
    cases = list(cases)
    numeric = {a for a, values in axes.items() if all(_is_number(v) for v in values)}
    swept = ", ".join(axes) or "none: add `grid` or `-m` axes"
    for i, claim in enumerate(claims):
        where: Path = ("sweep", "checks", i)
        if not axes and not cases:
            errors.append(LocatedError((*where, "kind"), "a sweep claim needs a sweep with cases or a grid"))
            continue
        for axis, path in claim_axes(claim):
            if axis not in axes:
                errors.append(LocatedError((*where, *path), f"'{axis}' is not a swept axis (swept: {swept})"))
            elif axis not in numeric:  # every claim reads the axes it names as numbers
                errors.append(LocatedError((*where, *path), f"the values of '{axis}' are not all numbers"))
        for label, path in claim_cases(claim):
            if label not in cases:
                known = ", ".join(cases) or "none: the sweep has no cases"
                errors.append(LocatedError((*where, *path), f"no case labelled '{label}' (cases: {known})"))
        if check_expression is not None:
            for source, path in claim_expressions(claim):
                errors += check_expression(source, (*where, *path))
    return errors


def spec_claim_errors(spec: Any, extra_axes: Sequence[tuple[Path, Sequence[Any]]] = ()) -> list[LocatedError]:
    """:func:`claim_errors` of a spec's ``sweep.checks``, its axes being the grid's and ``extra_axes``
    (the ``-m`` axes), and every ``of`` an expression over the series the spec records, its reference
    values and constants (as a per-run check's)."""
    from eosdsl.expr import ExprError, compile_expr
    from eosdsl.spec.overrides import OverrideError, format_path, split_dotted
    from eosdsl.spec.semantic import REFERENCES, series_names

    sweep = spec.sweep
    if sweep is None or not sweep.checks:
        return []
    axes: dict[str, Sequence[Any]] = {}
    for key, values in sweep.grid.items():
        try:
            axes[format_path(split_dotted(key))] = values
        except OverrideError:  # reported when the sweep is expanded
            continue
    axes.update({format_path(path): values for path, values in extra_axes})
    known = [*spec.constants, *REFERENCES.get(spec.problem.kind, ()), *series_names(spec)]

    def expression(source: str, path: Path) -> list[LocatedError]:
        try:
            compile_expr(source, names=known)
        except ExprError as err:
            where = f" (at column {err.offset + 1} of the expression)" if err.offset is not None else ""
            return [LocatedError(path, f"{err.message}{where}")]
        return []

    return claim_errors(sweep.checks, axes, [c.label for c in sweep.cases], expression)
