"""Cost of tracking the sharpness at every step, at the edge of stability.

Problem: a tanh MLP 784-64-10 with biases (50,890 parameters; ``--widths``) on the first 1,000
Fashion-MNIST training images (``--n``), MSE on one-hot targets, full-batch GD at η = ``--lr``, float32.
``--n 5000 --widths 200 200 --lr 0.05`` is the size of the peer benchmark's network. The script

1. trains plain GD for ``--warmup`` steps, until η·S has reached the stability limit 2 (it prints
   η·S there, from a converged dense-free solve, so you can see the run is at the edge of stability);
2. from those parameters, times ``--steps`` further steps (compilation excluded: each variant runs one
   untimed chunk first, then the timed chunk continues from its state, warm starts included) for
   * plain training (the baseline),
   * sharpness every step by warm-started LOBPCG (block 2, the default, and block 1) to relative
     residual ``--tol``,
   * sharpness every step by cold Lanczos with the fewest iterations that reach ``--tol``
     (searched over a ladder), as research code computes it today (skipped with ``--no-cold``);
3. prints per variant: ms/step, the ratio to the baseline, HVPs per measurement (mean and max), the
   largest and median relative residual ‖Hv − θv‖/θ, and the largest and median relative error of the
   values against LOBPCG to 1e-5 over the same steps (GD's trajectory does not depend on what is
   measured, up to float32 round-off: the last column, the largest relative difference of the losses
   from the reference run's, says how far the trajectories agree).

Usage::

    python benchmarks/curvature_tracking.py [--steps 200] [--warmup 600] [--lr 0.03] [--tol 1e-3]
                                            [--n 1000] [--widths 64 ...] [--no-cold] [--path DIR]

It needs Fashion-MNIST (the Debian package ``dataset-fashion-mnist``, or ``--path``). It runs unchanged
on a GPU (matmuls in curvature code run at HIGHEST precision there).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from harness import Variant

SPEC = """
name: curvature-benchmark
precision: float32
problem:
  kind: supervised
  data: {{source: fashion_mnist{path}}}
  pipeline:
    - {{take_first: {{n_train: {n}, n_test: 0}}}}
    - scale
    - {{standardize: {{mode: global}}}}
    - flatten
  model: {{kind: mlp, widths: {widths}, activation: tanh, bias: true}}
  loss: {{kind: mse, convention: half_sum_over_n}}
optimizer: {{kind: gd, lr: {lr}}}
train: {{steps: 1000000}}
measure: {measure}
"""

PLAIN = "[{kind: loss}]"


def tracked(method: str, tol: float, iters: int, block: int = 2) -> str:
    return (
        f"[{{kind: loss}}, {{kind: sharpness, method: {method}, tol: {tol}, iters: {iters}, "
        f"block: {block}, max_iters: 200}}]"
    )


def relative_residual(out: dict[str, np.ndarray]) -> np.ndarray:
    ok = out["sharpness/valid"]
    return out["sharpness.residual"][ok] / np.abs(out["sharpness"][ok])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--path", default=None, help="Fashion-MNIST directory (default: Debian's)")
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--widths", type=int, nargs="+", default=[64], help="hidden widths")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold Lanczos variant (slow)")
    args = parser.parse_args()
    path = f", path: {args.path}" if args.path else ""

    def text(measure: str) -> str:
        return SPEC.format(path=path, lr=args.lr, measure=measure, n=args.n, widths=list(args.widths))

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    plain = Variant(text(PLAIN))
    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(plain.host.params))
    state, _, seconds = plain.run(plain.start(plain.host.params), args.warmup)
    params = state.params
    print(
        f"parameters: {n_params:,}; {args.warmup} warm-up steps of plain GD at η = {args.lr}",
        f"({seconds:.1f} s)",
    )

    probe = Variant(text(tracked("lobpcg", 1e-5, 40)))
    _, out, _ = probe.run(probe.start(params), 1)
    s = float(out["sharpness"][0])
    print(f"at the start of the timed window: S = {s:.3f}, η·S = {args.lr * s:.3f} (2 = stability limit)")

    rows = []
    _, _, _ = plain.run(plain.start(params), args.steps)  # compile this length
    _, _, base = plain.run(plain.start(params), args.steps)
    rows.append(("plain GD", base, None, None, (None, None)))

    # the oracle for the timed window's values: LOBPCG to 1e-5, run over the same steps (GD's trajectory
    # does not depend on what is measured); the warm variants' timed runs continue from a first window
    ref = Variant(text(tracked("lobpcg", 1e-5, 40)))
    state, _, _ = ref.run(ref.start(params), args.steps)
    window = state.params  # where the timed window starts
    _, out, _ = ref.run(state, args.steps)
    exact, ref_loss = out["sharpness"][out["sharpness/valid"]], out["loss"][out["loss/valid"]]
    print(
        f"reference (LOBPCG to 1e-5 over the timed window): relative residual ≤ "
        f"{relative_residual(out).max():.1e}, {int(out['sharpness.capped'].sum())} measurements capped"
    )

    def error(out: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """(|S − S*|/S* per measurement, the largest relative loss difference from the reference run:
        the two follow the same GD trajectory only while it is ~0)."""
        drift = np.abs(out["loss"][out["loss/valid"]] - ref_loss) / np.abs(ref_loss)
        return np.abs(out["sharpness"][out["sharpness/valid"]] - exact) / exact, float(drift.max())

    warm = [(f"warm LOBPCG (block {b}) every step", tracked("lobpcg", args.tol, 20, b)) for b in (2, 1)]
    for name, measure in warm:
        variant = Variant(text(measure))
        state, _, _ = variant.run(variant.start(params), args.steps)  # compile + cold start, warm state
        _, out, seconds = variant.run(state, args.steps)
        rows.append((name, seconds, out["sharpness.hvps"], relative_residual(out), error(out)))

    for iters in () if args.no_cold else (10, 15, 20, 30, 40, 60, 80):  # the fewest that reach the target
        cold = Variant(text(tracked("lanczos", args.tol, iters)))
        _, out, _ = cold.run(cold.start(window), args.steps)
        if relative_residual(out).max() <= args.tol:
            break
    if not args.no_cold:
        _, out, seconds = cold.run(cold.start(window), args.steps)
        name = f"cold Lanczos ({iters} it.) every step"
        rows.append((name, seconds, out["sharpness.hvps"], relative_residual(out), error(out)))

    print(f"\n{args.steps} timed steps; relative-residual target {args.tol:g}")
    print(
        f"{'variant':36s} {'ms/step':>9s} {'ratio':>7s} {'HVPs mean':>10s} {'max':>5s}",
        f"{'rel. resid max':>15s} {'median':>9s} {'|S−S*|/S* max':>14s} {'median':>9s}",
        f"{'loss vs ref.':>12s}",
    )
    for name, secs, hvps, resid, (err, drift) in rows:
        ms = 1e3 * secs / args.steps
        ratio = secs / base
        if hvps is None:
            print(f"{name:36s} {ms:9.3f} {ratio:7.2f}")
        else:
            hv = hvps[hvps > 0]
            print(
                f"{name:36s} {ms:9.3f} {ratio:7.2f} {hv.mean():10.1f} {hv.max():5d} {resid.max():15.2e}",
                f"{np.median(resid):9.2e} {err.max():14.2e} {np.median(err):9.2e} {drift:12.1e}",
            )


if __name__ == "__main__":
    main()
