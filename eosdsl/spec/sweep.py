"""Expand a spec's ``sweep`` (and command-line ``-m`` axes) into the specs of its points.

Points are ``cases`` × the cartesian ``grid`` (last axis fastest). Each point is an ordinary spec —
the base with the point's assignments applied, without ``sweep`` and without the sweep-level
(``ordering``) checks — and becomes its own stored run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eosdsl.spec import models as m
from eosdsl.spec.overrides import OverrideError, apply_overrides, expand_grid, format_path, split_dotted

Path_ = tuple[str | int, ...]

MAX_POINTS = 10_000
"""Most points one sweep may expand to (each is validated, then run)."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its label (``None`` for a spec without a sweep), spec and assignments.

    ``case`` is the case label (``None`` without cases) and ``grid`` the grid part of the label
    (``""`` without a grid): ``label`` is ``case,grid`` joined.
    """

    label: str | None
    spec: m.Spec
    assignments: dict[str, Any]
    case: str | None = None
    grid: str = ""


def format_value(value: Any) -> str:
    """A swept value as point labels write it: floats in ``%g``, anything else as ``str``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def point_data(data: dict[str, Any], assignments: Sequence[tuple[Path_, Any]]) -> dict[str, Any]:
    """The raw spec of a point: ``data`` without its sweep and ordering checks, with ``assignments``."""
    base = {k: v for k, v in data.items() if k != "sweep"}
    if isinstance(base.get("checks"), list):
        base["checks"] = [
            c for c in base["checks"] if not (isinstance(c, dict) and c.get("kind") == "ordering")
        ]
    return apply_overrides(base, assignments)


def expand(
    base: m.Spec,
    data: dict[str, Any],
    extra_axes: Sequence[tuple[Path_, list[Any]]],
    validate: Callable[[dict[str, Any], str], m.Spec],
) -> list[Point]:
    """The points of ``base`` (raw form ``data``); ``validate(raw, label)`` validates one point."""
    sweep = base.sweep or m.Sweep()
    axes = [(split_dotted(k), list(v)) for k, v in sweep.grid.items()] + list(extra_axes)
    if not axes and not sweep.cases:
        return [Point(None, base, {})]
    cases: list[m.Case | None] = list(sweep.cases) or [None]
    count = len(cases) * math.prod(len(values) for _, values in axes)
    if count > MAX_POINTS:
        raise OverrideError(f"the sweep has {count} points; the limit is {MAX_POINTS}")
    points = []
    for case in cases:
        for grid_point in expand_grid(axes) if axes else [{}]:
            assignments = [(split_dotted(k), v) for k, v in (case.set.items() if case else [])]
            assignments += list(grid_point.items())
            grid = ",".join(f"{format_path(p)}={format_value(v)}" for p, v in grid_point.items())
            label = ",".join(part for part in (case.label if case else "", grid) if part)
            raw = point_data(data, assignments)
            raw["name"] = f"{base.name}[{label}]"
            assigned = {format_path(p): v for p, v in assignments}
            points.append(Point(label, validate(raw, label), assigned, case.label if case else None, grid))
    return points
