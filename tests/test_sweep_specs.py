"""The sweep specs of paper 000 Fig. 1 (a)/(b) and Fig. 4 and paper 004 Fig. 5a.

Each validates, has the documented number of points, and all its points share one program structure
(``Structure.of(spec).key``): only traced numbers (and the seed) vary across points, so a packing
engine can run the whole sweep as one vmapped program. The numerics test runs two points of the
Fig. 4 β-sweep, shortened, and asserts the Theorem 2 check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eosdsl.engine.program import Structure
from eosdsl.spec import models as m
from eosdsl.spec.load import load

SPECS = Path(__file__).resolve().parents[1] / "specs"

# spec → (number of points, number of cases; 0 without cases)
SWEEPS = {
    "phb-catapults/ldn-alpha-etaf-grid.yaml": (2 * 7 * 30, 2),
    "phb-catapults/relu-scalar-beta-sweep.yaml": (100, 0),
    "eigenvector-rotation/fmnist-lr-sweep.yaml": (24 * 3, 0),
    "eigenvector-rotation/fmnist-lr-sweep-full.yaml": (47 * 5, 0),
}


@pytest.fixture(scope="module", params=list(SWEEPS))
def sweep(request: pytest.FixtureRequest) -> tuple[str, list]:
    relpath = request.param
    return relpath, load(SPECS / relpath).points


def test_sweep_validates_with_its_documented_number_of_points(sweep: tuple[str, list]) -> None:
    relpath, points = sweep
    count, cases = SWEEPS[relpath]
    assert len(points) == count
    assert len({p.label for p in points}) == count
    assert len({p.case for p in points} - {None}) == cases


def test_every_point_has_the_same_program_structure(sweep: tuple[str, list]) -> None:
    """Packable: one structure key for the whole sweep (cases included), and one train length."""
    relpath, points = sweep
    assert len({Structure.of(p.spec).key for p in points}) == 1, relpath
    assert len({p.spec.train.steps for p in points}) == 1


def test_beta_sweep_is_exactly_0_00_to_0_99_with_paper_setting() -> None:
    points = load(SPECS / "phb-catapults/relu-scalar-beta-sweep.yaml").points
    betas = [p.spec.constants["beta"] for p in points]
    assert betas == [round(i / 100, 2) for i in range(100)]  # 0.07, not 0.07000000000000001
    assert all(isinstance(b, float) for b in betas)
    for p in points:
        assert p.spec.train.steps == 100_000
        assert p.spec.constants["eps"] == 0.01 and p.spec.constants["u0"] == 10.0
        assert {c.kind for c in p.spec.checks} >= {"theorem2"}
        assert isinstance(p.spec.optimizer, m.HeavyBall)
        assert p.spec.optimizer.lr_convention == "gd_equivalent"


def test_ldn_grid_cases_are_heavy_ball_at_beta_0_and_0_9() -> None:
    """GD is heavy ball with β = 0 (the same program as β = 0.9), warmup η_f·10⁶ steps from 1e-8."""
    points = load(SPECS / "phb-catapults/ldn-alpha-etaf-grid.yaml").points
    betas = {p.case: {p.spec.constants["beta"]} for p in points}
    for p in points:
        betas[p.case].add(p.spec.constants["beta"])
        lr = p.spec.optimizer.lr
        assert (lr.start, lr.end, lr.steps) == (1.0e-8, "eta_f", "eta_f * 1e6")
    assert betas == {"gd": {0.0}, "phb": {0.9}}
    etas = sorted({p.spec.constants["eta_f"] for p in points})
    alphas = sorted({p.spec.constants["alpha"] for p in points})
    assert etas == [0.001, 0.0015, 0.002, 0.0025, 0.003, 0.0035, 0.004]
    assert alphas == [round(0.01 * k, 2) for k in range(1, 31)]


@pytest.mark.parametrize(
    ("relpath", "exponents", "seeds", "n_train"),
    [
        ("eigenvector-rotation/fmnist-lr-sweep.yaml", list(range(0, 47, 2)), [0, 1, 2], 300),
        ("eigenvector-rotation/fmnist-lr-sweep-full.yaml", list(range(47)), [0, 1, 2, 3, 4], 1000),
    ],
)
def test_fmnist_sweeps_use_the_papers_geometric_grid(
    relpath: str, exponents: list[int], seeds: list[int], n_train: int
) -> None:
    """η = 0.01·1.1^i (paper 004 §4.1), every η with every seed, the paper's MLP, to 100% train accuracy."""
    points = load(SPECS / relpath).points
    grid = {(p.spec.constants["i"], p.spec.seed) for p in points}
    assert grid == {(float(i), s) for i in exponents for s in seeds}
    for p in points:
        assert (p.spec.constants["eta0"], p.spec.constants["m"]) == (0.01, 1.1)
        assert p.spec.optimizer.lr == "eta0 * m**i"
        assert tuple(p.spec.problem.model.widths) == (32, 32, 32, 32) and p.spec.problem.model.bias is False
        assert p.spec.problem.pipeline[0] == {"take_first": {"n_train": n_train, "n_test": 200}}
        assert [rule.accuracy.at_least for rule in p.spec.train.stop] == [1.0]


def _shortened(spec: m.Spec, steps: int) -> m.Spec:
    document = spec.model_dump(mode="json")
    document["train"]["steps"] = steps
    return m.Spec.model_validate(document)


def test_two_points_of_the_beta_sweep_pass_theorem2() -> None:
    """β = 0 (GD) and β = 0.99, 3000 steps instead of 10⁵ (τ_u = 1404 and 70; both have converged)."""
    from eosdsl.checks.evaluate import run_checks
    from eosdsl.engine.execute import execute

    points = {p.label: p.spec for p in load(SPECS / "phb-catapults/relu-scalar-beta-sweep.yaml").points}
    for label, tau_u in [("constants.beta=0", 1404), ("constants.beta=0.99", 70)]:
        spec = _shortened(points[label], 3000)
        out = execute(spec)
        assert out.status == "completed"
        results = {r.name: r for r in run_checks(spec, out.series, out.references)}
        theorem2 = results["theorem2"]
        assert theorem2.applicable and theorem2.passed, theorem2.detail
        assert theorem2.values["tau_u"] == tau_u
        assert all(r.passed for r in results.values()), [r.detail for r in results.values()]
