"""Full-batch step time of paper 004's Fashion-MNIST MLP, measured in one process.

Runs the spec `specs/eigenvector-rotation/fmnist-mlp.yaml` (784-32-32-32-32-10, bias-free, 1,000
images, cross-entropy, GD) for a fixed number of steps, without stop rules, in three variants:

- plain: loss only (the baseline);
- with accuracy and test metrics every step;
- with Lanczos sharpness (20 iterations) every step;

and prints milliseconds per step (compilation excluded: each variant is run twice and the second,
cached run is timed) and the ratio to the baseline. Usage:

    python benchmarks/fmnist_step_time.py [--steps 500] [--path DIR]

It needs Fashion-MNIST (the Debian package `dataset-fashion-mnist`, or `--path`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

from eosdsl.engine.execute import execute, prepare
from eosdsl.spec.load import load

SPEC = Path(__file__).resolve().parents[1] / "specs" / "eigenvector-rotation" / "fmnist-mlp.yaml"

VARIANTS = {
    "plain (loss only)": ["measure=[{kind: loss}]"],
    "+ accuracy/test metrics": [
        "measure=[{kind: loss}, {kind: accuracy}, {kind: test_loss}, {kind: test_accuracy}]"
    ],
    "+ Lanczos sharpness (20 it.)": ["measure=[{kind: loss}, {kind: sharpness, method: lanczos, iters: 20}]"],
}


def time_variant(overrides: list[str], steps: int, path: str | None) -> float:
    extra = [f"train.steps={steps}", "train.stop=[]", f"runtime.chunk={steps}"]
    if path:
        extra.append(f"problem.data.path={path}")
    spec = load(SPEC, [*overrides, *extra]).spec
    host = prepare(spec)
    execute(spec, host)  # compile
    start = time.perf_counter()
    execute(spec, host)
    return (time.perf_counter() - start) / (steps + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--path", default=None, help="Fashion-MNIST directory (default: Debian's)")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), steps: {args.steps}")
    baseline = None
    for name, overrides in VARIANTS.items():
        seconds = time_variant(overrides, args.steps, args.path)
        baseline = baseline or seconds
        print(f"{name:32s} {1e3 * seconds:8.3f} ms/step   ratio {seconds / baseline:6.2f}")


if __name__ == "__main__":
    main()
