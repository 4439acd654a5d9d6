"""The JSON Schema of specs, for editors (``eosdsl schema > eosdsl.schema.json``)."""

from __future__ import annotations

from typing import Any

from eosdsl.spec.models import Spec


def spec_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of an eosdsl spec file."""
    schema = Spec.model_json_schema()
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "eosdsl spec"}
