"""HVPs per sharpness measurement, cap hits and step-time ratios, in float32 and float64.

Problem: a tanh MLP 784-``--width``-10 with biases on the first ``--n`` Fashion-MNIST training images, MSE
on one-hot targets, full-batch GD at η = ``--lr`` (the problem of ``curvature_tracking.py``, smaller by
default so that the whole script runs in ~3 minutes on 2 CPU cores). For each precision the script

1. trains plain GD for ``--warmup`` steps (to the edge of stability: it prints η·S at the end);
2. from those parameters runs ``--steps`` steps, timed after an untimed compile-and-warm chunk, of
   * plain training (the baseline);
   * the sharpness at every step with the *default* solver settings (``method: lobpcg``, tol 1e-4,
     ``max_iters`` 100, ``iters`` 30 Lanczos steps for the cold start);
   * the sharpness at every step at relative residual 1e-3, cold start seeded by ``--cold-iters``
     Lanczos steps;
3. prints per variant: ms/step and the ratio to plain training, HVPs per measurement of the cold (first)
   measurement and of the warm ones (mean, max), cap hits (``sharpness.capped``) and the largest
   relative residual ‖Hv − θv‖/θ stored.

Goals: no cap hits with the default settings; at relative residual 1e-3, ≤ 25 HVPs for a cold
measurement and ≤ 8 for a warm one. Usage::

    python benchmarks/solver_hvps.py [--steps 200] [--warmup 300] [--lr 0.05] [--width 32] [--n 500]
                                     [--cold-iters 12] [--precision float32 float64] [--path DIR]

It needs Fashion-MNIST (the Debian package ``dataset-fashion-mnist``, or ``--path``).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from harness import Variant

SPEC = """
name: solver-hvps-benchmark
precision: {precision}
problem:
  kind: supervised
  data: {{source: fashion_mnist{path}}}
  pipeline:
    - {{take_first: {{n_train: {n}, n_test: 0}}}}
    - scale
    - {{standardize: {{mode: global}}}}
    - flatten
  model: {{kind: mlp, widths: [{width}], activation: tanh, bias: true}}
  loss: {{kind: mse, convention: half_sum_over_n}}
optimizer: {{kind: gd, lr: {lr}}}
train: {{steps: 1000000}}
measure: {measure}
"""

PLAIN = "[{kind: loss}]"
DEFAULT = "[{kind: loss}, {kind: sharpness, method: lobpcg}]"


def at_tol(tol: float, iters: int) -> str:
    return f"[{{kind: loss}}, {{kind: sharpness, method: lobpcg, tol: {tol}, iters: {iters}}}]"


def measured(out: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(out[name])[np.asarray(out["sharpness/valid"], bool)]


def cap_hits(out: dict[str, np.ndarray]) -> int:
    """Measurements that stopped at the (default, 100) iteration cap unconverged; runs recorded before
    the series ``sharpness.capped`` existed count those that ran to the cap."""
    if "sharpness.capped" in out:
        return int(measured(out, "sharpness.capped").sum())
    return int(np.sum(measured(out, "sharpness.iterations") >= 100))


def one_precision(args: argparse.Namespace, precision: str) -> list[tuple[str, ...]]:
    path = f", path: {args.path}" if args.path else ""

    def text(measure: str) -> str:
        return SPEC.format(
            precision=precision, path=path, n=args.n, width=args.width, lr=args.lr, measure=measure
        )

    plain = Variant(text(PLAIN))
    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(plain.host.params))
    state, _, _ = plain.run(plain.start(plain.host.params), args.warmup)
    params = state.params
    plain.run(plain.start(params), args.steps)  # compile this length
    _, _, base = plain.run(plain.start(params), args.steps)
    rows = [(precision, "plain GD", f"{1e3 * base / args.steps:.2f}", "1.00", "", "", "", "", "")]

    variants = [("default (tol 1e-4)", DEFAULT), (f"tol 1e-3, iters {args.cold_iters}", None)]
    sharp = None
    for name, measure in variants:
        v = Variant(text(measure or at_tol(1e-3, args.cold_iters)))
        state, first, _ = v.run(v.start(params), args.steps)  # compile; cold first measurement
        _, out, seconds = v.run(state, args.steps)  # warm throughout
        cold = int(measured(first, "sharpness.hvps")[0])
        hvps = measured(out, "sharpness.hvps")
        capped = cap_hits(first) + cap_hits(out)
        theta = measured(out, "sharpness")
        resid = np.max(measured(out, "sharpness.residual") / np.abs(theta))
        sharp = theta[-1] if sharp is None else sharp
        rows.append(
            (
                precision,
                name,
                f"{1e3 * seconds / args.steps:.2f}",
                f"{seconds / base:.2f}",
                f"{cold}",
                f"{hvps.mean():.1f}",
                f"{hvps.max()}",
                f"{capped}/{2 * args.steps}",
                f"{resid:.1e}",
            )
        )
    print(
        f"{precision}: {n_params:,} parameters; after {args.warmup} warm-up steps S = {sharp:.3f},"
        f" η·S = {args.lr * sharp:.3f} (2 = stability limit)"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--cold-iters", type=int, default=12)
    parser.add_argument("--precision", nargs="+", default=["float32", "float64"])
    parser.add_argument("--path", default=None, help="Fashion-MNIST directory (default: Debian's)")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # float32 specs use explicit float32 arrays
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    rows = [row for precision in args.precision for row in one_precision(args, precision)]
    head = ("precision", "variant", "ms/step", "ratio", "cold", "warm mean", "max", "capped", "max rel.res")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(f"\n{args.steps} timed steps per variant; HVPs per measurement (cold: the first one)")
    for r in [head, *rows]:
        pairs = enumerate(zip(r, widths, strict=True))
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in pairs]
        print("  ".join(cells))


if __name__ == "__main__":
    main()
