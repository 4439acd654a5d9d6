"""The base class of every spec model."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_serializer


class Model(BaseModel):
    """Base of every spec model: closed (unknown keys are errors), with every default validated, and
    finite numbers only (``.nan``, ``.inf`` and ``1e400`` are errors where a float is expected).

    ``OMIT_AT_DEFAULT`` names the fields a model gained after specs were first hashed: while such a
    field holds its default it is left out of the dump, so the canonical JSON (and the id) of a spec
    that does not use it is what it was before the field existed. A model whose new fields matter only in
    some of its forms narrows the list per instance by overriding :meth:`omitted_at_default` (e.g. an
    ``ode`` optimizer writes its ``dopri5`` tolerances out even at their defaults)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, populate_by_name=False, allow_inf_nan=False
    )
    OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_new_fields_at_default(self, handler: Any) -> Any:
        data = handler(self)
        omitted = self.omitted_at_default()
        if omitted and isinstance(data, dict):
            fields = type(self).model_fields
            for name in omitted:
                if getattr(self, name) == fields[name].get_default(call_default_factory=True):
                    data.pop(name, None)
        return data

    def omitted_at_default(self) -> tuple[str, ...]:
        """The fields of ``OMIT_AT_DEFAULT`` left out of this instance's dump while at their default."""
        return self.OMIT_AT_DEFAULT


Scalar = Annotated[
    float | str,
    Field(
        description="A number, or an expression over the spec's `constants` "
        "(e.g. `(2 + eps) / u0**2`); see docs/expressions.md.",
    ),
]
"""A hyperparameter: a number or an expression string over ``constants``."""
