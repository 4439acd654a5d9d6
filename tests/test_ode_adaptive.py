"""Adaptive ODE dynamics: ``optimizer: {kind: ode, method: dopri5}`` and :mod:`eosdsl.optim.dopri5`.

Oracles (float64):

* the Dormand–Prince tableau (exact fractions): row sums are the nodes, the fifth-order weights satisfy
  the quadrature conditions Σ b_i c_i^(q−1) = 1/q for q ≤ 5, the embedded weights for q ≤ 4 (and not 5),
  and both the other order conditions of orders 3–4;
* a linear system y' = Ay (A non-normal, with a rotation and decay) against y(τ) = expm(τA)·y₀ at every
  engine step (scipy's ``expm``);
* the harmonic oscillator against x = cos τ, y = −sin τ and its energy x² + y², and the pendulum
  q' = p, p' = −sin q against its Hamiltonian H = p²/2 − cos q;
* the global error falls with the tolerance: over rtol = 1e-4 … 1e-10 (atol 1e-14) it is within a
  small factor of rtol at each level (measured: about 5·rtol at τ = 50 on the oscillator) and falls by
  ≥ 30× per 100× in rtol, while the sub-step count grows;
* the step cap: with ``max_substeps`` too small, ``ode.capped`` records 1, the forced step still lands
  at the end of the engine step and the counts add up to the cap;
* packed (lanes with different tolerances, hence different loop trip counts) and resumed runs equal
  lone, uninterrupted runs bit for bit;
* non-finite values cost nothing: a lane whose y or f(y) is not finite stops before its first attempt
  (so a vmapped loop runs only as long as its finite lanes need: attempt counts, not times, asserted), a
  blow-up stops when f(y) overflows, a field that is non-finite next to y is given up after ~log₅(h/10εT)
  rejections, and in a packed engine run a member that has ended integrates over an empty interval
  (the spans the rule receives are counted);
* validation: ``ode_steps`` needs ``every: 1``; rtol, atol ≥ 0 and not both 0, checked on their resolved
  values (expressions included) and placed at their keys; identity: an rk4 spec keeps its id (golden,
  computed before dopri5 existed), a dopri5 spec dumps its tolerances and cap even at their defaults.

Bounds are stated as multiples of the tolerance: a local-error controller does not bound the global
error, but on these non-stiff problems the global error is a modest multiple of rtol·|y| (HNW II.4).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.spec.errors import SpecError
from eosdsl.spec.load import load

OSCILLATOR = """
name: oscillator-dopri5
precision: float64
constants: {rtol: 1e-8, x0: 1.0}
problem: {kind: toy, params: {x: x0, y: 0.0}, objective: "0.5 * (x**2 + y**2)"}
optimizer: {kind: ode, lr: 0.5, method: dopri5, rtol: rtol, atol: 1e-14, rhs: {x: y, y: -x}}
train: {steps: 100}
measure: [{kind: params}, {kind: ode_steps}]
"""


def _run(text: str, overrides: tuple[str, ...] = ()) -> dict:
    from eosdsl.engine.execute import execute

    return execute(load("o.yaml", list(overrides), text=text).spec).series


# ------------------------------------------------------------------------------------- the tableau


def test_tableau_order_conditions() -> None:
    """Order conditions (exact): quadrature of orders 1–5 (b) and 1–4 (b̂, which fails order 5: it is the
    embedded lower-order solution), the other trees of orders 3–4 for both and the tall tree of order 5
    for b; c_i = Σ_j a_ij, and FSAL (b is the last row of a)."""
    from eosdsl.optim.dopri5 import B_HAT, A, B, C

    for row, c in zip(A, C[1:], strict=True):
        assert sum(row, Fraction(0)) == c
    assert tuple(A[-1]) == B[:6] and B[6] == 0
    for q in range(1, 6):
        assert sum(b * c ** (q - 1) for b, c in zip(B, C, strict=True)) == Fraction(1, q)
    for q in range(1, 5):
        assert sum(b * c ** (q - 1) for b, c in zip(B_HAT, C, strict=True)) == Fraction(1, q)
    assert sum(b * c**4 for b, c in zip(B_HAT, C, strict=True)) != Fraction(1, 5)
    # the non-bushy trees of orders 3–4 (Σ b a c = 1/6, Σ b c a c = 1/8, Σ b a c² = 1/12, Σ b a a c = 1/24)
    # for both weight vectors, and the tall tree of order 5 (Σ b a a a c = 1/120) for b
    a = [[Fraction(0)] * 7 for _ in range(7)]
    for i, row in enumerate(A, start=1):
        a[i][: len(row)] = row
    ac = [sum(a[i][j] * C[j] for j in range(7)) for i in range(7)]
    ac2 = [sum(a[i][j] * C[j] ** 2 for j in range(7)) for i in range(7)]
    aac = [sum(a[i][j] * ac[j] for j in range(7)) for i in range(7)]
    aaac = [sum(a[i][j] * aac[j] for j in range(7)) for i in range(7)]
    for w in (B, B_HAT):
        assert sum(w[i] * ac[i] for i in range(7)) == Fraction(1, 6)
        assert sum(w[i] * C[i] * ac[i] for i in range(7)) == Fraction(1, 8)
        assert sum(w[i] * ac2[i] for i in range(7)) == Fraction(1, 12)
        assert sum(w[i] * aac[i] for i in range(7)) == Fraction(1, 24)
    assert sum(B[i] * aaac[i] for i in range(7)) == Fraction(1, 120)


# -------------------------------------------------------------------------------- the integrator alone


def _rotation(y: jax.Array) -> jax.Array:
    return jnp.stack([y[1], -y[0]])


def test_integrate_lands_exactly_and_runs_backwards() -> None:
    """y(±10) of the oscillator to the tolerance, forwards and backwards; an empty interval is a no-op."""
    from eosdsl.optim.dopri5 import integrate

    y0 = jnp.array([1.0, 0.0])
    fwd = integrate(_rotation, y0, jnp.array(10.0), 1e-10, 1e-14, 10_000, jnp.array(0.0))
    back = integrate(_rotation, y0, jnp.array(-10.0), 1e-10, 1e-14, 10_000, jnp.array(0.0))
    still = integrate(_rotation, y0, jnp.array(0.0), 1e-10, 1e-14, 10_000, jnp.array(0.0))
    np.testing.assert_allclose(fwd.y, [np.cos(10), -np.sin(10)], rtol=0, atol=1e-9)  # measured 1.0e-10
    np.testing.assert_allclose(back.y, [np.cos(10), np.sin(10)], rtol=0, atol=1e-9)
    assert not bool(fwd.capped) and int(fwd.accepted) > 10
    assert still.y.tobytes() == y0.tobytes() and int(still.accepted) == 0


def test_integrate_under_vmap_equals_lone_calls_bitwise() -> None:
    """Lanes with different tolerances take different numbers of loop trips; each equals its lone call."""
    from eosdsl.optim.dopri5 import integrate

    rtols = np.array([1e-4, 1e-7, 1e-10])
    y0 = jnp.array([1.0, 0.0])

    def one(r: jax.Array) -> tuple:
        return tuple(integrate(_rotation, y0, jnp.array(3.0), r, 1e-14, 1000, jnp.array(0.0)))

    packed = jax.jit(jax.vmap(one))(jnp.asarray(rtols))
    for i, r in enumerate(rtols):
        alone = jax.jit(one)(jnp.asarray(r))
        for a, b in zip(alone, packed, strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b[i]).tobytes()
    assert len(set(np.asarray(packed[2]).tolist())) == 3  # three different step counts


def test_integrate_cap_forces_the_last_step_to_land() -> None:
    """With 20 attempts allowed for a span needing ~300, the 20th is forced to the end: capped."""
    from eosdsl.optim.dopri5 import integrate

    out = integrate(_rotation, jnp.array([1.0, 0.0]), jnp.array(10.0), 1e-10, 1e-14, 20, jnp.array(0.0))
    assert bool(out.capped) and int(out.accepted) + int(out.rejected) == 20
    assert np.all(np.isfinite(out.y))


# ------------------------------------------------------------------------------------ through the engine


@pytest.mark.slow
def test_linear_system_matches_the_matrix_exponential() -> None:
    """y' = Ay, A = [[−0.1, 2, 0], [−2, −0.1, 1], [0, 0, −0.5]] (a decaying rotation driven by a decaying
    mode): y(τ) = expm(τA)·y₀ at every step, to 1e-9 (rtol 1e-10: measured 5e-11)."""
    from scipy.linalg import expm

    a = np.array([[-0.1, 2.0, 0.0], [-2.0, -0.1, 1.0], [0.0, 0.0, -0.5]])
    text = """
name: linear
precision: float64
problem: {kind: toy, params: {x: 1.0, y: -0.5, z: 2.0}, objective: "0 * x"}
optimizer:
  kind: ode
  lr: 0.25
  method: dopri5
  rtol: 1e-10
  atol: 1e-14
  rhs: {x: -0.1 * x + 2 * y, y: -2 * x - 0.1 * y + z, z: -0.5 * z}
train: {steps: 80}
measure: [{kind: params}, {kind: ode_steps}]
"""
    series = _run(text)
    got = np.stack([series[f"params.{k}"][1] for k in "xyz"], axis=1)
    steps = series["params.x"][0]
    want = np.stack([expm(0.25 * s * a) @ np.array([1.0, -0.5, 2.0]) for s in steps])
    assert np.max(np.abs(got - want)) <= 1e-9
    assert series["ode.capped"][1].sum() == 0 and series["ode.substeps"][1][:-1].min() >= 1


@pytest.mark.slow
def test_oscillator_closed_form_and_energy_fall_with_the_tolerance() -> None:
    """The oscillator over τ = 50 at rtol = 1e-4, 1e-6, 1e-8, 1e-10: the max error against (cos τ, −sin τ)
    and the energy drift stay within 20·rtol (measured 4.6–5.7·rtol and 6–11.5·rtol), fall ≥ 30× per
    100× in rtol (measured ≈ 100×), and the sub-steps taken grow as rtol falls."""
    errors, drifts, work = [], [], []
    rtols = [1e-4, 1e-6, 1e-8, 1e-10]
    for rtol in rtols:
        series = _run(OSCILLATOR, (f"constants.rtol={rtol}",))
        x, y = series["params.x"][1], series["params.y"][1]
        tau = 0.5 * series["params.x"][0]
        errors.append(max(np.max(np.abs(x - np.cos(tau))), np.max(np.abs(y + np.sin(tau)))))
        drifts.append(np.max(np.abs(x**2 + y**2 - 1)))
        work.append(int(series["ode.substeps"][1].sum()))
        assert series["ode.capped"][1].sum() == 0
    for rtol, err, drift in zip(rtols, errors, drifts, strict=True):
        assert err <= 20 * rtol and drift <= 20 * rtol, (rtol, err, drift)
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert fine * 30 <= coarse, errors
    assert work == sorted(work) and len(set(work)) == len(work), work


@pytest.mark.slow
def test_pendulum_conserves_its_hamiltonian() -> None:
    """q' = p, p' = −sin q from (2.5, 0) (a wide libration): H = p²/2 − cos q stays within 1e-8 of H₀ over
    τ = 60 at rtol = 1e-10 (measured 9.6e-10)."""
    text = """
name: pendulum
precision: float64
problem: {kind: toy, params: {q: 2.5, p: 0.0}, objective: "0 * q"}
optimizer: {kind: ode, lr: 0.3, method: dopri5, rtol: 1e-10, atol: 1e-14, rhs: {q: p, p: -sin(q)}}
train: {steps: 200}
measure: [{kind: params}, {kind: ode_steps}]
"""
    series = _run(text)
    q, p = series["params.q"][1], series["params.p"][1]
    energy = p**2 / 2 - np.cos(q)
    assert np.max(np.abs(energy - energy[0])) <= 1e-8
    assert np.min(q) < -2.4  # it swung through to the other side


@pytest.mark.slow
def test_the_cap_is_recorded_and_the_step_still_lands() -> None:
    """max_substeps 3 at Δτ = 0.5, rtol 1e-10 (≈ 16 sub-steps needed): every step records 3 sub-steps in
    all and capped = 1, the orbit still advances by Δτ per step (to the forced steps' accuracy: measured
    3e-4 over τ = 50), and the note ``eosdsl run``/``show`` print counts the capped steps."""
    text = OSCILLATOR.replace("atol: 1e-14,", "atol: 1e-14, max_substeps: 3,")
    series = _run(text, ("constants.rtol=1e-10",))
    done = series["ode.substeps"][1][:-1] + series["ode.rejected"][1][:-1]  # the last step takes none
    assert np.all(done == 3) and np.all(series["ode.capped"][1][:-1] == 1)
    x, tau = series["params.x"][1], 0.5 * series["params.x"][0]
    assert np.max(np.abs(x - np.cos(tau))) <= 1e-3

    from eosdsl.cli.solver_note import solver_notes

    class Stored:  # the two methods of a stored run that ``solver_notes`` reads
        def series_names(self) -> list[str]:
            return list(series)

        def series(self, name: str) -> tuple:
            return series[name]

    (note,) = solver_notes(Stored())
    assert "max_substeps cap at 100 of 101 steps (first at step 0; series ode.capped)" in note


@pytest.mark.slow
def test_fixed_step_methods_record_their_substeps() -> None:
    """``ode_steps`` with rk4: ``substeps`` accepted per step, none rejected or capped, 0 at the last step."""
    text = OSCILLATOR.replace("method: dopri5, rtol: rtol, atol: 1e-14,", "substeps: 4,")
    series = _run(text)
    assert series["ode.substeps"][1][:-1].tolist() == [4] * 100 and series["ode.substeps"][1][-1] == 0
    assert series["ode.rejected"][1].sum() == 0 and series["ode.capped"][1].sum() == 0


@pytest.mark.slow
def test_packed_tolerances_equal_lone_runs_bitwise() -> None:
    from conftest import assert_pack_is_bitwise

    points = load("p.yaml", text=OSCILLATOR, multirun=["constants.rtol=1e-4,1e-8,1e-10"]).points
    packed = assert_pack_is_bitwise([p.spec for p in points])
    work = [int(p.series["ode.substeps"][1].sum()) for p in packed]
    assert work[0] < work[1] < work[2]


@pytest.mark.slow
def test_resumed_adaptive_run_is_bit_identical(tmp_path: Path) -> None:
    """The carried step size (the rule's state) goes through Orbax checkpoints: resume is bitwise."""
    from conftest import assert_resume_is_bitwise

    runtime = "runtime: {chunk: 25, checkpoint_every: 50, checkpoint_min_seconds: 0}\n"
    spec = load("r.yaml", text=OSCILLATOR + runtime).points[0].spec
    assert_resume_is_bitwise(spec, at=50, store=tmp_path)
    assert_resume_is_bitwise(spec, at=50)


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("method: dopri5, ", "", "rtol is for method dopri5 (method here: rk4)"),
        ("method: dopri5,", "method: dopri5, substeps: 4,", "substeps is for rk4 and euler"),
        ("rtol: rtol", "rtol: -1e-6", "optimizer.rtol: rtol must be ≥ 0, got -1e-06"),
        ("rtol: rtol", "rtol: r", "optimizer.rtol: rtol must be ≥ 0, got -1e-06"),  # an expression
        ("atol: 1e-14", "atol: r", "optimizer.atol: atol must be ≥ 0, got -1e-06"),
        ("rtol: rtol, atol: 1e-14", "rtol: 0, atol: 0.0", "optimizer.atol: rtol and atol are both 0"),
        ("rtol: rtol, atol: 1e-14", "rtol: r * 0, atol: 0", "optimizer.atol: rtol and atol are both 0"),
        ("{kind: ode_steps}", "{kind: ode_steps, every: 4}", "measure.1.every: ode_steps records each step"),
        ("{kind: ode_steps}", "{kind: loss}", "add `{kind: ode_steps}` to measure"),
        ("rtol: rtol", "rtol: tol", "optimizer.rtol: unknown name 'tol'"),
    ],
)
def test_validation_errors_name_the_key(old: str, new: str, message: str) -> None:
    text = OSCILLATOR.replace(old, new).replace("constants: {", "constants: {r: -1e-6, ")
    assert text != OSCILLATOR
    with pytest.raises(SpecError) as err:
        load("o.yaml", text=text)
    assert message in str(err.value)


def test_ode_steps_needs_an_ode_optimizer() -> None:
    text = OSCILLATOR.replace(
        "{kind: ode, lr: 0.5, method: dopri5, rtol: rtol, atol: 1e-14, rhs: {x: y, y: -x}}",
        "{kind: gd, lr: 0.1}",
    )
    with pytest.raises(SpecError, match="ode_steps needs an `ode` optimizer"):
        load("o.yaml", text=text)


def test_fixed_step_specs_hash_as_before() -> None:
    """The new fields are left out of an rk4 spec's dump at their defaults (its id is unchanged)."""
    spec = load("o.yaml", text=OSCILLATOR.replace("method: dopri5, rtol: rtol, atol: 1e-14,", "")).spec
    dumped = spec.model_dump(mode="json")["optimizer"]
    assert dumped == {"kind": "ode", "lr": 0.5, "rhs": {"x": "y", "y": "-x"}, "method": "rk4", "substeps": 1}


def test_zero_rtol_with_atol_is_pure_absolute_control() -> None:
    """rtol = 0 with atol > 0 is allowed (HNW II.4): the spec loads, and the integrator meets atol alone —
    the oscillator over τ = 10 at atol 1e-10 lands within 1e-8 of (cos 10, −sin 10) (measured 2.5e-10)."""
    from eosdsl.optim.dopri5 import integrate

    load("o.yaml", text=OSCILLATOR.replace("rtol: rtol, atol: 1e-14", "rtol: 0, atol: 1e-10"))
    out = integrate(_rotation, jnp.array([1.0, 0.0]), jnp.array(10.0), 0.0, 1e-10, 10_000, jnp.array(0.0))
    np.testing.assert_allclose(out.y, [np.cos(10), -np.sin(10)], rtol=0, atol=1e-8)
    assert not bool(out.capped)


def test_the_unrefused_ode_steps_records_every_step() -> None:
    """``every: 1`` (the default, or written out) is what ``ode_steps`` accepts."""
    load("o.yaml", text=OSCILLATOR.replace("{kind: ode_steps}", "{kind: ode_steps, every: 1}"))


# ------------------------------------------------------------------------------------ non-finite values


def _one(f, y0: jax.Array, span: float = 3.0, max_steps: int = 1000) -> tuple:  # noqa: ANN001
    from eosdsl.optim.dopri5 import integrate

    return tuple(integrate(f, y0, jnp.asarray(span), 1e-8, 1e-14, max_steps, jnp.array(0.0)))


def test_a_non_finite_lane_stops_before_its_first_attempt_under_vmap() -> None:
    """Lanes (1, 0), (NaN, 0), (0.5, 0.5) and (1e200, 0) of y' = (y₂, −y₁·(1 + y₁)) (the last: f(y) =
    −1e400 overflows): the NaN lane and the overflowing lane make 0 attempts, are ``capped`` and keep
    their y; the finite lanes equal their lone calls bit for bit. The loop runs as long as its longest
    lane, so its trip count is the finite lanes' count (tens), not the cap (1000) as when a NaN lane
    was rejected until the cap."""
    field = lambda y: jnp.stack([y[1], -y[0] * (1 + y[0])])  # noqa: E731
    lanes = jnp.array([[1.0, 0.0], [np.nan, 0.0], [0.5, 0.5], [1e200, 0.0]])
    packed = jax.jit(jax.vmap(lambda y: _one(field, y)))(lanes)
    y, _, accepted, rejected, capped = (np.asarray(a) for a in packed)
    attempts = accepted + rejected
    assert attempts[1] == 0 and attempts[3] == 0 and capped[1] and capped[3]
    assert np.isnan(y[1, 0]) and y[3, 0] == 1e200
    assert not capped[0] and not capped[2] and 10 <= attempts[0] <= 100 and 10 <= attempts[2] <= 100
    assert attempts.max() == max(attempts[0], attempts[2])  # the loop's trip count
    for i in (0, 2):
        alone = jax.jit(lambda y: _one(field, y))(lanes[i])
        for a, b in zip(alone, packed, strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b[i]).tobytes()


def test_a_blow_up_stops_when_the_field_overflows() -> None:
    """y' = y², y(0) = 1 blows up at τ = 1; over τ ∈ [0, 2] the steps follow y to where f(y) = y²
    overflows, and the integration stops there (non-finite y, capped) after 488 attempts (measured),
    far below the cap of 100,000: a non-finite y is not rejected over and over."""
    y, _, accepted, rejected, capped = _one(lambda y: y**2, jnp.array([1.0]), span=2.0, max_steps=100_000)
    assert bool(capped) and not np.all(np.isfinite(y))
    assert int(accepted) + int(rejected) <= 1000


@pytest.mark.parametrize("h0", [0.0, 0.5])
def test_a_field_undefined_next_to_y_is_given_up_quickly(h0: float) -> None:
    """y' = −1 + 0·√y from y = 0: f(0) = −1 is finite, but every stage leaves the domain (√ of y < 0 is
    NaN), so every attempt is rejected and h shrinks 5× each time, until h ≤ 10ε·T (T = 1; DOPRI5's
    "step size too small"), when the landing step is forced: non-finite y, capped, after
    ⌈log₅(h_start/(10εT))⌉ + 1 attempts at most (h_start = 0.5: 22; the starting-step rule, whose probe
    also leaves the domain: h_start = 0.2·10⁻⁶, 13) — not the 1000 of the cap."""
    from eosdsl.optim.dopri5 import integrate

    field = lambda y: -1.0 + 0.0 * jnp.sqrt(y)  # noqa: E731
    out = integrate(field, jnp.array([0.0]), jnp.array(1.0), 1e-8, 1e-14, 1000, jnp.array(h0))
    h_start = h0 if h0 > 0 else 0.2e-6
    bound = int(np.ceil(np.log(h_start / (10 * np.finfo(np.float64).eps)) / np.log(5))) + 1
    assert bool(out.capped) and not np.all(np.isfinite(out.y))
    assert int(out.accepted) == 1 and int(out.rejected) + 1 <= bound


@pytest.mark.slow
def test_an_ended_pack_member_integrates_over_an_empty_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack of two oscillators with the loss log(x + 2.0000123): from x₀ = 3 the loss is NaN once
    x < −2 (the member diverges at step 5), from x₀ = 1 never (30 steps). Under vmap the ended member's
    step still runs (selected away), and before the fix it integrated a full Δτ at every later step.
    Every call of the integrator is counted through a debug callback (one per lane per step): exactly
    the 30 + 5 real updates have a non-zero span; the rest (the ended member's, and the update at the
    step where each run ends, which is discarded) get span 0 and make no attempt."""
    import eosdsl.optim.optimizers as optimizers
    from eosdsl.engine.execute import prepare
    from eosdsl.engine.packs import execute_pack

    monkeypatch.setenv("EOSDSL_CACHE_DIR", "off")  # trace afresh, with the spy below
    calls: list[tuple[float, int]] = []
    real = optimizers.integrate

    def spy(f, y0, span, *rest):  # noqa: ANN001, ANN202
        out = real(f, y0, span, *rest)
        record = lambda s, n: calls.append((float(s), int(n)))  # noqa: E731
        jax.debug.callback(record, span, out.accepted + out.rejected)
        return out

    monkeypatch.setattr(optimizers, "integrate", spy)
    text = """
name: pack-ended
precision: float64
constants: {x0: 1.0}
problem: {kind: toy, params: {x: x0, y: 0.0}, objective: "log(x + 2.0000123)"}
optimizer: {kind: ode, lr: 0.5, method: dopri5, rtol: 1e-8, atol: 1e-14, rhs: {x: y, y: -x}}
train: {steps: 30}
measure: [{kind: params}, {kind: ode_steps}]
"""
    specs = [p.spec for p in load("p.yaml", text=text, multirun=["constants.x0=1.0,3.0"]).points]
    packed = execute_pack(specs, [prepare(s) for s in specs])
    ends = [len(p.series["params.x"][0]) - 1 for p in packed]  # the step each run ended at
    assert ends == [30, 5]
    assert len(calls) == 2 * 31  # every lane at every step of the pack's loop
    live = [(s, n) for s, n in calls if s != 0]
    assert len(live) == sum(ends) and all(n > 0 for _, n in live)
    assert all(n == 0 for s, n in calls if s == 0)


# -------------------------------------------------------------------------------------------- identity

ENVELOPE_ODE_ID = "177561840d3c3270198269117424ec9f9b8dcfdd4626f56c8ddb1d1d4126e393"
"""specs/self-stabilization/envelope-ode.yaml (rk4 and map): its id before ``dopri5`` existed (computed
from the committed code without the rtol/atol/max_substeps fields); it must not change."""


def test_the_rk4_library_spec_keeps_its_identity() -> None:
    from eosdsl.registry.identity import spec_id

    spec = load(Path(__file__).resolve().parents[1] / "specs/self-stabilization/envelope-ode.yaml").spec
    assert spec_id(spec.model_dump(mode="json")) == ENVELOPE_ODE_ID


def test_dopri5_specs_dump_their_tolerances_at_their_defaults() -> None:
    """rtol, atol and max_substeps are written out for dopri5 even when the spec leaves them at their
    defaults (a later change of a default must not re-mean a stored run), and are part of its id."""
    from eosdsl.registry.identity import spec_id

    text = OSCILLATOR.replace("rtol: rtol, atol: 1e-14,", "")
    dumped = load("o.yaml", text=text).spec.model_dump(mode="json")
    assert {k: dumped["optimizer"][k] for k in ("rtol", "atol", "max_substeps")} == {
        "rtol": 1e-6,
        "atol": 1e-9,
        "max_substeps": 1000,
    }
    spelled = text.replace("method: dopri5,", "method: dopri5, rtol: 1e-6, atol: 1e-9, max_substeps: 1000,")
    assert spec_id(load("o.yaml", text=spelled).spec.model_dump(mode="json")) == spec_id(dumped)
    other = text.replace("method: dopri5,", "method: dopri5, max_substeps: 999,")
    assert spec_id(load("o.yaml", text=other).spec.model_dump(mode="json")) != spec_id(dumped)
