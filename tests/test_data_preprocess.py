"""Tests for the pure preprocessing steps and ``pipeline``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eosdsl.data import (
    STEPS,
    balanced,
    center,
    filter_classes,
    flatten,
    gaussian_mixture,
    gaussian_spectrum_binary,
    holdout,
    load_fashion_mnist,
    make_dataset,
    one_hot,
    one_hot_zero_mean,
    pad,
    pipeline,
    plus_minus_one,
    rank2,
    scale,
    standardize,
    take_first,
    to_channels,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion-mnist-mini"


@pytest.fixture(scope="module")
def fm():
    """The 64/32-image Fashion-MNIST fixture: uint8 (N, 28, 28), labels 0..9."""
    return load_fashion_mnist(FIXTURE)


@pytest.fixture(scope="module")
def mix():
    return gaussian_mixture(n=120, d=6, k=3, separation=3.0, seed=0, n_test=30)


def _images(n=10, n_test=4, shape=(5, 5, 3), seed=0):
    rng = np.random.Generator(np.random.PCG64(seed))
    return make_dataset(
        rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        np.arange(n) % 2,
        rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        np.arange(n_test) % 2,
        n_classes=2,
        description={"source": {"kind": "test_images"}, "targets": "labels"},
    )


# --------------------------------------------------------------------------------------------- subsets


def test_take_first(fm):
    ds = take_first(fm, 10, 5)
    assert ds.x_train.shape == (10, 28, 28) and ds.x_test.shape == (5, 28, 28)
    assert np.array_equal(ds.x_train, fm.x_train[:10]) and np.array_equal(ds.y_test, fm.y_test[:5])
    keep = take_first(fm, 10)
    assert keep.n_test == fm.n_test
    assert ds.description["pipeline"] == [{"op": "take_first", "n_train": 10, "n_test": 5}]
    assert keep.fingerprint != ds.fingerprint != fm.fingerprint
    with pytest.raises(ValueError, match="exceeds"):
        take_first(fm, 65)


def test_balanced_first_k_in_order(fm):
    ds = balanced(fm, 3, n_test_per_class=1)
    assert np.array_equal(np.bincount(ds.y_train, minlength=10), [3] * 10)
    assert np.array_equal(np.bincount(ds.y_test, minlength=10), [1] * 10)
    expect = np.sort(np.concatenate([np.flatnonzero(fm.y_train == c)[:3] for c in range(10)]))
    assert np.array_equal(ds.x_train, fm.x_train[expect]) and np.array_equal(ds.y_train, fm.y_train[expect])
    s1, s2, s3 = balanced(fm, 3, seed=1), balanced(fm, 3, seed=1), balanced(fm, 3, seed=2)
    assert np.array_equal(np.bincount(s1.y_train, minlength=10), [3] * 10)
    assert s1.fingerprint == s2.fingerprint != s3.fingerprint
    assert s1.fingerprint != balanced(fm, 3).fingerprint
    with pytest.raises(ValueError, match="class 0 has only"):
        balanced(fm, 10)


def test_filter_classes_relabels(fm):
    ds = filter_classes(fm, [7, 2])
    assert ds.n_classes == 2
    keep = np.isin(fm.y_train, [7, 2])
    assert np.array_equal(ds.x_train, fm.x_train[keep])
    assert np.array_equal(ds.y_train, np.where(fm.y_train[keep] == 7, 0, 1))
    assert set(np.unique(ds.y_test)) <= {0, 1} and ds.n_test == np.isin(fm.y_test, [7, 2]).sum()
    assert filter_classes(fm, [2, 7]).fingerprint != ds.fingerprint
    with pytest.raises(ValueError, match="distinct"):
        filter_classes(fm, [1, 1])
    with pytest.raises(ValueError, match="distinct"):
        filter_classes(fm, [10])


def test_holdout(mix):
    base = make_dataset(
        mix.x_train, mix.y_train, mix.x_train[:0], mix.y_train[:0], n_classes=3, description=mix.description
    )
    ds = holdout(base, 20)
    assert np.array_equal(ds.x_test, base.x_train[100:]) and np.array_equal(ds.x_train, base.x_train[:100])
    r = holdout(base, 20, seed=0)
    assert r.n_train == 100 and r.n_test == 20
    perm = np.random.Generator(np.random.PCG64(0)).permutation(120)
    assert np.array_equal(r.x_test, base.x_train[np.sort(perm[:20])])
    assert r.fingerprint != ds.fingerprint
    with pytest.raises(ValueError, match="replace_test"):
        holdout(mix, 20)
    assert holdout(mix, 20, replace_test=True).n_test == 20


# ---------------------------------------------------------------------------------------------- inputs


def test_scale(fm):
    ds = scale(fm)
    assert ds.x_train.dtype == np.float64 and ds.x_train.max() <= 1.0
    assert np.array_equal(ds.x_train, fm.x_train.astype(np.float64) * (1 / 255))
    assert ds.fingerprint == scale(fm, factor=1 / 255).fingerprint  # defaults are recorded
    assert scale(fm, dtype="float32").x_test.dtype == np.float32
    assert scale(fm, 0.5).fingerprint != ds.fingerprint


def test_center_modes(mix):
    ds = center(mix)
    assert np.allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    mu = mix.x_train.mean(axis=0)
    assert np.allclose(ds.x_test, mix.x_test - mu)  # test uses the training mean
    g = center(mix, "global")
    assert abs(g.x_train.mean()) < 1e-12 and np.allclose(g.x_test, mix.x_test - mix.x_train.mean())
    assert center(mix, "per_pixel").fingerprint == ds.fingerprint  # alias, same recorded step
    twice = center(ds)
    assert np.allclose(twice.x_train, ds.x_train) and twice.fingerprint != ds.fingerprint


def test_standardize_per_feature_uses_train_stats(fm):
    x = scale(fm)
    ds = standardize(x)
    xt = x.x_train.reshape(64, -1)
    mu, sd = xt.mean(axis=0), xt.std(axis=0)
    const = sd <= 1e-12
    assert const.any()  # some corner pixels are 0 in all 64 images
    st = ds.x_train.reshape(64, -1)
    assert np.allclose(st.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(st.std(axis=0)[~const], 1.0) and np.all(st[:, const] == 0.0)
    expect = (x.x_test.reshape(32, -1) - mu) / np.where(const, 1.0, sd)
    assert np.allclose(ds.x_test.reshape(32, -1), expect)
    assert abs(ds.x_test.mean()) > 1e-3  # not re-standardised with test statistics


def test_standardize_global_and_per_channel():
    img = scale(_images())
    g = standardize(img, "global")
    assert abs(g.x_train.mean()) < 1e-12 and abs(g.x_train.std() - 1.0) < 1e-12
    assert np.allclose(g.x_test, (img.x_test - img.x_train.mean()) / img.x_train.std())
    c = standardize(img, "per_channel")
    assert np.allclose(c.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    assert np.allclose(c.x_train.std(axis=(0, 1, 2)), 1.0)
    with pytest.raises(ValueError, match="per_channel"):
        standardize(flatten(img), "per_channel")
    with pytest.raises(ValueError, match="mode"):
        standardize(img, "per_sample")
    assert len({g.fingerprint, c.fingerprint, standardize(img).fingerprint}) == 3


def test_flatten_channels_pad(fm):
    f = flatten(fm)
    assert f.input_shape == (784,) and np.array_equal(f.x_train[3], fm.x_train[3].ravel())
    c1 = to_channels(fm)
    assert c1.input_shape == (28, 28, 1)
    c3 = to_channels(fm, channels=3, layout="NCHW")
    assert c3.input_shape == (3, 28, 28) and np.array_equal(c3.x_train[:, 2], fm.x_train)
    p = pad(fm)
    assert p.input_shape == (32, 32) and np.array_equal(p.x_train[:, 2:30, 2:30], fm.x_train)
    assert p.x_train.dtype == np.uint8 and p.x_train[:, :2].max() == 0
    p4 = pad(c3, width=((1, 0), (0, 2)), value=7, layout="NCHW")
    assert p4.input_shape == (3, 29, 30) and np.all(p4.x_train[:, :, 0, :] == 7)
    assert p4.description["pipeline"][-1] == {
        "op": "pad",
        "width": [[1, 0], [0, 2]],
        "value": 7.0,
        "layout": "NCHW",
    }
    with pytest.raises(ValueError, match="grayscale"):
        to_channels(c1)
    with pytest.raises(ValueError, match="images"):
        pad(f)


# --------------------------------------------------------------------------------------------- targets


def test_target_encodings(fm, mix):
    oh = one_hot(fm)
    assert oh.y_train.shape == (64, 10) and oh.targets == "one_hot" and oh.y_train.dtype == np.float64
    assert np.array_equal(oh.y_train.argmax(axis=1), fm.y_train) and np.all(oh.y_train.sum(axis=1) == 1)
    pm = one_hot(fm, on=1.0, off=-1.0)
    assert np.all(pm.y_train.sum(axis=1) == -8) and pm.fingerprint != oh.fingerprint
    z = one_hot_zero_mean(mix)
    assert np.allclose(z.y_train.sum(axis=1), 0.0) and np.allclose(z.y_train.max(axis=1), 2 / 3)
    b = plus_minus_one(filter_classes(mix, [0, 2]))
    assert b.targets == "plus_minus_one" and set(np.unique(b.y_train)) == {-1.0, 1.0}
    flip = plus_minus_one(filter_classes(mix, [0, 2]), positive=0)
    assert np.array_equal(flip.y_train, -b.y_train)
    with pytest.raises(ValueError, match="2 classes"):
        plus_minus_one(mix)
    for step in (balanced, filter_classes, one_hot):
        args = {balanced: (2,), filter_classes: ([0, 1],), one_hot: ()}[step]
        with pytest.raises(ValueError, match="before one_hot"):
            step(oh, *args)


# -------------------------------------------------------------------------------------------- pipeline


PAPER004 = [
    {"take_first": {"n_train": 40, "n_test": 20}},
    "scale",
    {"op": "standardize", "mode": "global"},
    ("flatten", {}),
    {"one_hot": None},
]


def test_pipeline_equals_direct_calls_and_records_steps(fm):
    ds = pipeline(fm, PAPER004)
    direct = one_hot(flatten(standardize(scale(take_first(fm, 40, 20)), "global")))
    assert ds.fingerprint == direct.fingerprint and np.array_equal(ds.x_train, direct.x_train)
    assert [s["op"] for s in ds.description["pipeline"]] == [
        "take_first",
        "scale",
        "standardize",
        "flatten",
        "one_hot",
    ]
    assert ds.description["pipeline"][1] == {"op": "scale", "factor": 1 / 255, "dtype": "float64"}
    assert ds.x_train.shape == (40, 784) and ds.y_test.shape == (20, 10)
    assert pipeline(fm, PAPER004).fingerprint == ds.fingerprint  # deterministic
    # re-running the recorded steps reproduces the dataset
    assert pipeline(fm, ds.description["pipeline"]).fingerprint == ds.fingerprint


def test_every_step_changes_the_fingerprint(fm):
    base = take_first(fm, 40, 20)
    binary = filter_classes(base, [0, 1])
    cases = {
        "take_first": (base, {"n_train": 30}),
        "balanced": (base, {"n_per_class": 1}),
        "filter_classes": (base, {"classes": [0, 2]}),
        "holdout": (base, {"n_test": 5, "replace_test": True}),
        "scale": (base, {}),
        "center": (base, {}),
        "standardize": (base, {}),
        "flatten": (base, {}),
        "to_channels": (base, {}),
        "pad": (base, {}),
        "one_hot": (base, {}),
        "one_hot_zero_mean": (base, {}),
        "plus_minus_one": (binary, {}),
        "random_labels": (base, {"seed": 0}),
    }
    assert set(cases) == set(STEPS)
    seen = {base.fingerprint, binary.fingerprint}
    for name, (ds, params) in cases.items():
        out = pipeline(ds, [{name: params}])
        assert out.fingerprint not in seen, name
        assert out.description["pipeline"][-1]["op"] == name
        seen.add(out.fingerprint)
    # a no-op on the arrays still changes identity: the step is recorded
    assert scale(base, 1.0).fingerprint != scale(scale(base, 1.0), 1.0).fingerprint


def test_steps_are_pure(fm):
    before = (fm.fingerprint, fm.x_train.copy(), list(fm.description["pipeline"]))
    pipeline(fm, [*PAPER004[:2], "center", {"pad": {"width": 1}}])
    assert fm.fingerprint == before[0] and np.array_equal(fm.x_train, before[1])
    assert fm.description["pipeline"] == before[2] == []


def test_pipeline_errors(fm):
    with pytest.raises(ValueError, match="unknown step 'normalise'"):
        pipeline(fm, ["normalise"])
    with pytest.raises(ValueError, match="step 0 \\(scale\\)"):
        pipeline(fm, [{"scale": {"fator": 2}}])
    with pytest.raises(ValueError, match="cannot read"):
        pipeline(fm, [42])
    with pytest.raises(TypeError):
        pipeline(fm, "scale")


def test_balanced_binary_spectrum_data():
    raw = gaussian_spectrum_binary(1.0, n=300, d=10, seed=3, targets="labels")
    ds = pipeline(raw, [{"balanced": {"n_per_class": 100}}, "center", "plus_minus_one"])
    assert ds.n_train == 200 and ds.y_train.sum() == 0.0 and ds.targets == "plus_minus_one"


def test_regression_data_passes_through_input_steps():
    ds = pipeline(rank2(5, 40, n_test=10), ["standardize", {"holdout": {"n_test": 5, "replace_test": True}}])
    assert ds.targets == "real" and ds.n_classes is None and ds.x_test.shape == (5, 5)
