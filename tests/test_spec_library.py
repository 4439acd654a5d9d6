"""Every spec in specs/ is valid: against the JSON Schema (what editors see) and against eosdsl itself."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from eosdsl.spec.load import load
from eosdsl.spec.schema import spec_schema
from eosdsl.spec.yamlio import load_yaml_file

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").rglob("*.yaml"))


def test_library_is_not_empty():
    assert len(SPECS) >= 4


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_matches_json_schema(path):
    """The raw YAML validates against `eosdsl schema`, so editor autocompletion agrees with eosdsl."""
    data, _, _ = load_yaml_file(path)
    jsonschema.validate(data, spec_schema())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_loads_and_expands(path):
    """The spec validates (structure and expressions) and each sweep point is a valid spec."""
    loaded = load(path)
    assert loaded.points
    for point in loaded.points:
        assert point.spec.sweep is None


def test_schema_rejects_what_eosdsl_rejects():
    """The schema is closed: an unknown key fails schema validation too."""
    data, _, _ = load_yaml_file(SPECS[0])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "unknown_key": 1}, spec_schema())
