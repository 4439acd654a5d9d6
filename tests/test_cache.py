"""The dataset cache (``eosdsl.cache``): where the caches live, and that a dataset entry is keyed by
content and served only when intact. Compiled programs and initial parameters: test_compiled_cache.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from eosdsl import cache
from eosdsl.cache import cache_root, cached_dataset, dataset_key, read_dataset, write_dataset
from eosdsl.data import load_fashion_mnist, pipeline
from eosdsl.problems import supervised
from eosdsl.spec.load import load

FIXTURE = Path(__file__).parent / "fixtures" / "fashion-mnist-mini"
ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name: cached
precision: float32
problem:
  kind: supervised
  data: {source: fashion_mnist, path: %s}
  pipeline:
    - {take_first: {n_train: 40, n_test: 20}}
    - scale
    - {standardize: {mode: global}}
    - flatten
  model: {kind: mlp, widths: [8], activation: relu, bias: false}
  loss: {kind: cross_entropy}
optimizer: {kind: gd, lr: %s}
train: {steps: 5}
measure: [{kind: loss}]
"""


def _problem(data: Path, lr: float = 0.1, pipeline_text: str | None = None):
    text = SPEC % (data, lr)
    if pipeline_text is not None:
        text = text.replace("    - flatten\n", pipeline_text)
    return load("c.yaml", text=text).spec.problem


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory for this test (conftest turns caches off for every other test)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(root))
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A private copy of the mini Fashion-MNIST fixture (tests change its bytes)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "fmnist"))


class Counting:
    """Counts how often the IDX files are read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        self.first: list = []  # what each read asked for: a leading take_first reads only its samples
        real = supervised.images.load_fashion_mnist

        def counted(path=None, first=None):
            self.reads += 1
            self.first.append(first)
            return real(path, first)

        monkeypatch.setattr(supervised.images, "load_fashion_mnist", counted)


# ------------------------------------------------------------------------------------------ location


def test_cache_root_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$EOSDSL_CACHE_DIR, else $XDG_CACHE_HOME/eosdsl, else ~/.cache/eosdsl; ``off`` disables."""
    assert cache_root({"EOSDSL_CACHE_DIR": "off"}) is None
    assert cache_root({"EOSDSL_CACHE_DIR": "OFF", "XDG_CACHE_HOME": "/x"}) is None
    assert cache_root({"EOSDSL_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_root({"XDG_CACHE_HOME": "/var/cache/me"}) == Path("/var/cache/me/eosdsl")
    assert cache_root({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache" / "eosdsl"
    assert cache_root({}) == Path.home() / ".cache" / "eosdsl"


def test_tests_do_not_write_into_home() -> None:
    """conftest turns the caches off for the whole test session (and for the processes it starts)."""
    assert os.environ[cache.CACHE_ENV] == "off" and cache_root() is None


# ------------------------------------------------------------------------------------------ datasets


def test_second_load_is_served_from_the_cache(cache_dir: Path, data: Path, monkeypatch) -> None:
    """The preprocessed dataset is stored once and then served without reading the IDX files; it is the
    same dataset (fingerprint, arrays, description), whatever the learning rate of the spec."""
    reads = Counting(monkeypatch)
    first = supervised.load_data(_problem(data, 0.1))
    second = supervised.load_data(_problem(data, 0.2))
    assert reads.reads == 1 and reads.first == [(40, 20)]
    expected = pipeline(load_fashion_mnist(FIXTURE), _problem(FIXTURE).model_dump(mode="json")["pipeline"])
    for ds in (first, second):
        assert ds.fingerprint == expected.fingerprint and ds.description == expected.description
        np.testing.assert_array_equal(ds.x_train, expected.x_train)
        assert ds.x_train.dtype == expected.x_train.dtype and not ds.x_train.flags.writeable
    entries = list((cache_dir / "datasets").iterdir())
    assert [p.suffix for p in entries] == [".npz"]  # one entry, no temporary file left behind


def test_key_is_content_not_location(cache_dir: Path, data: Path, tmp_path: Path, monkeypatch) -> None:
    """The same bytes in another directory share the entry; a changed byte in a file, another pipeline or
    another eosdsl code digest does not."""
    reads = Counting(monkeypatch)
    supervised.load_data(_problem(data))
    elsewhere = Path(shutil.copytree(data, tmp_path / "elsewhere"))
    supervised.load_data(_problem(elsewhere))
    assert reads.reads == 1
    supervised.load_data(_problem(data, pipeline_text="    - flatten\n    - one_hot\n"))
    assert reads.reads == 2
    labels = elsewhere / "train-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[-9] ^= 1  # another gzip payload: an invalid file or other labels, either way another key
    labels.write_bytes(bytes(raw))
    files = supervised.source_files(_problem(elsewhere).data)
    assert dataset_key({"source": "fashion_mnist"}, files, []) != dataset_key(
        {"source": "fashion_mnist"}, supervised.source_files(_problem(data).data), []
    )
    key = dataset_key({"source": "fashion_mnist"}, files, [])
    monkeypatch.setattr(cache, "code_digest", lambda: "another version")
    assert dataset_key({"source": "fashion_mnist"}, files, []) != key


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "tampered array", "other key"])
def test_a_damaged_entry_is_ignored_and_rebuilt(
    cache_dir: Path, data: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A truncated, garbled or empty entry, one whose arrays no longer give its fingerprint, and one stored
    under another key are misses: the data is read again, the entry rewritten, and the result is right."""
    reads = Counting(monkeypatch)
    good = supervised.load_data(_problem(data))
    (entry,) = (cache_dir / "datasets").iterdir()
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"PK\x03\x04" + os.urandom(200))
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "tampered array":
        with np.load(entry) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["x_train"] = arrays["x_train"].copy()
        arrays["x_train"][0, 0] += 1.0
        with open(entry, "wb") as f:
            np.savez(f, **arrays)
    else:
        write_dataset(entry, "f" * 64, good)  # a valid entry of another key under this key's name
        assert read_dataset(entry, entry.stem) is None
    again = supervised.load_data(_problem(data))
    assert reads.reads == 2
    assert again.fingerprint == good.fingerprint
    np.testing.assert_array_equal(again.x_train, good.x_train)
    third = supervised.load_data(_problem(data))  # the rebuilt entry serves
    assert reads.reads == 2 and third.fingerprint == good.fingerprint


def test_cache_off_and_unwritable(data: Path, tmp_path: Path, monkeypatch) -> None:
    """``EOSDSL_CACHE_DIR=off`` reads the files every time and writes nothing; a cache directory that
    cannot be written is skipped."""
    reads = Counting(monkeypatch)
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    supervised.load_data(_problem(data))
    supervised.load_data(_problem(data))
    assert reads.reads == 2
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocked))
    assert supervised.load_data(_problem(data)).n_train == 40
    assert reads.reads == 3


def test_write_is_atomic(cache_dir: Path, data: Path, monkeypatch) -> None:
    """A write that fails half-way leaves neither an entry nor a temporary file."""
    ds = pipeline(load_fashion_mnist(data), ["flatten"])
    path = cache_dir / "datasets" / "k.npz"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        write_dataset(path, "k", ds)
    assert list(path.parent.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv(cache.CACHE_ENV, str(cache_dir))
    built = []
    served = cached_dataset(lambda: "k", lambda: built.append(1) or ds)
    assert built == [1] and served is ds
    assert cached_dataset(lambda: "k", lambda: built.append(1) or ds).fingerprint == ds.fingerprint
    assert built == [1]


def test_generated_data_is_not_cached(cache_dir: Path) -> None:
    """Only file-backed sources are cached: generated data is as fast to make again."""
    text = (SPEC % ("x", 0.1)).replace(
        "data: {source: fashion_mnist, path: x}",
        "data: {source: gaussian_mixture, n: 20, d: 3, k: 2, separation: 4.0, seed: 1, n_test: 10}",
    )
    text = text.replace("    - {take_first: {n_train: 40, n_test: 20}}\n    - scale\n", "")
    supervised.load_data(load("g.yaml", text=text).spec.problem)
    assert not (cache_dir / "datasets").exists()


# ------------------------------------------------------------------------------------------ measurements


def test_a_measurement_is_kept_per_document_and_remeasured_when_damaged(cache_dir: Path) -> None:
    """cached_measurement runs ``measure`` once per document and then serves its JSON with kept=True;
    another document, a damaged entry or a value that is not JSON (NaN) is measured again."""
    calls: list[str] = []

    def measure(tag: str, value: float = 1.5):
        return lambda: calls.append(tag) or {"seconds": value, "tag": tag}

    first = cache.cached_measurement({"what": "a"}, measure("a"))
    again = cache.cached_measurement({"what": "a"}, measure("a-again"))
    other = cache.cached_measurement({"what": "b"}, measure("b"))
    assert first == ({"seconds": 1.5, "tag": "a"}, False)
    assert again == ({"seconds": 1.5, "tag": "a"}, True)
    assert other == ({"seconds": 1.5, "tag": "b"}, False) and calls == ["a", "b"]
    entries = sorted((cache_dir / "measurements" / cache.platform_tag()).iterdir())
    assert len(entries) == 2 and all(e.suffix == ".json" for e in entries)
    for entry in entries:
        entry.write_text("{not json")
    assert cache.cached_measurement({"what": "a"}, measure("a2")) == ({"seconds": 1.5, "tag": "a2"}, False)
    assert cache.cached_measurement({"what": "a"}, measure("a3")) == ({"seconds": 1.5, "tag": "a2"}, True)
    nan = cache.cached_measurement({"what": "c"}, measure("c", float("nan")))
    assert nan[1] is False and cache.cached_measurement({"what": "c"}, measure("c2"))[0]["tag"] == "c2"
    assert calls == ["a", "b", "a2", "c", "c2"]


def test_measurements_are_not_kept_with_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    calls: list[int] = []
    for _ in range(2):
        value = cache.cached_measurement({"what": "a"}, lambda: calls.append(1) or {"s": 1})
        assert value == ({"s": 1}, False)
    assert calls == [1, 1]
