"""Start-up of ``eosdsl run``: a first run against a second run of the same spec with a new learning rate
Goal: the second run reaches its first step in at most 2 s.

Each run is a fresh Python process (as ``eosdsl run`` is) that stores into a fresh temporary registry,
so nothing is reused but the caches of :mod:`eosdsl.cache`. Three runs, all in this invocation:

1. **first**: an empty cache directory (``EOSDSL_CACHE_DIR`` = a new temporary directory), ``lr`` = a;
2. **second**: the same cache directory, ``lr`` = b: the program cache serves the compiled programs
   (the learning rate is traced, so they are the same programs: no tracing, no compilation), the
   parameter cache the network's initial parameters and the dataset cache the preprocessed data;
3. **no cache**: ``EOSDSL_CACHE_DIR=off``, ``lr`` = c: what the second run would cost without the caches
   (the operating system's file cache and Python's bytecode are as warm as for the second run).

Per run it prints the seconds from launching the process to: the end of the imports (Python, eosdsl,
jax), the loaded spec, the planned run (data read and preprocessed, initial parameters, run identity;
of which the data alone is shown), and the first step (the first chunk of ``--chunk`` steps: compiling
the step program and running it). The ratio first / second is of the time to the first step. Usage::

    python benchmarks/startup.py [SPEC] [--steps T] [--chunk N] [--lr A B C]

Default spec: paper 004's Fashion-MNIST MLP (``specs/eigenvector-rotation/fmnist-mlp.yaml``, a float32
1,000-image subset after its pipeline), or the quickstart when Fashion-MNIST is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FMNIST = ROOT / "specs" / "eigenvector-rotation" / "fmnist-mlp.yaml"
QUICKSTART = ROOT / "specs" / "examples" / "quickstart.yaml"

PHASES = ("imports", "spec", "planned", "first_step", "done")

DRIVER = r"""
import json, sys, time
launched, spec_path, registry, overrides = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
marks = {}
def mark(name):
    marks.setdefault(name, time.time() - launched)

import eosdsl.cli  # noqa: F401  (what `eosdsl run` imports)
from eosdsl.problems import supervised
from eosdsl.registry import Registry
from eosdsl.orchestration import run_points
from eosdsl.spec.load import load
mark("imports")

data_s = []
real_load = supervised.load_data
def timed_load(problem):
    t = time.perf_counter()
    try:
        return real_load(problem)
    finally:
        data_s.append(time.perf_counter() - t)
supervised.load_data = timed_load

class Reporter:
    def planned(self, points, reused, packs, notes=()):
        mark("planned")
    def finished(self, outcome):
        pass
    def pack(self, index, labels):
        return lambda done, total: mark("first_step")

loaded = load(spec_path, overrides)
mark("spec")
outcomes, _, _ = run_points(loaded.spec, loaded.points, Registry(registry), Reporter())
mark("done")
assert outcomes[0].run is not None and not outcomes[0].reused, outcomes[0]
print(json.dumps({**marks, "data": sum(data_s)}))
"""


def run_once(spec: Path, overrides: list[str], cache: str) -> dict[str, float]:
    """Launch one run in a fresh process with ``EOSDSL_CACHE_DIR=cache``; its phase times (seconds since
    the launch)."""
    env = {**os.environ, "EOSDSL_CACHE_DIR": cache, "CI": "1"}
    with tempfile.TemporaryDirectory(prefix="eosdsl-startup-registry-") as registry:
        launched = time.time()
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(launched), str(spec), registry, *overrides],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, t: dict[str, float]) -> str:
    """One table row: cumulative seconds at each phase, and the data-loading seconds."""
    cells = "".join(f"{t.get(p, float('nan')):>11.2f}" for p in PHASES)
    return f"{name:<12}{cells}{t.get('data', float('nan')):>9.2f}"


def parts(t: dict[str, float]) -> str:
    """Where the time to the first step went: imports, spec, data, the rest of planning, first chunk."""
    planning = t["planned"] - t["spec"]
    first_chunk = t["first_step"] - t["planned"]
    return (
        f"imports {t['imports']:.2f} s, spec {t['spec'] - t['imports']:.2f} s, data {t['data']:.2f} s, "
        f"init+identity {planning - t['data']:.2f} s, compile+first chunk {first_chunk:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = FMNIST if Path("/usr/share/datasets/fashion-mnist").is_dir() else QUICKSTART
    parser.add_argument("spec", nargs="?", default=str(default))
    parser.add_argument("--steps", type=int, default=30, help="train.steps of each run (default 30)")
    parser.add_argument("--chunk", type=int, default=10, help="runtime.chunk: steps in the first chunk")
    parser.add_argument("--lr", type=float, nargs=3, default=None, help="the three learning rates")
    args = parser.parse_args()

    spec = Path(args.spec)
    base = ["train.steps=" + str(args.steps), "runtime.chunk=" + str(args.chunk)]
    rates = args.lr or ([0.1, 0.11, 0.12] if spec == FMNIST else [0.0201, 0.0202, 0.0203])
    shown = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec
    print(f"{shown}: {args.steps} steps, chunk {args.chunk}")
    with tempfile.TemporaryDirectory(prefix="eosdsl-startup-cache-") as cache:
        first = run_once(spec, [*base, f"optimizer.lr={rates[0]}"], cache)
        second = run_once(spec, [*base, f"optimizer.lr={rates[1]}"], cache)
    off = run_once(spec, [*base, f"optimizer.lr={rates[2]}"], "off")

    print("seconds since launch (cumulative)")
    print(f"{'':<12}" + "".join(f"{p:>11}" for p in PHASES) + f"{'data':>9}")
    for name, t in (("first", first), ("second", second), ("no cache", off)):
        print(report(name, t))
    print()
    for name, t in (("first", first), ("second", second), ("no cache", off)):
        print(f"{name:<9} to first step {t['first_step']:.2f} s: {parts(t)}")
    print()
    print(
        f"first / second run, time to first step: {first['first_step']:.2f} s / {second['first_step']:.2f} s "
        f"= {first['first_step'] / second['first_step']:.1f}x; no cache / second: "
        f"{off['first_step'] / second['first_step']:.1f}x; goal: second <= 2 s: "
        f"{'met' if second['first_step'] <= 2 else 'not met'}"
    )


if __name__ == "__main__":
    main()
