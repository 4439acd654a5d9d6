"""Read-only commands start fast — they never import jax or flax (~1–7 s cold).

Each command runs in a fresh interpreter (``python -c``, the CLI app called in-process there) against
the stored small sweep, and reports which heavy modules it imported. ``schema`` is jax-free since the
spec layer stands alone (network configs come from :mod:`eosdsl.models.configs`). ``validate``
still imports jax: its semantic checks compile expressions with :mod:`eosdsl.expr` (whose operator and
function tables are jax.numpy's) and evaluate constant expressions and toy objectives with it, in float64
as a run does; it is marked ``xfail(strict=True)`` so that this file says what is not yet jax-free, and
fails (XPASS) the day it is, to be unmarked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "flax", "optax", "orbax")

PROBE = """
import json, sys
from eosdsl.cli import app
try:
    app(sys.argv[1:], prog_name="eosdsl")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _imports(args: list[str]) -> dict:
    """Run ``eosdsl ARGS`` in a fresh interpreter: its exit code and the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def _run_keys(registry: Path) -> list[str]:
    return sorted(p.name for p in (registry / "objects").glob("*/*") if p.is_dir())


@pytest.fixture(scope="module")
def stored(small_sweep: tuple[Path, str]) -> dict[str, list[str]]:
    """The read-only commands that must not import jax, on the stored small sweep."""
    registry, sweep = small_sweep
    first, second = _run_keys(registry)[:2]
    reg = ["--registry", str(registry)]
    return {
        "ls": ["ls", *reg],
        "query": ["query", 'status = "diverged"', *reg],
        "show run": ["show", first[:12], *reg],
        "show sweep": ["show", sweep[:12], "-s", "final.loss", *reg],
        "diff": ["diff", first[:12], second[:12], *reg],
        "registry verify": ["registry", "verify", *reg],
    }


@pytest.mark.slow  # a fresh interpreter per command
@pytest.mark.parametrize("command", ["ls", "query", "show run", "show sweep", "diff", "registry verify"])
def test_read_only_commands_do_not_import_jax(stored: dict[str, list[str]], command: str) -> None:
    result = _imports(stored[command])
    assert result["code"] in (0, None), result
    assert result["heavy"] == [], f"eosdsl {command} imported {result['heavy']}"


def test_schema_does_not_import_jax() -> None:
    result = _imports(["schema"])
    assert result["code"] in (0, None) and result["heavy"] == [], result


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        "examples/quickstart.yaml",  # constant expressions: evaluated with NumPy
        "phb-catapults/relu-scalar-beta-sweep.yaml",  # a sweep of 100 points
        "eigenvector-rotation/fmnist-mlp.yaml",  # a network: configs checked without flax
    ],
)
def test_validate_does_not_import_jax(spec: str) -> None:
    result = _imports(["validate", str(ROOT / "specs" / spec)])
    assert result["code"] in (0, None) and result["heavy"] == [], result


def test_show_orders_a_spec_as_the_model_does() -> None:
    """``show`` orders a stored spec's keys by ``SPEC_FIELDS`` so as not to import the spec models: it must
    list the model's fields in the model's order."""
    from eosdsl.cli.inspect import SPEC_FIELDS
    from eosdsl.spec.models import Spec

    assert tuple(Spec.model_fields) == SPEC_FIELDS
