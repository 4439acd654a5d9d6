"""The base class of every spec model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base of every spec model: closed (unknown keys are errors) and with every default validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=False)
