"""Runs that start from other runs (``stages`` / ``start``; paper 000 App. E.5).

- Validation: an unknown stage, a stage that sets ``start``, a value named like a constant, a value
  reading a series the stage does not record, a value that is a series — each located (line, key path);
  a hand-written resolved ``start`` (with ``run``) whose values are not in ``constants``, or whose
  ``run`` is not a whole run key.
- A chained run on paper 000's ReLU scalar net, where the oracle is exact: the downstream run's
  recorded parameters at step 0 are the stage run's at its end step (bitwise), its constant ``S0`` is
  the stage run's last recorded sharpness (bitwise), its learning rate follows from it; the upstream
  key enters the identity (another stage, another run key); a re-run reuses both runs; ``show`` prints
  the upstream run and ``ls --from`` finds the downstream one; ``--dry-run`` and ``check --spec``
  handle a point before and after its stage runs; a value that is NaN on the stage run, or stage
  parameters of another shape, are refused (StageError).
- A packed sweep of downstream cases from one stage computes the stage once and agrees with each point
  run alone (to the packed-run guarantee, ``engine.execute.PACKED_AGREEMENT``: relative 1e-10); an
  executor's worker given the resolved specs finds the same run keys.
- A chained run killed midway (SIGKILL) resumes from its checkpoint, bitwise equal to an uninterrupted
  run.
- ``at: {step: N}`` on a stage: the downstream run starts from the stage's recorded w_N (bitwise) and
  reads the sharpness there through ``start_step``; a step past the stage's steps is a located error.
  (Starting from another spec file, and at events: tests/test_start_spec.py.)
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.orchestration import PackTask, StageError, run_one, run_pack_task, run_points
from eosdsl.registry import Registry
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

CHAIN = """\
name: chain
constants: {eps: 0.01}
problem: {kind: relu_scalar, u0: 2.0, v0: 1.0}
optimizer: {kind: gd, lr: (2 + eps) / S0}
train: {steps: 300}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: sharpness, every: 10}
stages:
  pretrain:
    optimizer: {kind: gd, lr: 0.05}
    train: {steps: 400, stop: [{loss: {below: 1.0e-12}}]}
start:
  stage: pretrain
  values: {S0: final(sharpness)}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load("chain.yaml", text=text)
    return [f"{e.line}:{'.'.join(map(str, e.path))}: {e.message}" for e in caught.value.errors]


def test_a_chained_spec_validates_and_values_are_constants():
    spec = load("chain.yaml", text=CHAIN).spec
    assert spec.start is not None and spec.start.run is None
    assert spec.start.values == {"S0": "final(sharpness)"}
    dumped = spec.model_dump(mode="json")
    assert "run" not in dumped["start"] and dumped["stages"]["pretrain"]["optimizer"]["lr"] == 0.05
    plain = load("plain.yaml", text=CHAIN.split("stages:")[0].replace("/ S0", "/ 4.0")).spec
    assert "stages" not in plain.model_dump(mode="json") and "start" not in plain.model_dump(mode="json")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  stage: pretrain", "  stage: warmup", "15:start.stage: unknown stage 'warmup'"),
        (
            "    train: {steps: 400",
            "    start: {stage: pretrain}\n    train: {steps: 400",
            "13:stages.pretrain.start: a stage is one plain run; it may not set `start`",
        ),
        ("{S0: final(sharpness)}", "{eps: final(sharpness)}", "16:start.values.eps: 'eps' is already a"),
        ("{S0: final(sharpness)}", "{S0: final(grad_norm)}", "16:start.values.S0: start value S0 (on"),
        ("{S0: final(sharpness)}", "{S0: sharpness}", "16:start.values.S0: a start value is one number"),
        ("lr: 0.05", "lr: 0.05 / gamma", "12:stages.pretrain.optimizer: in the stage, optimizer.lr: unknown"),
        ("(2 + eps) / S0", "(2 + eps) / S1", "4:optimizer.lr: unknown name 'S1'"),
        ("{steps: 400,", "{steps: -1,", "13:stages.pretrain.train: the stage is not a valid spec"),
    ],
)
def test_chaining_errors_are_located(old, new, expected):
    assert old in CHAIN
    errors = _errors(CHAIN.replace(old, new))
    assert any(e.startswith(expected) for e in errors), errors


RESOLVED = CHAIN.split("stages:")[0] + "start:\n  run: " + "ab" * 32 + "\n  values: {S0: final(sharpness)}\n"


def test_a_hand_written_resolved_start_is_checked():
    """A ``start`` with ``run`` is taken as resolved (as eosdsl writes it): its values must already be
    in ``constants`` and ``run`` must be a whole run key; else located errors, not silently ignored."""
    errors = _errors(RESOLVED)
    assert any(e.startswith("12:start.values.S0: 'S0' is not in `constants`") for e in errors), errors
    assert any("Give `stage` or `spec` (without `run`)" in e for e in errors), errors
    resolved = RESOLVED.replace("constants: {eps: 0.01}", "constants: {eps: 0.01, S0: 4.0}")
    spec = load("chain.yaml", text=resolved).spec  # the resolved form itself, as stored in spec.json
    assert spec.start is not None and spec.start.run == "ab" * 32 and spec.constants["S0"] == 4.0
    short = _errors(resolved.replace("ab" * 32, "ab" * 6))
    assert any(e.startswith("11:start.run: 'abababababab' is not a run key") for e in short), short


@pytest.mark.slow
def test_a_chained_run_starts_from_the_stage_runs_final_state(tmp_path):
    registry = Registry(tmp_path / "reg")
    runner = CliRunner()
    spec_file = tmp_path / "chain.yaml"
    spec_file.write_text(CHAIN)
    dry = runner.invoke(app, ["run", str(spec_file), "--dry-run", "--registry", str(registry.root)])
    assert dry.exit_code == 0 and "after its stage 'pretrain'" in dry.output, dry.output
    outcome = run_one(load("chain.yaml", text=CHAIN).spec, registry)
    run = outcome.run
    assert run is not None and not outcome.reused and run.status == "completed"
    start = run.spec["start"]
    stage = registry.get(start["run"])
    assert stage is not None and stage.name == "chain.pretrain" and stage.status == "stopped"
    end = stage.info["end_step"]
    for name in ("params.u", "params.v"):  # w_0 of the downstream run is w_T of the stage run, bitwise
        steps, values = stage.series(name)
        assert steps[-1] == end
        assert run.series(name)[1][0].tobytes() == values[-1].tobytes(), name
    steps, sharp = stage.series("sharpness")
    s0 = run.spec["constants"]["S0"]
    assert s0 == float(sharp[-1])  # the value is the stored number, bitwise (JSON floats round-trip)
    assert abs(s0 - stage.series("params.u")[1][-1] ** 2) < 1e-9 * s0  # S = u² at v ≈ 0
    assert run.spec["optimizer"]["lr"] == "(2 + eps) / S0"
    assert start == {
        "stage": "pretrain",
        "at": "final",
        "values": {"S0": "final(sharpness)"},
        "run": stage.run_key,
    }
    assert "stages" not in run.spec  # the stage run's key stands for it

    again = run_one(load("chain.yaml", text=CHAIN).spec, registry)
    assert again.reused and again.run == run
    assert len(list(registry.runs())) == 2

    other = run_one(load("chain.yaml", text=CHAIN.replace("lr: 0.05", "lr: 0.04")).spec, registry)
    assert other.run.spec["start"]["run"] != stage.run_key and other.run.run_key != run.run_key

    dry = runner.invoke(app, ["run", str(spec_file), "--dry-run", "--registry", str(registry.root)])
    assert dry.exit_code == 0, dry.output
    assert any(run.run_key[:12] in line and "stored" in line for line in dry.output.splitlines()), dry.output
    on = ["--registry", str(registry.root)]
    checked = runner.invoke(app, ["check", run.run_key[:12], "--spec", str(spec_file), *on])
    assert checked.exit_code == 0, checked.output  # the spec file's point matches the run it made
    shown = runner.invoke(app, ["show", run.run_key[:12], "--registry", str(registry.root)])
    assert shown.exit_code == 0, shown.output
    assert f"starts from: stage pretrain, run {stage.run_key} (final state)" in shown.output
    assert "S0 = " in shown.output and "(final(sharpness) of that run)" in shown.output
    listed = runner.invoke(app, ["ls", "--from", stage.run_key[:10], "--registry", str(registry.root)])
    assert listed.exit_code == 0, listed.output
    assert run.run_key[:12] in listed.output and other.run.run_key[:12] not in listed.output
    assert stage.run_key[:12] not in listed.output

    never = CHAIN.replace("final(sharpness)", "'at(sharpness, first(loss > 1e9))'")  # NaN: no such step
    with pytest.raises(StageError, match="must be one finite number"):
        run_one(load("chain.yaml", text=never).spec, registry)
    other_problem = CHAIN.replace(
        "    optimizer: {kind: gd, lr: 0.05}",
        "    optimizer: {kind: gd, lr: 0.05}\n"
        "    problem: {kind: toy, params: {w: 1.0}, objective: '0.5 * w**2'}",
    )
    with pytest.raises(StageError, match="do not fit this spec's problem"):
        run_one(load("chain.yaml", text=other_problem).spec, registry)


BETA_CASES = """\
sweep:
  cases:
    - label: a
    - label: b
      set: {optimizer.beta: 0.5}
    - label: c
      set: {optimizer.beta: 0.0}
"""
"""Three heavy-ball cases of a started spec (β = 0.9, 0.5, 0): a packed sweep from one upstream run."""

SWEEP = (
    CHAIN.replace(
        "optimizer: {kind: gd, lr: (2 + eps) / S0}\ntrain: {steps: 300}",
        "optimizer: {kind: heavy_ball, beta: 0.9, lr: (2 + eps) / S0}\n"
        "train: {steps: 300}\nruntime: {chunk: 100}",
    )
    + BETA_CASES
)


@pytest.mark.slow
def test_a_packed_sweep_from_one_stage_equals_its_points_alone(tmp_path):
    loaded = load("sweep.yaml", text=SWEEP)
    registry = Registry(tmp_path / "packed")
    outcomes, _, _ = run_points(loaded.spec, loaded.points, registry, pack=3)
    assert all(o.run is not None and o.run.info["execution"]["mode"] == "packed" for o in outcomes)
    upstream = {o.run.spec["start"]["run"] for o in outcomes}
    assert len(upstream) == 1 and len(list(registry.runs())) == 4  # one stage run for the three points
    alone = Registry(tmp_path / "alone")
    for outcome, point in zip(outcomes, loaded.points, strict=True):
        single = run_one(point.spec, alone).run
        assert single.run_key == outcome.run.run_key and single.info["execution"]["mode"] == "alone"
        for name in outcome.run.series_names():
            steps, values = outcome.run.series(name)
            np.testing.assert_array_equal(single.series(name)[0], steps)
            np.testing.assert_allclose(single.series(name)[1], values, rtol=1e-10, atol=0, err_msg=name)
    import eosdsl.orchestration.jobs as jobs

    def unread(*args):
        raise AssertionError("a reused chained run read its upstream's state")

    with pytest.MonkeyPatch.context() as patch:  # identity and lookup never need the start state
        patch.setattr(jobs, "start_params", unread)
        again, _, _ = run_points(loaded.spec, loaded.points, registry, pack=3)
    assert all(o.reused for o in again) and len(list(registry.runs())) == 4
    # an executor's worker gets the resolved specs and finds the same keys (initial parameters included)
    task = PackTask(
        str(registry.root),
        tuple(o.spec.model_dump(mode="json") for o in outcomes),
        tuple(o.run.run_key for o in outcomes),
    )
    assert [(r.key, r.reused) for r in run_pack_task(task)] == [(o.run.run_key, True) for o in outcomes]


# Heavy ball from a GD-pretrained point, long enough to be killed after a checkpoint (as in test_resume).
LONG = CHAIN.replace(
    "optimizer: {kind: gd, lr: (2 + eps) / S0}\ntrain: {steps: 300}",
    "optimizer: {kind: heavy_ball, beta: 0.9, lr: (2 + eps) / S0}\ntrain: {steps: 400000}\n"
    "runtime: {chunk: 10000, checkpoint_every: 50000, checkpoint_min_seconds: 0}",
).replace("  - {kind: sharpness, every: 10}", "  - {kind: sharpness, every: 100}")


@pytest.mark.slow
def test_a_killed_chained_run_resumes_bit_identically(tmp_path):
    from tests.test_resume import _all_series, _bitwise, _checkpointed_runs, _cli

    assert "400000" in LONG
    spec_file = tmp_path / "long.yaml"
    spec_file.write_text(LONG)
    killed = tmp_path / "killed"
    proc = _cli(spec_file, killed)
    deadline = time.monotonic() + 240
    while not (list(killed.glob("objects/*/*")) and _checkpointed_runs(killed)):  # the stage committed
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint of the chained run appeared within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(killed.glob("objects/*/*"))) == 1, "only the stage run is committed"

    resumed = _cli(spec_file, killed)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resumed from the checkpoint at step" in out, out
    reference = run_one(load(spec_file).spec, Registry(tmp_path / "uninterrupted")).run
    stored = Registry(killed).get(reference.run_key)
    assert stored is not None, "the resumed run has the uninterrupted run's key"
    got, expected = _all_series(stored), _all_series(reference)
    assert got.keys() == expected.keys()
    for name, (steps, values) in expected.items():
        assert _bitwise(got[name][0], steps) and _bitwise(got[name][1], values), name


@pytest.mark.slow
def test_a_run_starts_from_a_stage_runs_state_at_a_step(tmp_path):
    """``at: {step: N}`` on a stage: w_0 of the downstream run is w_N of the stage run, which the stage
    records at every step (``params``), bitwise; ``start_step`` reads the sharpness measured there."""
    registry = Registry(tmp_path / "reg")
    text = CHAIN.replace("  stage: pretrain\n", "  stage: pretrain\n  at: {step: 30}\n").replace(
        "{S0: final(sharpness)}", "{S0: 'at(sharpness, start_step)'}"
    )
    run = run_one(load("chain.yaml", text=text).spec, registry).run
    stage = registry.get(run.spec["start"]["run"])
    assert run.spec["start"]["at"] == {"step": 30} and stage.info["end_step"] > 30
    for name in ("params.u", "params.v"):
        steps, values = stage.series(name)
        assert run.series(name)[1][0].tobytes() == values[steps == 30][0].tobytes(), name
    steps, sharp = stage.series("sharpness")
    assert run.spec["constants"]["S0"] == float(sharp[steps == 30][0])
    final = run_one(load("chain.yaml", text=CHAIN).spec, registry).run
    assert final.spec["start"]["run"] == stage.run_key and final.run_key != run.run_key  # one stage run
    assert len(list(registry.runs())) == 3
    with pytest.raises(SpecError, match="step 401 is after the upstream run's last step"):
        load("chain.yaml", text=text.replace("{step: 30}", "{step: 401}"))
