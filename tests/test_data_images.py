"""Tests for the IDX reader/writer, the Fashion-MNIST and CIFAR-10 loaders and the restricted unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from eosdsl.data import (
    CIFAR10_FILES,
    FASHION_MNIST_DEFAULT_DIR,
    DatasetNotFoundError,
    IDXFormatError,
    UnsafePickleError,
    array_fingerprint,
    fashion_mnist_available,
    idx_dims,
    load_cifar10,
    load_fashion_mnist,
    read_cifar10_batch,
    read_idx,
    safe_load_pickle,
    take_first,
    write_idx,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fashion-mnist-mini"
#: array_fingerprint(x_train, y_train, x_test, y_test) of the fixture (see tests/fixtures/make_fixtures.py)
FIXTURE_ARRAYS_FINGERPRINT = "883a9b66b63ec956365674e99d2da08d2491d11052a7bad58f2f8a77c4d93b43"
HAVE_FASHION_MNIST = fashion_mnist_available()


# -------------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    rng = np.random.Generator(np.random.PCG64(0))
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    p = write_idx(tmp_path / name, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = read_idx(p)
    assert b.dtype == a.dtype and b.dtype.isnative and np.array_equal(a, b)


def test_idx_layout_matches_spec(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw = write_idx(tmp_path / "x", a).read_bytes()
    assert raw == b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(range(6))
    lab = write_idx(tmp_path / "l", np.array([7, 1], dtype=np.uint8)).read_bytes()
    assert lab[:4] == (0x00000801).to_bytes(4, "big")
    i32 = write_idx(tmp_path / "i", np.array([1, -2], dtype=np.int32)).read_bytes()
    assert i32 == b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">ii", 1, -2)
    # gzip detection is by content, not by name; the gzip bytes are reproducible
    assert np.array_equal(read_idx(write_idx(tmp_path / "z", a, compress=True)), a)
    assert write_idx(tmp_path / "z1.gz", a).read_bytes() == write_idx(tmp_path / "z2.gz", a).read_bytes()
    with pytest.raises(TypeError, match="IDX cannot store"):
        write_idx(tmp_path / "bad", np.zeros(2, dtype=np.uint16))


def _images_idx(n=4) -> bytes:
    return b"\x00\x00\x08\x03" + struct.pack(">III", n, 2, 2) + bytes(range(4 * n))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x00\x00\x08", "too short"),
        (b"\x01\x00\x08\x03" + _images_idx()[4:], "bad IDX magic number 0x01000803"),
        (b"\x00\x00\x0a\x03" + _images_idx()[4:], "unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (_images_idx()[:10], "truncated IDX header"),
        (_images_idx()[:-1], "truncated: dims \\(4, 2, 2\\) of uint8 need 16 bytes, found 15"),
        (_images_idx() + b"\x00", "trailing bytes"),
        (gzip.compress(_images_idx())[:-12], "corrupt or truncated gzip"),
    ],
)
def test_corrupted_idx_gives_clear_errors(tmp_path, content, match):
    p = tmp_path / "broken-idx3-ubyte"
    p.write_bytes(content)
    with pytest.raises(IDXFormatError, match=match) as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_idx_expected_magic(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(_images_idx())
    assert read_idx(p, expect_type=0x08, expect_ndim=3).shape == (4, 2, 2)
    with pytest.raises(IDXFormatError, match="0x00000803, expected 0x00000801"):
        read_idx(p, expect_type=0x08, expect_ndim=1)


# ---------------------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_fixture_always_runs():
    ds = load_fashion_mnist(FIXTURE)
    assert ds.x_train.shape == (64, 28, 28) and ds.x_test.shape == (32, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.n_classes == 10 and ds.input_shape == (28, 28) and ds.targets == "labels"
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert ds.description == {"source": {"kind": "fashion_mnist"}, "targets": "labels", "pipeline": []}
    assert array_fingerprint(ds.x_train, ds.y_train, ds.x_test, ds.y_test) == FIXTURE_ARRAYS_FINGERPRINT
    assert load_fashion_mnist(FIXTURE).fingerprint == ds.fingerprint


def test_fashion_mnist_raw_files_and_missing(tmp_path):
    # uncompressed files with the same names load the same, and identity does not depend on the path
    for p in FIXTURE.iterdir():
        (tmp_path / p.name.removesuffix(".gz")).write_bytes(gzip.decompress(p.read_bytes()))
    assert load_fashion_mnist(tmp_path).fingerprint == load_fashion_mnist(FIXTURE).fingerprint
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="lacks t10k-labels-idx1-ubyte") as e:
        load_fashion_mnist(tmp_path)
    assert "dataset-fashion-mnist" in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_fashion_mnist_label_count_mismatch(tmp_path):
    for p in FIXTURE.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(31, dtype=np.uint8))
    with pytest.raises(IDXFormatError, match="32 images but .* 31 labels"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("first", [(64, None), (10, 0), (1, 32), (33, 5)])
@pytest.mark.parametrize("gz", [True, False])
def test_first_is_take_first_reading_only_those_images(tmp_path, first, gz):
    # Oracle: take_first on the whole dataset. Same arrays, description and fingerprint (run identity).
    folder = FIXTURE
    if not gz:
        folder = tmp_path
        for p in FIXTURE.iterdir():
            (tmp_path / p.name.removesuffix(".gz")).write_bytes(gzip.decompress(p.read_bytes()))
    fast, slow = load_fashion_mnist(folder, first=first), take_first(load_fashion_mnist(folder), *first)
    assert fast.description == slow.description and fast.fingerprint == slow.fingerprint
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name))
        assert getattr(fast, name).dtype == getattr(slow, name).dtype


@pytest.mark.parametrize("first", [(65, 0), (1, 33), (0, 0), (1, -1), (True, 0)])
def test_first_errors_are_take_firsts(first):
    whole = load_fashion_mnist(FIXTURE)
    with pytest.raises(ValueError) as expected:
        take_first(whole, *first)
    with pytest.raises(ValueError) as got:
        load_fashion_mnist(FIXTURE, first=first)
    assert str(got.value) == str(expected.value)


def test_first_reads_only_the_head_of_the_images(tmp_path):
    # Images past the requested ones are never decompressed: a file truncated after them still loads
    # with first=, and is an error for a whole read (and for first= asking for the truncated part).
    for p in FIXTURE.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    images = tmp_path / "train-images-idx3-ubyte.gz"
    whole = read_idx(images)
    write_idx(images, whole)  # a gzip stream we then cut inside the payload of image ~40 of 64
    raw = images.read_bytes()
    head = read_idx(images, count=40)
    images.write_bytes(raw[: len(raw) * 3 // 4])
    assert np.array_equal(read_idx(images, count=10), head[:10])
    ds = load_fashion_mnist(tmp_path, first=(10, 0))
    assert np.array_equal(ds.x_train, whole[:10])
    with pytest.raises(IDXFormatError, match="corrupt or truncated gzip"):
        read_idx(images)
    with pytest.raises(IDXFormatError, match="corrupt or truncated gzip"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(IDXFormatError, match="holds 64 entries, 65 requested"):
        read_idx(images, count=65)


def test_count_of_every_entry_is_a_whole_read_and_count_is_checked(tmp_path):
    p = tmp_path / "extra"
    p.write_bytes(_images_idx() + b"\x00")  # 4 images and a trailing byte
    with pytest.raises(IDXFormatError, match="trailing bytes"):
        read_idx(p, count=4)  # all the entries: the whole file is read and checked
    assert read_idx(p, count=3).shape == (3, 2, 2)  # a partial read does not reach the end
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="count must be an integer >= 0"):
            read_idx(p, count=bad)


def test_idx_dims_reads_the_header(tmp_path):
    p = write_idx(tmp_path / "a.gz", np.zeros((5, 3, 2), dtype=np.uint8))
    assert idx_dims(p) == (5, 3, 2) and idx_dims(p, expect_type=0x08, expect_ndim=3) == (5, 3, 2)
    with pytest.raises(IDXFormatError, match="expected 0x00000801"):
        idx_dims(p, expect_ndim=1)
    raw = tmp_path / "raw"
    raw.write_bytes(gzip.decompress(p.read_bytes())[:-7])  # truncated payload: the header is fine
    assert idx_dims(raw) == (5, 3, 2)
    with pytest.raises(IDXFormatError, match="first 4 entries of dims \\(5, 3, 2\\) of uint8 need 24"):
        read_idx(raw, count=4)
    whole = "truncated: dims \\(5, 3, 2\\) of uint8 need 30 bytes, found 23"
    with pytest.raises(IDXFormatError, match=whole):
        read_idx(raw, count=5)


def test_default_location_is_the_debian_package():
    assert Path("/usr/share/datasets/fashion-mnist") == FASHION_MNIST_DEFAULT_DIR


@pytest.mark.skipif(
    not HAVE_FASHION_MNIST,
    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_DEFAULT_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.n_classes == 10
    assert np.array_equal(np.bincount(ds.y_train), [6000] * 10)
    assert np.array_equal(np.bincount(ds.y_test), [1000] * 10)
    fx = load_fashion_mnist(FIXTURE)  # the fixture is the head of the real data
    assert np.array_equal(fx.x_train, ds.x_train[:64]) and np.array_equal(fx.y_train, ds.y_train[:64])
    assert np.array_equal(fx.x_test, ds.x_test[:32]) and np.array_equal(fx.y_test, ds.y_test[:32])


# --------------------------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(n: int, seed: int, label: bytes) -> dict:
    rng = np.random.Generator(np.random.PCG64(seed))
    return {
        b"batch_label": label,
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _write_cifar(root: Path, n: int = 4) -> Path:
    """A miniature cifar-10-batches-py/ in the real format, pickled by numpy with protocol 2."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, name in enumerate(CIFAR10_FILES):
        with (d / name).open("wb") as f:
            pickle.dump(_cifar_batch(n, i, f"batch {i}".encode()), f, protocol=2)
    return d


def test_cifar10_loader_on_synthetic_batches(tmp_path):
    d = _write_cifar(tmp_path)
    ds = load_cifar10(tmp_path)  # the parent directory works, and so does the batches directory
    assert load_cifar10(d).fingerprint == ds.fingerprint
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64 and ds.n_classes == 10
    b1 = _cifar_batch(4, 0, b"")
    # row layout: 1024 R, 1024 G, 1024 B, each 32x32 row-major -> NHWC
    assert np.array_equal(
        ds.x_train[1, 5, 7], b1[b"data"][1, [5 * 32 + 7, 1024 + 5 * 32 + 7, 2048 + 5 * 32 + 7]]
    )
    assert np.array_equal(ds.y_train[:4], b1[b"labels"])
    assert np.array_equal(ds.x_test.reshape(4, -1)[:, :0], np.zeros((4, 0)))
    nchw = load_cifar10(d, layout="NCHW")
    assert nchw.x_train.shape == (20, 3, 32, 32) and np.array_equal(
        nchw.x_train.transpose(0, 2, 3, 1), ds.x_train
    )
    one = load_cifar10(d, train_batches=(1,))
    assert one.n_train == 4 and np.array_equal(one.x_train, ds.x_train[:4])
    assert one.description["source"] == {"kind": "cifar10", "train_batches": [1], "layout": "NHWC"}
    assert len({ds.fingerprint, nchw.fingerprint, one.fingerprint}) == 3


def test_cifar10_missing_files_error_lists_them(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_cifar10(tmp_path / "nope")
    msg = str(e.value)
    assert (
        all(n in msg for n in CIFAR10_FILES) and "cifar-10-python.tar.gz" in msg and "does not exist" in msg
    )
    d = _write_cifar(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_3"):
        load_cifar10(tmp_path)
    assert load_cifar10(tmp_path, train_batches=(1, 2)).n_train == 8


def test_cifar10_batch_validation(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match="3072"):
        read_cifar10_batch(p)
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2))
    with pytest.raises(ValueError, match="outside 0..9"):
        read_cifar10_batch(p)
    p.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="dict"):
        read_cifar10_batch(p)
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)[:50])
    with pytest.raises(ValueError, match="not a readable CIFAR-10"):
        read_cifar10_batch(p)


class _Py2StylePickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle wrote the CIFAR batches: str/bytes as BINSTRING opcodes
    and numpy 1.x's global name ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_binstring(self, obj):
        b = obj.encode("ascii") if isinstance(obj, str) else obj
        if len(b) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)

    dispatch[bytes] = _save_binstring
    dispatch[str] = _save_binstring

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def test_cifar10_python2_style_batch(tmp_path):
    batch = _cifar_batch(3, 7, b"training batch 1 of 5")
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(batch)
    raw = buf.getvalue()
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw
    p = tmp_path / "data_batch_1"
    p.write_bytes(raw)
    data, labels = read_cifar10_batch(p)
    assert np.array_equal(data, batch[b"data"]) and np.array_equal(labels, batch[b"labels"])
    assert safe_load_pickle(p)[b"filenames"] == batch[b"filenames"]


# ---------------------------------------------------------------------------------- restricted unpickler


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('PWNED').touch()",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=protocol)
    p = tmp_path / "data_batch_1"
    p.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os|nt)\.system") as e:
        safe_load_pickle(p)
    assert str(p) in str(e.value)
    assert not marker.exists()
    # the same through the CIFAR loader
    d = _write_cifar(tmp_path / "c")
    (d / "test_batch").write_bytes(payload)
    with pytest.raises(UnsafePickleError):
        load_cifar10(d.parent)
    assert not marker.exists()
    # sanity: an unrestricted unpickler *would* run it
    pickle.loads(payload)
    assert marker.exists()


def test_other_globals_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for obj in (_EvalEvil(), np.float64(1.0), {b"x": {1, 2}}, Path("x")):
        with pytest.raises(UnsafePickleError, match="refusing"):
            safe_load_pickle(io.BytesIO(pickle.dumps(obj, protocol=2)))
    assert not (tmp_path / "PWNED").exists()
    # _codecs.encode is admitted only for latin-1 (how Python 3 writes bytes at protocol 2)
    sneaky = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(UnsafePickleError, match="latin-1"):
        safe_load_pickle(io.BytesIO(sneaky))
    ok = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00latin1\x86R."
    assert safe_load_pickle(io.BytesIO(ok)) == b"abc"


class _RawObjectArray:
    """Asks the unpickler to *call* numpy.ndarray over attacker bytes: an object array of fake pointers."""

    def __reduce__(self):
        return (np.ndarray, ((1,), np.dtype("O"), b"ABCDEFGH"))


def test_numpy_constructors_cannot_be_abused():
    with pytest.raises(UnsafePickleError, match="dtype 'O8'"):
        safe_load_pickle(io.BytesIO(pickle.dumps(_RawObjectArray(), protocol=2)))
    # the same with a harmless dtype still refuses the direct call of numpy.ndarray
    direct = b"\x80\x02cnumpy\nndarray\nK\x01\x85\x85R."  # ndarray((1,))
    with pytest.raises(UnsafePickleError, match="call numpy.ndarray"):
        safe_load_pickle(io.BytesIO(direct))
    for obj in (np.array([1, "a"], dtype=object), np.zeros(2, dtype=[("a", "u1"), ("b", "f4")])):
        with pytest.raises(UnsafePickleError, match="refusing numpy dtype"):
            safe_load_pickle(io.BytesIO(pickle.dumps(obj, protocol=2)))
    # an array state whose data does not match its shape is refused
    good = pickle.dumps(np.arange(4, dtype=np.uint8), protocol=3)  # protocol 3: no framing
    bad = good.replace(b"C\x04\x00\x01\x02\x03", b"C\x03\x00\x01\x02")  # SHORT_BINBYTES, 4 -> 3 bytes
    assert bad != good and np.array_equal(safe_load_pickle(io.BytesIO(good)), np.arange(4))
    with pytest.raises(UnsafePickleError, match="needs 4"):
        safe_load_pickle(io.BytesIO(bad))


def test_plain_data_and_arrays_admitted():
    obj = {
        b"a": [1, 2.5, -3, True, None],
        "b": (b"bytes", "str"),
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "f": np.ones((2, 2), dtype=">f8", order="F"),
    }
    for protocol in (2, 3, 4):
        raw = pickle.dumps(obj, protocol=protocol)
        out, ref = safe_load_pickle(io.BytesIO(raw)), pickle.loads(raw, encoding="bytes")
        assert out[b"a"] == obj[b"a"] and out["b"] == obj["b"]
        assert np.array_equal(out["arr"], obj["arr"]) and out["arr"].dtype == np.int16
        assert (
            np.array_equal(out["f"], obj["f"]) and out["f"].dtype == ref["f"].dtype
        )  # as numpy itself loads it
