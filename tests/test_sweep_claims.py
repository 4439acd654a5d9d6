"""Claims across sweep points (``sweep.checks``): the statistics on tables with known answers, the
missing/diverged rules, validation errors located in the file, and (slow) a sweep run and shown."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.stats
from typer.testing import CliRunner

from eosdsl.checks.sweep_claims import (
    Row,
    Table,
    evaluate_claim,
    first_crossing,
    least_squares,
    quantity_key,
    ranks,
    run_quantity,
    spearman,
    trend_margin,
)
from eosdsl.cli import app
from eosdsl.spec import sweep_checks as sc
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

LOSS = quantity_key("test_loss", "final")


def claim(**fields):
    """A validated sweep claim (as a spec's ``sweep.checks`` entry)."""
    from pydantic import TypeAdapter

    return TypeAdapter(sc.SweepClaim).validate_python(fields)


def row(case, status="completed", **values):
    """A member: ``axes`` from keyword ``a_<axis>``, quantity ``LOSS`` from ``loss``."""
    axes = {k[2:].replace("_", "."): v for k, v in values.items() if k.startswith("a_")}
    label = ",".join([case or "", *(f"{a}={v:g}" for a, v in axes.items())]).strip(",")
    quantities = {LOSS: values["loss"]} if "loss" in values else {}
    return Row(label, case, axes, status, quantities)


# ------------------------------------------------------------------------------------ pure statistics


def test_least_squares_known_line_and_r2():
    # (0, 1), (1, 3), (2, 2): slope 1/2, intercept 3/2, residuals −½, 1, −½ → r² = 1 − 1.5/2 = 0.25
    slope, intercept, r2 = least_squares([0, 1, 2], [1, 3, 2])
    assert (slope, intercept, r2) == pytest.approx((0.5, 1.5, 0.25), abs=1e-15)
    slope, intercept, r2 = least_squares([1, 2, 3, 4], [1, 4, 7, 10])
    assert (slope, intercept, r2) == pytest.approx((3.0, -2.0, 1.0), abs=1e-14)
    assert all(math.isnan(v) for v in least_squares([1.0], [2.0]))
    assert all(math.isnan(v) for v in least_squares([2.0, 2.0], [1.0, 3.0]))  # constant x


def test_least_squares_matches_numpy_polyfit():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 40)
    y = 2.5 * x - 1 + rng.normal(0, 1, 40)
    slope, intercept, r2 = least_squares(x, y)
    assert (slope, intercept) == pytest.approx(tuple(np.polyfit(x, y, 1)), rel=1e-12)
    assert r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)


def test_ranks_share_ties():
    assert ranks([10, 30, 20, 20]).tolist() == [1.0, 4.0, 2.5, 2.5]


@pytest.mark.parametrize("seed", range(5))
def test_spearman_equals_scipy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=30)
    y = x**3 + rng.normal(scale=0.5, size=30)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    tied_x, tied_y = np.round(x), np.round(y * 2) / 2
    assert spearman(tied_x, tied_y) == pytest.approx(
        scipy.stats.spearmanr(tied_x, tied_y).statistic, abs=1e-12
    )


def test_spearman_monotone_is_one_and_constant_is_nan():
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_first_crossing_skips_non_finite_values():
    x = [0.1, 0.2, 0.3, 0.4]
    assert first_crossing(x, [5, math.inf, 1, 0.5], below=2) == 0.3
    assert first_crossing(x, [5, math.nan, 1, 0.5], above=4) == 0.1
    assert math.isnan(first_crossing(x, [5, 6, 7, 8], below=2))


def test_trend_margin_strict_and_non_strict():
    assert trend_margin([1, 2, 4], "increasing") == 1
    assert trend_margin([3, 3, 1], "nonincreasing") == 0
    assert trend_margin([3, 3, 1], "decreasing") == 0  # holds only if > 0
    assert trend_margin([1, 2, 1.9], "nondecreasing", tol=0.1) == pytest.approx(0.0)
    assert math.isnan(trend_margin([1.0], "increasing"))


def test_run_quantity_final_max_min_of_an_expression():
    series = {"loss": (np.array([0, 10, 20]), np.array([3.0, np.nan, 1.0]))}
    assert run_quantity("2 * loss", "final", series, {}) == 2.0
    assert run_quantity("loss + c", "max", series, {"c": 1.0}) == 4.0
    assert run_quantity("loss", "min", series, {}) == 1.0
    with pytest.raises(KeyError):
        run_quantity("sharpness", "final", series, {})


# ------------------------------------------------------------------------------------ claims on tables


def fig1_like_table():
    """gd and phb over α × η_f, phb/gd dropping below 1/4 at α = 0.3 for η = 1 and 0.2 for η = 2."""
    rows = []
    drop = {1.0: 0.3, 2.0: 0.2}
    for eta in (1.0, 2.0):
        for alpha in (0.1, 0.2, 0.3, 0.4):
            rows.append(row("gd", a_eta=eta, a_alpha=alpha, loss=1.0 + alpha))
            phb = 0.1 * (1.0 + alpha) if alpha >= drop[eta] else 0.9 * (1.0 + alpha)
            rows.append(row("phb", a_eta=eta, a_alpha=alpha, loss=phb))
    return Table(("eta", "alpha"), tuple(rows))


def test_first_crossing_per_group_relative_to_another_case_with_a_trend():
    c = claim(
        kind="first", name="alpha_bar", of="test_loss", case="phb", relative_to="gd", below=0.25,
        along="alpha", trend={"along": "eta", "direction": "decreasing"},
    )
    result = evaluate_claim(c, fig1_like_table())
    assert result.passed, result.detail
    assert result.values["first[eta=1]"] == 0.3
    assert result.values["first[eta=2]"] == 0.2
    assert result.values["trend_margin"] == pytest.approx(0.1)
    assert result.values["missing"] == 0 and result.values["excluded"] == 0


def test_first_crossing_fails_when_a_group_never_crosses_and_when_the_trend_is_wrong():
    never = claim(kind="first", of="test_loss", case="phb", relative_to="gd", below=0.01, along="alpha")
    result = evaluate_claim(never, fig1_like_table())
    assert not result.passed and math.isnan(result.values["first[eta=1]"]) and result.margin == -2
    wrong = claim(
        kind="first", of="test_loss", case="phb", relative_to="gd", below=0.25, along="alpha",
        trend={"along": "eta", "direction": "increasing"},
    )
    assert not evaluate_claim(wrong, fig1_like_table()).passed


def test_first_within_restricts_the_axis_values():
    c = claim(
        kind="first", of="test_loss", case="phb", relative_to="gd", below=0.25, along="alpha",
        within={"alpha": [0.35, None]},
    )
    result = evaluate_claim(c, fig1_like_table())
    assert result.values["first[eta=1]"] == 0.4 and result.values["first[eta=2]"] == 0.4


def test_trend_passes_and_fails_per_group():
    up = claim(kind="trend", of="test_loss", case="gd", along="alpha", direction="increasing")
    result = evaluate_claim(up, fig1_like_table())
    assert result.passed and result.values["margin[eta=1]"] == pytest.approx(0.1)
    down = claim(kind="trend", of="test_loss", along="alpha", direction="decreasing")
    result = evaluate_claim(down, fig1_like_table())
    assert not result.passed
    assert set(result.values) >= {"margin[gd,eta=1]", "margin[phb,eta=2]"}  # a group per case × η
    assert result.margin == pytest.approx(-0.1)


def test_fit_loglog_recovers_a_power_law():
    rows = tuple(row(None, a_eta=eta, loss=2.0 * eta**1.5) for eta in (0.01, 0.03, 0.1, 0.3))
    table = Table(("eta",), rows)
    c = claim(kind="fit", of="test_loss", along="eta", scale="loglog", slope={"above": 1.4, "below": 1.6})
    result = evaluate_claim(c, table)
    assert result.passed, result.detail
    assert result.values["slope"] == pytest.approx(1.5, abs=1e-12)
    assert result.values["intercept"] == pytest.approx(math.log10(2.0), abs=1e-12)
    assert result.values["r2"] == pytest.approx(1.0, abs=1e-12)
    assert result.values["n"] == 4
    linear = evaluate_claim(claim(kind="fit", of="test_loss", along="eta", r2={"above": 0.9999}), table)
    assert not linear.passed and linear.values["r2"] < 0.9999


def test_fit_excludes_non_positive_values_on_a_log_scale_and_needs_three_points():
    rows = (row(None, a_eta=1.0, loss=1.0), row(None, a_eta=2.0, loss=-1.0), row(None, a_eta=3.0, loss=3.0))
    fit = claim(kind="fit", of="test_loss", along="eta", scale="loglog")
    result = evaluate_claim(fit, Table(("eta",), rows))
    assert not result.passed and result.values["excluded"] == 1 and math.isnan(result.values["slope"])


def test_spearman_claim_against_an_axis_and_against_scipy():
    rng = np.random.default_rng(3)
    etas = np.linspace(0.1, 1.0, 12)
    losses = etas + rng.normal(scale=0.2, size=12)
    rows = (row(None, a_eta=float(e), loss=float(v)) for e, v in zip(etas, losses, strict=True))
    table = Table(("eta",), tuple(rows))
    result = evaluate_claim(claim(kind="spearman", x="eta", y={"of": "test_loss"}, above=0.5), table)
    assert result.values["rho"] == pytest.approx(scipy.stats.spearmanr(etas, losses).statistic, abs=1e-12)
    assert result.passed == (result.values["rho"] > 0.5)


def test_case_order_fraction_of_grid_points():
    c = claim(kind="case_order", of="test_loss", over=["phb", "gd"], order="increasing", min_fraction=0.5)
    result = evaluate_claim(c, fig1_like_table())
    assert result.values["held"] == 8 and result.values["fraction"] == 1.0 and result.passed
    assert result.values["gap[eta=1,alpha=0.1]"] == pytest.approx(0.1 * 1.1)
    strict = claim(kind="case_order", of="test_loss", over=["gd", "phb"], order="increasing")
    assert not evaluate_claim(strict, fig1_like_table()).passed


def test_a_member_without_a_run_fails_the_claim_unless_skipped():
    table = fig1_like_table()
    rows = list(table.rows)
    rows[3] = Row(rows[3].label, "phb", rows[3].axes, "failed")  # phb, η = 1, α = 0.2
    broken = Table(table.axes, tuple(rows))
    fields = dict(kind="first", of="test_loss", case="phb", relative_to="gd", below=0.25, along="alpha")
    failed = evaluate_claim(claim(**fields), broken)
    assert not failed.passed and failed.values["missing"] == 1 and "no stored run" in failed.detail
    assert failed.values["first[eta=1]"] == 0.3  # the statistic is still computed from the others
    skipped = evaluate_claim(claim(**fields, missing="skip"), broken)
    assert skipped.passed and skipped.values["missing"] == 1


def test_a_diverged_member_is_excluded_and_never_a_crossing():
    table = fig1_like_table()
    rows = [
        Row(r.label, r.case, r.axes, "diverged", {LOSS: math.inf})
        if r.case == "phb" and r.axes == {"eta": 1.0, "alpha": 0.3}
        else r
        for r in table.rows
    ]
    c = claim(kind="first", of="test_loss", case="phb", relative_to="gd", below=0.25, along="alpha")
    result = evaluate_claim(c, Table(table.axes, tuple(rows)))
    assert result.passed and result.values["excluded"] == 1
    assert result.values["first[eta=1]"] == 0.4  # the diverged α = 0.3 is not the crossing


# ------------------------------------------------------------------------------------ validation

BASE = """\
name: claims
constants: {eta: 0.1, k: 1.0}
problem: {kind: toy, params: {x: 1.0}, objective: 0.5 * k * x**2}
optimizer: {kind: gd, lr: eta}
train: {steps: 5}
measure: [{kind: loss}, {kind: sharpness}]
sweep:
  grid: {constants.k: [1.0, 2.0, 3.0]}
  cases: [{label: a}, {label: b, set: {constants.eta: 0.2}}]
  checks:
"""


def load_claims(*lines: str):
    return load("claims.yaml", text=BASE + "".join(f"    - {line}\n" for line in lines))


def error_of(*lines: str) -> str:
    with pytest.raises(SpecError) as info:
        load_claims(*lines)
    return str(info.value)


def test_valid_claims_load_and_stay_out_of_the_points():
    loaded = load_claims(
        "{kind: fit, of: sharpness, along: constants.k, slope: {above: 0.9}}",
        "{kind: first, of: loss, case: b, relative_to: a, below: 2, along: constants.k}",
        "{kind: spearman, x: constants.k, y: {of: sharpness, at: max}, above: 0.5}",
        "{kind: case_order, of: loss, over: [a, b], order: decreasing}",
    )
    assert len(loaded.spec.sweep.checks) == 4
    assert all(p.spec.sweep is None and not p.spec.checks for p in loaded.points)


@pytest.mark.parametrize(
    ("line", "where", "message"),
    [
        ("{kind: trend, of: loss, along: constants.eta, direction: increasing}",
         "sweep.checks.0.along", "'constants.eta' is not a swept axis (swept: constants.k)"),
        ("{kind: first, of: loss, case: c, below: 1, along: constants.k}",
         "sweep.checks.0.case", "no case labelled 'c' (cases: a, b)"),
        ("{kind: case_order, of: loss, over: [a, gd], order: increasing}",
         "sweep.checks.0.over.1", "no case labelled 'gd'"),
        ("{kind: fit, of: loss, along: constants.k, within: {train.steps: [1, 2]}}",
         "sweep.checks.0.within.train.steps", "'train.steps' is not a swept axis"),
        ("{kind: fit, of: los, along: constants.k}", "sweep.checks.0.of", "los"),
        ("{kind: fit, of: loss, along: constants.k, slope: 1.0}", "sweep.checks.0.slope", ""),
        ("{kind: trend, of: loss, along: constants.k, direction: up}", "sweep.checks.0.direction", ""),
        ("{kind: slope, of: loss}", "sweep.checks.0", "unknown kind 'slope'"),
    ],
)
def test_a_bad_claim_is_a_located_error(line, where, message):
    text = error_of(line)
    assert re.search(rf"claims\.yaml:11:\d+ {re.escape(where)}\b", text), text
    assert message in text


def test_an_axis_given_with_m_is_swept():
    text = BASE.replace("  grid: {constants.k: [1.0, 2.0, 3.0]}\n", "") + (
        "    - {kind: fit, of: sharpness, along: constants.k}\n"
    )
    with pytest.raises(SpecError, match="not a swept axis"):
        load("claims.yaml", text=text)
    loaded = load("claims.yaml", text=text, multirun=["constants.k=1,2,3"])
    assert len(loaded.points) == 6


def test_validate_exits_2_with_file_line_col(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "    - {kind: trend, of: loss, along: constants.eta, direction: increasing}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    where = r"bad\.yaml:11:\d+ sweep\.checks\.0\.along: 'constants\.eta' is not a swept axis"
    assert re.search(where, result.output), result.output


# ------------------------------------------------------------------------------------ engine and CLI

QUADRATICS = """\
name: quadratics
constants: {eta: 0.1, k: 1.0}
problem: {kind: toy, params: {x: 1.0}, objective: 0.5 * k * x**2}
optimizer: {kind: gd, lr: eta}
train: {steps: 20}
measure: [{kind: loss}, {kind: sharpness, every: 10, method: dense}]
sweep:
  grid: {constants.k: [1.0, 2.0, 3.0, 4.0]}
  cases: [{label: slow}, {label: fast, set: {constants.eta: 0.2}}]
  checks:
    - {kind: fit, name: sharpness_law, of: sharpness, along: constants.k, scale: loglog,
       slope: {above: 0.99, below: 1.01}, r2: {above: 0.999}}
    - {kind: trend, of: loss, along: constants.k, direction: decreasing}
    - {kind: first, name: k_fast, of: loss, case: fast, relative_to: slow, below: 1.0e-6,
       along: constants.k}
    - {kind: spearman, x: constants.k, y: {of: sharpness, at: max}, above: 0.99}
    - {kind: case_order, of: loss, over: [fast, slow], order: increasing}
"""


@pytest.mark.slow
def test_a_sweep_stores_and_shows_its_claims(tmp_path):
    """GD on ½kx²: the sharpness is k (slope 1 in log-log), the final loss ½k(1 − ηk)^40 falls with k
    (ηk ≤ 0.8) and is lower for the larger rate; the claims' statistics are stored in the sweep record
    and shown by `eosdsl show`."""
    import json

    spec = tmp_path / "quadratics.yaml"
    spec.write_text(QUADRATICS)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(spec), "--registry", str(tmp_path / "reg")], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    sweep_id = re.search(r"sweep ([0-9a-f]{12})", ran.output).group(1)
    record = json.loads(next((tmp_path / "reg" / "sweeps").glob(f"{sweep_id}*.json")).read_text())
    stored = {c["name"]: c for c in record["checks"]}
    law = stored["sharpness_law"]["values"]
    for case in ("slow", "fast"):
        assert law[f"slope[{case}]"] == pytest.approx(1.0, abs=1e-9)
        assert law[f"intercept[{case}]"] == pytest.approx(0.0, abs=1e-9)
    # loss ratio fast/slow = ((1 − 0.2k)/(1 − 0.1k))^40: 0.009, 1e-5, 2e-10, 8e-20 for k = 1 … 4
    assert stored["k_fast"]["values"]["first"] == 3.0
    assert all(c["passed"] for c in record["checks"]), [c["detail"] for c in record["checks"]]
    shown = runner.invoke(app, ["show", sweep_id, "--registry", str(tmp_path / "reg")])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "sweep checks (5/5 passed):" in text
    header = next(line for line in text.splitlines() if line.strip().startswith("group") and "slope" in line)
    assert header.split()[:4] == ["group", "slope", "intercept", "r2"]
    assert re.search(r"^\s+slow\s+1\s+", text, re.M)  # slope 1 for the slow case
    assert re.search(r"^\s+first 3, excluded 0, missing 0$", text, re.M)


def test_sweep_checks_sees_points_without_a_run_as_missing():
    """`eosdsl.orchestration.sweep_checks` passes every point to the claims: failed points (no run) are
    missing."""
    from eosdsl.orchestration import JobOutcome, sweep_checks

    loaded = load_claims(
        "{kind: fit, of: sharpness, along: constants.k}",
        "{kind: trend, of: loss, along: constants.k, direction: increasing, missing: skip}",
    )
    outcomes = [JobOutcome(None, p.spec, False, label=p.label, point=p, error="boom") for p in loaded.points]
    fit, trend = sweep_checks(loaded.spec, outcomes)
    assert not fit.passed and fit.values["missing"] == 6 and "6 points have no stored run" in fit.detail
    assert math.isnan(fit.values["slope[a]"]) and math.isnan(fit.values["slope[b]"])
    assert not trend.passed and trend.values["missing"] == 6  # skipped, but then too few points


@pytest.mark.slow
def test_paper002_limiting_sharpness_follows_the_o_eta_law(tmp_path):
    """specs/good-regularity: 2/η − λ∞ ≈ c·η with c ≈ 1 (log-log slope ≈ 1); every claim passes."""
    from pathlib import Path

    from eosdsl.orchestration import run_points
    from eosdsl.registry import Registry

    spec = Path(__file__).resolve().parents[1] / "specs/good-regularity/limiting-sharpness-eta-sweep.yaml"
    loaded = load(spec)
    outcomes, checks, _ = run_points(loaded.spec, loaded.points, Registry(tmp_path))
    assert all(o.status == "completed" and all(c["passed"] for c in o.run.checks) for o in outcomes)
    results = {c.name: c for c in checks}
    assert all(c.passed for c in checks), [c.detail for c in checks]
    assert results["o_eta_law"].values["slope"] == pytest.approx(0.96, abs=0.02)
    assert results["deficit_constant"].values["slope"] == pytest.approx(0.92, abs=0.02)
