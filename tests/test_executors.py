"""Executors: the in-process one, and Ray against a real local instance with two worker processes.

The Ray tests share one local instance (started once per module, about 5 s). The task functions are
module-level so that Ray can pickle them; they return only plain values (pids, run keys, flags).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eosdsl.executors import (
    INSTALL_HINT,
    ExecutorError,
    ExecutorUnavailable,
    LocalExecutor,
    RayExecutor,
    make_executor,
)

pytestmark = pytest.mark.slow  # runs the engine / compiles JAX programs: seconds per test

try:
    import ray
except ImportError:  # the tests that need Ray skip; the install hint is tested without it anyway
    ray = None

WORKERS = 2

# Heavy ball on paper 000's ReLU scalar net, long enough that two workers started together overlap.
TOY_SPEC = """
name: ray-claim-test
constants: {eps: 0.01, u0: 10.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer: {kind: heavy_ball, beta: 0.9, lr: (2 + eps) / u0**2}
train: {steps: 20000}
measure:
  - {kind: loss}
  - {kind: params}
"""


def _barrier(directory: str, parties: int, timeout: float = 60.0) -> None:
    """Wait until ``parties`` processes have reached this point (a file each), so that they overlap."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(path.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(path.iterdir()))} of {parties} tasks ran at once")
        time.sleep(0.01)


def _pid_task(task: tuple[str | None, str]) -> tuple[int, str]:
    """(worker pid, payload); waits at the barrier if given one, raises if the payload says so."""
    barrier, payload = task
    if barrier is not None:
        _barrier(barrier, WORKERS)
    if payload == "boom":
        raise ValueError("task boom failed")
    return os.getpid(), payload


def _claim_task(task: tuple[str, str, str]) -> dict:
    """Run the toy spec in the registry at ``root`` once every worker has started, as a sweep pack would."""
    root, barrier, text = task
    from eosdsl.orchestration import run_one
    from eosdsl.registry import Registry, numerics_environment
    from eosdsl.spec.load import load

    spec = load("toy.yaml", text=text).spec
    numerics_environment()  # start JAX before the barrier, so that both workers reach the claim together
    _barrier(barrier, WORKERS)
    outcome = run_one(spec, Registry(root))
    return {
        "pid": os.getpid(),
        "run_key": outcome.run.run_key,
        "reused": outcome.reused,
        "notice": outcome.notice,
    }


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


@pytest.fixture(scope="module")
def ray_executor():
    if ray is None:
        pytest.skip("the Ray executor tests need Ray: pip install 'eosdsl[ray]'")
    # The workers cannot import this test module: send its task functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = RayExecutor(num_workers=WORKERS)
    assert executor.started_local
    yield executor
    executor.close()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert not ray.is_initialized(), "closing must shut down the local instance the executor started"


def test_ray_tasks_run_in_several_workers_and_errors_stay_with_their_task(ray_executor, tmp_path):
    tasks = [(str(tmp_path / "barrier"), "a"), (str(tmp_path / "barrier"), "b"), (None, "boom"), (None, "c")]
    results = dict(ray_executor.map_unordered(_pid_task, tasks))
    assert sorted(results) == [0, 1, 2, 3]
    error = results.pop(2)
    assert type(error) is ValueError and str(error) == "task boom failed"
    assert any("raised in a Ray worker" in note and "task boom failed" in note for note in error.__notes__)
    assert {i: payload for i, (_, payload) in results.items()} == {0: "a", 1: "b", 3: "c"}
    pids = {pid for pid, _ in results.values()}
    assert len({results[0][0], results[1][0]}) == 2, "the two barrier tasks ran in distinct workers"
    assert os.getpid() not in pids


def test_ray_claims_keep_two_workers_off_the_same_run(ray_executor, tmp_path):
    root = tmp_path / "registry"
    tasks = [(str(root), str(tmp_path / "barrier"), TOY_SPEC)] * WORKERS
    results = [result for _, result in ray_executor.map_unordered(_claim_task, tasks)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    assert len({r["pid"] for r in results}) == WORKERS
    assert len({r["run_key"] for r in results}) == 1
    computed = [r for r in results if not r["reused"]]
    waited = [r for r in results if r["reused"]]
    assert len(computed) == 1, results
    assert all(r["notice"] == "computed by another process" for r in waited), results
    assert len(list(root.glob("objects/*/*"))) == 1
    assert not list(root.glob("claims/*.json")), "the claim is released after the commit"

    # The workers ran with this process's numerics (64-bit types included): the same run key is found here.
    from eosdsl.orchestration import run_one
    from eosdsl.registry import Registry
    from eosdsl.spec.load import load

    here = run_one(load("toy.yaml", text=TOY_SPEC).spec, Registry(root))
    assert here.reused and here.run.run_key == computed[0]["run_key"]
    assert here.run.series("loss")[1].dtype == np.float64


def test_ray_executor_runs_more_tasks_than_workers(ray_executor):
    results = dict(ray_executor.map_unordered(_square, range(10)))
    assert results == {i: i * i for i in range(10)}
    assert dict(ray_executor.map_unordered(_square, [])) == {}


def test_ray_executor_uses_an_existing_connection_and_leaves_it_open(ray_executor):
    with RayExecutor() as inner:
        assert not inner.started_local
        assert dict(inner.map_unordered(_square, [2, -2])).keys() == {0, 1}
    assert ray.is_initialized()


def test_ray_executor_connects_to_a_cluster_and_never_shuts_it_down(ray_executor):
    address = ray.get_runtime_context().gcs_address
    code = (
        "from eosdsl.executors import make_executor\n"
        f"with make_executor('ray', address={address!r}, workers=2) as executor:\n"
        "    print(sorted(dict(executor.map_unordered(abs, [-1, -2, -3])).values()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[1, 2, 3]"
    assert dict(ray_executor.map_unordered(_square, [5])) == {0: 25}, "the cluster is still up"


def test_local_executor_runs_in_order_in_process():
    with make_executor("local") as executor:
        assert isinstance(executor, LocalExecutor)
        results = list(executor.map_unordered(_square, [3, -1, 2]))
    assert [i for i, _ in results] == [0, 1, 2]
    assert results[0][1] == 9 and results[2][1] == 4
    assert isinstance(results[1][1], ValueError)


def test_make_executor_rejects_unknown_names_and_options():
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ExecutorError, match="--address needs --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ExecutorError, match="--workers"):
        make_executor("local", workers=4)
    with pytest.raises(ExecutorError, match="at least 1"):
        RayExecutor(num_workers=0)


def test_ray_executor_without_ray_says_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from eosdsl.executors import ExecutorUnavailable, make_executor\n"
        "try:\n"
        "    make_executor('ray')\n"
        "except ExecutorUnavailable as err:\n"
        "    print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == INSTALL_HINT == "the ray executor needs Ray: pip install 'eosdsl[ray]'"
    assert issubclass(ExecutorUnavailable, ExecutorError)


def test_sweep_on_ray_commits_every_point_once_in_packs(ray_executor, tmp_path):
    """``run_points`` with the Ray executor: packs go to the workers, each point is committed once under
    the run key this process computes for it, and re-running the sweep here reuses every point."""
    from eosdsl.orchestration import plan_points, run_points
    from eosdsl.registry import Registry
    from eosdsl.spec.load import load

    loaded = load("toy.yaml", text=TOY_SPEC, multirun=["constants.eps=0.01,0.02,0.05,0.1"])
    registry = Registry(tmp_path / "registry")
    keys = [job.key for job in plan_points(loaded.points, registry).jobs]
    outcomes, _, sid = run_points(loaded.spec, loaded.points, registry, pack=2, executor=ray_executor)
    assert [o.key for o in outcomes] == keys
    assert [o.status for o in outcomes] == ["completed"] * 4 and not any(o.reused for o in outcomes)
    assert all(o.run.info["execution"]["size"] == 2 for o in outcomes)
    assert len(list((tmp_path / "registry").glob("objects/*/*"))) == 4
    again, _, _ = run_points(loaded.spec, loaded.points, registry)
    assert all(o.reused for o in again) and [o.key for o in again] == keys
    assert [m["run_key"] for m in registry.read_sweep(sid)["members"]] == keys
