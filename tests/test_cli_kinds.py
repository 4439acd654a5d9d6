"""``eosdsl kinds``: what a spec may use, with fields, generated from the spec models (and jax-free)."""

from __future__ import annotations

import json
import subprocess
import sys
import typing

import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.cli.kinds import sections, type_text
from eosdsl.spec.schema import spec_schema

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_overview_lists_every_section_and_kind() -> None:
    result = invoke("kinds")
    assert result.exit_code == 0
    lines = {line.split(" ")[0]: line for line in result.output.splitlines()}
    for section in ("problems", "measures", "checks", "events", "data", "sweep_checks", "optimizers"):
        assert section in lines
    assert "relu_scalar" in lines["problems"] and "supervised" in lines["problems"]
    assert "preconditioned_sharpness" in lines["measures"] and "slice" in lines["measures"]
    assert "teacher_student" in lines["data"] and "gaussian_mixture" in lines["data"]
    assert "when.sharpness" in lines["events"]


def test_every_discriminated_kind_of_the_schema_is_listed() -> None:
    """The kinds come from the same models as the JSON schema: every ``kind``/``source`` constant there
    is some section's kind."""
    listed = {name for _, kinds in sections().values() for kind in kinds for name in kind.names}
    text = json.dumps(spec_schema())
    for model in (m for _, kinds in sections().values() for k in kinds if (m := k.model) is not None):
        for key in ("kind", "source"):
            field = model.model_fields.get(key)
            if field is not None and typing.get_origin(field.annotation) is typing.Literal:
                for value in typing.get_args(field.annotation):
                    assert value in listed and f'"{value}"' in text


def test_section_shows_fields_with_types_defaults_and_descriptions() -> None:
    result = invoke("kinds", "data")
    assert result.exit_code == 0
    text = result.output
    assert "teacher_student — " in text and "      width: int (required)" in text
    assert '      activation: str = "relu"' in text
    assert "      separation: float = 4.0" in text
    sharp = invoke("kinds", "measures", "sharpness").output
    assert "k: int = 1 — How many top (algebraic) eigenpairs." in sharp
    assert "preconditioned_sharpness" not in sharp
    assert type_text(float | str) == "number|expr"


def test_a_kind_alone_and_unknown_names() -> None:
    result = invoke("kinds", "lemma6")
    assert result.exit_code == 0 and result.output.startswith("checks (")
    bad = invoke("kinds", "nope")
    assert bad.exit_code == 2 and "unknown section or kind 'nope'" in bad.output
    bad = invoke("kinds", "measures", "nope")
    assert bad.exit_code == 2 and "no measures kind 'nope'" in bad.output


@pytest.mark.slow  # a fresh interpreter
def test_kinds_does_not_import_jax() -> None:
    code = (
        "import sys\nfrom eosdsl.cli import app\n"
        "try:\n    app(['kinds', 'measures'], prog_name='eosdsl')\nexcept SystemExit:\n    pass\n"
        "assert not [m for m in ('jax', 'flax') if m in sys.modules], 'kinds imported jax'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_version() -> None:
    import eosdsl

    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"eosdsl {eosdsl.__version__}\n"
    assert eosdsl.__version__ not in ("", "0+unknown")


def test_shell_completion_is_offered() -> None:
    result = invoke("--help")
    assert "--install-completion" in result.output and "--show-completion" in result.output
