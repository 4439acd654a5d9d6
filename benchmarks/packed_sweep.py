"""Packed sweeps against one point at a time, in one process.

Default grid: paper 000 Fig. 4 (``specs/phb-catapults/relu-scalar-beta-sweep.yaml``): heavy ball on the
ReLU scalar net for β = 0, 0.01, …, 0.99, 10⁵ steps each. The script

1. runs every point alone (``engine.execute.execute``: one compiled program, reused by every point, as
   ``eosdsl run --pack 1`` does) and times the whole loop;
2. runs the same points as vmap-packed programs (``engine.packs.execute_pack``; ``--pack`` members per
   pack, default all of them) and times them;
3. prints both wall times (compilation included in each: one compile for the loop, one per pack shape)
   and their ratio, and how well the two agree: how many points have bitwise-equal series, and the
   largest relative difference otherwise.

Nothing is stored, unless ``--store``: then both variants also run end to end as ``eosdsl run`` does
(``orchestration.run_points`` into two fresh temporary registries, ``pack=1`` against packs): identities,
claims, checkpoints, checks, Zarr series, index. Each lone point stores its own Zarr group and Orbax
checkpoint; the runs of a pack that end together share one unit (docs/registry.md, *Pack units*), so
this ratio also measures what that saves. Usage::

    python benchmarks/packed_sweep.py [SPEC] [-m AXIS=VALUES ...] [--points N] [--steps T] [--pack N]
                                      [--store]

``--points`` takes the first N points of the grid and ``--steps`` overrides ``train.steps`` (for a
quick look; the issue's figure is the default: 100 points × 10⁵ steps). It runs unchanged on a GPU,
where ``--pack`` can be as large as the device memory allows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from eosdsl.engine.execute import execute, prepare
from eosdsl.engine.packs import execute_pack
from eosdsl.spec.load import load

DEFAULT = Path(__file__).resolve().parents[1] / "specs" / "phb-catapults" / "relu-scalar-beta-sweep.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", nargs="?", default=str(DEFAULT))
    parser.add_argument("-m", "--multirun", action="append", default=[])
    parser.add_argument("--points", type=int, default=None, help="only the first N points")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--pack", type=int, default=None, help="members per pack (default: all)")
    parser.add_argument("--store", action="store_true", help="also time both end to end into registries")
    args = parser.parse_args()

    overrides = [f"train.steps={args.steps}"] if args.steps else []
    points = load(args.spec, overrides, args.multirun).points[: args.points]
    specs = [p.spec for p in points]
    hosts = [prepare(s) for s in specs]
    steps = specs[0].train.steps
    print(f"{args.spec}: {len(specs)} points × {steps} steps on {jax.devices()[0].platform}")

    started = time.perf_counter()
    alone = [execute(s, h) for s, h in zip(specs, hosts, strict=True)]
    t_alone = time.perf_counter() - started

    size = args.pack or len(specs)
    started = time.perf_counter()
    packed = []
    for k in range(0, len(specs), size):
        packed += execute_pack(specs[k : k + size], hosts[k : k + size])
    t_packed = time.perf_counter() - started

    bitwise, worst = 0, 0.0
    for a, b in zip(alone, packed, strict=True):
        assert (a.status, a.end_step) == (b.status, b.end_step), "packed and alone runs took another course"
        same = all(a.series[n][1].tobytes() == b.series[n][1].tobytes() for n in a.series)
        bitwise += same
        for name, (_, x) in a.series.items():
            y, ok = b.series[name][1], np.isfinite(x)
            if ok.any():
                scale = np.maximum(np.abs(x[ok]), np.finfo(x.dtype).tiny)
                worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]) / scale)))
    n_steps = len(specs) * steps
    print(f"one at a time: {t_alone:8.2f} s  ({n_steps / t_alone:,.0f} point-steps/s)")
    print(f"packed ({size}/pack): {t_packed:8.2f} s  ({n_steps / t_packed:,.0f} point-steps/s)")
    print(f"speed-up: {t_alone / t_packed:.1f}x")
    print(f"agreement: {bitwise}/{len(specs)} points bitwise equal; largest relative difference {worst:.2e}")
    if args.store:
        _end_to_end(args.spec, overrides, args.multirun, args.points, args.pack)


def _end_to_end(
    spec: str, overrides: list[str], axes: list[str], count: int | None, pack: int | None
) -> None:
    """Both variants through ``orchestration.run_points`` into fresh registries (what ``eosdsl run`` does)."""
    import tempfile

    from eosdsl.orchestration import run_points
    from eosdsl.registry import Registry

    loaded = load(spec, overrides, axes)
    points = loaded.points[:count]
    times = {}
    for name, size in (("one at a time", 1), (f"packed ({pack or 'auto'}/pack)", pack)):
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            outcomes, _, _ = run_points(loaded.spec, points, Registry(Path(root)), pack=size)
            times[name] = time.perf_counter() - started
            assert all(o.run is not None for o in outcomes)
        print(f"end to end, {name}: {times[name]:8.2f} s")
    one, packed = times.values()
    print(f"end-to-end speed-up: {one / packed:.1f}x")


if __name__ == "__main__":
    main()
