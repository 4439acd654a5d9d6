"""The registry commands, end to end through the CLI, on spec-library runs."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eosdsl.cli import app

pytestmark = pytest.mark.slow  # builds and runs the spec library's runs first (~20 s)

SPECS = Path(__file__).resolve().parents[1] / "specs"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A registry holding paper 000's four Fig. 3 scenarios and paper 004's Fig. 1 grid."""
    root = tmp_path_factory.mktemp("library") / "registry"
    ids: dict[str, str] = {}
    for spec in (
        "phb-catapults/relu-scalar-four-scenarios.yaml",
        "eigenvector-rotation/product-chain-fig1.yaml",
    ):
        result = invoke("run", SPECS / spec, "--registry", root)
        assert result.exit_code == 0, result.output
        ids.update(dict(re.findall(r"\[([^\]]+)\] run ([0-9a-f]{12})", result.output)))
        ids[spec] = re.search(r"sweep ([0-9a-f]{12})", result.output).group(1)
    return root, ids


def test_ls_lists_every_library_run(library):
    root, ids = library
    result = invoke("ls", "-n", "50", "--registry", root)
    assert result.exit_code == 0
    for label in ("gd", "phb", "gd-to-phb", "phb-to-gd", "optimizer.lr=0.02"):
        assert ids[label] in result.output


def test_query_selects_heavy_ball_below_a_sharpness(library):
    """Only the pure heavy-ball scenario starts with heavy ball and ends below 97 (its 96.13)."""
    root, ids = library
    result = invoke("query", 'optimizer.kind = "heavy_ball" and final.sharpness < 97', "--registry", root)
    assert result.exit_code == 0, result.output
    assert ids["phb"] in result.output
    assert ids["phb-to-gd"] not in result.output and ids["gd"] not in result.output
    diverged = invoke("query", 'status = "diverged"', "--registry", root)
    assert ids["optimizer.lr=0.02"] in diverged.output and ids["optimizer.lr=0.001"] not in diverged.output


def test_show_run_and_sweep(library):
    root, ids = library
    run = invoke("show", ids["gd-to-phb"][:8], "--registry", root)
    assert run.exit_code == 0 and "switch to PHB" in run.output and "sharpness" in run.output
    sweep = invoke("show", ids["phb-catapults/relu-scalar-four-scenarios.yaml"], "--registry", root)
    assert sweep.exit_code == 0
    assert all(ids[label] in sweep.output for label in ("gd", "phb", "gd-to-phb", "phb-to-gd"))


def test_diff_names_the_optimizer_change(library):
    root, ids = library
    result = invoke("diff", ids["gd"], ids["phb"], "--registry", root)
    assert result.exit_code == 0
    assert re.search(r"optimizer\.kind: .*gd.* → .*heavy_ball", result.output)


def test_export_zip_matches_the_manifest(library, tmp_path):
    root, ids = library
    target = tmp_path / "phb.zip"
    assert invoke("export", ids["phb"], "--zip", target, "--registry", root).exit_code == 0
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        (manifest_name,) = [n for n in names if n.endswith("/MANIFEST.json")]
        manifest = json.loads(archive.read(manifest_name))
        prefix = manifest_name.removesuffix("MANIFEST.json")
        assert {prefix + f for f in manifest["files"]} | {manifest_name} == set(names)
    verify = invoke("registry", "verify", "--deep", "--registry", root)
    assert verify.exit_code == 0, verify.output
