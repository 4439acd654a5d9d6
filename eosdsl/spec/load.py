"""Load a spec file: YAML 1.2 → overrides → pydantic validation → semantic checks → sweep points.

Importing this module does not import jax: the semantic checks (:mod:`eosdsl.spec.semantic`, which
compile and evaluate expressions with :mod:`eosdsl.expr`) are imported on the first validation.

Every problem found is reported at once as ``file:line:col key.path: message`` (a :class:`SpecError`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from eosdsl.spec import models as m
from eosdsl.spec.errors import LocatedError, SpecError, locate
from eosdsl.spec.overrides import OverrideError, apply_overrides, parse_multirun, parse_override
from eosdsl.spec.pydantic_errors import from_validation_error
from eosdsl.spec.stages import anchored, anchored_assignment, loading
from eosdsl.spec.sweep import Point, expand
from eosdsl.spec.sweep_checks import spec_claim_errors
from eosdsl.spec.yamlio import load_yaml, load_yaml_file

Positions = dict[tuple[str | int, ...], tuple[int, int]]


@dataclass(frozen=True)
class Loaded:
    """A validated spec and the runs it stands for."""

    filename: str
    spec: m.Spec
    points: list[Point]

    @property
    def is_sweep(self) -> bool:
        return not (len(self.points) == 1 and self.points[0].label is None)


def validate(data: Any, positions: Positions, filename: str, context: str | None = None) -> m.Spec:
    """A :class:`~eosdsl.spec.models.Spec` from raw data, or a :class:`SpecError` listing every problem."""
    # The semantic checks compile expressions (eosdsl.expr, built on jax.numpy) and evaluate constant ones:
    # imported on first validation, so that importing the spec layer does not import jax.
    from eosdsl.spec.semantic import semantic_errors

    try:
        spec = m.Spec.model_validate(data)
    except ValidationError as exc:
        error = from_validation_error(exc, m.Spec, data, positions, filename)
        semantic = [e.at(positions) for e in _semantic_despite(data, error.errors, semantic_errors)]
        raise _in_context(SpecError([*error.errors, *semantic], filename), context) from None
    errors = semantic_errors(spec)
    if spec.sweep is None and context is None:
        errors += [
            LocatedError(
                ("checks", i, "kind"),
                "an ordering check compares the runs of a sweep; add `sweep:` with cases or a grid",
            )
            for i, c in enumerate(spec.checks)
            if isinstance(c, m.OrderingCheck)
        ]
    if errors:
        located = [e.at(positions) for e in errors]
        raise _in_context(SpecError(located, filename), context)
    return spec


_LISTS = ("measure", "checks", "events")
"""Spec sections whose items are validated one by one (a structural error drops one item)."""
_DROPPABLE = {"description", "tags", "seed", "runtime", "sweep", *_LISTS}
"""Top-level keys with defaults: one with a structural error is dropped to check the rest semantically."""
_READS = {"measure": ("measure", "checks", "events"), "events": ("events", "checks")}
"""Sections whose semantic checks read another section: ``checks`` need the series ``measure`` records."""


def _semantic_despite(
    data: Any, structural: Sequence[LocatedError], semantic_errors: Any
) -> list[LocatedError]:
    """The semantic (expression) errors of the parts of ``data`` that validated structurally, so that one
    ``validate`` reports both kinds. Each measure, check or event with a structural error is left out
    (and sections with defaults: description, tags, seed, runtime, sweep); semantic errors of sections that
    read a section missing something (checks read the measures) are not reported, since they may come
    from the omission. A structural error in a required section (problem, optimizer, train, constants,
    name, precision) gives no semantic errors: they would mostly follow from it."""
    if not isinstance(data, dict):
        return []
    dropped_keys: set[str] = set()
    dropped_items: dict[str, set[int]] = {section: set() for section in _LISTS}
    for error in structural:
        if not error.path or error.path[0] not in _DROPPABLE:
            return []
        top = str(error.path[0])
        if top in _LISTS and len(error.path) > 1 and isinstance(error.path[1], int):
            dropped_items[top].add(error.path[1])
        else:
            dropped_keys.add(top)
    kept: dict[str, list[int]] = {}
    partial = {key: value for key, value in data.items() if key not in dropped_keys}
    for section in _LISTS:
        items = partial.get(section)
        if dropped_items[section] and isinstance(items, list):
            kept[section] = [i for i in range(len(items)) if i not in dropped_items[section]]
            partial[section] = [items[i] for i in kept[section]]
    try:
        spec = m.Spec.model_validate(partial)
        found = semantic_errors(spec)
    except Exception:  # noqa: BLE001 — a best effort: the structural errors are what must be reported
        return []
    unsure = {
        reader
        for section, readers in _READS.items()
        if section in dropped_keys or dropped_items[section]
        for reader in readers
    }
    reported = []
    for error in found:
        path = error.path
        if path and path[0] in unsure:
            continue
        if len(path) > 1 and path[0] in kept and isinstance(path[1], int):
            path = (path[0], kept[str(path[0])][path[1]], *path[2:])
        reported.append(LocatedError(path, error.message))
    return reported


def _in_context(error: SpecError, context: str | None) -> SpecError:
    if context is None:
        return error
    return SpecError(
        # plain errors: a cycle found inside a sweep point is not the caller's own (stages.CycleError)
        [LocatedError(e.path, f"in sweep point {context}: {e.message}", e.line, e.col) for e in error.errors],
        error.filename,
    )


def _command_line_error(text: str, err: Exception) -> SpecError:
    return SpecError([LocatedError((), f"override `{text}`: {err}")], "<command line>")


def load(
    source: str | os.PathLike,
    overrides: Sequence[str] = (),
    multirun: Sequence[str] = (),
    *,
    text: str | None = None,
) -> Loaded:
    """Load, override, validate and expand a spec file (or ``text``, with ``source`` as its name)."""
    if text is None:
        data, positions, filename = load_yaml_file(source)
    else:
        filename = str(source)
        data, positions = load_yaml(text, filename)
    here = os.getcwd()  # a start.spec typed on the command line is relative to the working directory
    parsed = []
    for item in overrides:
        try:
            path, value = parse_override(item)
        except OverrideError as err:
            raise _command_line_error(item, err) from None
        parsed.append((path, anchored_assignment(path, value, here)))
    axes = []
    for item in multirun:
        try:
            axes.append(parse_multirun(item))
        except OverrideError as err:
            raise _command_line_error(item, err) from None
    if parsed:
        try:
            data = apply_overrides(data, parsed)
        except OverrideError as err:
            raise _command_line_error(" ".join(overrides), err) from None
    directory = os.path.dirname(os.path.abspath(filename))
    data = anchored(data, directory)  # the file's start.spec: a path relative to the file
    with loading(filename):  # a start.spec chain that comes back here is a cycle
        spec = validate(data, positions, filename)
        claims = spec_claim_errors(spec, axes)  # sweep.checks name swept axes and case labels
        if claims:
            located = [e.at(positions) for e in claims]
            raise SpecError(located, filename)
        try:
            # a start.spec set by a -m axis is relative to the working directory, one a case or a grid of
            # the file sets to the file (kept as typed until here: it is part of the point's label)
            swept_here = any(tuple(path) in (("start",), ("start", "spec")) for path, _ in axes)
            where = here if swept_here else directory

            def point(raw: Any, label: str) -> m.Spec:
                return validate(anchored(raw, where), positions, filename, label)

            points = expand(spec, data, axes, point)
        except OverrideError as err:
            raise SpecError(
                [LocatedError(("sweep",), str(err), *locate(("sweep",), positions))], filename
            ) from None
    return Loaded(filename, spec, points)
