"""Tests for the Dataset container and the seeded synthetic generators."""

from __future__ import annotations

import numpy as np
import pytest

from eosdsl.canonical import canonical_json
from eosdsl.data import (
    Dataset,
    array_fingerprint,
    gaussian_mixture,
    gaussian_spectrum_binary,
    make_dataset,
    random_labels,
    rank2,
    resolve_spectrum,
    teacher_student,
)


def _rng(seed):
    return np.random.Generator(np.random.PCG64(seed))


# ----------------------------------------------------------------------------------------------- Dataset


def _tiny(**kw) -> Dataset:
    args = dict(
        x_train=np.arange(12.0).reshape(4, 3),
        y_train=np.array([0, 1, 1, 0]),
        x_test=np.ones((2, 3)),
        y_test=np.array([1, 0]),
        n_classes=2,
        description={"source": {"kind": "tiny"}, "targets": "labels"},
    )
    args.update(kw)
    return make_dataset(
        args.pop("x_train"), args.pop("y_train"), args.pop("x_test"), args.pop("y_test"), **args
    )


def test_dataset_fields_fingerprint_and_immutability():
    x = np.arange(12.0).reshape(4, 3)
    ds = _tiny(x_train=x)
    assert ds.input_shape == (3,) and ds.n_train == 4 and ds.n_test == 2 and ds.n_classes == 2
    assert ds.description == {"source": {"kind": "tiny"}, "targets": "labels", "pipeline": []}
    meta = canonical_json({"description": ds.description, "input_shape": [3], "n_classes": 2})
    assert ds.fingerprint == array_fingerprint(
        x_train=ds.x_train,
        y_train=ds.y_train,
        x_test=ds.x_test,
        y_test=ds.y_test,
        meta=np.frombuffer(meta.encode(), dtype=np.uint8),
    )
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert not a.flags.writeable
    x[0, 0] = 99.0  # the dataset owns a private copy
    assert ds.x_train[0, 0] == 0.0
    with pytest.raises(AttributeError):
        ds.n_classes = 3  # frozen
    # the description is part of the identity; the arrays are too
    assert _tiny(description={"source": {"kind": "other"}, "targets": "labels"}).fingerprint != ds.fingerprint
    assert _tiny(x_test=np.zeros((2, 3))).fingerprint != ds.fingerprint
    assert _tiny().fingerprint == ds.fingerprint
    assert "tiny" in repr(ds)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"y_train": np.array([0, 1, 2, 0])}, "labels must lie"),
        ({"y_train": np.array([0, 1, 1])}, "rows"),
        ({"x_test": np.ones((2, 4))}, "per-sample shape"),
        ({"n_classes": None}, "inconsistent"),
        ({"description": {"source": {"kind": "t"}, "targets": "bogus"}}, "targets"),
        ({"description": {"targets": "labels"}}, "source"),
        ({"description": {"source": {"kind": "t", "v": float("nan")}, "targets": "labels"}}, "non-finite"),
    ],
)
def test_make_dataset_validates(kw, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kw)


# ------------------------------------------------------------------------------------------------- rank2


def test_rank2_labels_exact_and_documented_draw():
    ds = rank2(d=400, n=200, n_test=50, seed=3)
    assert ds.x_train.shape == (200, 400) and ds.x_test.shape == (50, 400)
    assert ds.y_train.shape == (200,) and ds.x_train.dtype == ds.y_train.dtype == np.float64
    assert ds.n_classes is None and ds.targets == "real" and ds.input_shape == (400,)
    assert np.array_equal(ds.y_train, ds.x_train[:, 0] * ds.x_train[:, 1])  # exact, bit for bit
    assert np.array_equal(ds.y_test, ds.x_test[:, 0] * ds.x_test[:, 1])
    X = _rng(3).standard_normal((250, 400))
    assert np.array_equal(ds.x_train, X[:200]) and np.array_equal(ds.x_test, X[200:])
    assert ds.description["source"] == {"kind": "rank2", "d": 400, "n": 200, "n_test": 50, "seed": 3}


def test_rank2_determinism_and_sensitivity():
    a, b, c = rank2(3, 100, seed=1), rank2(3, 100, seed=1), rank2(3, 100, seed=2)
    assert a.fingerprint == b.fingerprint and np.array_equal(a.x_train, b.x_train)
    assert a.fingerprint != c.fingerprint
    # the training set does not depend on n_test, but the identity does
    d = rank2(3, 100, n_test=20, seed=1)
    assert np.array_equal(d.x_train, a.x_train) and d.fingerprint != a.fingerprint
    with pytest.raises(ValueError, match="d >= 2"):
        rank2(1, 10)


# -------------------------------------------------------------------------------------- Gaussian spectrum


def test_resolve_spectrum_forms():
    assert np.allclose(resolve_spectrum(1.0, 4), [1, 1 / 2, 1 / 3, 1 / 4])
    assert np.allclose(resolve_spectrum({"power_law": {"exponent": 2, "scale": 3}}, 3), [3, 3 / 4, 3 / 9])
    assert np.allclose(
        resolve_spectrum({"gap_plus_linear": {"top": 10, "lo": 1, "hi": 2}}, 4), [10, 2, 1.5, 1]
    )
    assert np.array_equal(resolve_spectrum([3, 2, 1], 3), [3.0, 2.0, 1.0])
    for bad, match in [
        ([1, 2], "d=3"),
        ([1, 0, 1], "> 0"),
        ({"power_law": {"scale": 1}}, "exponent"),
        ({"gap_plus_linear": {"top": 1}}, "top"),
        ({"weird": {}}, "unknown spectrum"),
    ]:
        with pytest.raises(ValueError, match=match):
            resolve_spectrum(bad, 3)


def test_gaussian_spectrum_defaults_and_teacher():
    spec = {"gap_plus_linear": {"top": 10.0, "lo": 0.5, "hi": 2.0}}
    ds = gaussian_spectrum_binary(spec, n_test=100, seed=5)
    assert ds.x_train.shape == (200, 50) and ds.x_test.shape == (100, 50)  # paper 001 defaults n=200, d=50
    assert ds.n_classes == 2 and ds.targets == "plus_minus_one" and ds.y_train.dtype == np.float64
    assert set(np.unique(ds.y_train)) <= {-1.0, 1.0}
    assert np.allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)  # centred with the training mean
    # documented draws: data stream then teacher stream tagged 0x5EC7001
    Z = _rng(5).standard_normal((300, 50)) * np.sqrt(resolve_spectrum(spec, 50))
    Z = Z - Z[:200].mean(axis=0)
    assert np.allclose(np.vstack([ds.x_train, ds.x_test]), Z, rtol=0, atol=1e-14)
    beta = _rng([5, 0x5EC7001]).standard_normal(50)
    assert np.array_equal(ds.y_train, np.where(ds.x_train @ beta < 0, -1.0, 1.0))
    assert np.array_equal(ds.y_test, np.where(ds.x_test @ beta < 0, -1.0, 1.0))
    # a different teacher changes labels only; a different seed changes the inputs
    t = gaussian_spectrum_binary(spec, n_test=100, seed=5, teacher_seed=6)
    assert np.array_equal(t.x_train, ds.x_train) and not np.array_equal(t.y_train, ds.y_train)
    assert t.fingerprint != ds.fingerprint
    s = gaussian_spectrum_binary(spec, n_test=100, seed=7)
    assert not np.array_equal(s.x_train, ds.x_train) and s.fingerprint != ds.fingerprint
    assert gaussian_spectrum_binary(spec, n_test=100, seed=5).fingerprint == ds.fingerprint


@pytest.mark.parametrize(
    "spectrum, kw",
    [
        ({"power_law": {"exponent": 1.0, "scale": 4.0}}, {}),
        ([9.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.1], {"rotate": True}),
        ({"gap_plus_linear": {"top": 3.0, "lo": 0.2, "hi": 1.0}}, {"spectrum_of": "std"}),
    ],
)
def test_gaussian_spectrum_covariance_matches_request(spectrum, kw):
    n, d = 40_000, 8
    ds = gaussian_spectrum_binary(spectrum, n=n, d=d, seed=11, **kw)
    lam = resolve_spectrum(spectrum, d)
    if kw.get("spectrum_of") == "std":
        lam = lam**2
    C = ds.x_train.T @ ds.x_train / n  # centred data: the sample covariance
    eig = np.sort(np.linalg.eigvalsh(C))[::-1]
    # relative sampling error of an eigenvalue ~ sqrt(2/n) = 0.7%; allow 5 sigma
    assert np.allclose(eig, np.sort(lam)[::-1], rtol=5 * np.sqrt(2 / n), atol=0)
    if not kw.get("rotate"):
        assert np.allclose(np.diag(C), lam, rtol=5 * np.sqrt(2 / n))
    assert abs(ds.y_train.mean()) < 0.05  # a teacher through the origin gives balanced labels


def test_gaussian_spectrum_random_sign_and_errors():
    ds = gaussian_spectrum_binary(1.0, n=2000, d=5, labels="random_sign", center=False, seed=0)
    u = _rng([0, 0x5EC7001]).random(2000)
    assert np.array_equal(ds.y_train, np.where(u < 0.5, -1.0, 1.0))
    assert np.array_equal(ds.x_train, _rng(0).standard_normal((2000, 5)) * np.sqrt(resolve_spectrum(1.0, 5)))
    assert ds.description["source"]["spectrum"] == {"power_law": {"exponent": 1.0, "scale": 1.0}}
    lab = gaussian_spectrum_binary(1.0, n=2000, d=5, labels="random_sign", center=False, targets="labels")
    assert lab.targets == "labels" and np.array_equal(lab.y_train, (ds.y_train > 0).astype(np.int64))
    assert lab.fingerprint != ds.fingerprint
    with pytest.raises(ValueError, match="labels"):
        gaussian_spectrum_binary(1.0, labels="mlp")
    with pytest.raises(ValueError, match="spectrum_of"):
        gaussian_spectrum_binary(1.0, spectrum_of="var")


# ----------------------------------------------------------------------------------------------- mixture


def test_gaussian_mixture_structure():
    ds = gaussian_mixture(n=6000, d=10, k=3, separation=4.0, seed=2, n_test=300)
    assert ds.x_train.shape == (6000, 10) and ds.y_train.dtype == np.int64 and ds.n_classes == 3
    assert np.array_equal(np.bincount(ds.y_train), [2000] * 3) and np.array_equal(
        np.bincount(ds.y_test), [100] * 3
    )
    means = np.stack([ds.x_train[ds.y_train == c].mean(axis=0) for c in range(3)])
    dists = [np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)]
    assert np.allclose(dists, 4.0, atol=0.15)  # equidistant means at the requested separation
    resid = ds.x_train - means[ds.y_train]
    assert abs(resid.std() - 1.0) < 0.02
    again = gaussian_mixture(n=6000, d=10, k=3, separation=4.0, seed=2, n_test=300)
    assert again.fingerprint == ds.fingerprint
    assert (
        gaussian_mixture(n=6000, d=10, k=3, separation=4.0, seed=3, n_test=300).fingerprint != ds.fingerprint
    )
    assert (
        gaussian_mixture(n=6000, d=10, k=3, separation=5.0, seed=2, n_test=300).fingerprint != ds.fingerprint
    )
    with pytest.raises(ValueError, match="k <= d"):
        gaussian_mixture(n=10, d=2, k=3)


# ----------------------------------------------------------------------------------------------- teacher


def test_teacher_student_documented_draws():
    ds = teacher_student(n=50, d=6, width=7, activation="tanh", seed=4, n_test=5, noise_std=0.1)
    trng = _rng([4, 0x7EAC4E2])
    W, a = trng.standard_normal((7, 6)), trng.standard_normal((7, 1))
    rng = _rng(4)
    X = rng.standard_normal((55, 6))
    Y = (np.tanh(X @ W.T / np.sqrt(6)) @ a / np.sqrt(7) + 0.1 * rng.standard_normal((55, 1)))[:, 0]
    assert np.array_equal(ds.x_train, X[:50]) and np.allclose(ds.y_train, Y[:50], rtol=0, atol=1e-15)
    assert np.allclose(ds.y_test, Y[50:], rtol=0, atol=1e-15)
    assert ds.n_classes is None and ds.targets == "real" and ds.y_train.shape == (50,)


def test_teacher_student_variants():
    base = teacher_student(n=20, d=4, width=8, activation="relu", seed=0)
    multi = teacher_student(n=20, d=4, width=8, activation="relu", seed=0, out_dim=3)
    assert multi.y_train.shape == (20, 3) and np.array_equal(multi.x_train, base.x_train)
    other_teacher = teacher_student(n=20, d=4, width=8, activation="relu", seed=0, teacher_seed=9)
    assert np.array_equal(other_teacher.x_train, base.x_train)
    assert not np.array_equal(other_teacher.y_train, base.y_train)
    fps = {
        teacher_student(n=20, d=4, width=8, activation=a, seed=0).fingerprint for a in ("relu", "tanh", "erf")
    }
    assert len(fps) == 3
    lin = teacher_student(n=20, d=4, width=8, activation="identity", seed=0)
    assert np.linalg.matrix_rank(np.column_stack([lin.x_train, lin.y_train])) == 4  # linear teacher
    with pytest.raises(ValueError, match="activation"):
        teacher_student(activation="swish")


# ----------------------------------------------------------------------------------------- random labels


def test_random_labels_uniform_and_permute():
    base = gaussian_mixture(n=300, d=5, k=3, seed=0, n_test=30)
    r = random_labels(base, seed=1)
    assert np.array_equal(r.x_train, base.x_train) and np.array_equal(r.y_test, base.y_test)
    assert r.y_train.dtype == np.int64 and set(np.unique(r.y_train)) <= {0, 1, 2}
    assert np.array_equal(r.y_train, _rng([1, 0x4A4D0B1]).integers(0, 3, 300))
    assert np.mean(r.y_train == base.y_train) < 0.5
    assert r.description["pipeline"] == [
        {"op": "random_labels", "seed": 1, "mode": "uniform", "apply_to_test": False}
    ]
    assert random_labels(base, seed=1).fingerprint == r.fingerprint
    assert random_labels(base, seed=2).fingerprint != r.fingerprint != base.fingerprint
    p = random_labels(base, seed=1, mode="permute", apply_to_test=True)
    assert np.array_equal(np.bincount(p.y_train), np.bincount(base.y_train))
    assert not np.array_equal(p.y_test, base.y_test)
    reg = random_labels(rank2(3, 50), seed=0, mode="permute")
    assert np.array_equal(np.sort(reg.y_train), np.sort(rank2(3, 50).y_train))
    pm = random_labels(gaussian_spectrum_binary(1.0, n=100, d=5), seed=0)
    assert set(np.unique(pm.y_train)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="permute"):
        random_labels(rank2(3, 50), seed=0)


def test_teacher_student_sign_labels_are_the_sign_of_the_real_targets() -> None:
    """``labels="sign"``: y = sign(f(x)) (sign(0) := +1) of the same teacher and inputs, encoded ±1 with
    two classes; the real targets' dataset (and its fingerprint) is unchanged by the option."""
    real = teacher_student(n=64, d=5, width=12, seed=3, n_test=16)
    sign = teacher_student(n=64, d=5, width=12, seed=3, n_test=16, labels="sign")
    np.testing.assert_array_equal(sign.x_train, real.x_train)
    np.testing.assert_array_equal(sign.y_train, np.where(real.y_train >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(sign.y_test, np.where(real.y_test >= 0, 1.0, -1.0))
    assert (sign.targets, sign.n_classes, real.targets, real.n_classes) == ("plus_minus_one", 2, "real", None)
    assert "labels" not in real.description["source"] and sign.fingerprint != real.fingerprint
    with pytest.raises(ValueError, match="labels='sign' needs out_dim=1"):
        teacher_student(n=8, d=2, width=3, out_dim=2, labels="sign")
