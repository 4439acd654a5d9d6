"""Runs that start from another spec file (``start.spec``) and at a step or event (``start.at``).

The oracle is the upstream run itself: runs are deterministic, so the state at step N of an upstream run
is the final state of the same spec trained for N steps (``train.steps: N``, run alone in a fresh
registry), bit for bit. The toy is paper 000's ReLU scalar net (elementwise: packs vectorize exactly).

- Validation, each located at ``start.*``: a missing upstream file, an invalid one (its own file, line
  and key path in the message), an upstream with a sweep (refused), a spec starting from itself
  directly or through another file (a cycle), both or neither of ``stage``/``spec``, an unknown event,
  a step past the upstream's steps, a value on a series the upstream does not record.
- Identity: the upstream run's key is ``start.run`` and the path is dropped, so the same two files in
  another directory (another path string) give the same downstream run; a re-run executes nothing (the
  registry holds 2 runs); another upstream gives another downstream key; ``show``/``ls --from``.
- ``at: {step: N}`` equals the truncated upstream run (bitwise parameters), recomputed from the initial
  state (N before every kept checkpoint) and from the kept checkpoint at step 400 (N = 410); values
  read at ``start_step`` are the upstream's recorded numbers, bitwise. ``at: {event: ...}`` starts at
  the step the event fired (w_t before the switched update), equal to the run truncated there.
- The recomputation is checked: a stored series value one ulp off at a step in [origin, N) fails the
  start, naming the series, the step and both values (what an upstream computed in a pack or elsewhere
  would show); an upstream run of another numerics environment is refused before recomputing. It runs
  the upstream's own chunk program plus one remainder chunk: the jit cache grows by one program per
  distinct remainder, not per step asked for.
- ``start.spec`` set by a sweep case of the file is relative to the file; on the command line (an
  override, a ``-m`` axis), to the working directory.
- A packed sweep of downstream cases shares one upstream run (vmapped members bitwise equal to their
  lone runs, and through the registry the same keys as lone runs); a chained run killed after a
  checkpoint resumes bitwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import assert_pack_is_bitwise, assert_resume_is_bitwise
from test_stages import BETA_CASES
from typer.testing import CliRunner

from eosdsl.cli import app
from eosdsl.engine import execute
from eosdsl.engine.execute import layout_of
from eosdsl.engine.program import Structure, hyperparameters, init_state, run_chunk
from eosdsl.orchestration import run_one, run_points, running, stages
from eosdsl.orchestration.jobs import Job
from eosdsl.orchestration.stages import StageError, state_at, upstream_params
from eosdsl.registry import Registry, zarr_io
from eosdsl.registry.checkpoints import kept_positions
from eosdsl.spec import models as m
from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

# GD, then heavy ball once the loss is small (the event `slow`); 420 steps in chunks of 50 with a
# checkpoint every 100: the run keeps the checkpoint at scan position 400 and its final one (450).
UPSTREAM = """\
name: pretrain
problem: {kind: relu_scalar, u0: 2.0, v0: 1.0}
optimizer: {kind: gd, lr: 0.05}
train: {steps: 420}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: sharpness, every: 1}
events:
  - name: slow
    when: {loss: {below: 1.0e-3}}
    do: {switch_optimizer: {kind: heavy_ball, beta: 0.5, lr: 0.02}}
runtime: {chunk: 50, checkpoint_every: 100, checkpoint_min_seconds: 0}
"""

DOWNSTREAM = """\
name: down
constants: {eps: 0.01}
problem: {kind: relu_scalar, u0: 2.0, v0: 1.0}
optimizer: {kind: gd, lr: (2 + eps) / S0}
train: {steps: 200}
measure:
  - {kind: loss}
  - {kind: params}
  - {kind: sharpness, every: 10}
start:
  spec: ../pretrain.yaml
  at: {step: 150}
  values: {S0: 'at(sharpness, start_step)', t0: start_step}
"""


def _files(root: Path, upstream: str = UPSTREAM, downstream: str = DOWNSTREAM) -> Path:
    """``root/pretrain.yaml`` and ``root/sub/down.yaml`` (which names the first as ``../pretrain.yaml``);
    returns the downstream file."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "pretrain.yaml").write_text(upstream)
    (root / "sub" / "down.yaml").write_text(downstream)
    return root / "sub" / "down.yaml"


def _errors(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(path)
    return [f"{e.line}:{'.'.join(map(str, e.path))}: {e.message}" for e in caught.value.errors]


def _truncated(steps: int, registry: Registry) -> dict[str, bytes]:
    """The final parameters of the upstream spec trained for ``steps`` steps, as bytes."""
    text = UPSTREAM.replace("steps: 420", f"steps: {steps}")
    run = run_one(load("pretrain.yaml", text=text).spec, registry)
    assert run.run is not None and run.run.info["end_step"] == steps
    return {k: run.run.series(k)[1][-1].tobytes() for k in ("params.u", "params.v")}


def _start(run) -> dict[str, bytes]:  # noqa: ANN001
    """A downstream run's recorded parameters at its step 0, as bytes."""
    return {k: run.series(k)[1][0].tobytes() for k in ("params.u", "params.v")}


def test_a_spec_starting_from_another_file_validates(tmp_path, monkeypatch):
    down = _files(tmp_path)
    monkeypatch.chdir(tmp_path / "sub")  # the path is relative to the spec file, not the working directory
    spec = load(down).spec
    assert spec.start is not None and spec.start.spec == str(tmp_path / "pretrain.yaml")
    assert spec.start.at == m.AtStep(step=150) and spec.start.stage is None
    monkeypatch.chdir(tmp_path)
    assert load(Path("sub/down.yaml")).spec == spec
    dumped = spec.model_dump(mode="json")["start"]
    assert "stage" not in dumped and "run" not in dumped and dumped["at"] == {"step": 150}
    event = load(down, ["start.at={event: slow}"]).spec  # overrides: the same anchoring
    assert event.start is not None and event.start.at == m.AtEvent(event="slow")


@pytest.mark.parametrize(
    ("upstream", "old", "new", "expected"),
    [
        (UPSTREAM, "../pretrain.yaml", "../nowhere.yaml", "11:start.spec: no such spec file: "),
        (
            UPSTREAM.replace("lr: 0.05}", "lr: 0.05 / gamma}"),
            None,
            None,
            "11:start.spec: the upstream spec is not valid: ",
        ),
        (
            UPSTREAM + "sweep: {grid: {optimizer.lr: [0.05, 0.04]}}\n",
            None,
            None,
            "11:start.spec: the upstream spec ",
        ),
        (UPSTREAM, "../pretrain.yaml", "down.yaml", "11:start.spec: a cycle: "),
        (
            UPSTREAM,
            "  spec: ../pretrain.yaml",
            "  spec: ../pretrain.yaml\n  stage: x",
            "10:start: give one of `stage` and `spec`",
        ),
        (UPSTREAM, "  spec: ../pretrain.yaml\n", "", "10:start: give `stage`"),
        (UPSTREAM, "{step: 150}", "{event: fast}", "12:start.at.event: the upstream run has no event 'fast'"),
        (UPSTREAM, "{step: 150}", "{step: 421}", "12:start.at.step: step 421 is after the upstream run's"),
        (UPSTREAM, "t0: start_step", "t0: final(grad_norm)", "13:start.values.t0: start value t0 (on"),
    ],
)
def test_upstream_errors_are_located(tmp_path, upstream, old, new, expected):
    text = DOWNSTREAM if old is None else DOWNSTREAM.replace(old, new)
    assert old is None or old in DOWNSTREAM
    errors = _errors(_files(tmp_path, upstream, text))
    assert any(e.startswith(expected) for e in errors), errors


def test_invalid_upstream_and_cycles_name_the_file_line_and_key(tmp_path):
    bad = _files(tmp_path, UPSTREAM.replace("lr: 0.05}", "lr: 0.05 / gamma}"))
    (message,) = [e for e in _errors(bad) if "start.spec" in e]
    assert "pretrain.yaml:3:" in message and "optimizer.lr: unknown name 'gamma'" in message, message
    swept = _files(tmp_path, UPSTREAM + "sweep: {grid: {optimizer.lr: [0.05, 0.04]}}\n")
    assert any("has a sweep; a run starts from one run" in e for e in _errors(swept))
    # indirect: down.yaml → ../pretrain.yaml → sub/down.yaml
    looping = UPSTREAM + "start: {spec: sub/down.yaml}\n"
    (message,) = [e for e in _errors(_files(tmp_path, looping)) if "start.spec" in e]
    assert "a cycle: " in message and message.count("down.yaml") == 2, message
    assert "pretrain.yaml → " in message, message


@pytest.mark.slow
def test_a_run_from_another_spec_file_at_a_step(tmp_path, monkeypatch):
    computed: list[str] = []  # the runs executed (every run_one that does not reuse goes through compute)
    original = running.compute

    def counting(jobs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        computed.extend(job.spec.name for job in jobs)
        return original(jobs, *args, **kwargs)

    monkeypatch.setattr(running, "compute", counting)
    registry = Registry(tmp_path / "reg")
    down = _files(tmp_path / "a")
    outcome = run_one(load(down).spec, registry)
    run = outcome.run
    assert run is not None and run.status == "completed" and not outcome.reused
    upstream = registry.get(run.spec["start"]["run"])
    assert upstream is not None and upstream.name == "pretrain" and upstream.info["end_step"] == 420
    assert run.spec["start"] == {
        "at": {"step": 150},
        "values": {"S0": "at(sharpness, start_step)", "t0": "start_step"},
        "run": upstream.run_key,
    }  # no path: the upstream run's key stands for the file
    assert len(list(registry.runs())) == 2 and computed == ["pretrain", "down"]

    # w_0 of the downstream run is w_150 of the upstream run: the upstream trained for 150 steps, bitwise
    assert _start(run) == _truncated(150, Registry(tmp_path / "truncated"))
    steps, sharp = upstream.series("sharpness")
    assert run.spec["constants"]["S0"] == float(sharp[steps == 150][0])  # the stored number, bitwise
    assert run.spec["constants"]["t0"] == 150.0

    # the same files elsewhere (another path string): nothing runs, the same keys
    other = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "a", other)
    executed = len(computed)
    again = run_one(load(other / "sub" / "down.yaml").spec, registry)
    assert again.reused and again.run == run and len(list(registry.runs())) == 2
    assert computed[executed:] == []  # nothing executed: both runs found stored
    # another upstream (a longer pretraining): another upstream key, another downstream key
    longer = _files(tmp_path / "b", UPSTREAM.replace("steps: 420", "steps: 430"))
    changed = run_one(load(longer).spec, registry).run
    assert changed.spec["start"]["run"] != upstream.run_key and changed.run_key != run.run_key
    assert _start(changed) == _start(run)  # the same state at step 150
    assert len(list(registry.runs())) == 4

    runner = CliRunner()
    on = ["--registry", str(registry.root)]
    shown = runner.invoke(app, ["show", run.run_key[:12], *on])
    assert shown.exit_code == 0, shown.output
    expected = f"starts from: the run of another spec, run {upstream.run_key} (state at step 150)"
    assert expected in shown.output, shown.output
    listed = runner.invoke(app, ["ls", "--from", upstream.run_key[:10], *on])
    assert listed.exit_code == 0, listed.output
    assert run.run_key[:12] in listed.output and changed.run_key[:12] not in listed.output
    dry = runner.invoke(app, ["run", str(longer), "--dry-run", *on])
    assert dry.exit_code == 0 and changed.run_key[:12] in dry.output and "stored" in dry.output, dry.output
    fresh = ["--registry", str(tmp_path / "empty")]
    dry = runner.invoke(app, ["run", str(longer), "--dry-run", *fresh])
    assert dry.exit_code == 0 and "after its upstream spec " in dry.output, dry.output


@pytest.mark.slow
def test_a_state_between_checkpoints_is_recomputed_bitwise(tmp_path):
    registry = Registry(tmp_path / "reg")
    upstream = run_one(load("pretrain.yaml", text=UPSTREAM).spec, registry).run
    assert kept_positions(upstream) == [400, 450]  # a periodic checkpoint and the final state
    stage = m.Spec.model_validate(upstream.spec)
    job = Job.of(stage, registry=registry)
    structure, hparams, layout = Structure.of(stage), hyperparameters(stage), layout_of(stage, job.host)
    template = init_state(structure, hparams, layout, job.host.params)
    truncated = Registry(tmp_path / "truncated")
    for step, origin in ((150, 0), (410, 400), (400, 400), (0, 0)):
        state, start = state_at(upstream, stage, job.host, step, registry, template)
        assert start == origin and int(state.t) == step
        got = {f"params.{k}": np.asarray(v).tobytes() for k, v in state.params.items()}
        assert got == _truncated(step, truncated), step
        served = upstream_params(upstream, step, registry)  # what a downstream run starts from
        assert {f"params.{k}": v.tobytes() for k, v in served.items()} == got
    assert len(list(registry.runs())) == 1  # recomputing stores nothing


@pytest.mark.slow
def test_a_run_at_an_event_of_another_spec(tmp_path):
    registry = Registry(tmp_path / "reg")
    text = DOWNSTREAM.replace("{step: 150}", "{event: slow}")
    run = run_one(load(_files(tmp_path, downstream=text)).spec, registry).run
    upstream = registry.get(run.spec["start"]["run"])
    (slow,) = [e for e in upstream.info["events"] if e["name"] == "slow"]
    fired = slow["fired_at"]
    assert 0 < fired < 420 and run.spec["constants"]["t0"] == fired
    assert _start(run) == _truncated(fired, Registry(tmp_path / "truncated"))
    steps, sharp = upstream.series("sharpness")
    assert run.spec["constants"]["S0"] == float(sharp[steps == fired][0])
    assert run.spec["start"]["at"] == {"event": "slow"}

    never = _files(tmp_path / "never", UPSTREAM.replace("below: 1.0e-3", "below: 1.0e-300"), text)
    with pytest.raises(StageError, match="the event 'slow' never fired in the upstream run"):
        run_one(load(never).spec, registry)


SWEEP = (
    DOWNSTREAM.replace(
        "optimizer: {kind: gd, lr: (2 + eps) / S0}",
        "optimizer: {kind: heavy_ball, beta: 0.9, lr: (2 + eps) / S0}",
    )
    + BETA_CASES
)


@pytest.mark.slow
def test_a_packed_sweep_from_another_spec_shares_one_upstream_run(tmp_path):
    loaded = load(_files(tmp_path, downstream=SWEEP))
    registry = Registry(tmp_path / "packed")
    outcomes, _, _ = run_points(loaded.spec, loaded.points, registry, pack=3)
    assert all(o.run is not None and o.run.info["execution"]["mode"] == "packed" for o in outcomes)
    assert len({o.run.spec["start"]["run"] for o in outcomes}) == 1 and len(list(registry.runs())) == 4
    alone = Registry(tmp_path / "alone")
    for outcome, point in zip(outcomes, loaded.points, strict=True):
        single = run_one(point.spec, alone).run
        assert single.run_key == outcome.run.run_key
    again, _, _ = run_points(loaded.spec, loaded.points, registry, pack=3)
    assert all(o.reused for o in again) and len(list(registry.runs())) == 4
    # the vmapped members equal their lone runs bit for bit (an elementwise toy), from the recomputed state
    jobs = [Job.of(o.spec, registry=registry) for o in outcomes]
    packed = assert_pack_is_bitwise([j.spec for j in jobs], [j.start() for j in jobs])
    for result, outcome in zip(packed, outcomes, strict=True):
        assert result.series["params.u"][1][0].tobytes() == outcome.run.series("params.u")[1][0].tobytes()


@pytest.mark.slow
def test_a_killed_run_from_another_spec_resumes_bitwise(tmp_path):
    registry = Registry(tmp_path / "reg")
    text = DOWNSTREAM.replace("train: {steps: 200}", "train: {steps: 300}\nruntime: {chunk: 50}")
    outcome = run_one(load(_files(tmp_path, downstream=text)).spec, registry)
    job = Job.of(outcome.spec, registry=registry)
    assert job.key == outcome.run.run_key  # the resolved spec and its upstream state: the stored run
    whole = assert_resume_is_bitwise(job.spec, 100, tmp_path / "store", host=job.start())
    assert whole.series["params.u"][1].tobytes() == outcome.run.series("params.u")[1].tobytes()


@pytest.mark.slow
def test_a_chain_of_three_spec_files(tmp_path):
    """top.yaml starts from sub/down.yaml at step 50, which starts from pretrain.yaml at step 150: the
    middle run keeps only its final state, so its step 50 is recomputed from its initial state — itself
    the upstream's recomputed w_150. The oracle: the middle run records its parameters at every step."""
    _files(tmp_path)
    top = """\
name: top
problem: {kind: relu_scalar, u0: 2.0, v0: 1.0}
optimizer: {kind: gd, lr: 0.1}
train: {steps: 20}
measure: [{kind: loss}, {kind: params}]
start: {spec: down.yaml, at: {step: 50}}
"""
    (tmp_path / "sub" / "top.yaml").write_text(top)
    registry = Registry(tmp_path / "reg")
    run = run_one(load(tmp_path / "sub" / "top.yaml").spec, registry).run
    middle = registry.get(run.spec["start"]["run"])
    assert middle.name == "down" and kept_positions(middle) == [201]
    for name in ("params.u", "params.v"):
        steps, values = middle.series(name)
        assert run.series(name)[1][0].tobytes() == values[steps == 50][0].tobytes(), name
    assert len(list(registry.runs())) == 3


def _upstream_state_inputs(registry: Registry):  # noqa: ANN202
    """The committed UPSTREAM run in ``registry``, its spec, host inputs and a state template (what
    :func:`state_at` takes)."""
    upstream = run_one(load("pretrain.yaml", text=UPSTREAM).spec, registry).run
    stage = m.Spec.model_validate(upstream.spec)
    host = Job.of(stage, registry=registry).host
    structure, hparams, layout = Structure.of(stage), hyperparameters(stage), layout_of(stage, host)
    return upstream, stage, host, init_state(structure, hparams, layout, host.params)


def _tamper(run, name: str, step: int) -> tuple[float, float]:  # noqa: ANN001
    """Change the stored value of series ``name`` at ``step`` by one ulp (in the committed run's Zarr
    store); returns (the value computed, the value now stored)."""
    group = zarr.open_group(run.results_path, mode="r+", zarr_format=3)
    array = group[zarr_io.encode_series_name(name)]["value"]
    steps, values = run.series(name)
    (i,) = np.flatnonzero(steps == step)
    array[i] = np.nextafter(values[i], np.inf)
    return float(values[i]), float(run.series(name)[1][i])


@pytest.mark.slow
def test_a_recomputed_state_is_checked_bitwise_against_the_stored_record(tmp_path):
    """The recomputation's outputs at steps [origin, N) are compared with the stored series: a stored
    value one ulp off (as an upstream computed elsewhere would be) fails the start with the series, the
    earliest differing step, both values and what to do; states whose recomputation does not cover the
    changed step are still served."""
    registry = Registry(tmp_path / "reg")
    upstream, stage, host, template = _upstream_state_inputs(registry)
    computed, stored = _tamper(upstream, "params.u", 130)
    with pytest.raises(StageError) as caught:
        state_at(upstream, stage, host, 150, registry, template)
    message = str(caught.value)
    assert f"`params.u` at step 130 is {computed!r} recomputed, {stored!r} stored" in message, message
    assert "from step 0 to step 150" in message and "`start.at: final`" in message, message
    assert "by another program" in message and "--registry DIR" in message, message
    loss, tampered = _tamper(upstream, "loss", 120)  # an earlier step, in another series
    with pytest.raises(StageError, match=f"`loss` at step 120 is {loss!r} recomputed, {tampered!r} stored"):
        state_at(upstream, stage, host, 150, registry, template)
    upstream.info["execution"] = {"mode": "packed", "index": 1, "size": 3}  # (the record, in memory)
    with pytest.raises(StageError, match="computed in a pack of 3 runs, whose vmapped kernels may round"):
        state_at(upstream, stage, host, 150, registry, template)
    truncated = Registry(tmp_path / "truncated")
    for step, origin in ((120, 0), (410, 400)):  # [origin, step) holds no changed value
        state, start = state_at(upstream, stage, host, step, registry, template)
        got = {f"params.{k}": np.asarray(v).tobytes() for k, v in state.params.items()}
        assert start == origin and got == _truncated(step, truncated), step


@pytest.mark.slow
def test_an_upstream_run_of_another_environment_is_not_recomputed(tmp_path, monkeypatch):
    """A run whose key is not its spec's key in this environment (served by ``--reuse compatible``) is
    refused before anything is recomputed; a state kept with it (step 400) is still served as stored."""
    registry = Registry(tmp_path / "reg")
    upstream, stage, host, template = _upstream_state_inputs(registry)
    real = stages.numerics_environment()
    monkeypatch.setattr(stages, "numerics_environment", lambda: {**real, "jax": "0.0.0-elsewhere"})
    iterations: list[int] = []
    original = stages.run_chunks

    def recording(*args):  # noqa: ANN002, ANN202
        iterations.append(args[-1])
        return original(*args)

    monkeypatch.setattr(stages, "run_chunks", recording)
    with pytest.raises(StageError) as caught:
        state_at(upstream, stage, host, 150, registry, template)
    message = str(caught.value)
    assert f"the upstream run {upstream.short_id} (pretrain) was computed elsewhere" in message, message
    assert "jax '" in message and "'0.0.0-elsewhere' here" in message, message
    assert "`--reuse compatible`" in message and "`start.at: final`" in message, message
    state, origin = state_at(upstream, stage, host, 400, registry, template)
    assert origin == 400 and int(state.t) == 400
    assert iterations == [0]  # nothing was recomputed


@pytest.mark.slow
def test_recomputing_runs_the_upstreams_chunks_and_one_remainder(tmp_path, monkeypatch):
    """States at steps 130, 170, 180 (origin 0) and 410 (origin 400) run the upstream's 50-step chunk
    program (compiled by the upstream run) and one remainder chunk each: the jit cache of ``run_chunk``
    grows by one program per distinct remainder (30, 20, 10), not one per step asked for."""
    run_chunk.jitted.clear_cache()  # the programs other tests compiled (their remainders among them)
    registry = Registry(tmp_path / "reg")
    upstream, stage, host, template = _upstream_state_inputs(registry)
    assert run_chunk.jitted._cache_size() == 1  # the upstream run's 50-step chunk
    lengths: list[int] = []
    original = execute.run_chunk

    def counting(structure, hparams, layout, length, *rest):  # noqa: ANN001, ANN002, ANN202
        lengths.append(length)
        return original(structure, hparams, layout, length, *rest)

    monkeypatch.setattr(execute, "run_chunk", counting)
    before = run_chunk.jitted._cache_size()
    for step, origin in ((130, 0), (170, 0), (180, 0), (410, 400)):
        lengths.clear()
        state, start = state_at(upstream, stage, host, step, registry, template)
        assert start == origin and int(state.t) == step
        whole, remainder = divmod(step - origin, 50)
        assert lengths == [50] * whole + [remainder], (step, lengths)
    assert run_chunk.jitted._cache_size() - before == 3  # 30, 20 and 10 steps; 180 reuses the 30


def test_start_spec_from_a_sweep_case_or_the_command_line_is_anchored(tmp_path, monkeypatch):
    """``start.spec`` set by a sweep case of the file is relative to the file's directory; given on the
    command line (an override, a ``-m`` axis) it is relative to the working directory."""
    down = _files(tmp_path)
    (tmp_path / "other.yaml").write_text(UPSTREAM.replace("lr: 0.05}", "lr: 0.04}"))
    both = [str(tmp_path / "pretrain.yaml"), str(tmp_path / "other.yaml")]
    case = "    - label: b\n      set: {start.spec: ../other.yaml}\n"
    down.write_text(DOWNSTREAM + "sweep:\n  cases:\n    - label: a\n" + case)
    (tmp_path / "sub" / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "sub" / "deeper")  # ../other.yaml read from here would not exist
    assert [p.spec.start.spec for p in load(down).points] == both

    down.write_text(DOWNSTREAM)
    monkeypatch.chdir(tmp_path)
    spec = load(down, ["start.spec=other.yaml"]).spec  # there is no sub/other.yaml: the working directory
    assert spec.start is not None and spec.start.spec == both[1]
    spec = load(
        down, ["start={spec: other.yaml, at: final, values: {S0: final(sharpness), t0: start_step}}"]
    ).spec
    assert spec.start is not None and spec.start.spec == both[1] and spec.start.at == "final"
    axis = load(down, multirun=["start.spec=pretrain.yaml,other.yaml"]).points
    assert [p.spec.start.spec for p in axis] == both
    assert [p.label for p in axis] == ["start.spec=pretrain.yaml", "start.spec=other.yaml"]  # as typed
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(SpecError, match="no such spec file: other.yaml"):
        load(down, ["start.spec=other.yaml"])  # relative to sub/ now: there is none


def test_a_forced_recomputation_is_compared_bitwise_with_the_stored_run() -> None:
    """``compare_with_stored`` (the notice of ``eosdsl run --force``) uses the same per-series bitwise
    comparison as a recomputed upstream state: identical series are bit-identical; one ulp in one value,
    another step grid, another dtype or a series the stored run lacks each make that series differ."""
    from eosdsl.orchestration.jobs import compare_with_stored

    steps, values = np.arange(4), np.array([1.0, 2.0, np.nan, 4.0])

    class Stored:  # the two methods of a stored run that ``compare_with_stored`` reads
        def series_names(self) -> list[str]:
            return ["loss", "lr"]

        def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
            return steps, values

    same = {"loss": (steps, values.copy()), "lr": (steps, values.copy())}
    assert compare_with_stored(Stored(), same) == "recomputed: bit-identical to the stored run"
    ulp = values.copy()
    ulp[1] = np.nextafter(ulp[1], 3.0)
    cases = {
        "loss": (steps, ulp),
        "lr": (steps + 1, values),
    }
    notice = compare_with_stored(Stored(), cases)
    assert notice.endswith("differs from the stored run in loss, lr (the stored run is kept)"), notice
    other = {"loss": (steps, values.astype(np.float32)), "sharpness": (steps, values)}
    assert "differs from the stored run in loss, sharpness" in compare_with_stored(Stored(), other)


def test_a_cycle_inside_an_upstream_sweep_is_the_upstreams_error_not_the_callers(tmp_path):
    """x.yaml sweeps two cases; case b starts from y.yaml, which starts from x.yaml: a cycle of x's
    sweep point b. A spec c.yaml that starts from x.yaml is not in that cycle: it is told that its
    upstream x.yaml is not valid (naming x.yaml and the point), not that it is in a cycle itself."""
    plain = "problem: {kind: relu_scalar, u0: 2.0, v0: 1.0}\noptimizer: {kind: gd, lr: 0.05}\n"
    plain += "train: {steps: 20}\nmeasure: [{kind: loss}]\n"
    (tmp_path / "x.yaml").write_text(
        "name: x\n" + plain + "sweep:\n  cases:\n    - {label: a}\n"
        "    - {label: b, set: {start.spec: y.yaml}}\n"
    )
    (tmp_path / "y.yaml").write_text("name: y\n" + plain + "start: {spec: x.yaml}\n")
    (tmp_path / "c.yaml").write_text("name: c\n" + plain + "start: {spec: x.yaml}\n")
    (message,) = [e for e in _errors(tmp_path / "c.yaml") if "start.spec" in e]
    assert "the upstream spec is not valid: " in message and "x.yaml:" in message, message
    assert "in sweep point b: " in message and "a cycle: " in message, message
