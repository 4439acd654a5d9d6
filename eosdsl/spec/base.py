"""The base class of every spec model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base of every spec model: closed (unknown keys are errors), with every default validated, and
    finite numbers only (``.nan``, ``.inf`` and ``1e400`` are errors where a float is expected)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, populate_by_name=False, allow_inf_nan=False
    )


Scalar = Annotated[
    float | str,
    Field(
        description="A number, or an expression over the spec's `constants` "
        "(e.g. `(2 + eps) / u0**2`); see docs/expressions.md.",
    ),
]
"""A hyperparameter: a number or an expression string over ``constants``."""
