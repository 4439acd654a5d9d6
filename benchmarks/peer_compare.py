"""eosdsl against a PyTorch reference loop of the Cohen et al. kind, side by side (issue 12, peer benchmark).

The problem is ``specs/benchmarks/cohen-fc-tanh.yaml`` (fc-tanh 784-200-200-10 with biases, the first
5,000 Fashion-MNIST images, MSE ½·Σ‖f − y‖²/n on one-hot targets, full-batch GD, float32); the peer is
``benchmarks/peer_torch.py`` (``torch.optim.SGD`` and scipy's ``eigsh`` over a double-backward HVP) on
the same arrays (checked by digest), started from eosdsl's initial parameters. Every process — eosdsl's
and torch's — is a fresh Python process pinned with ``taskset -c CPUS`` (``--cpus``, default ``0``:
one core), which sizes XLA's CPU thread pool; torch gets ``torch.set_num_threads(len(CPUS))``
and ``OMP_NUM_THREADS``. eosdsl runs with a fresh, empty ``EOSDSL_CACHE_DIR`` (cold: no compilation or
dataset cache) and a fresh temporary registry. The steps, in this order (eosdsl and torch interleaved,
so that background load hits both alike):

1. **per-step time** of three variants — no sharpness, sharpness every step (``--steps1`` steps,
   fewer: every step is expensive), sharpness every ``--every`` steps (``--steps`` steps). eosdsl
   runs the spec in-process twice (``eosdsl.engine.execute.execute``): the first run compiles and is the
   end-to-end time (process launch → imports → spec → data and initial parameters → compile → run;
   the registry is not written), the second is timed: ms/step = its wall time / T. torch: its loop
   time / T; end-to-end = process launch → exit. Both include the loss at every step and the
   sharpness at steps 0, k, 2k, …, T. eosdsl's end-to-end time is also taken *warm*: a second process
   with the first one's cache directory (dataset, initial parameters, compiled programs — what any
   later run of the spec finds, whatever its learning rate, since hyperparameters are traced).
2. **HVPs per measurement**: eosdsl's ``sharpness.hvps`` (LOBPCG, warm-started from the previous
   measurements, its certification HVP included) against the matvec calls of eigsh (cold each time),
   and the **ceiling** of the every-step ratio: what torch/eosdsl per step would be if every warm
   measurement took only its fewest products (``FEWEST_WARM_HVPS``), at the measured cost of a step and
   of a product inside the measurements (:func:`ceiling`).
3. **agreement** of the sharpness series: relative difference |S_eosdsl − S_torch|/S_torch at every
   measured step until the trajectories separate (the first step where the losses differ by more than
   ``--separate`` relative, default 1e-3), and the largest one before that; ``--agree-steps N`` adds a
   longer every-k pair (eosdsl run once) for this table only, to see where the trajectories separate.
4. **a learning-rate grid** of ``--grid`` points (``--grid-lr LO HI``, ``--grid-steps`` steps each,
   sharpness every ``--grid-every``): a bash loop that starts peer_torch.py once per point, against
   one ``eosdsl run SPEC -m optimizer.lr=…`` per ``--grid-pack`` entry (``8``, the default: ``--pack
   8``, one vmap-packed program; ``auto``: eosdsl's default, which runs compute-bound points one at a
   time in one process) — all timed end to end as shell commands, eosdsl cold and then warm (the cold
   sweep's caches, a fresh registry so nothing is reused).

Usage::

    python benchmarks/peer_compare.py [--quick] [--steps 100] [--steps1 10] [--every 10] [--grid 8]
        [--grid-steps 100] [--grid-every 20] [--grid-lr 0.015 0.05] [--grid-pack 8 [auto]] [--lr 0.05]
        [--agree-steps 0] [--cpus 0] [--hvp reuse|cohen] [--tol 0] [--json OUT.json]

``--quick`` is a smoke run (500 images, a few steps, a 2-point grid: ~1 minute). It needs torch
(``pip install -e '.[bench]'``) and Fashion-MNIST (the Debian package ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = ROOT / "specs" / "benchmarks" / "cohen-fc-tanh.yaml"
TORCH = HERE / "peer_torch.py"
LAYERS = ("layer0", "layer1", "output")


def measure_list(every: int) -> str:
    return f"[{{kind: loss}}, {{kind: sharpness, every: {every}}}]" if every else "[{kind: loss}]"


# --------------------------------------------------------------------------------- eosdsl, in a worker


def worker(argv: list[str]) -> None:
    """``_eosdsl LAUNCHED OUT.json [--export INIT.npz] OVERRIDES...``: run the spec twice, write JSON."""
    launched, out_path, rest = float(argv[0]), argv[1], argv[2:]
    export, once = None, False
    if rest[:1] == ["--export"]:
        export, rest = rest[1], rest[2:]
    if rest[:1] == ["--once"]:
        once, rest = True, rest[1:]
    import jax

    from eosdsl.engine.execute import execute, prepare
    from eosdsl.spec.load import load

    marks = {"imports": time.time() - launched}
    spec = load(SPEC, rest).spec
    marks["spec"] = time.time() - launched
    host = prepare(spec)
    marks["prepared"] = time.time() - launched
    first = execute(spec, host)
    marks["first_run"] = time.time() - launched
    begin = time.perf_counter()
    second = first if once else execute(spec, host)
    timed = float("nan") if once else time.perf_counter() - begin
    x, y = (np.asarray(host.data[k]) for k in ("x", "y"))
    from peer_torch import digest

    result = {
        "marks": marks,
        "timed_s": timed,
        "steps": spec.train.steps,
        "status": [first.status, second.status],
        "end_step": second.end_step,
        "data_digest": digest(x, y),
        "jax": jax.__version__,
        "first_timings": first.timings,
        "series": {
            name: [np.asarray(s).tolist(), np.asarray(v, np.float64).tolist()]
            for name, (s, v) in second.series.items()
            if name in ("loss", "sharpness", "sharpness.hvps", "sharpness.iterations", "sharpness.residual")
        },
    }
    if export:
        np.savez(export, **{f"{g}.{k}": np.asarray(v) for g in LAYERS for k, v in host.params[g].items()})
    Path(out_path).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------- the driver


class Driver:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.threads = len(args.cpus.split(","))
        self.env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        self.env["PYTHONPATH"] = os.pathsep.join([str(HERE), self.env.get("PYTHONPATH", "")])
        self.common = [f"optimizer.lr={args.lr}", "train.stop=[]"]
        if args.n:
            self.common.append(f"problem.pipeline.0.take_first.n_train={args.n}")
        self.count = 0
        self.last_env: dict[str, str] | None = None  # the environment of the last cold eosdsl process

    def fresh_env(self) -> dict[str, str]:
        """A new, empty eosdsl cache directory: every eosdsl process starts cold."""
        self.count += 1
        cache = self.tmp / f"cache{self.count}"
        cache.mkdir()
        self.last_env = dict(self.env, EOSDSL_CACHE_DIR=str(cache))
        return self.last_env

    def pinned(self, command: list[str]) -> list[str]:
        return ["taskset", "-c", self.args.cpus, *command]

    def eosdsl(
        self, every: int, steps: int, export: Path | None = None, once: bool = False, warm: bool = False
    ) -> dict:
        """Run the spec in a new process; ``warm``: with the cache directory of the previous eosdsl
        process (its dataset, initial parameters and compiled programs), else with an empty one."""
        out = self.tmp / f"eosdsl{self.count}{'-warm' if warm else ''}.json"
        overrides = [*self.common, f"train.steps={steps}", f"runtime.chunk={steps + 1}"]
        overrides.append(f"measure={measure_list(every)}")
        extra = (["--export", str(export)] if export else []) + (["--once"] if once else [])
        launched = time.time()
        cmd = [sys.executable, str(Path(__file__).resolve()), "_eosdsl", repr(launched), str(out), *extra]
        if warm:
            assert self.last_env is not None, "a warm run reuses a cold run's caches: run a cold one first"
        env = self.last_env if warm else self.fresh_env()
        subprocess.run(self.pinned([*cmd, *overrides]), env=env, check=True)
        return json.loads(out.read_text())

    def torch(self, every: int, steps: int, init: Path, lr: float | None = None) -> tuple[dict, float]:
        out = self.tmp / f"torch{self.count}.npz"
        self.count += 1
        begin = time.perf_counter()
        subprocess.run(
            self.pinned(self.torch_cmd(every, steps, init, lr) + ["--out", str(out)]),
            env=self.env,
            check=True,
        )
        wall = time.perf_counter() - begin
        data = np.load(out)
        result = {k: data[k] for k in data.files if k != "meta"}
        result["meta"] = json.loads(str(data["meta"]))
        return result, wall

    def torch_cmd(self, every: int, steps: int, init: Path, lr: float | None = None) -> list[str]:
        a = self.args
        cmd = [sys.executable, str(TORCH), "--lr", str(a.lr if lr is None else lr), "--steps", str(steps)]
        cmd += ["--every", str(every), "--threads", str(self.threads), "--init", str(init)]
        cmd += ["--hvp", a.hvp, "--tol", str(a.tol)]
        return cmd + (["--n", str(a.n)] if a.n else [])


def agreement(e: dict, t: dict, separate: float) -> dict:
    """Relative differences of the sharpness series at common steps before the losses separate."""
    le = np.asarray(e["series"]["loss"][1])
    lt = np.asarray(t["loss"])
    m = min(len(le), len(lt))
    rel_loss = np.abs(le[:m] - lt[:m]) / np.abs(lt[:m])
    apart = np.flatnonzero(~(rel_loss <= separate))
    sep = int(apart[0]) if apart.size else None
    se_steps, se = (np.asarray(v) for v in e["series"]["sharpness"])
    common = {int(s): i for i, s in enumerate(t["sharpness_steps"])}
    rows = []
    for s, v in zip(se_steps, se, strict=True):
        if int(s) in common and (sep is None or s < sep):
            tv = t["sharpness"][common[int(s)]]
            rows.append((int(s), float(v), float(tv), abs(v - tv) / abs(tv)))
    return {"separate_step": sep, "rows": rows, "max_rel_loss_before": float(np.max(rel_loss[: sep or m]))}


FEWEST_WARM_HVPS = 5
"""The fewest products a warm default measurement takes (float32, block b = 2, k = 1): 2b for the start
block at this step's parameters, then the certification product, with no iteration at all."""


def ceiling(runs: dict[str, tuple[dict, dict, float]], report: dict) -> None:
    """Print what the every-step per-step ratio torch/eosdsl could reach on this machine if every
    measurement after the first took only :data:`FEWEST_WARM_HVPS` products, at the measured cost of a
    step and of a product inside the measurements (ms per HVP = the time the sharpness adds to the T
    steps / all products of the run's T + 1 measurements)."""
    label = "sharpness every step"
    if label not in runs or "sharpness.hvps" not in runs[label][0]["series"]:
        return
    e, t, _ = runs[label]
    steps = e["steps"]
    plain_e, plain_t = report["no sharpness"]["eosdsl_ms"], report["no sharpness"]["torch_ms"]
    hvps_e = np.asarray(e["series"]["sharpness.hvps"][1])
    hvps_t = np.asarray(t["hvps"])
    if len(hvps_e) < 2 or hvps_e[1:].min() < FEWEST_WARM_HVPS:
        print(f"\n(no ceiling: a warm measurement took < {FEWEST_WARM_HVPS} products: not the defaults)")
        return
    per_e = (report[label]["eosdsl_ms"] - plain_e) * steps / hvps_e.sum()
    per_t = (report[label]["torch_ms"] - plain_t) * steps / hvps_t.sum()
    first = per_e * hvps_e[0] / steps  # the cold first measurement, spread over the steps
    best_ms = plain_e + first + per_e * FEWEST_WARM_HVPS * (len(hvps_e) - 1) / steps
    long_ms = plain_e + per_e * FEWEST_WARM_HVPS  # a long run: the cold measurement amortized away
    torch_long = plain_t + per_t * hvps_t.mean()
    bound, long_bound = report[label]["torch_ms"] / best_ms, torch_long / long_ms
    print(
        f"\nCeiling (sharpness every step): a step costs eosdsl {plain_e:.1f} ms and torch {plain_t:.1f} ms;"
        f" an HVP inside the measurements {per_e:.1f} ms and {per_t:.1f} ms. If every warm measurement"
        f" took only {FEWEST_WARM_HVPS} products (no LOBPCG iteration), eosdsl would take {best_ms:.0f}"
        f" ms/step over these {steps} steps (torch/eosdsl ≤ {bound:.2f}; measured"
        f" {report[label]['torch_ms'] / report[label]['eosdsl_ms']:.2f}) and {long_ms:.0f} ms/step in a long"
        f" run (≤ {long_bound:.2f} per step against torch's {torch_long:.0f}), before start-up costs."
    )
    report[label]["ceiling"] = {
        "eosdsl_ms_per_hvp": per_e,
        "torch_ms_per_hvp": per_t,
        "ratio_bound": bound,
        "long_run_ratio_bound": long_bound,
    }


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 images, few steps, 2-point grid")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=100, help="steps of the no-sharpness and every-k runs")
    parser.add_argument("--steps1", type=int, default=10, help="steps of the sharpness-every-step runs")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument(
        "--agree-steps", type=int, default=0, help="also run every-k for this many steps, for the agreement"
    )
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--grid-steps", type=int, default=100)
    parser.add_argument("--grid-every", type=int, default=20, help="sharpness cadence in the grid")
    parser.add_argument(
        "--grid-pack",
        nargs="+",
        default=["8"],
        help="eosdsl sweeps to time: N (--pack N; default 8) and/or auto (eosdsl's default packing)",
    )
    parser.add_argument("--grid-lr", type=float, nargs=2, default=[0.015, 0.05])
    parser.add_argument("--n", type=int, default=None, help="training images (default: the spec's 5,000)")
    parser.add_argument("--cpus", default="0", help="taskset CPU list for every process (threads = count)")
    parser.add_argument("--hvp", choices=["reuse", "cohen"], default="reuse")
    parser.add_argument("--tol", type=float, default=0.0, help="eigsh tol (0: machine precision)")
    parser.add_argument("--separate", type=float, default=1e-3)
    parser.add_argument("--json", default=None, help="write every number measured here")
    args = parser.parse_args()
    if args.quick:
        args.n, args.steps, args.steps1, args.every = args.n or 500, 20, 4, 5
        args.grid, args.grid_steps, args.grid_every = 2, 20, 5
    started = time.perf_counter()
    import torch  # noqa: F401  (fail early without the bench extra)

    with tempfile.TemporaryDirectory(prefix="eosdsl-peer-") as name:
        tmp = Path(name)
        d = Driver(args, tmp)
        init = tmp / "init.npz"
        k, T, T1 = args.every, args.steps, args.steps1
        print(f"spec {SPEC.relative_to(ROOT)}, lr {args.lr}, cpus {args.cpus} ({d.threads} thread(s) each)")
        runs: dict[str, tuple[dict, dict, float]] = {}
        warm: dict[str, float] = {}  # eosdsl end to end again, in a new process with the caches of the first
        for label, every, steps in [
            ("no sharpness", 0, T),
            ("sharpness every step", 1, T1),
            (f"sharpness every {k}", k, T),
        ]:
            print(f"-- {label}: eosdsl, then torch, {steps} steps", flush=True)
            e = d.eosdsl(every, steps, export=None if init.exists() else init)
            t, wall = d.torch(every, steps, init)
            runs[label] = (e, t, wall)
            warm[label] = d.eosdsl(every, steps, once=True, warm=True)["marks"]["first_run"]
        e0 = runs["no sharpness"][0]
        t0 = runs["no sharpness"][1]
        same = e0["data_digest"] == t0["meta"]["data_digest"]
        print(
            f"\ndata digests: eosdsl {e0['data_digest']}, torch {t0['meta']['data_digest']}"
            f" ({'identical' if same else 'DIFFERENT'}); jax {e0['jax']}, torch {t0['meta']['torch']}"
        )

        print(
            f"\nPer-step time (compile excluded for eosdsl: its second run; T steps, loss every step)"
            f" and end-to-end wall time (process launch → done; eosdsl cold: empty caches, and warm: a"
            f" second process with the first one's caches), {d.threads} thread(s) each"
        )
        rows, report = [], {}
        base_e = base_t = None
        for label, (e, t, wall) in runs.items():
            steps = e["steps"]
            ms_e, ms_t = 1e3 * e["timed_s"] / steps, 1e3 * t["meta"]["loop_s"] / steps
            base_e, base_t = base_e or ms_e, base_t or ms_t
            e2e_e = e["marks"]["first_run"]
            rows.append(
                (
                    label,
                    str(steps),
                    f"{ms_e:.1f}",
                    f"{ms_t:.1f}",
                    f"{ms_t / ms_e:.2f}",
                    f"{ms_e / base_e:.1f}",
                    f"{ms_t / base_t:.1f}",
                    f"{e2e_e:.1f}",
                    f"{warm[label]:.1f}",
                    f"{wall:.1f}",
                    f"{wall / e2e_e:.2f}",
                    f"{wall / warm[label]:.2f}",
                )
            )
            report[label] = {
                "steps": steps,
                "eosdsl_ms": ms_e,
                "torch_ms": ms_t,
                "eosdsl_e2e_s": e2e_e,
                "eosdsl_e2e_warm_s": warm[label],
                "torch_e2e_s": wall,
                "eosdsl_marks": e["marks"],
                "torch_meta": t["meta"],
            }
        table(
            (
                "variant",
                "T",
                "eosdsl ms/step",
                "torch ms/step",
                "torch/eosdsl",
                "eosdsl ×plain",
                "torch ×plain",
                "eosdsl e2e s",
                "e2e warm s",
                "torch e2e s",
                "torch/eosdsl",
                "torch/warm",
            ),
            rows,
        )
        e = runs["no sharpness"][0]["marks"]
        tm = runs["no sharpness"][1]["meta"]
        print(
            f"start-up, no-sharpness run: eosdsl imports {e['imports']:.1f} s, spec+data+init "
            f"{e['prepared'] - e['imports']:.1f} s, compile+run {e['first_run'] - e['prepared']:.1f} s; "
            f"torch imports {tm['imports_s']:.1f} s, data {tm['data_s']:.1f} s, init {tm['init_s']:.1f} s"
        )

        print("\nHVPs per sharpness measurement (eosdsl: LOBPCG, warm; torch: eigsh matvecs, cold)")
        rows = []
        for label, (e, t, _) in runs.items():
            if "sharpness.hvps" not in e["series"]:
                continue
            he = np.asarray(e["series"]["sharpness.hvps"][1])
            ht = np.asarray(t["hvps"])
            ie = np.asarray(e["series"]["sharpness.iterations"][1])
            rows.append(
                (
                    label,
                    str(len(he)),
                    f"{he[0]:.0f}",
                    f"{he[1:].mean():.1f}" if len(he) > 1 else "-",
                    f"{he.max():.0f}",
                    f"{ie.max():.0f}",
                    f"{ht.mean():.1f}",
                    f"{ht.max():.0f}",
                    f"{ht.mean() / he.mean():.2f}",
                )
            )
            report[label]["eosdsl_hvps"] = he.tolist()
            report[label]["torch_hvps"] = ht.tolist()
        table(
            (
                "variant",
                "measurements",
                "eosdsl first",
                "eosdsl rest mean",
                "max",
                "max iters",
                "torch mean",
                "max",
                "torch/eosdsl",
            ),
            rows,
        )

        ceiling(runs, report)

        print(
            f"\nAgreement of the sharpness series (same data and initial weights; trajectories separate at"
            f" the first step where the losses differ by > {args.separate:g} relative)"
        )
        agree = dict(runs)
        if args.agree_steps:
            label = f"sharpness every {k}, {args.agree_steps} steps"
            print(f"-- {label} (agreement only): eosdsl, then torch", flush=True)
            e = d.eosdsl(k, args.agree_steps, once=True)
            agree[label] = (e, *d.torch(k, args.agree_steps, init))
            report[label] = {"steps": args.agree_steps}
        for label, (e, t, _) in agree.items():
            if "sharpness" not in e["series"]:
                continue
            a = agreement(e, t, args.separate)
            report[label]["agreement"] = a
            rel = [r[3] for r in a["rows"]]
            where = f"step {a['separate_step']}" if a["separate_step"] is not None else "never"
            print(
                f"{label}: losses separate at {where} (largest loss difference before: "
                f"{a['max_rel_loss_before']:.1e}); {len(rel)} common measurements before it, "
                f"rel. difference max {max(rel):.1e}, median {np.median(rel):.1e}"
            )
            for s, ve, vt, r in a["rows"][:: max(1, len(a["rows"]) // 6)]:
                print(f"    step {s:4d}: eosdsl {ve:.5f}  torch {vt:.5f}  rel {r:.1e}")
            if a["separate_step"] is not None:
                se, st = e["series"]["sharpness"][1][-1], t["sharpness"][-1]
                print(f"    after: final sharpness eosdsl {se:.4f}, torch {st:.4f} (2/lr = {2 / args.lr:g})")

        lrs = np.linspace(*args.grid_lr, args.grid)
        values = ",".join(f"{v:.6g}" for v in lrs)
        print(
            f"\n-- grid: {args.grid} learning rates {values}, {args.grid_steps} steps,"
            f" sharpness every {args.grid_every}",
            flush=True,
        )
        cpus = shlex.quote(args.cpus)
        parts = [shlex.quote(c) for c in d.torch_cmd(args.grid_every, args.grid_steps, init, lr=0.0)]
        parts[parts.index("--lr") + 1] = '"$lr"'
        loop = " ".join(parts)
        shell = (
            f"for lr in {values.replace(',', ' ')}; do taskset -c {cpus} {loop} > /dev/null || exit 1; done"
        )
        begin = time.perf_counter()
        subprocess.run(["bash", "-c", shell], env=d.env, check=True)
        torch_grid = time.perf_counter() - begin
        cmd = [
            sys.executable,
            "-m",
            "eosdsl.cli",
            "run",
            str(SPEC),
            "-m",
            f"optimizer.lr={values}",
            f"train.steps={args.grid_steps}",
            f"measure={measure_list(args.grid_every)}",
        ]
        if args.n:
            cmd.append(f"problem.pipeline.0.take_first.n_train={args.n}")
        eos_grid: dict[str, float] = {}
        for pack in args.grid_pack:
            extra = [] if pack == "auto" else ["--pack", pack]
            for when in ("cold", "warm"):  # warm: the cold sweep's caches, a fresh registry (no reuse)
                begin = time.perf_counter()
                subprocess.run(
                    d.pinned([*cmd, *extra, "--registry", str(tmp / f"registry-{pack}-{when}")]),
                    env=d.last_env if when == "warm" else d.fresh_env(),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                eos_grid[pack if when == "cold" else f"{pack} warm"] = time.perf_counter() - begin
        print(f"grid end to end: torch loop (one process per point) {torch_grid:.1f} s")
        for pack, seconds in eos_grid.items():
            base, _, when = pack.partition(" ")
            how = "eosdsl's default packing" if base == "auto" else f"--pack {base}"
            how += ", warm caches" if when else ", cold"
            print(f"  eosdsl sweep, {how}: {seconds:.1f} s, ratio torch/eosdsl {torch_grid / seconds:.2f}")
        report["grid"] = {
            "lrs": lrs.tolist(),
            "steps": args.grid_steps,
            "every": args.grid_every,
            "torch_s": torch_grid,
            "eosdsl_s": eos_grid,
            "torch_shell": shell,
            "eosdsl_cmd": cmd,
        }
        print(
            f"\ntotal {time.perf_counter() - started:.0f} s on {platform.processor() or platform.machine()}"
        )
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), **report}, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_eosdsl":
        worker(sys.argv[2:])
    else:
        main()
