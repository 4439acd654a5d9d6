"""`eosdsl report`: a self-contained HTML page of a run and of a sweep, loaded in headless Chromium.

The browser test injects a probe script into a copy of each page that, on ``load``, writes into the
title how many images decoded (``naturalWidth > 0``) and how many script errors happened; ``--dump-dom``
prints the DOM after the load event, so the title says whether every figure rendered.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eosdsl.cli import app

pytestmark = pytest.mark.slow  # runs the engine (a run and a 4-point sweep) and a browser

CHROMIUM = Path("/usr/bin/chromium")
NAME = 'tiny <b>&"run'
SWEEP = """\
name: tiny-<i>-sweep
constants: {eta: 0.0201}
problem: {kind: relu_scalar}
optimizer: {kind: gd, lr: eta}
train: {steps: 41}
measure: [{kind: loss}, {kind: sharpness}]
checks:
  - {kind: ordering, of: sharpness, order: decreasing, over: [gd, short]}
  - {kind: final, of: sharpness, below: 1000}
sweep:
  grid:
    constants.eta: [0.01, 0.0201]
  cases:
    - {label: gd}
    - label: short
      set: {train: {steps: 30}}
"""
PROBE = (
    "<script>window.__errors=0;addEventListener('error',()=>{window.__errors++});"
    "addEventListener('load',()=>{const i=[...document.images];document.title='LOADED '+"
    "i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length+' errors='+window.__errors;});</script>"
)

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """``(registry root, run key, sweep id)``: one 40-step run and a 2 cases × 2 η sweep."""
    from eosdsl.orchestration import run_one, run_points
    from eosdsl.registry import Registry
    from eosdsl.spec.load import load
    from eosdsl.spec.models import Spec

    base = tmp_path_factory.mktemp("report")
    reg = Registry(base / "registry")
    spec = Spec.model_validate(
        {
            "name": NAME,
            "constants": {"eta": 0.0201},
            "problem": {"kind": "relu_scalar"},
            "optimizer": {"kind": "gd", "lr": "eta"},
            "train": {"steps": 40},
            "measure": [{"kind": "loss"}, {"kind": "sharpness"}],
            "events": [
                {"name": "never", "when": {"step": {"at": 1000}}, "do": {"stop": True}},
                {"name": "halfway", "when": {"step": {"at": 20}}, "do": {"freeze_schedule": True}},
            ],
            "checks": [{"kind": "lemma6"}, {"kind": "final", "of": "sharpness", "below": 99.9}],
        }
    )
    run = run_one(spec, reg).run
    (base / "sweep.yaml").write_text(SWEEP)
    loaded = load(base / "sweep.yaml")
    _, _, sweep_id = run_points(loaded.spec, loaded.points, reg)
    return base / "registry", run.run_key, sweep_id


def _offline(page: str) -> None:
    """Nothing is fetched: no external scripts, styles, fonts or images."""
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page  # the report itself has no script at all


def test_run_report_content(stored, tmp_path):
    root, key, _ = stored
    result = invoke("report", key[:10], "--registry", root)
    assert result.exit_code == 0, result.output
    target = root / "reports" / f"{key[:12]}.html"
    assert result.output.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    _offline(page)
    assert NAME not in page and "tiny &lt;b&gt;&amp;&quot;run" in page  # escaped
    assert key in page and "spec id" in page
    assert "Checks (1/2 passed)" in page and "✗ fail" in page and "n/a" in page
    assert "final sharpness" in page and "value = 100" in page  # statistics of a check
    assert "<code>never</code>" in page and "did not fire" in page  # events
    assert "<code>halfway</code>" in page and "fired at step 20" in page
    assert '<code>optimizer.lr</code></td><td><code>eta</code></td><td class="num">0.0201' in page
    assert page.count('<img alt="') == 2  # loss and sharpness
    assert "Timings" in page and "Machine and versions" in page and "Environment" in page


def test_sweep_report_content_and_out(stored, tmp_path):
    root, _, sweep_id = stored
    target = tmp_path / "nested" / "sweep.html"
    result = invoke("report", sweep_id[:12], "--out", target, "--registry", root)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    _offline(page)
    assert "tiny-&lt;i&gt;-sweep" in page and "<i>" not in page
    assert "Members (4:" in page and "final.sharpness" in page and "final.loss" in page
    assert "check.`final sharpness`" in page  # a member check named with a space is a default column
    assert "Sweep checks (0/2 passed)" in page and "<code>ordering sharpness [constants.eta=0.01]" in page
    assert "Base spec" in page
    assert page.count('<img alt="') == 3  # final.sharpness, final.loss curves and a heatmap


def test_report_errors(stored, tmp_path):
    root, key, sweep_id = stored
    assert invoke("report", "ffffffff", "--registry", root).exit_code == 2
    assert invoke("report", key[:12], "-s", "final.loss", "--registry", root).exit_code == 2
    bad = invoke("report", sweep_id[:12], "-s", "final.nope", "--registry", root)
    assert bad.exit_code == 2 and "nope" in bad.output


def _load_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM of ``page`` (a probed copy) after it loaded in headless Chromium."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8"
    )
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("what", ["run", "sweep"])
def test_report_renders_in_a_browser(stored, tmp_path, what):
    if shutil.which(str(CHROMIUM)) is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    root, key, sweep_id = stored
    target = tmp_path / f"{what}.html"
    assert (
        invoke(
            "report", (key if what == "run" else sweep_id)[:12], "--out", target, "--registry", root
        ).exit_code
        == 0
    )
    dom = _load_in_chromium(target, tmp_path)
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None, dom[:2000]
    images = 2 if what == "run" else 3
    assert title.group(1) == f"LOADED {images}/{images} errors=0", title.group(1)
    for tag in re.findall(r"<img [^>]*>", dom):
        width, height = re.search(r'width="(\d+)"', tag), re.search(r'height="(\d+)"', tag)
        assert width and height and int(width.group(1)) > 0 and int(height.group(1)) > 0
    assert "<h2>Provenance</h2>" in dom and ("<h2>Figures</h2>" in dom)


@pytest.mark.slow  # a fresh interpreter
def test_report_does_not_import_jax(stored, tmp_path):
    from test_cli_imports import _imports

    root, key, _ = stored
    result = _imports(["report", key[:12], "--out", str(tmp_path / "r.html"), "--registry", str(root)])
    assert result["code"] in (0, None) and result["heavy"] == [], result
