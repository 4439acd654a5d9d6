"""Packed sweeps: points of one program structure run as one ``vmap``-ped program.

Oracle: the same points run alone (``engine.execute.execute``). On CPU, elementwise programs (the toys)
agree bitwise; networks agree to rounding only, because a batched matmul may sum in another order —
the tolerance below (relative 1e-12 over a short, non-chaotic trajectory) is that rounding, amplified
by at most a few hundred steps of a contracting map.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from eosdsl.engine.execute import execute, prepare
from eosdsl.engine.packs import execute_pack, pack_key
from eosdsl.engine.program import Structure, run_pack_chunk
from eosdsl.engine.traced import float_leaves, replace_floats
from eosdsl.orchestration import plan_points, run_points
from eosdsl.registry import Registry
from eosdsl.spec.load import load
from eosdsl.spec.models import Spec

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

RELU = """
name: pack-relu
precision: float64
constants: {eps: 0.01, u0: 10.0, limit: 0.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: gd, lr: (2 + eps) / u0**2}
train:
  steps: 3000
  stop:
    - {loss: {below: limit}}
events:
  - name: to-phb
    when: {sharpness: {crosses: below, threshold: mss}}
    do: {switch_optimizer: {kind: heavy_ball, beta: 0.9, lr_convention: gd_equivalent}}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: mss}
  - {kind: sharpness, every: 7}
"""

SCALAR = """
name: pack-scalar
precision: float64
constants: {eps: 0.01, u0: 10.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: heavy_ball, lr: (2 + eps) / u0**2, beta: 0.5}
train: {steps: 1000}
measure: [{kind: loss}, {kind: params}]
"""

TOY = """
name: pack-toy
precision: float64
constants: {lr: 0.001, limit: 0.0}
problem: {kind: product_chain, theta0: [-0.1, 10.0], z: [0.0, 0.0, 1.0]}
optimizer: {kind: gd, lr: lr}
train:
  steps: 3000
  stop:
    - {loss: {below: limit}}
events:
  - name: to-phb
    when: {sharpness: {crosses: below, threshold: mss}}
    do: {switch_optimizer: {kind: heavy_ball, beta: 0.5, lr_convention: gd_equivalent}}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: mss}
  - {kind: sharpness, every: 7}
"""

NET = """
name: pack-net
precision: float64
problem:
  kind: supervised
  data: {source: gaussian_mixture, n: 60, d: 4, k: 3, separation: 6.0, seed: 1, n_test: 30}
  pipeline: [one_hot]
  model: {kind: mlp, widths: [6], activation: tanh}
  loss: {kind: mse, convention: half_sum_over_n}
optimizer: {kind: gd, lr: 0.1}
train:
  steps: 300
  stop:
    - {accuracy: {at_least: 1.0}}
measure:
  - {kind: loss}
  - {kind: accuracy}
  - {kind: test_accuracy, every: 10}
  - {kind: sharpness, every: 25, method: lobpcg, k: 2}
"""


def _points(text: str, axes: list[str]):
    return load("pack.yaml", text=text, multirun=axes).points


def _alone_and_packed(points):
    specs = [p.spec for p in points]
    hosts = [prepare(s) for s in specs]
    return [execute(s, h) for s, h in zip(specs, hosts, strict=True)], execute_pack(specs, hosts)


def _bitwise(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _same_course(a, b, label: str) -> None:
    """Same status, end step, events, stop cause and recorded steps."""
    assert (a.status, a.end_step, a.events, a.stop_cause) == (b.status, b.end_step, b.events, b.stop_cause), (
        label
    )
    assert a.series.keys() == b.series.keys()
    for name in a.series:
        assert np.array_equal(a.series[name][0], b.series[name][0]), (label, name)


def _agree_to_rounding(a, b, rtol: float) -> None:
    """Values within ``rtol`` (finite ones). Eigen-residuals and the solver's effort (HVPs, iterations)
    are left out: they measure where the solver stopped (rounding-level for dense solves, anywhere below
    the stopping tolerance for LOBPCG), so they differ at rounding-level changes of the iterates (in
    float32, 34 against 38 HVPs); the eigenvalues they certify are compared."""
    for name, (_, values) in a.series.items():
        if name.endswith((".residual", ".hvps", ".iterations")):
            continue
        other = b.series[name][1]
        finite = np.isfinite(values)
        np.testing.assert_allclose(other[finite], values[finite], rtol=rtol, atol=1e-300, err_msg=name)


def test_relu_scalar_points_packed_equal_alone_bitwise_with_events_and_stops() -> None:
    """Paper 000's ReLU scalar net: a switch to heavy ball when the sharpness crosses below the MSS, and a
    loss stop rule that fires early at some points only (limit). Each packed point equals its lone run
    bitwise (status, end step, events, every series): an elementwise program vectorizes exactly here."""
    points = _points(RELU, ["constants.eps=0.01,0.05,0.5", "constants.limit=0,1e-9"])
    alone, packed = _alone_and_packed(points)
    assert {o.status for o in packed} == {"completed", "stopped"}
    assert any(e["fired_at"] is not None for o in packed for e in o.events if e["name"] == "to-phb")
    for p, a, b in zip(points, alone, packed, strict=True):
        _same_course(a, b, p.label)
        for name in a.series:
            assert _bitwise(a.series[name][1], b.series[name][1]), (p.label, name)
        assert b.execution["mode"] == "packed" and b.execution["size"] == len(points)
        assert b.execution["agreement"]["precision"] == "float64"
        assert "rounding" in b.execution["agreement"]["statement"]


def test_diverging_point_does_not_disturb_the_pack() -> None:
    """Paper 004's product chain (λ₁(θ₀) ≈ 200, η_eos ≈ 0.01): a stable rate, an unstable one whose
    sharpness crosses back below 2/η (switch to heavy ball), one far past the limit (diverges), with and
    without a loss stop rule. Every point follows its lone run's course (status, end step, events, recorded
    steps); values agree to rounding (vmapped kernels may round differently: 1 ulp seen at step 1),
    relative 1e-10 over these short runs, the diverging point's values included while finite."""
    points = _points(TOY, ["constants.lr=0.001,0.011,0.05", "constants.limit=0,1e-3"])
    alone, packed = _alone_and_packed(points)
    statuses = {p.label: o.status for p, o in zip(points, packed, strict=True)}
    assert statuses["constants.lr=0.05,constants.limit=0"] == "diverged"
    assert statuses["constants.lr=0.001,constants.limit=0"] == "completed"
    assert statuses["constants.lr=0.011,constants.limit=0.001"] == "stopped"
    assert any(e["fired_at"] is not None for o in packed for e in o.events if e["name"] == "to-phb")
    for p, a, b in zip(points, alone, packed, strict=True):
        _same_course(a, b, p.label)
        _agree_to_rounding(a, b, rtol=1e-10)


def test_network_points_and_seeds_pack_and_agree_with_alone_to_rounding() -> None:
    """Learning rates × seeds of a small MLP (accuracy stop rule, supervised measures with a cadence,
    LOBPCG sharpness): one structure (the seed is traced), and each packed point matches its lone run:
    same course (status, end step, events, recorded steps), values within relative 1e-12 except on the
    diverging points, whose blow-up amplifies rounding exponentially."""
    points = _points(NET, ["optimizer.lr=0.05,0.3,3.0", "seed=0,1"])
    assert len({Structure.of(p.spec).key for p in points}) == 1
    alone, packed = _alone_and_packed(points)
    assert {o.status for o in packed} >= {"stopped", "diverged"}
    for p, a, b in zip(points, alone, packed, strict=True):
        _same_course(a, b, p.label)
        if a.status != "diverged":  # a diverging trajectory amplifies rounding exponentially
            _agree_to_rounding(a, b, rtol=1e-12)


def test_float32_network_points_agree_with_alone_within_the_stated_bound() -> None:
    """The float32 statement stored in every packed float32 run: same course, and values within its
    ``tested_rtol`` (1e-5; a few ulps per step are seen, 4e-7 over these ≤ 70 steps)."""
    from eosdsl.engine.execute import PACKED_AGREEMENT

    rtol = PACKED_AGREEMENT["float32"]["tested_rtol"]
    net32 = NET.replace("precision: float64", "precision: float32")
    points = _points(net32, ["optimizer.lr=0.05,0.3", "seed=0,1"])
    alone, packed = _alone_and_packed(points)
    assert {o.status for o in packed} == {"stopped"}
    for p, a, b in zip(points, alone, packed, strict=True):
        _same_course(a, b, p.label)
        _agree_to_rounding(a, b, rtol=rtol)
        assert b.execution["agreement"] == {"precision": "float32", **PACKED_AGREEMENT["float32"]}


def _cond_counts(text: str, axes: list[str]) -> tuple[int, int]:
    """Number of ``cond`` primitives in the jaxpr of one chunk: lone program, packed program."""
    from eosdsl.engine.execute import layout_of
    from eosdsl.engine.packs import _stack
    from eosdsl.engine.program import hyperparameters, init_pack, init_state, run_chunk

    specs = [p.spec for p in _points(text, axes)]
    hosts = [prepare(s) for s in specs]
    structure, layout = Structure.of(specs[0]), layout_of(specs[0], hosts[0])
    h1 = hyperparameters(specs[0])
    s1 = init_state(structure, h1, layout, hosts[0].params)
    hp = _stack([hyperparameters(s) for s in specs])
    sp = init_pack(structure, hp, layout, _stack([h.params for h in hosts]))

    def conds(fn, *args) -> int:
        static = (0, 2, 3) + ((6,) if len(args) > 6 else ())
        return str(jax.make_jaxpr(fn.__wrapped__, static_argnums=static)(*args)).count("cond[")

    alone = conds(run_chunk, structure, h1, layout, 5, s1, hosts[0].data)
    return alone, conds(run_pack_chunk, structure, hp, layout, 5, sp, hosts[0].data, None)


def test_due_measurements_and_warm_starts_stay_conditionals_in_a_pack() -> None:
    """Under vmap a lax.cond on a per-member predicate becomes a select that runs both branches: the
    Hessian would be solved at every step, and every warm LOBPCG solve would also run a cold one.
    Lanes.cond keeps them real conditionals (the predicate reduced over the pack). Dense sharpness
    every 7 steps: the step's own cond (has the run ended?) and the solve's, in both programs. LOBPCG
    sharpness every 25 steps on an MLP: the same conds too, warm/cold choice included, except Lanczos's
    restart-on-breakdown inside the cold seed (cheap, O(m·P)), which becomes a select."""
    text = TOY.split("events:")[0] + "measure:\n  - {kind: loss}\n  - {kind: sharpness, every: 7}\n"
    alone, packed = _cond_counts(text, ["constants.lr=0.001,0.011"])
    assert alone >= 2 and packed == alone
    alone, packed = _cond_counts(NET, ["optimizer.lr=0.05,0.3"])
    assert alone >= 4 and packed == alone - 1


def test_plan_groups_points_by_program_shape(tmp_path: Path) -> None:
    """Cases with another optimizer kind are another structure: two packs; --pack caps the size."""
    text = TOY + "sweep:\n  cases: [{label: gd}, {label: adam, set: {optimizer: {kind: adam, lr: 0.001}}}]\n"
    points = _points(text, ["constants.lr=0.001,0.002,0.003"])
    registry = Registry(tmp_path)
    plan = plan_points(points, registry, pack=10)
    assert sorted(len(p) for p in plan.packs) == [3, 3]
    assert len({pack_key(plan.jobs[p[0]].spec, plan.jobs[p[0]].host) for p in plan.packs}) == 2
    assert [len(p) for p in plan_points(points, registry, pack=2).packs] == [2, 1, 2, 1]


def test_sweep_commits_each_point_with_its_own_key_and_reuses_them(tmp_path: Path) -> None:
    """A packed sweep stores one run per point (own run key, series, checks, execution record); the same
    sweep again reuses all of them."""
    loaded = load("pack.yaml", text=TOY, multirun=["constants.lr=0.001,0.011,0.05"])
    registry = Registry(tmp_path)
    outcomes, _, sid = run_points(loaded.spec, loaded.points, registry, pack=3)
    keys = [o.run.run_key for o in outcomes]
    assert len(set(keys)) == 3 and not any(o.reused for o in outcomes)
    assert [o.run.status for o in outcomes] == ["completed", "completed", "diverged"]
    for o in outcomes:
        assert o.run.info["execution"]["mode"] == "packed"
        assert o.run.info["execution"]["members"] == keys
    again, _, sid2 = run_points(loaded.spec, loaded.points, registry, pack=3)
    assert all(o.reused for o in again) and sid2 == sid
    record = registry.read_sweep(sid)
    assert [m["run_key"] for m in record["members"]] == keys
    assert [m["values"]["constants.lr"] for m in record["members"]] == [0.001, 0.011, 0.05]


@pytest.mark.parametrize("fail_fast", [False, True])
def test_a_failing_pack_does_not_stop_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_fast: bool
) -> None:
    """A pack that raises fails its members (recorded as failed in the sweep record); the sweep goes on to
    the next pack unless fail_fast."""
    import eosdsl.orchestration.dispatch as dispatch

    loaded = load("pack.yaml", text=TOY, multirun=["constants.lr=0.001,0.002,0.003,0.004"])
    real = dispatch.compute
    calls = []

    def flaky(jobs, registry, progress=None, poll=0.5):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real(jobs, registry, progress, poll)

    monkeypatch.setattr(dispatch, "compute", flaky)
    outcomes, _, sid = run_points(loaded.spec, loaded.points, Registry(tmp_path), pack=2, fail_fast=fail_fast)
    statuses = [o.status for o in outcomes]
    assert statuses[:2] == ["failed", "failed"]
    assert statuses[2:] == (["failed", "failed"] if fail_fast else ["completed", "completed"])
    assert "injected failure" in outcomes[0].error
    members = Registry(tmp_path).read_sweep(sid)["members"]
    assert [m["status"] for m in members] == statuses


def test_auto_packing_packs_cheap_programs_and_leaves_compute_bound_ones_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --pack, the pack size is measured: paper 000's scalar toy with loss and parameters only (a
    step of ≈10² flops) is packed, as a trial pack of 16 costs ≈3.4 lone chunks here (a step's fixed
    cost is shared), far below 16 on any machine. A program whose
    trial pack costs more per member than a lone run (faked here: which networks are compute-bound
    depends on the machine) runs one point at a time, with a note giving both timings; an explicit
    --pack still packs it."""
    import eosdsl.orchestration.packing as packing

    registry = Registry(tmp_path)
    eps = ",".join(f"{0.01 + 0.001 * i:.3f}" for i in range(16))
    toy = plan_points(_points(SCALAR, [f"constants.eps={eps}"]), registry)
    assert [len(p) for p in toy.packs] == [16] and toy.notes == []
    net_points = _points(NET, ["optimizer.lr=0.05,0.1"])
    trials: list[int] = []

    def compute_bound(specs, hosts):  # a pack of n costs 3n lone chunks
        trials.append(len(specs))
        return 0.002 * (1 if len(specs) == 1 else 3 * len(specs))

    monkeypatch.setattr(packing, "trial_chunk_seconds", compute_bound)
    net = plan_points(net_points, registry)
    forced = plan_points(net_points, registry, pack=2)
    assert trials == [1, 2]  # one lone trial and one of the full pack; none with --pack
    assert [len(p) for p in net.packs] == [1, 1]
    assert len(net.notes) == 1 and "--pack" in net.notes[0]
    assert "trial pack of 2 took 6 ms per member-chunk against 2 ms alone" in net.notes[0]
    assert [len(p) for p in forced.packs] == [2]


def test_trial_chunk_seconds_times_a_compiled_chunk() -> None:
    """The trial runs the real programs (alone and packed) and returns a positive wall time."""
    from eosdsl.engine.packs import trial_chunk_seconds

    points = _points(RELU, ["constants.eps=0.01,0.02"])
    specs, hosts = [p.spec for p in points], [prepare(p.spec) for p in points]
    alone, packed = trial_chunk_seconds(specs[:1], hosts[:1]), trial_chunk_seconds(specs, hosts)
    assert 0 < alone < 10 and 0 < packed < 10


def test_a_worker_in_another_environment_refuses_its_pack(tmp_path: Path) -> None:
    """run_pack_task recomputes the run keys; keys planned elsewhere (another jax, backend or device)
    make it refuse rather than store the points under keys the planner will not look up."""
    from eosdsl.orchestration import EnvironmentMismatch, PackTask, run_pack_task

    points = _points(RELU, ["constants.eps=0.01,0.02"])
    documents = tuple(p.spec.model_dump(mode="json") for p in points)
    keys = tuple(job.key for job in plan_points(points, Registry(tmp_path)).jobs)
    with pytest.raises(EnvironmentMismatch, match="other run keys"):
        run_pack_task(PackTask(str(tmp_path), documents, ("0" * 64, "1" * 64)))
    results = run_pack_task(PackTask(str(tmp_path), documents, keys))
    assert [r.key for r in results] == list(keys) and not any(r.reused for r in results)


def test_held_claims_are_refreshed_while_a_pack_waits(tmp_path: Path) -> None:
    """Claims of members waiting for their group get heartbeats from a background thread."""
    import os
    import time

    from eosdsl.orchestration.running import _Heartbeats
    from eosdsl.registry.claims import try_claim

    claim = try_claim(tmp_path, "a" * 64)
    os.utime(claim.path, (0, 0))
    with _Heartbeats({0: claim}, period=0.05):
        time.sleep(0.3)
    assert time.time() - claim.path.stat().st_mtime < 5
    claim.release()


def test_structure_key_sees_measure_windows_but_not_a_runs_start() -> None:
    """The fields left out of the structure key are matched by name at any depth, so none of them may be
    a name the program reads: a measure's ``start`` window decides the program (two windows, two keys),
    while the top-level ``start`` of a chained run (eosdsl.spec.stages) is in its parameters and
    constants, so chained points share one program."""
    base = {
        "name": "k",
        "problem": {"kind": "relu_scalar"},
        "optimizer": {"kind": "gd", "lr": 0.02},
        "train": {"steps": 10},
        "measure": [{"kind": "loss"}, {"kind": "sharpness", "start": 0}],
    }
    late = {**base, "measure": [{"kind": "loss"}, {"kind": "sharpness", "start": 5}]}
    assert Structure.of(Spec.model_validate(base)).key != Structure.of(Spec.model_validate(late)).key
    chained = {**base, "start": {"stage": "pre", "run": "ab" * 32}, "stages": {"pre": {"train.steps": 3}}}
    assert Structure.of(Spec.model_validate(chained)).key == Structure.of(Spec.model_validate(base)).key


def test_a_solvers_tolerance_is_structure_and_other_numbers_are_traced() -> None:
    """``tol`` decides at trace time whether LOBPCG certifies (``curvature.lobpcg.certifies``), so two
    tolerances are two programs, and inside the program it is the spec's Python float; the learning rate
    stays a traced number (one program for any value)."""
    base = {
        "name": "k",
        "problem": {"kind": "relu_scalar"},
        "optimizer": {"kind": "gd", "lr": 0.02},
        "train": {"steps": 10},
        "measure": [{"kind": "sharpness", "method": "lobpcg", "tol": 1e-3}],
    }
    loose = Spec.model_validate(base)
    tight = Spec.model_validate({**base, "measure": [{**base["measure"][0], "tol": 1e-9}]})
    faster = Spec.model_validate({**base, "optimizer": {"kind": "gd", "lr": 0.03}})
    assert Structure.of(loose).key != Structure.of(tight).key
    assert Structure.of(loose).key == Structure.of(faster).key
    floats = float_leaves(loose)
    assert 0.02 in floats and 1e-3 not in floats
    rebuilt = replace_floats(loose, [object() for _ in floats])
    assert rebuilt.measure[0].tol == 1e-3 and not isinstance(rebuilt.optimizer.lr, float)


def test_a_costly_lone_trial_skips_the_pack_trial_and_a_cheaper_one_shrinks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial pack may cost at most TRIAL_BUDGET_S (as many lone chunks as members): a lone chunk
    dearer than half of it leaves the points alone without a pack trial, with a note saying so; a
    cheaper one shrinks the trial pack to what fits (here 4 of 6 members), and its verdict sizes the
    packs."""
    import eosdsl.orchestration.packing as packing

    registry = Registry(tmp_path)
    points = _points(NET, ["optimizer.lr=0.01,0.02,0.03,0.04,0.05,0.06"])
    trials: list[int] = []

    def costly(specs, hosts):
        trials.append(len(specs))
        return 0.6 * packing.TRIAL_BUDGET_S if len(specs) == 1 else 0.0

    monkeypatch.setattr(packing, "trial_chunk_seconds", costly)
    plan = plan_points(points, registry)
    assert trials == [1] and [len(p) for p in plan.packs] == [1] * 6
    assert "a trial pack would cost more than" in plan.notes[0]

    def cheaper(specs, hosts):
        trials.append(len(specs))
        return 0.25 * packing.TRIAL_BUDGET_S if len(specs) == 1 else 0.1

    trials.clear()
    monkeypatch.setattr(packing, "trial_chunk_seconds", cheaper)
    plan = plan_points(points, registry)
    assert trials == [1, 4] and [len(p) for p in plan.packs] == [6] and plan.notes == []


def test_a_packing_trial_is_measured_once_per_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cache on, the trial's timings are kept (eosdsl.cache.cached_measurement): planning the
    same sweep again, in any registry, decides from them without running a trial, and its note says
    so; another pack size is another trial."""
    import eosdsl.orchestration.packing as packing
    from eosdsl import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    trials: list[int] = []

    def compute_bound(specs, hosts):  # a pack of n costs 3n lone chunks
        trials.append(len(specs))
        return 0.002 * (1 if len(specs) == 1 else 3 * len(specs))

    monkeypatch.setattr(packing, "trial_chunk_seconds", compute_bound)
    two = _points(NET, ["optimizer.lr=0.05,0.1"])
    first = plan_points(two, Registry(tmp_path / "a"))
    assert trials == [1, 2] and [len(p) for p in first.packs] == [1, 1]
    assert "earlier trial" not in first.notes[0]
    second = plan_points(two, Registry(tmp_path / "b"))
    assert trials == [1, 2] and second.packs == first.packs
    note = second.notes[0]
    assert note.startswith(first.notes[0].removesuffix("them")) and "earlier trial" in note
    plan_points(_points(NET, ["optimizer.lr=0.05,0.1,0.2"]), Registry(tmp_path / "c"))
    assert trials == [1, 2, 1, 3]
    entries = list((tmp_path / "cache" / "measurements").rglob("*.json"))
    assert len(entries) == 2
    damages = ['{"alone_s": "x", "trial": 2, "packed_s": 1}', '{"alone_s": 0.1, "trial": 3}']
    for entry, damage in zip(entries, damages, strict=True):
        entry.write_text(damage)  # JSON objects, but not timings a trial returns: measured again
    plan_points(two, Registry(tmp_path / "d"))
    plan_points(_points(NET, ["optimizer.lr=0.05,0.1,0.2"]), Registry(tmp_path / "e"))
    assert trials == [1, 2, 1, 3, 1, 2, 1, 3]
    plan_points(two, Registry(tmp_path / "f"))  # the damaged entries were overwritten by good ones
    assert trials == [1, 2, 1, 3, 1, 2, 1, 3]
    own_data = _points(NET, ["problem.data.seed=1,2"])  # same programs, each point its own data
    plan_points(own_data, Registry(tmp_path / "g"))
    assert trials[8:] == [1, 2]


def test_only_a_clear_packing_trial_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial near break-even (background load could tip it) is run again by every sweep; a clear one,
    either way, is reused, with no pack trial at all (a costly lone chunk) as well."""
    import eosdsl.orchestration.packing as packing
    from eosdsl import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    trials: list[int] = []
    cost = {"alone": 0.002, "per_member": 0.002}

    def timed(specs, hosts):
        trials.append(len(specs))
        return cost["alone"] if len(specs) == 1 else cost["per_member"] * len(specs)

    monkeypatch.setattr(packing, "trial_chunk_seconds", timed)
    points = _points(NET, ["optimizer.lr=0.05,0.1"])
    for name in "ab":  # break-even: measured every time
        assert [len(p) for p in plan_points(points, Registry(tmp_path / name)).packs] == [2]
    assert trials == [1, 2, 1, 2]
    cost["per_member"] = packing.CLEAR_RATIO * 0.002  # clearly cheaper packed: kept
    for name in "cd":
        assert [len(p) for p in plan_points(points, Registry(tmp_path / name)).packs] == [2]
    assert trials == [1, 2, 1, 2, 1, 2]
    cost["alone"] = 0.6 * packing.TRIAL_BUDGET_S  # costly lone chunk, another program: no pack trial
    costly = _points(NET, ["optimizer.lr=0.05,0.1", "train.steps=299"])
    notes = [plan_points(costly, Registry(tmp_path / name)).notes[0] for name in "ef"]
    assert trials == [1, 2, 1, 2, 1, 2, 1]
    assert "a trial pack would cost more than" in notes[0] and "earlier trial" not in notes[0]
    assert notes[1] == notes[0] + " (timings kept from an earlier trial on this machine)"
