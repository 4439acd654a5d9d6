"""The CIFAR-10 reader against hostile and broken pickles, and numpy's own protocols.

Truncated, too small or deeply nested batches are one-line :class:`CifarFormatError`/
:class:`UnsafePickleError` messages naming the file; a shared-reference bomb is refused before it
expands; BUILD cannot set attributes of the loader's own functions; and batches pickled by numpy at
protocols 2 to 5 load.
"""

from __future__ import annotations

import pickle
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from eosdsl.data.images import (
    CifarFormatError,
    DataFormatError,
    UnsafePickleError,
    _frombuffer,
    _reconstruct,
    read_cifar10_batch,
    safe_load_pickle,
)


def _batch(n: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _write(tmp_path: Path, raw: bytes, name: str = "data_batch_1") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def _refused(path: Path, error: type[Exception], words: str) -> str:
    with pytest.raises(error) as info:
        read_cifar10_batch(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and words in message, message
    return message


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol):
    batch = _batch()
    data, labels = read_cifar10_batch(_write(tmp_path, pickle.dumps(batch, protocol=protocol)))
    assert np.array_equal(data, batch[b"data"]) and labels.tolist() == batch[b"labels"]
    arrays = {"f": np.ones((2, 3), ">f8", order="F"), "i": np.arange(5, dtype=np.int16)}
    loaded = safe_load_pickle(_write(tmp_path, pickle.dumps(arrays, protocol=protocol), "x"))
    for key, value in arrays.items():
        assert np.array_equal(loaded[key], value) and loaded[key].dtype == value.dtype.newbyteorder("=")


def test_truncated_and_too_small_batches(tmp_path):
    raw = pickle.dumps(_batch(), protocol=2)
    for cut in (0, 1, 2, 50, len(raw) // 2, len(raw) - 1):
        _refused(_write(tmp_path, raw[:cut]), CifarFormatError, "not a readable CIFAR-10 python batch")
    empty = {b"data": np.zeros((0, 3072), np.uint8), b"labels": []}
    _refused(_write(tmp_path, pickle.dumps(empty, protocol=2)), CifarFormatError, "holds no images")
    narrow = {b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}
    _refused(_write(tmp_path, pickle.dumps(narrow, protocol=2)), CifarFormatError, "(N, 3072)")
    short = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}
    _refused(_write(tmp_path, pickle.dumps(short, protocol=2)), CifarFormatError, "2 integers")
    assert issubclass(CifarFormatError, DataFormatError) and issubclass(DataFormatError, ValueError)


def test_only_the_expected_dict_of_arrays(tmp_path):
    listed = {b"data": [[0] * 3072, [1] * 3072], b"labels": [0, 1]}  # a list, not an array
    _refused(_write(tmp_path, pickle.dumps(listed, protocol=2)), CifarFormatError, "integer array (N, 3072)")
    extra = {**_batch(), b"extra": 1}
    _refused(_write(tmp_path, pickle.dumps(extra, protocol=2)), CifarFormatError, "unexpected entry")
    bools = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [True, 0]}
    _refused(_write(tmp_path, pickle.dumps(bools, protocol=2)), CifarFormatError, "2 integers")


def test_deep_nesting_is_refused_without_recursion(tmp_path):
    deep = b"\x80\x02}(C\x04data" + b"]" * 100_000 + b"a" * 99_999 + b"C\x06labels]u."
    _refused(_write(tmp_path, deep), UnsafePickleError, "nested deeper than")


def test_shared_reference_bomb_is_refused_before_expanding(tmp_path):
    body = b"K\x01q\x00" + b"](h\x00h\x00eq\x00" * 40  # x = 1; 40 times: x = [x, x]
    raw = b"\x80\x02}(C\x04data" + body + b"C\x06labels]u."
    assert len(raw) < 500
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    _refused(_write(tmp_path, raw), UnsafePickleError, "shared or recursive")
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB
    recursive = b"\x80\x02]q\x00h\x00a."  # a list that contains itself
    with pytest.raises(UnsafePickleError, match="shared or recursive"):
        safe_load_pickle(_write(tmp_path, recursive, "r"))


def test_build_cannot_set_attributes_of_the_loader(tmp_path):
    defaults = _reconstruct.__defaults__
    attack = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nN}X\x0c\x00\x00\x00__defaults__(K\x01tq\x01s"
    attack += b"\x86b."  # BUILD with (None, {"__defaults__": (1,)}): setattr on the function
    with pytest.raises(UnsafePickleError, match="refusing to set the state of function"):
        safe_load_pickle(_write(tmp_path, attack))
    assert _reconstruct.__defaults__ == defaults and _frombuffer.__defaults__ is None
    dup = b"\x80\x02]2."  # DUP: a shared reference without the memo
    with pytest.raises(UnsafePickleError, match="opcode DUP"):
        safe_load_pickle(_write(tmp_path, dup, "d"))
    # NEWOBJ, NEWOBJ_EX, INST, OBJ, NEXT_BUFFER, EXT1
    for opcode in (b"\x81", b"\x92", b"i", b"o", b"\x97", b"\x82"):
        with pytest.raises(UnsafePickleError, match="refusing pickle opcode"):
            safe_load_pickle(_write(tmp_path, b"\x80\x05" + opcode, "o"))


def test_array_shapes_are_checked_before_allocating(tmp_path):
    good = pickle.dumps(np.arange(4, dtype=np.uint8), protocol=5)
    huge = good.replace(b"K\x04\x85", b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10\x85")  # shape (2**60,)
    assert huge != good
    with pytest.raises(UnsafePickleError, match="refusing numpy array shape"):
        safe_load_pickle(_write(tmp_path, huge))
