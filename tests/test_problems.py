"""Oracle tests for the problem shortcuts and their host/traced halves (``eosdsl.problems``).

Oracles are closed forms from the papers: paper 000 §3.1 (ReLU scalar net), §2.1 (LDN regression
gradient/Hessian), App. E.6 eq. (17) (single-point LDN); paper 004 eq. (4) and App. C (product
chain Hessians); paper 002 §3 eq. (2) (the g_{a,b} family, g(1) = g'(1) = 0, g''(1) = 1). Every closed form is
written out here in numpy, independently of the expression compiler the problems go through.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.curvature.dense import hessian_matrix
from eosdsl.data.sparse_regression import make_sparse_regression
from eosdsl.problems.build import host_problem, problem_fns
from eosdsl.spec import models as m
from eosdsl.spec.scope import Scope

jax.config.update("jax_enable_x64", True)

F64 = Scope({}, jnp.float64)
RTOL = 1e-10  # float64 autodiff of a few flops vs. a closed form: round-off is ~1e-15 relative
RNG_SEED = 20240611


def problem(spec: dict) -> m.Problem:
    """A validated problem model from a plain dict (the spec's ``problem`` block)."""
    return m.Spec.model_validate(
        {"name": "t", "problem": spec, "optimizer": {"kind": "gd", "lr": 0.1}, "train": {"steps": 1}}
    ).problem


def losses_at(prob: m.Problem, points: dict, scope: Scope = F64, data: dict | None = None) -> np.ndarray:
    """The traced loss of ``prob`` at a batch of points (leading axis), in one jitted ``vmap`` call."""
    fns = problem_fns(prob, scope)
    batch = {k: jnp.asarray(v, scope.dtype) for k, v in points.items()}
    return np.asarray(jax.jit(jax.vmap(lambda q: fns.loss(q, data or {})))(batch))


def hessians_at(prob: m.Problem, points: dict, data: dict | None = None) -> np.ndarray:
    """Dense autodiff Hessians (``hessian_matrix``) at a batch of points; parameters flattened name-sorted."""
    fns = problem_fns(prob, F64)
    batch = {k: jnp.asarray(v, jnp.float64) for k, v in points.items()}
    hess = jax.vmap(lambda q: hessian_matrix(lambda x: fns.loss(x, data or {}), q))
    return np.asarray(jax.jit(hess)(batch))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> None:
    """Relative agreement, scaled by the largest entry of ``expected`` (so zeros are not special)."""
    expected = np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def poly(c: list[float], t: float) -> tuple[float, float, float]:
    """z(Θ), z'(Θ), z''(Θ) of z = Σ c_k Θ^k."""
    p = np.polynomial.Polynomial(c)
    return float(p(t)), float(p.deriv(1)(t)), float(p.deriv(2)(t))


Z_SQUARE = [0.0, 0.0, 1.0]
Z_CUBIC_QUARTIC = [0.25, -0.5, 1.0, 0.3, 0.5]  # z = 0.25 − 0.5Θ + Θ² + 0.3Θ³ + 0.5Θ⁴


# -------------------------------------------------------------------------------------- losses at points


def test_relu_scalar_loss_closed_form_including_dead_side():
    """ReLU scalar net L = ½u²v²·1[u ≥ 0] (paper 000 §3.1) at random points, half of them with u < 0.

    Oracle: the closed form in numpy; for u < 0 it is exactly 0. Tolerance 1e-12: a few flops in float64.
    """
    rng = np.random.default_rng(RNG_SEED)
    prob = problem({"kind": "relu_scalar"})
    u, v = rng.normal(scale=3.0, size=(2, 20))
    u[:3] = (-1e-300, 0.0, -2.0)
    got = losses_at(prob, {"u": u, "v": v})
    np.testing.assert_allclose(got, 0.5 * u**2 * v**2 * (u >= 0), rtol=1e-12, atol=0.0)
    assert np.all(got[u < 0] == 0.0) and np.sum(u < 0) >= 4


def test_ldn_point_loss_closed_form():
    """Single-point LDN L = ½(u² − v² − 1)² (paper 000 App. E.5) at random points; float64 round-off tol."""
    rng = np.random.default_rng(RNG_SEED + 1)
    prob = problem({"kind": "ldn_point"})
    u, v = rng.normal(scale=2.0, size=(2, 20))
    np.testing.assert_allclose(losses_at(prob, {"u": u, "v": v}), 0.5 * (u**2 - v**2 - 1) ** 2, rtol=1e-12)


@pytest.mark.parametrize("z", [Z_SQUARE, Z_CUBIC_QUARTIC], ids=["square", "cubic_quartic"])
@pytest.mark.parametrize("n", [2, 4])
def test_product_chain_loss_closed_form(z, n):
    """Product chain L = z(θ₁⋯θₙ) (paper 004 §3) with z = Θ² and a cubic+quartic z, n = 2 and 4.

    Oracle: numpy polynomial evaluation of z at the product. Tolerance 1e-12: float64 round-off.
    """
    rng = np.random.default_rng(RNG_SEED + n)
    prob = problem({"kind": "product_chain", "theta0": [1.0] * n, "z": z})
    theta = rng.uniform(-1.5, 1.5, size=(10, n))
    expected = [poly(z, float(np.prod(t)))[0] for t in theta]
    np.testing.assert_allclose(losses_at(prob, {"theta": theta}), expected, rtol=1e-12, atol=1e-15)


def g_ab(s: float, a: float, b: float) -> float:
    """Paper 002 §3 eq. (2): the a = 1 and a = 2 lines written out separately, else the (a, b) family."""
    if a == 1:
        return (np.sqrt(1 + (s**b - 1) ** 2) - 1) / b**2
    if a == 2:
        return 0.5 * (s**b - 1) ** 2 / b**2
    return ((1 + (s**b - 1) ** 2) ** (a / 2) - 1) / (a * b**2)


@pytest.mark.parametrize(("a", "b"), [(1, 1), (1, 3), (2, 1), (2, 3)])
def test_scalar_product_loss_closed_form(a, b):
    """f(x, y) = g_{a,b}(xy) (paper 002 eq. (2)) at a ∈ {1, 2}, b ∈ {1, 3}, incl. xy < 0 (defined for odd b).

    Oracle: the two printed lines of eq. (2) in numpy (not the generic formula the default ``g`` uses).
    Tolerance 1e-11 relative: (xy)³ up to ~50 and a square root, float64 round-off.
    """
    rng = np.random.default_rng(RNG_SEED + 10 * a + b)
    prob = problem({"kind": "scalar_product", "x0": 1.0, "y0": 1.0, "a": a, "b": b})
    x, y = rng.uniform(-2.0, 2.0, size=(2, 12))
    assert np.any(x * y < 0)
    np.testing.assert_allclose(losses_at(prob, {"x": x, "y": y}), g_ab(x * y, a, b), rtol=1e-11, atol=1e-14)


def test_hand_written_toy_with_definitions_and_coefficients():
    """A ``toy`` problem using a vector parameter, ordered definitions, coefficients and a constant.

    Oracle: the same objective written in numpy. Also checks the host half: initial values resolved from
    expressions over constants. Tolerance 1e-12: float64 round-off of a handful of flops.
    """
    scope = Scope({"c0": 1.5}, jnp.float64)
    prob = problem(
        {
            "kind": "toy",
            "params": {"u": "2 * c0", "w": [1.0, "-c0", 0.5]},
            "coefficients": {"k": "c0 / 3", "shift": 0.25},
            "definitions": {"r": "u**2 - shift", "q": "r * sum(w**2)"},
            "objective": "k * q + prod(w) * (u >= 0) + w[1]",
        }
    )
    host = host_problem(prob, scope)
    assert float(host.params["u"]) == 3.0
    np.testing.assert_array_equal(host.params["w"], [1.0, -1.5, 0.5])
    assert host.data == {} and host.fingerprints == {} and host.references == {}

    def oracle(u: float, w: np.ndarray) -> float:
        r = u**2 - 0.25
        return 0.5 * r * np.sum(w**2) + np.prod(w) * (u >= 0) + w[1]

    assert problem_fns(prob, scope).test_loss is None
    rng = np.random.default_rng(RNG_SEED + 3)
    u, w = rng.normal(size=10), rng.normal(size=(10, 3))
    expected = [oracle(ui, wi) for ui, wi in zip(u, w, strict=True)]
    np.testing.assert_allclose(losses_at(prob, {"u": u, "w": w}, scope), expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------ autodiff Hessians


def test_relu_scalar_hessian_matches_closed_form():
    """Paper 000 §3.1: for u > 0, ∇²L = [[v², 2uv], [2uv, u²]]; for u < 0 it is 0. Tolerance ~1e-10 rel."""
    rng = np.random.default_rng(RNG_SEED + 4)
    prob = problem({"kind": "relu_scalar"})
    u, v = rng.uniform(0.1, 5.0, 8), rng.normal(size=8)
    u[-1], v[-1] = -0.7, 1.3  # dead side: the Hessian is exactly 0
    h = hessians_at(prob, {"u": u, "v": v})
    for i in range(7):
        assert_close(h[i], [[v[i] ** 2, 2 * u[i] * v[i]], [2 * u[i] * v[i], u[i] ** 2]])
    np.testing.assert_array_equal(h[-1], np.zeros((2, 2)))


def test_ldn_point_hessian_matches_eq17():
    """Paper 000 App. E.6 eq. (17): [[6u² − 2v² − 2, −4uv], [−4uv, 6v² − 2u² + 2]]; plus 4aaᵀ at a minimum.

    At u*² = v*² + 1 the Hessian is 4aaᵀ, a = (u*, −v*), so S = 8v*² + 4 (App. E.6).
    Tolerance ~1e-10 relative (float64 round-off).
    """
    rng = np.random.default_rng(RNG_SEED + 5)
    prob = problem({"kind": "ldn_point"})
    u, v = rng.normal(scale=1.5, size=(2, 8))
    v_star = np.array([-0.8, 0.0, 0.3, 2.0])
    u_star = np.sqrt(v_star**2 + 1)
    h = hessians_at(prob, {"u": np.r_[u, u_star], "v": np.r_[v, v_star]})
    for hi, ui, vi in zip(h[:8], u, v, strict=True):
        assert_close(
            hi, [[6 * ui**2 - 2 * vi**2 - 2, -4 * ui * vi], [-4 * ui * vi, 6 * vi**2 - 2 * ui**2 + 2]]
        )
    for hi, us, vs in zip(h[8:], u_star, v_star, strict=True):
        a = np.array([us, -vs])
        assert_close(hi, 4 * np.outer(a, a))
        assert np.linalg.eigvalsh(hi)[-1] == pytest.approx(8 * vs**2 + 4, rel=1e-12)


@pytest.mark.parametrize("z", [Z_SQUARE, Z_CUBIC_QUARTIC], ids=["square", "cubic_quartic"])
def test_product_chain_n2_hessian_matches_eq4(z):
    """Paper 004 eq. (4): H = [[z''θ₂², z''θ₁θ₂ + z'], [z''θ₁θ₂ + z', z''θ₁²]] (any polynomial z).

    Includes the Fig. 1 init θ0 = (−0.1, 10), where H = [[200, −4], [−4, 0.02]] (by hand), and
    points with θ1 = 0 and θ = 0 (the formula needs no Θ ≠ 0; autodiff of prod/powers at 0 must not NaN).
    Tolerance ~1e-10 relative.
    """
    prob = problem({"kind": "product_chain", "theta0": [1.0, 1.0], "z": z})
    rng = np.random.default_rng(RNG_SEED + 6)
    theta = np.r_[[[-0.1, 10.0], [0.0, 1.5], [0.0, 0.0]], rng.uniform(-2, 2, size=(5, 2))]
    h = hessians_at(prob, {"theta": theta})
    for hi, (t1, t2) in zip(h, theta, strict=True):
        _, z1, z2 = poly(z, t1 * t2)
        assert_close(hi, [[z2 * t2**2, z2 * t1 * t2 + z1], [z2 * t1 * t2 + z1, z2 * t1**2]])
    if z == Z_SQUARE:
        assert_close(h[0], [[200.0, -4.0], [-4.0, 0.02]])


@pytest.mark.parametrize("z", [Z_SQUARE, Z_CUBIC_QUARTIC], ids=["square", "cubic_quartic"])
def test_product_chain_n4_hessian_matches_rank_one_formula(z):
    """Paper 004 App. C: H = D wwᵀ − z'Θ diag(w²), w = 1/θ, D = z''Θ² + z'Θ (exact for θ_j ≠ 0, any z).

    Tolerance ~1e-10 relative (the formula has no cancellation beyond float64 round-off).
    """
    prob = problem({"kind": "product_chain", "theta0": [1.0] * 4, "z": z})
    rng = np.random.default_rng(RNG_SEED + 7)
    theta = rng.uniform(0.3, 1.6, (8, 4)) * rng.choice([-1.0, 1.0], (8, 4))
    for hi, t in zip(hessians_at(prob, {"theta": theta}), theta, strict=True):
        big_theta = float(np.prod(t))
        _, z1, z2 = poly(z, big_theta)
        d = z2 * big_theta**2 + z1 * big_theta
        w = 1.0 / t
        assert_close(hi, d * np.outer(w, w) - z1 * big_theta * np.diag(w**2))


def ldn_problem(**kw) -> m.Problem:
    """A small LDN regression problem (default N=6, d=5, k=2) so its dense Hessian is cheap."""
    return problem({"kind": "ldn_regression", "n": 6, "d": 5, "sparsity": 2, **kw})


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_ldn_regression_loss_and_hessian_match_closed_form(c):
    """Paper 000 §2.1's LDN: L = (c/N) Σ r_n², ∇²L = (2c/N) Σ [J_n J_nᵀ + r_n diag(2x_n, −2x_n)].

    J_n = (2u⊙x_n, −2v⊙x_n), r_n = ⟨u² − v², x_n⟩ − y_n, built in numpy at random (u, v) away from
    interpolation (so the r_n-term matters). Parameter order is (u, v): ``ravel_pytree`` sorts dict keys.
    Tolerance ~1e-10 relative to the largest entry.
    """
    prob = ldn_problem(loss_scale=c)
    host = host_problem(prob, F64)
    X, y = host.data["X"], host.data["y"]
    n = X.shape[0]
    rng = np.random.default_rng(RNG_SEED + 8)
    u, v = rng.normal(scale=0.7, size=(2, 8, X.shape[1]))
    losses = losses_at(prob, {"u": u, "v": v}, data=host.data)
    hessians = hessians_at(prob, {"u": u, "v": v}, data=host.data)
    for ui, vi, loss, hess in zip(u, v, losses, hessians, strict=True):
        r = X @ (ui**2 - vi**2) - y
        assert loss == pytest.approx(c / n * np.sum(r**2), rel=1e-12)
        h = np.zeros((2 * X.shape[1], 2 * X.shape[1]))
        for x_n, r_n in zip(X, r, strict=True):
            j = np.concatenate([2 * ui * x_n, -2 * vi * x_n])
            h += np.outer(j, j) + r_n * np.diag(np.concatenate([2 * x_n, -2 * x_n]))
        assert_close(hess, 2 * c / n * h)


# -------------------------------------------------------------------------------- scalar product minima


@pytest.mark.slow
@pytest.mark.parametrize(("a", "b"), [(1, 1), (2, 1), (1, 3), (2, 3), (0.5, 5), (3, 1)])
def test_scalar_product_sharpness_at_minimizer_is_x2_plus_y2(a, b):
    """At xy = 1, ∇²f = g''(1)(y, x)(y, x)ᵀ + g'(1)[[0, 1], [1, 0]] = (y, x)(y, x)ᵀ: g'(1) = 0, g''(1) = 1.

    Paper 002 eq. (2) (holds for every a, b), so λ_max = x² + y² exactly. Tolerance 1e-10 relative: the
    identity is exact, autodiff through (s^b)^(a/2) leaves float64 round-off.
    """
    prob = problem({"kind": "scalar_product", "x0": 1.0, "y0": 1.0, "a": a, "b": b})
    x = np.array([1.0, 0.5, 2.0, -3.0, 7.5, -0.2, 1.25, 4.0])
    y = 1.0 / x
    for hi, xi, yi in zip(hessians_at(prob, {"x": x, "y": y}), x, y, strict=True):
        assert np.linalg.eigvalsh(hi)[-1] == pytest.approx(xi**2 + yi**2, rel=RTOL)
        assert_close(hi, np.outer([yi, xi], [yi, xi]))
    np.testing.assert_allclose(losses_at(prob, {"x": x, "y": y}), 0.0, atol=1e-15)


# ---------------------------------------------------------------------------------------- LDN host side


def test_ldn_host_problem_inputs_and_fingerprint():
    """LDN host half: u₀ = v₀ = α·1 (α an expression over constants), data shapes, fingerprint.

    Oracles: paper 000 §2.1 init; the generator's own documented draw (PCG64(seed), N×d); the fingerprint
    is a SHA-256 hex that is stable across calls and changes with the data seed.
    """
    scope = Scope({"a0": 0.05}, jnp.float64)
    prob = ldn_problem(alpha="2 * a0", n=7, d=9, sparsity=3, data_seed=4)
    host = host_problem(prob, scope)
    for name in ("u", "v"):
        assert host.params[name].dtype == np.float64
        np.testing.assert_array_equal(host.params[name], np.full(9, 0.1))
    shapes = {k: np.shape(v) for k, v in host.data.items()}
    assert shapes == {"X": (7, 9), "y": (7,), "w_star": (9,), "mu": (9,), "sigma2": ()}
    w_star = np.r_[np.full(3, 1 / np.sqrt(3)), np.zeros(6)]
    np.testing.assert_allclose(host.data["w_star"], w_star, rtol=1e-15)
    np.testing.assert_allclose(host.data["y"], host.data["X"] @ w_star, rtol=1e-13)
    expected_x = 5.0 + np.sqrt(5.0) * np.random.Generator(np.random.PCG64(4)).standard_normal((7, 9))
    np.testing.assert_array_equal(host.data["X"], expected_x)

    fp = host.fingerprints["sparse_regression"]
    assert isinstance(fp, str) and len(fp) == 64 and int(fp, 16) >= 0
    assert host_problem(prob, scope).fingerprints == host.fingerprints
    other = host_problem(ldn_problem(alpha="2 * a0", n=7, d=9, sparsity=3, data_seed=5), scope)
    assert other.fingerprints["sparse_regression"] != fp


def population_risk_np(w: np.ndarray, host, c: float) -> float:
    """c((μ·e)² + σ²‖e‖²), e = w − w* (closed form for x ~ N(μ1, σ²I), paper 000 App. B)."""
    e = w - host.data["w_star"]
    return c * (float(host.data["mu"] @ e) ** 2 + float(host.data["sigma2"]) * float(e @ e))


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_ldn_references_and_test_loss(c):
    """References ``test_loss.min_l1``/``min_l2`` exist; test_loss is the closed-form population risk.

    Oracles: min-ℓ2 interpolator w = X⁺y (Fig. 1's ℓ2 baseline) fed to the numpy risk; test_loss(w*) = 0 at
    u = √w*, v = 0; c((μ·e)² + σ²‖e‖²) at random (u, v). The ℓ1 reference is only checked for existence,
    sign and scaling in c (its LP oracle is tested in the data module). Tolerances: 1e-9 for the lstsq
    solution (conditioning of a 10×20 Gaussian X), 1e-12 for closed forms.
    """
    prob = ldn_problem(n=10, d=20, sparsity=2, loss_scale=c)
    host = host_problem(prob, F64)
    assert set(host.references) == {"test_loss.min_l1", "test_loss.min_l2"}
    assert all(np.isfinite(x) and x >= 0 for x in host.references.values())
    w_l2 = np.linalg.pinv(host.data["X"]) @ host.data["y"]
    assert host.references["test_loss.min_l2"] == pytest.approx(population_risk_np(w_l2, host, c), rel=1e-9)
    if c != 1.0:
        ref1 = host_problem(ldn_problem(n=10, d=20, sparsity=2), F64).references
        for k, v in ref1.items():
            assert host.references[k] == pytest.approx(c * v, rel=1e-9, abs=1e-12)

    fns = problem_fns(prob, F64)
    data = {k: jnp.asarray(v) for k, v in host.data.items()}
    at_star = {"u": jnp.sqrt(data["w_star"]), "v": jnp.zeros(20)}
    assert float(fns.test_loss(at_star, data)) == pytest.approx(0.0, abs=1e-14)
    rng = np.random.default_rng(RNG_SEED + 9)
    for _ in range(4):
        u, v = rng.normal(scale=0.5, size=(2, 20))
        got = float(fns.test_loss({"u": jnp.asarray(u), "v": jnp.asarray(v)}, data))
        assert got == pytest.approx(population_risk_np(u**2 - v**2, host, c), rel=1e-12)


def test_ldn_data_matches_generator():
    """The host problem's data is exactly ``make_sparse_regression``'s draw and fingerprint (same args)."""
    prob = ldn_problem(n=8, d=6, sparsity=2, mu=1.5, sigma2=2.0, data_seed=3)
    host = host_problem(prob, F64)
    ds = make_sparse_regression(8, 6, 1.5, 2.0, 2, 3)
    np.testing.assert_array_equal(host.data["X"], ds.X)
    np.testing.assert_array_equal(host.data["mu"], ds.mu)
    assert float(host.data["sigma2"]) == 2.0
    assert host.fingerprints == {"sparse_regression": ds.fingerprint}


# -------------------------------------------------------------------------------------------- float32


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "relu_scalar"},
        {"kind": "ldn_point"},
        {"kind": "product_chain", "theta0": [0.5, -1.0, 2.0], "z": Z_CUBIC_QUARTIC},
        {"kind": "scalar_product", "x0": 1.5, "y0": 0.5, "a": 1, "b": 3},
        {
            "kind": "toy",
            "params": {"p": [1.0, 2.0]},
            "objective": "k * sum(p**2) * (p[0] >= 0)",
            "coefficients": {"k": 0.5},
        },
        {"kind": "ldn_regression", "n": 4, "d": 3, "sparsity": 1},
    ],
    ids=lambda s: s["kind"],
)
def test_float32_scope_gives_float32_params_and_loss(spec):
    """A float32 run stays float32: initial params, data and loss (even with x64 enabled and weak literals).

    Oracle: dtype identity; the float32 loss also agrees with the float64 loss to float32 round-off (1e-5).
    """
    prob = problem(spec)
    f32 = Scope({}, jnp.float32)
    host = host_problem(prob, f32)
    assert all(np.asarray(p).dtype == np.float32 for p in host.params.values())
    assert all(np.asarray(d).dtype == np.float32 for d in host.data.values())
    params = {k: jnp.asarray(v) for k, v in host.params.items()}
    data = {k: jnp.asarray(v) for k, v in host.data.items()}
    loss = problem_fns(prob, f32).loss(params, data)
    assert loss.dtype == jnp.float32
    host64 = host_problem(prob, F64)
    loss64 = problem_fns(prob, F64).loss(host64.params, host64.data)
    assert float(loss) == pytest.approx(float(loss64), rel=1e-5, abs=1e-6)
    fns = problem_fns(prob, f32)
    if fns.test_loss is not None:
        assert fns.test_loss(params, data).dtype == jnp.float32
