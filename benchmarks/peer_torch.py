"""A PyTorch reference loop of the Cohen et al. (2021) edge-of-stability kind (issue 12, peer benchmark).

What researchers run today: full-batch GD (``torch.optim.SGD``, no momentum) on a fully connected tanh
network 784-200-200-10 with biases (``nn.Linear``'s default init) and MSE on one-hot targets,
``½·Σ‖f − y‖²/n`` (Cohen et al.'s ``SquaredLoss`` summed and divided by n), float32; every ``--every``
steps the top Hessian eigenvalue from ``scipy.sparse.linalg.eigsh`` over a PyTorch Hessian-vector
product (double backward). The setting is that of ``specs/benchmarks/cohen-fc-tanh.yaml``:

- data: the first ``--n`` Fashion-MNIST training images read from the IDX files (the Debian package
  ``dataset-fashion-mnist``, or ``--data-dir``), ``x/255`` in float64, globally standardized with
  float64 statistics (``--standardize none`` skips it), cast to float32, flattened — the same operations,
  in the same order, as the spec's ``pipeline``, so the arrays are bit-identical to eosdsl's;
- initial weights: ``--init FILE.npz`` (eosdsl's initial parameters, keys ``layer0.kernel``, …; kernels
  are ``(fan_in, fan_out)`` and are transposed into ``nn.Linear.weight``), else ``torch.manual_seed``;
- cadence: the loss and, every ``--every`` steps and at the last step, the sharpness are recorded at
  w_0 … w_T (``--steps`` = T updates), as eosdsl records them;
- HVP (``--hvp``): ``reuse`` (default) builds the gradient graph once per measurement and runs one
  double backward per eigsh matvec (PyHessian style); ``cohen`` recomputes the forward pass and the
  gradient graph at every matvec, as Cohen et al.'s ``compute_hvp`` does;
- eigsh: ``k=1``, ``which='LA'`` (the largest algebraic eigenvalue, eosdsl's definition; Cohen et al.
  use the default ``'LM'``), ``tol`` = ``--tol`` (default 0: machine precision, scipy's default) over a
  float32 ``LinearOperator`` (given its dtype, so scipy makes no extra probing matvec). Every matvec is
  counted: ``hvps`` per measurement.

Writes ``--out`` (``.npz``: series, per-step wall times, and a JSON ``meta`` entry with timings,
versions, thread count, data digest). Usage::

    python benchmarks/peer_torch.py --lr 0.05 --steps 100 --every 10 --threads 1 \\
        [--init init.npz] [--out torch.npz] [--n 5000] [--data-dir DIR] [--hvp reuse|cohen] [--tol 0]

It needs ``torch`` (``pip install -e '.[bench]'``). ``benchmarks/peer_compare.py`` drives it.
"""

from __future__ import annotations

import time

LAUNCHED = time.perf_counter()

import argparse  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array of its stored type (uint8 here)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    _, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if dtype_code != 0x08:
        raise ValueError(f"{path}: expected unsigned bytes, got IDX type {dtype_code:#x}")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{stem}(.gz) not in {directory} (apt-get install dataset-fashion-mnist)")


def load_data(directory: Path, n: int, standardize: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (n, 784), y int64 (n,)): eosdsl's take_first → scale → standardize(global) → flatten."""
    x = read_idx(find(directory, "train-images-idx3-ubyte"))[:n]
    y = read_idx(find(directory, "train-labels-idx1-ubyte"))[:n].astype(np.int64)
    x = x.astype(np.float64) * np.float64(1.0 / 255.0)
    if standardize == "global":
        mu, s = x.mean(), x.std()
        x = (x - mu) / (s if s > 1e-12 else 1.0)
    return np.ascontiguousarray(x.astype(np.float32).reshape(n, -1)), y


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def network(in_dim: int, widths: tuple[int, ...], out: int, init: Any = None, seed: int = 0) -> Any:
    """fc-tanh ``in_dim``-``widths``-``out`` with biases (``nn.Linear``'s default init under
    ``torch.manual_seed(seed)``), then overwritten by ``init`` (eosdsl's parameters: ``layer{i}.kernel``
    ``(fan_in, fan_out)``, ``layer{i}.bias``, ``output.*``) when given."""
    import torch

    torch.manual_seed(seed)
    dims = [in_dim, *widths]
    layers: list[Any] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], out))
    if init is not None:
        names = [f"layer{i}" for i in range(len(widths))] + ["output"]
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for name, layer in zip(names, linears, strict=True):
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(init[f"{name}.kernel"].T)))
                layer.bias.copy_(torch.from_numpy(np.array(init[f"{name}.bias"])))
    return net


def mse(outputs: Any, targets: Any) -> Any:
    """½·Σ‖f − y‖²/n: Cohen et al.'s ``SquaredLoss`` (sum) divided by n; eosdsl's ``half_sum_over_n``."""
    return 0.5 * ((outputs - targets) ** 2).sum() / outputs.shape[0]


def top_eigenvalue(
    loss_fn: Callable[[], Any],
    params: list[Any],
    hvp_mode: str = "reuse",
    which: str = "LA",
    tol: float = 0.0,
) -> tuple[float, int, float]:
    """(λ_max, matvecs, ‖Hv − λv‖) of the Hessian of ``loss_fn()`` in ``params`` by scipy's ``eigsh``.

    The HVP is a double backward: ``reuse`` builds the gradient graph once and keeps it
    (``retain_graph``), ``cohen`` rebuilds it (forward and gradient) at every matvec as Cohen et al.'s
    ``compute_hvp`` does. The operator is float32 with its dtype given (no probing matvec). The returned
    residual costs one more HVP, which is not counted."""
    import torch
    from scipy.sparse.linalg import LinearOperator, eigsh

    sizes = [p.numel() for p in params]
    calls = 0
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True) if hvp_mode == "reuse" else None

    def hvp(vec: Any) -> Any:
        g = grads if grads is not None else torch.autograd.grad(loss_fn(), params, create_graph=True)
        parts = [v.view_as(p) for v, p in zip(torch.split(vec, sizes), params, strict=True)]
        dot = sum((gi * vi).sum() for gi, vi in zip(g, parts, strict=True))
        return torch.cat([h.reshape(-1) for h in torch.autograd.grad(dot, params, retain_graph=True)])

    def matvec(v: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        return hvp(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32).reshape(-1))).numpy()

    dim = sum(sizes)
    evals, evecs = eigsh(
        LinearOperator((dim, dim), matvec=matvec, dtype=np.float32), k=1, which=which, tol=tol
    )
    matvecs = calls
    v = evecs[:, 0].astype(np.float32)
    resid = float(np.linalg.norm(hvp(torch.from_numpy(v)).numpy() - evals[0] * v))
    return float(evals[0]), matvecs, resid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=100, help="T: GD updates; w_0 … w_T are measured")
    parser.add_argument("--every", type=int, default=0, help="sharpness every k steps (0: never)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--init", default=None, help="npz of eosdsl's initial parameters")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed when there is no --init")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--standardize", choices=["global", "none"], default="global")
    parser.add_argument("--data-dir", default=str(DEFAULT_DIR))
    parser.add_argument("--hvp", choices=["reuse", "cohen"], default="reuse")
    parser.add_argument("--tol", type=float, default=0.0, help="eigsh tol (0: machine precision)")
    parser.add_argument("--which", choices=["LA", "LM"], default="LA")
    parser.add_argument("--out", default=None, help=".npz with series, step times and meta (JSON)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    imported = time.perf_counter()

    x_np, y_np = load_data(Path(args.data_dir), args.n, args.standardize)
    x = torch.from_numpy(x_np)
    targets = torch.nn.functional.one_hot(torch.from_numpy(y_np), 10).to(torch.float32)
    loaded = time.perf_counter()

    net = network(x.shape[1], (200, 200), 10, init=np.load(args.init) if args.init else None, seed=args.seed)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr)

    def loss_fn() -> torch.Tensor:
        return mse(net(x), targets)

    def sharpness() -> tuple[float, int, float]:
        return top_eigenvalue(loss_fn, params, args.hvp, args.which, args.tol)

    ready = time.perf_counter()
    steps = args.steps
    loss = np.full(steps + 1, np.nan)
    sharp_steps, sharp, hvps, resid, sharp_s = [], [], [], [], []
    step_end = np.zeros(steps + 1)
    status = "completed"
    begin = time.perf_counter()
    for t in range(steps + 1):
        if args.every and (t % args.every == 0 or t == steps):
            s0 = time.perf_counter()
            value, count, r = sharpness()
            sharp_s.append(time.perf_counter() - s0)
            sharp_steps.append(t)
            sharp.append(value)
            hvps.append(count)
            resid.append(r)
        optimizer.zero_grad(set_to_none=True)
        value = loss_fn()
        loss[t] = float(value.detach())
        if not np.isfinite(loss[t]):
            status = "diverged"
            step_end[t:] = time.perf_counter() - begin
            break
        if t < steps:
            value.backward()
            optimizer.step()
        step_end[t] = time.perf_counter() - begin
    finished = time.perf_counter()

    meta = {
        "status": status,
        "lr": args.lr,
        "steps": steps,
        "every": args.every,
        "threads": torch.get_num_threads(),
        "hvp": args.hvp,
        "tol": args.tol,
        "which": args.which,
        "n_params": sum(p.numel() for p in params),
        "data_digest": digest(x_np, y_np),
        "torch": torch.__version__,
        "imports_s": imported - LAUNCHED,
        "data_s": loaded - imported,
        "init_s": ready - loaded,
        "loop_s": finished - begin,
        "sharpness_s": float(np.sum(sharp_s)),
        "in_script_s": finished - LAUNCHED,
    }
    summary = f"torch: {status} after {steps} steps, loop {meta['loop_s']:.2f} s"
    if sharp:
        summary += f", final sharpness {sharp[-1]:.4f}, {np.mean(hvps):.1f} HVPs/measurement"
    print(summary)
    if args.out:
        np.savez(
            args.out,
            loss=loss,
            step_end=step_end,
            sharpness_steps=np.asarray(sharp_steps, np.int64),
            sharpness=np.asarray(sharp, np.float64),
            hvps=np.asarray(hvps, np.int64),
            residual=np.asarray(resid, np.float64),
            sharpness_seconds=np.asarray(sharp_s, np.float64),
            meta=json.dumps(meta),
        )


if __name__ == "__main__":
    main()
