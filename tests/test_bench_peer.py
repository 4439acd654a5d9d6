"""The peer benchmark's numbers are about the same quantity (benchmarks/peer_torch.py, issue 12).

Correctness only, no timing: on a tiny instance of the peer setting (fc-tanh 784-3-3-10 with biases, the
first 16 Fashion-MNIST images, MSE ½·Σ‖f − y‖²/n, float32) the torch loop's data and loss are eosdsl's,
and the top Hessian eigenvalue from eigsh over the torch HVP and eosdsl's default sharpness solver
(LOBPCG at 2,407 parameters) both agree with the dense oracle — the largest eigenvalue (``eigvalsh``)
of the Hessian built in float64 by ``torch.func.hessian`` of a functional forward pass — to a relative
1e-4 (eosdsl's default relative residual tolerance; float32 HVPs are good to ~1e-6 here).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the peer benchmark needs torch (pip install -e '.[bench]')")

from eosdsl.data import fashion_mnist_available  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not fashion_mnist_available(), reason="needs Fashion-MNIST (the Debian package dataset-fashion-mnist)"
    ),
    pytest.mark.slow,  # ~15-30 s on 2 CPU cores: compiling eosdsl's LOBPCG program dominates
]

PEER = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_torch.py"
N, WIDTHS, TOL = 16, (3, 3), 1e-4
SPEC = f"""
name: peer-tiny
precision: float32
seed: 0
problem:
  kind: supervised
  data: {{source: fashion_mnist}}
  pipeline:
    - {{take_first: {{n_train: {N}, n_test: 0}}}}
    - scale
    - {{standardize: {{mode: global}}}}
    - flatten
  model: {{kind: mlp, widths: {list(WIDTHS)}, activation: tanh, bias: true, init: torch_default}}
  loss: {{kind: mse, convention: half_sum_over_n}}
optimizer: {{kind: gd, lr: 0.05}}
train: {{steps: 0}}
measure:
  - {{kind: loss}}
  - {{kind: sharpness}}
"""


def load_peer():
    module_spec = importlib.util.spec_from_file_location("peer_torch", PEER)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_torch_and_eosdsl_sharpness_match_the_dense_hessian():
    from eosdsl.engine.execute import execute, prepare
    from eosdsl.spec.load import load

    peer = load_peer()
    spec = load("peer-tiny.yaml", text=SPEC).spec
    host = prepare(spec)
    out = execute(spec, host)

    # the same arrays, bit for bit, and the same initial parameters
    x, y = peer.load_data(peer.DEFAULT_DIR, N, "global")
    np.testing.assert_array_equal(x, np.asarray(host.data["x"]))
    np.testing.assert_array_equal(y, np.asarray(host.data["y"]))
    init = {f"{g}.{k}": np.asarray(v) for g, group in host.params.items() for k, v in group.items()}
    net = peer.network(x.shape[1], WIDTHS, 10, init=init)
    params = list(net.parameters())
    assert sum(p.numel() for p in params) == sum(v.size for v in init.values()) == 2407

    xt = torch.from_numpy(x)
    targets = torch.nn.functional.one_hot(torch.from_numpy(y), 10).to(torch.float32)

    def loss_fn():
        return peer.mse(net(xt), targets)

    loss0 = float(out.series["loss"][1][0])
    assert float(loss_fn().detach()) == pytest.approx(loss0, rel=1e-6)

    # the oracle: the dense float64 Hessian of the same function
    net64 = peer.network(x.shape[1], WIDTHS, 10, init=init).double()
    names = [name for name, _ in net64.named_parameters()]
    shapes = [p.shape for p in net64.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net64.parameters()])

    def loss64(theta):
        parts = torch.split(theta, [int(np.prod(s)) for s in shapes])
        weights = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        return peer.mse(torch.func.functional_call(net64, weights, (xt.double(),)), targets.double())

    hessian = torch.func.hessian(loss64)(flat)
    oracle = float(torch.linalg.eigvalsh(0.5 * (hessian + hessian.T))[-1])

    s_torch, matvecs, residual = peer.top_eigenvalue(loss_fn, params)
    s_eosdsl = float(out.series["sharpness"][1][0])
    assert matvecs > 0 and residual <= TOL * oracle
    assert s_torch == pytest.approx(oracle, rel=TOL)
    assert s_eosdsl == pytest.approx(oracle, rel=TOL)
    assert int(out.series["sharpness.hvps"][1][0]) > 0
