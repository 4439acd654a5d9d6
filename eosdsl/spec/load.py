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
from eosdsl.spec.errors import LocatedError, SpecError, from_validation_error, locate
from eosdsl.spec.overrides import OverrideError, apply_overrides, parse_multirun, parse_override
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
        raise _in_context(error, context) from None
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
        located = [LocatedError(e.path, e.message, *locate(e.path, positions)) for e in errors]
        raise _in_context(SpecError(located, filename), context)
    return spec


def _in_context(error: SpecError, context: str | None) -> SpecError:
    if context is None:
        return error
    return SpecError(
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
    parsed = []
    for item in overrides:
        try:
            parsed.append(parse_override(item))
        except OverrideError as err:
            raise _command_line_error(item, err) from None
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
    spec = validate(data, positions, filename)
    claims = spec_claim_errors(spec, axes)  # sweep.checks name swept axes and case labels
    if claims:
        located = [LocatedError(e.path, e.message, *locate(e.path, positions)) for e in claims]
        raise SpecError(located, filename)
    try:
        points = expand(spec, data, axes, lambda raw, label: validate(raw, positions, filename, label))
    except OverrideError as err:
        raise SpecError(
            [LocatedError(("sweep",), str(err), *locate(("sweep",), positions))], filename
        ) from None
    return Loaded(filename, spec, points)
