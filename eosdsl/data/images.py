r"""Image datasets read from local files: IDX (Fashion-MNIST) and CIFAR-10 python batches.

Nothing here downloads: the project machines (and lent GPU machines) have no network access, so data is
read from a local directory.

**IDX** (LeCun's MNIST format). A file is a 4-byte magic number ``0x00 0x00 T N`` — two zero bytes, a type
code ``T`` (0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of
dimensions ``N`` — then ``N`` big-endian uint32 dimension sizes, then the ``prod(dims)`` values in C order,
big-endian. MNIST-style images have magic ``0x00000803`` (ubyte, 3-d: count × rows × cols), labels
``0x00000801`` (ubyte, 1-d). Files may be gzip-compressed (detected from the content, not the name).

**Fashion-MNIST** (Xiao et al. 2017; paper 004 App. F uses 1,000 train / 200 test samples): the
Debian package ``dataset-fashion-mnist`` installs the four gzipped IDX files in
:data:`FASHION_MNIST_DEFAULT_DIR` (``/usr/share/datasets/fashion-mnist``); ``path=`` overrides it.

**CIFAR-10** "python version" (``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html):
directory ``cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5`` and ``test_batch``. Each is a
Python-2 pickle (protocol 2) of a dict with ``b"data"``: a numpy ``uint8`` array ``(10000, 3072)`` (each row
= 1024 red, then 1024 green, then 1024 blue values of a 32×32 image, row-major) and ``b"labels"``: a list of
10000 ints in 0..9 (also ``b"batch_label"``, ``b"filenames"``). The batches are loaded with
:class:`RestrictedUnpickler`, which refuses every global except numpy's array-reconstruction helpers, so a
tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import math
import os
import pickle
import pickletools
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from eosdsl.data.dataset import Dataset, make_dataset
from eosdsl.data.preprocess import take_first, take_first_counts

__all__ = [
    "CIFAR10_CLASSES",
    "MAX_PICKLE_BYTES",
    "CifarFormatError",
    "DataFormatError",
    "CIFAR10_FILES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEFAULT_DIR",
    "FASHION_MNIST_FILES",
    "DatasetNotFoundError",
    "IDXFormatError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "fashion_mnist_available",
    "idx_dims",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist_format",
    "read_cifar10_batch",
    "read_idx",
    "safe_load_pickle",
    "write_idx",
]

PathLike = str | os.PathLike[str]


class DatasetNotFoundError(FileNotFoundError):
    """Data files are missing; the message lists the expected file names and where to get them."""


class DataFormatError(ValueError):
    """A data file is malformed (the message names the file)."""


class IDXFormatError(DataFormatError):
    """A file is not a valid IDX file (bad magic, unknown type, truncated or oversized payload)."""


class CifarFormatError(DataFormatError):
    """A CIFAR-10 batch is unreadable or is not the expected dict of arrays (truncated, wrong shape, ...)."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle refers to a global that :class:`RestrictedUnpickler` does not admit."""


# ------------------------------------------------------------------------------------------------- IDX

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def _idx_stream(path: Path) -> Iterator[BinaryIO]:
    """The bytes of an IDX file, decompressed as they are read when it is gzip (by its magic bytes);
    a corrupt or truncated gzip stream raises :class:`IDXFormatError` naming the file. gzip checks its
    CRC at the end of the stream, so a stream read only in part is not checked for corruption."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            try:
                yield stream  # type: ignore[misc]
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:
                raise IDXFormatError(f"{path}: corrupt or truncated gzip stream ({e})") from e


def _idx_header(
    f: BinaryIO, path: Path, expect_type: int | None, expect_ndim: int | None
) -> tuple[tuple[int, ...], np.dtype]:
    """(dims, big-endian dtype) from the header of the IDX stream ``f`` (read past it), checked."""
    data = f.read(4)
    if len(data) < 4:
        raise IDXFormatError(f"{path}: {len(data)} bytes is too short for an IDX magic number")
    z0, z1, code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if z0 or z1:
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{magic:08X} (the first two bytes must be zero; images have "
            "0x00000803, labels 0x00000801)"
        )
    if code not in _IDX_TYPES:
        raise IDXFormatError(
            f"{path}: unknown IDX type code 0x{code:02X} in magic 0x{magic:08X} "
            f"(known: {', '.join(f'0x{c:02X}' for c in _IDX_TYPES)})"
        )
    if ndim == 0:
        raise IDXFormatError(f"{path}: IDX magic 0x{magic:08X} declares 0 dimensions")
    if (expect_type is not None and code != expect_type) or (expect_ndim is not None and ndim != expect_ndim):
        want = f"0x0000{expect_type or code:02X}{expect_ndim or ndim:02X}"
        raise IDXFormatError(f"{path}: IDX magic number is 0x{magic:08X}, expected {want}")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXFormatError(
            f"{path}: truncated IDX header ({4 + len(sizes)} bytes, need {4 + 4 * ndim} for {ndim} dims)"
        )
    dims = tuple(int.from_bytes(sizes[4 * i : 4 + 4 * i], "big") for i in range(ndim))
    return dims, _IDX_TYPES[code]


def idx_dims(
    path: PathLike, *, expect_type: int | None = None, expect_ndim: int | None = None
) -> tuple[int, ...]:
    """The dimensions an IDX file declares, from its header alone (the payload is not read); the header
    is checked as by :func:`read_idx`."""
    path = Path(path)
    with _idx_stream(path) as f:
        return _idx_header(f, path, expect_type, expect_ndim)[0]


def read_idx(
    path: PathLike,
    *,
    expect_type: int | None = None,
    expect_ndim: int | None = None,
    count: int | None = None,
) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-byte-order numpy array of shape ``dims``.

    ``expect_type`` (e.g. ``0x08``) and ``expect_ndim`` (e.g. 3 for images, 1 for labels) check the magic
    number; together they pin it (``0x00000803`` / ``0x00000801``). Raises :class:`IDXFormatError` (naming
    the file) for: a file shorter than its header, nonzero leading magic bytes, an unknown type code,
    ``ndim == 0``, an unexpected type/ndim, a corrupt gzip stream, or a payload whose length differs from
    ``prod(dims) * itemsize`` (truncated or trailing bytes). Raises ``FileNotFoundError`` if the file does
    not exist.

    ``count`` (an int ≥ 0): only the first ``count`` entries along the first axis, shape
    ``(count, *dims[1:])``; ``count > dims[0]`` is an error, and ``count == dims[0]`` is a whole read.
    A partial read neither reads nor decompresses the rest of the file, so a truncation or trailing bytes
    past the entries read go unnoticed, and so does a corrupt byte *within* them in a gzip file (gzip's
    CRC covers the whole stream and is checked at its end).
    """
    path = Path(path)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"count must be an integer >= 0 or None, got {count!r}")
    with _idx_stream(path) as f:
        dims, dtype = _idx_header(f, path, expect_type, expect_ndim)
        rows = dims[0] if count is None else count
        if rows > dims[0]:
            raise IDXFormatError(f"{path}: holds {dims[0]} entries, {rows} requested")
        whole = rows == dims[0]
        shape = (rows, *dims[1:])
        expected = math.prod(shape) * dtype.itemsize
        data = f.read(expected)
        trailing = len(f.read()) if whole and len(data) == expected else 0  # reads to the CRC check
    if len(data) != expected or trailing:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        need = f"dims {dims}" if whole else f"the first {count} entries of dims {dims}"
        raise IDXFormatError(
            f"{path}: IDX payload {what}: {need} of {dtype.name} need {expected} bytes, "
            f"found {len(data) + trailing}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: Any, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (the inverse of :func:`read_idx`); gzip if ``compress``.

    ``compress=None`` compresses iff the name ends in ``.gz``. Supported dtypes: uint8, int8, int16, int32,
    float32, float64 (written big-endian). The gzip header carries no name and ``mtime=0``, so the bytes
    are reproducible. Returns the path.
    """
    path = Path(path)
    a = np.asarray(array)
    key = (a.dtype.kind, a.dtype.itemsize)
    if key not in _IDX_CODES or a.dtype.kind == "u" and a.dtype.itemsize != 1:
        raise TypeError(
            f"IDX cannot store dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64"
        )
    if a.ndim < 1 or a.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {a.ndim}")
    code = _IDX_CODES[key]
    be = np.ascontiguousarray(a, dtype=_IDX_TYPES[code])
    payload = (
        bytes([0, 0, code, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape) + be.tobytes()
    )
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:
            f.write(payload)
        payload = buf.getvalue()
    path.write_bytes(payload)
    return path


# -------------------------------------------------------------------------------------- Fashion-MNIST

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files (``dpkg -L``).
FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The four IDX files (each read as ``<name>.gz`` if present, else ``<name>``).
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _find_idx_files(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FASHION_MNIST_FILES.items():
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            return None
    return found


def fashion_mnist_files(path: PathLike | None = None) -> list[Path] | None:
    """The four IDX files :func:`load_fashion_mnist` reads from ``path`` (default: the Debian location), in
    :data:`FASHION_MNIST_FILES` order, or None if one is missing."""
    found = _find_idx_files(Path(path) if path is not None else FASHION_MNIST_DEFAULT_DIR)
    return None if found is None else [found[key] for key in FASHION_MNIST_FILES]


def fashion_mnist_available(path: PathLike | None = None) -> bool:
    """Whether all four Fashion-MNIST IDX files exist in ``path`` (default: the Debian location)."""
    return _find_idx_files(Path(path) if path is not None else FASHION_MNIST_DEFAULT_DIR) is not None


def load_mnist_format(
    path: PathLike,
    *,
    kind: str = "mnist_format",
    n_classes: int = 10,
    help_text: str = "",
    first: tuple[int, int | None] | None = None,
) -> Dataset:
    """Load an MNIST-format directory (the four files of :data:`FASHION_MNIST_FILES`, raw or ``.gz``).

    Returns ``x`` uint8 ``(n, rows, cols)`` exactly as stored (no scaling), int64 labels (encoding
    ``labels``) checked to lie in ``0..n_classes-1``, image and label counts checked to agree; the
    description's source is ``{"kind": kind}`` (the directory is not recorded: identity is content).

    Checks run in this order: each split's labels (read whole) and the image count its header declares,
    then the images.

    ``first=(n_train, n_test)`` returns ``take_first(dataset, n_train, n_test)`` (the same arrays,
    description and fingerprint from intact files, and take_first's errors for counts out of range) but
    reads and decompresses only those images: for 5,000 of Fashion-MNIST's 60,000 that is ~0.03 s
    instead of ~0.4 s. The label files are still read whole and checked as above, and the image files'
    headers are checked; their payload is checked only as far as it is read (:func:`read_idx`'s
    ``count``): a damaged byte among the images read is not detected in a gzip file. It changes the
    arrays, hence the fingerprint and the run's identity, so such a run is never mistaken for one on
    intact data.
    """
    directory = Path(path)
    files = _find_idx_files(directory)
    if files is None:
        names = ", ".join(f"{s}[.gz]" for s in FASHION_MNIST_FILES.values())
        missing = [
            s
            for s in FASHION_MNIST_FILES.values()
            if not any((directory / n).is_file() for n in (s + ".gz", s))
        ]
        state = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)}"
        raise DatasetNotFoundError(
            f"{kind}: directory {directory} {state}; expected the IDX files {names}. {help_text}"
        )
    labels, totals = {}, {}
    for split in ("train", "test"):
        images_file, labels_file = files[f"{split}_images"], files[f"{split}_labels"]
        labels[split] = read_idx(labels_file, expect_type=0x08, expect_ndim=1).astype(np.int64)
        totals[split] = idx_dims(images_file, expect_type=0x08, expect_ndim=3)[0]
        if totals[split] != labels[split].shape[0]:
            raise IDXFormatError(
                f"{images_file} holds {totals[split]} images but {labels_file} holds "
                f"{labels[split].shape[0]} labels"
            )
        if labels[split].size and labels[split].max() >= n_classes:
            raise IDXFormatError(f"{labels_file}: label {labels[split].max()} outside 0..{n_classes - 1}")
    counts: dict[str, int | None] = {"train": None, "test": None}
    if first is not None:
        counts["train"], counts["test"] = take_first_counts(*first, totals["train"], totals["test"])
    arrays = {
        split: (
            read_idx(files[f"{split}_images"], expect_type=0x08, expect_ndim=3, count=counts[split]),
            labels[split][: counts[split]],
        )
        for split in ("train", "test")
    }
    ds = make_dataset(
        arrays["train"][0],
        arrays["train"][1],
        arrays["test"][0],
        arrays["test"][1],
        n_classes=n_classes,
        description={"source": {"kind": kind}, "targets": "labels"},
    )
    return ds if first is None else take_first(ds, counts["train"], counts["test"])


def load_fashion_mnist(path: PathLike | None = None, first: tuple[int, int | None] | None = None) -> Dataset:
    """Fashion-MNIST: 60,000 train / 10,000 test uint8 images ``(28, 28)``, labels 0..9 (int64).

    ``path`` defaults to :data:`FASHION_MNIST_DEFAULT_DIR`, where ``apt-get install dataset-fashion-mnist``
    puts the files. Pixel values are raw 0..255 (apply ``scale`` etc. from :mod:`eosdsl.data.preprocess`);
    the class names are :data:`FASHION_MNIST_CLASSES`. Subsets as in paper 004 App. F (1,000 train / 200
    test): ``take_first(ds, 1000, 200)``, or ``first=(1000, 200)``, which gives the same dataset and reads
    only those images (:func:`load_mnist_format`). Raises :class:`DatasetNotFoundError` if files are
    missing.
    """
    directory = Path(path) if path is not None else FASHION_MNIST_DEFAULT_DIR
    return load_mnist_format(
        directory,
        kind="fashion_mnist",
        first=first,
        help_text=(
            "Install the Debian package with `apt-get install dataset-fashion-mnist` (files land in "
            f"{FASHION_MNIST_DEFAULT_DIR}) or pass path= to a directory holding them "
            "(https://github.com/zalandoresearch/fashion-mnist, data/fashion)."
        ),
    )


# ------------------------------------------------------------------------------- restricted unpickling
#
# How numpy pickles an array (protocols 0-4): ``_reconstruct(ndarray, (0,), b"b")`` makes an empty array,
# then BUILD calls its ``__setstate__((1, shape, dtype, is_fortran, rawdata))``; the dtype is pickled as
# ``dtype("u1", False, True)`` followed by BUILD with ``(3, byteorder, None, None, None, -1, -1, 0)``.
# Admitting the real ``numpy.ndarray`` / ``numpy.dtype`` would let a pickle *call* them with arbitrary
# arguments -- e.g. ``ndarray((1,), dtype("O"), b"<8 bytes>")`` builds an object array whose "pointers"
# are attacker bytes. So the admitted names resolve to stand-ins: ``_reconstruct`` and ``dtype`` return
# inert builder objects whose ``__setstate__`` only records a validated state, ``ndarray`` is a non-callable
# token, and after loading the builders are replaced by arrays made with ``np.frombuffer`` from plain bytes
# with a whitelisted numeric dtype. Numpy's own (un)pickling code never sees untrusted input.

#: Numeric dtype codes an admitted array may have (no object, string, void or structured dtypes).
_SAFE_DTYPE_CODES = frozenset(
    ["b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"]
)


def _text(v: Any) -> Any:
    return v.decode("latin-1") if isinstance(v, bytes) else v


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside a pickle: may be passed to ``_reconstruct``, never called."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(
            "refusing to call numpy.ndarray from a pickle (only _reconstruct is admitted)"
        )

    __hash__ = None  # type: ignore[assignment]


_NDARRAY = _NdarrayToken()


class _DtypeBuilder:
    """Result of ``numpy.dtype(code, align, copy)`` in a pickle; ``dtype`` is set once BUILD has run."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        code = _text(code)
        if not isinstance(code, str) or code not in _SAFE_DTYPE_CODES:
            raise UnsafePickleError(
                f"refusing numpy dtype {code!r} in a pickle; admitted: {', '.join(sorted(_SAFE_DTYPE_CODES))}"
            )
        self.code = code
        self.dtype: np.dtype | None = None

    def __setstate__(self, state: Any) -> None:
        if self.dtype is not None:
            raise UnsafePickleError("refusing a second BUILD of one numpy dtype")
        if not isinstance(state, tuple) or len(state) < 5 or any(v is not None for v in state[2:5]):
            raise UnsafePickleError(f"refusing numpy dtype state {state!r} (only simple numeric dtypes)")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"refusing numpy dtype byte order {order!r}")
        dt = np.dtype(self.code)
        self.dtype = dt.newbyteorder(order) if order in "<>" else dt

    def resolve(self) -> np.dtype:
        if self.dtype is None:  # a dtype pickled without BUILD state: native byte order
            return np.dtype(self.code)
        return self.dtype


class _ArrayBuilder:
    """Result of ``_reconstruct(ndarray, (0,), b"b")``; BUILD hands it the array state."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise UnsafePickleError("refusing a second BUILD of one numpy array")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError(
                "refusing numpy array state that is not (version, shape, dtype, fortran, data)"
            )
        shape, dtype, fortran, raw = state[-4:]
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran else "C")


def _array_from_bytes(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """A new numpy array from plain bytes with a whitelisted dtype, its shape checked against the data
    length before anything is allocated."""
    if not isinstance(dtype, _DtypeBuilder):
        raise UnsafePickleError(f"refusing numpy array state with dtype {type(dtype).__name__}")
    if (
        not isinstance(shape, tuple)
        or len(shape) > _MAX_NDIM
        or not all(type(v) is int and 0 <= v <= MAX_PICKLE_BYTES for v in shape)
    ):
        raise UnsafePickleError(f"refusing numpy array shape {str(shape)[:80]}")
    if order not in ("C", "F"):
        raise UnsafePickleError(f"refusing numpy array order {str(order)[:20]!r}")
    if isinstance(raw, str):  # Python-2 pickles loaded with encoding="latin1"
        raw = raw.encode("latin-1")
    if not isinstance(raw, bytes | bytearray):
        raise UnsafePickleError(f"refusing numpy array data of type {type(raw).__name__} (object arrays)")
    dt = dtype.resolve()
    count = math.prod(shape)
    if len(raw) != count * dt.itemsize:
        raise UnsafePickleError(
            f"numpy array data has {len(raw)} bytes; shape {shape} of {dt} needs {count * dt.itemsize}"
        )
    flat = np.frombuffer(bytes(raw), dtype=dt, count=count) if count else np.empty(0, dtype=dt)
    arr = flat.reshape(shape, order=order)
    return np.array(arr, dtype=dt.newbyteorder("="), order="K")  # own, writable, native order


def _reconstruct(subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayBuilder:
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"refusing _reconstruct of {type(subtype).__name__} (only numpy.ndarray)")
    return _ArrayBuilder()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stand-in for numpy's ``_frombuffer(buffer, dtype, shape, order)`` (arrays at protocol 5, data
    in-band as BYTEARRAY8): a new array from the bytes, never a view of them."""
    return _array_from_bytes(buf, dtype, shape, _text(order))


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to latin-1: how Python 3 pickles ``bytes`` under protocol <= 2."""
    norm = str(encoding).lower().replace("_", "-")
    if (
        not isinstance(obj, str)
        or norm not in ("latin1", "latin-1", "iso-8859-1", "iso8859-1")
        or errors != "strict"
    ):
        raise UnsafePickleError(
            f"pickle calls _codecs.encode with encoding {encoding!r}; only latin-1 is admitted"
        )
    return codecs.encode(obj, "latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how Python writes an empty ``bytes`` at protocol <= 2 (e.g. an empty array's data)."""
    if args:
        raise UnsafePickleError("pickle calls bytes with arguments; only bytes() is admitted")
    return b""


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeBuilder,
    ("_codecs", "encode"): _latin1_encode,
}


_CALLABLES = (_reconstruct, _frombuffer, _DtypeBuilder, _latin1_encode, _empty_bytes)
_BUILDERS = (_ArrayBuilder, _DtypeBuilder)
_ATOMS = (str, bytes, int, float, bool, type(None))

#: The pickle opcodes a restricted load may use: data, memo, framing, and GLOBAL/REDUCE/BUILD under the
#: checks of :class:`RestrictedUnpickler`. Object construction (INST, OBJ, NEWOBJ), extensions,
#: persistent ids, out-of-band buffers and DUP (a shared reference) are refused.
_ALLOWED_OPCODES = frozenset(
    (
        *("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "NONE", "NEWTRUE", "NEWFALSE"),
        *("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"),
        *("UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"),
        *("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND", "APPENDS"),
        *("EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET"),
        *("GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"),
        *("GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD"),
    )
)
_OPCODE_NAMES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}

MAX_PICKLE_BYTES = 512 * 1024 * 1024
"""Largest pickle read (a CIFAR-10 batch has about 31 MB)."""
_MAX_OPCODES = 4_000_000  # a CIFAR-10 batch needs about 60,000
_MAX_DEPTH = 32
_MAX_NDIM = 32


def _counted(fn: Any) -> Any:
    """An opcode handler that first spends one unit of the unpickler's opcode budget."""

    def handle(self: Any) -> None:
        self._spend()
        fn(self)

    return handle


def _refuse_opcode(code: int) -> Any:
    def refuse(self: Any) -> None:
        name = _OPCODE_NAMES.get(code, f"0x{code:02x}")
        raise UnsafePickleError(f"refusing pickle opcode {name} (only plain data and numpy arrays)")

    return refuse


def _shareable(value: Any) -> bool:
    """May a memoized value be referenced twice? Immutable atoms, admitted globals, finished dtypes,
    and tuples of those; never a list, dict, set, array or anything that holds one."""
    if isinstance(value, _ATOMS) or value is _NDARRAY or any(value is c for c in _CALLABLES):
        return True
    if isinstance(value, _DtypeBuilder):
        return value.dtype is not None
    if isinstance(value, tuple):
        return len(value) <= 64 and all(_shareable(v) for v in value if not isinstance(v, tuple))
    return False


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that admits only plain data and numeric numpy arrays, within bounds.

    Plain containers (dict, list, tuple; sets at protocol >= 4), strings, bytes, numbers, booleans and None
    are built by pickle opcodes without any global lookup. The only globals resolved are the names numpy
    uses to pickle arrays — ``numpy.core.multiarray._reconstruct`` (numpy 1.x / Python 2, e.g. the CIFAR
    batches), ``numpy._core.multiarray._reconstruct`` (numpy 2), ``numpy.ndarray``, ``numpy.dtype``,
    ``numpy[._]core.numeric._frombuffer`` (protocol 5) — ``_codecs.encode`` restricted to latin-1
    (Python 3 writes ``bytes`` that way under protocol 2) and ``bytes()`` without arguments. The numpy
    names map to inert stand-ins (see the comment above), so arrays are rebuilt with ``np.frombuffer``
    from validated states with a numeric dtype; call :meth:`load`. Everything else — ``os.system``,
    ``builtins.eval``, ``subprocess.Popen``, class instances, numpy scalars, object arrays, persistent
    ids — raises :class:`UnsafePickleError` before anything is called.

    It runs Python's own opcode interpreter (``pickle._Unpickler``) with a reduced opcode table: REDUCE
    calls only the admitted stand-ins, BUILD applies only to the array and dtype stand-ins (never sets
    attributes, e.g. on a function), a memo reference may not fetch a list, dict, set or array (no shared
    or recursive structures, so nothing can expand exponentially), and the number of opcodes and the
    nesting depth are bounded.
    """

    dispatch = {code: _refuse_opcode(code) for code in range(256)}
    dispatch.update(
        {
            code: _counted(fn)
            for code, fn in pickle._Unpickler.dispatch.items()
            if _OPCODE_NAMES.get(code) in _ALLOWED_OPCODES
        }
    )

    def __init__(self, file: BinaryIO, *, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)
        self._budget = _MAX_OPCODES

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS)
            raise UnsafePickleError(
                f"refusing to load global {str(module)[:80]}.{str(name)[:80]} from a pickle: only plain data "
                f"and numpy arrays are admitted ({allowed})"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {str(pid)[:80]!r} in a pickle")

    def _spend(self) -> None:
        self._budget -= 1
        if self._budget < 0:
            raise UnsafePickleError(f"refusing a pickle of more than {_MAX_OPCODES} opcodes")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is c for c in _CALLABLES) and func is not _NDARRAY:
            raise UnsafePickleError(f"refusing to call {type(func).__name__} from a pickle")
        if not isinstance(args, tuple):
            raise UnsafePickleError("refusing REDUCE with arguments that are not a tuple")
        self.stack[-1] = func(*args)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _BUILDERS):
            raise UnsafePickleError(f"refusing to set the state of {type(inst).__name__} from a pickle")
        inst.__setstate__(state)

    def _fetch(self, index: int) -> None:
        try:
            value = self.memo[index]
        except KeyError:
            raise pickle.UnpicklingError(f"memo value not found at index {index}") from None
        if not _shareable(value):
            raise UnsafePickleError(
                f"refusing a second reference to a {type(value).__name__} (shared or recursive structure)"
            )
        self.append(value)

    def load_get(self) -> None:
        self._fetch(int(self.readline()[:-1]))

    def load_binget(self) -> None:
        self._fetch(self.read(1)[0])

    def load_long_binget(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        self._fetch(index)

    dispatch[pickle.GET[0]] = _counted(load_get)
    dispatch[pickle.BINGET[0]] = _counted(load_binget)
    dispatch[pickle.LONG_BINGET[0]] = _counted(load_long_binget)
    dispatch[pickle.REDUCE[0]] = _counted(load_reduce)
    dispatch[pickle.BUILD[0]] = _counted(load_build)

    def load(self) -> Any:
        return _finalize(super().load(), 0)


def _finalize(obj: Any, depth: int) -> Any:
    """Replace the builders in a freshly unpickled tree (no shared parts) by numpy arrays; refuse nesting
    deeper than :data:`_MAX_DEPTH`."""
    if depth > _MAX_DEPTH:
        raise UnsafePickleError(f"refusing data nested deeper than {_MAX_DEPTH} levels")
    if isinstance(obj, _ArrayBuilder):
        if obj.array is None:
            raise UnsafePickleError("numpy array in pickle has no state")
        return obj.array
    if isinstance(obj, _DtypeBuilder):
        return obj.resolve()
    if obj is _NDARRAY or any(obj is c for c in _CALLABLES):
        raise UnsafePickleError("bare numpy or codec global in pickle data")
    if isinstance(obj, list):
        obj[:] = [_finalize(v, depth + 1) for v in obj]
    elif isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _finalize(obj[k], depth + 1)
    elif isinstance(obj, tuple):
        return tuple(_finalize(v, depth + 1) for v in obj)
    elif isinstance(obj, set | frozenset):
        for v in obj:
            _finalize(v, depth + 1)
    return obj


def safe_load_pickle(source: PathLike | BinaryIO, *, encoding: str = "bytes") -> Any:
    """Unpickle ``source`` (a path or binary file) with :class:`RestrictedUnpickler`.

    ``encoding="bytes"`` (the CIFAR convention) loads Python-2 ``str`` objects as ``bytes``. At most
    :data:`MAX_PICKLE_BYTES` are read; a longer file is refused. Refusals raise :class:`UnsafePickleError`
    (naming the file for a path); a truncated or garbled pickle raises ``pickle.UnpicklingError``.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as f:
            raw = f.read(MAX_PICKLE_BYTES + 1)
        try:
            return _load_bytes(raw, encoding)
        except UnsafePickleError as e:
            raise UnsafePickleError(f"{path}: {e}") from None
    return _load_bytes(source.read(MAX_PICKLE_BYTES + 1), encoding)


def _load_bytes(raw: bytes, encoding: str) -> Any:
    if len(raw) > MAX_PICKLE_BYTES:
        raise UnsafePickleError(f"refusing a pickle larger than {MAX_PICKLE_BYTES} bytes")
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding=encoding).load()
    except (UnsafePickleError, pickle.UnpicklingError):
        raise
    except RecursionError:
        raise UnsafePickleError(f"refusing data nested deeper than {_MAX_DEPTH} levels") from None
    except (
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        OverflowError,
        UnicodeDecodeError,
        MemoryError,
    ) as e:
        if isinstance(e, EOFError):
            raise pickle.UnpicklingError("truncated pickle (the data ends before its STOP opcode)") from None
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise pickle.UnpicklingError(f"truncated or garbled pickle ({type(e).__name__}: {detail})") from None


# ------------------------------------------------------------------------------------------- CIFAR-10

#: Files of the CIFAR-10 python version, inside ``cifar-10-batches-py/``.
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_CIFAR_HELP = (
    "Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass "
    "the cifar-10-batches-py directory (or its parent)."
)


_CIFAR_KEYS = ("data", "labels", "batch_label", "filenames")
_CIFAR_ROW = 3072


def _cifar_entries(obj: Any, path: Path) -> dict[str, Any]:
    """The batch's entries by text key: a dict whose keys are among ``data``, ``labels``, ``batch_label``,
    ``filenames`` (bytes or str), with ``data`` and ``labels`` present."""
    if not isinstance(obj, dict):
        got = type(obj).__name__
        raise CifarFormatError(f"{path}: expected a pickled dict (CIFAR-10 python batch), got {got}")
    entries: dict[str, Any] = {}
    for key, value in obj.items():
        text = key.decode("latin-1") if isinstance(key, bytes) else key
        if not isinstance(text, str) or text not in _CIFAR_KEYS or text in entries:
            expected = ", ".join(_CIFAR_KEYS)
            raise CifarFormatError(
                f"{path}: unexpected entry {str(key)[:40]!r} in a CIFAR-10 batch (expected {expected})"
            )
        entries[text] = value
    missing = [k for k in ("data", "labels") if k not in entries]
    if missing:
        keys = ", ".join(sorted(map(repr, obj)))[:200]
        raise CifarFormatError(f"{path}: CIFAR-10 batch lacks the {missing[0]!r} entry (keys: {keys})")
    return entries


def _cifar_labels(labels: Any, n: int, path: Path) -> np.ndarray:
    """``labels``: ``n`` Python ints in 0..9 in a list (or an integer array), checked before conversion."""
    if isinstance(labels, list):
        if len(labels) != n or not all(type(v) is int for v in labels):
            raise CifarFormatError(f"{path}: CIFAR-10 'labels' must be a list of {n} integers")
        labels = np.asarray(labels, dtype=np.int64) if n else np.zeros(0, np.int64)
    if not isinstance(labels, np.ndarray) or labels.shape != (n,) or labels.dtype.kind not in "iu":
        shown = f"{labels.dtype}{labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise CifarFormatError(f"{path}: CIFAR-10 'labels' must be {n} integers, got {shown}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CifarFormatError(f"{path}: CIFAR-10 labels outside 0..9")
    return labels.astype(np.int64)


def read_cifar10_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> ``(data uint8 (N, 3072), labels int64 (N,))``, via :func:`safe_load_pickle`.

    Checks: the pickle is a dict with ``data`` and ``labels`` (bytes or str keys; ``batch_label`` and
    ``filenames`` may also appear, nothing else); ``data`` is a numpy integer array (N, 3072) with values in
    0..255, N ≥ 1; ``labels`` has N integers in 0..9. A tampered pickle raises :class:`UnsafePickleError`,
    anything else wrong a one-line :class:`CifarFormatError` naming the file.
    """
    path = Path(path)
    try:
        obj = safe_load_pickle(path, encoding="bytes")
    except (UnsafePickleError, OSError):
        raise
    except pickle.UnpicklingError as e:
        raise CifarFormatError(f"{path}: not a readable CIFAR-10 python batch ({e})") from None
    entries = _cifar_entries(obj, path)
    data = entries["data"]
    shape_ok = isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == _CIFAR_ROW
    if not shape_ok or data.dtype.kind not in "iu":
        shown = f"{data.dtype}{data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CifarFormatError(f"{path}: CIFAR-10 'data' must be an integer array (N, 3072), got {shown}")
    if data.shape[0] == 0:
        raise CifarFormatError(f"{path}: CIFAR-10 batch holds no images")
    if data.min() < 0 or data.max() > 255:
        raise CifarFormatError(f"{path}: CIFAR-10 'data' values outside 0..255")
    labels = _cifar_labels(entries["labels"], data.shape[0], path)
    return data.astype(np.uint8), labels


def _cifar_dir(path: PathLike) -> Path:
    p = Path(path)
    if (p / "cifar-10-batches-py").is_dir():
        p = p / "cifar-10-batches-py"
    return p


def cifar10_files(path: PathLike) -> list[Path] | None:
    """The batch files :func:`load_cifar10` reads by default (:data:`CIFAR10_FILES`), or None if one is
    missing."""
    directory = _cifar_dir(path)
    files = [directory / name for name in CIFAR10_FILES]
    return files if all(f.is_file() for f in files) else None


def load_cifar10(
    path: PathLike,
    *,
    train_batches: Sequence[int] = (1, 2, 3, 4, 5),
    layout: Literal["NHWC", "NCHW"] = "NHWC",
) -> Dataset:
    """CIFAR-10 from the python batches: uint8 images, int64 labels 0..9, ``n_classes=10``.

    ``path`` is the ``cifar-10-batches-py`` directory or its parent. ``train_batches`` chooses which of
    ``data_batch_1..5`` form the training set (in the given order; ``(1,)`` = the first 10,000 images, enough
    for the 1k/5k subsets of papers 001/002/004); ``test_batch`` is the test set. ``layout="NHWC"`` gives
    ``(N, 32, 32, 3)`` (the JAX/Flax convention), ``"NCHW"`` ``(N, 3, 32, 32)``. Class names:
    :data:`CIFAR10_CLASSES`. A missing directory or file raises :class:`DatasetNotFoundError` listing
    the expected files and where to get them; a tampered pickle raises :class:`UnsafePickleError`.
    """
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    batches = [int(b) for b in train_batches]
    if not batches or any(b not in range(1, 6) for b in batches) or len(set(batches)) != len(batches):
        raise ValueError(f"train_batches must be distinct numbers in 1..5, got {list(train_batches)}")
    directory = _cifar_dir(path)
    needed = [f"data_batch_{b}" for b in batches] + ["test_batch"]
    missing = [n for n in needed if not (directory / n).is_file()]
    if missing:
        state = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)}"
        raise DatasetNotFoundError(
            f"cifar10: directory {directory} {state}; expected the python-version batch files "
            f"{', '.join(CIFAR10_FILES)} (in cifar-10-batches-py/). {_CIFAR_HELP}"
        )

    def images(data: np.ndarray) -> np.ndarray:
        x = data.reshape(-1, 3, 32, 32)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x

    train = [read_cifar10_batch(directory / f"data_batch_{b}") for b in batches]
    x_test, y_test = read_cifar10_batch(directory / "test_batch")
    return make_dataset(
        images(np.concatenate([d for d, _ in train])),
        np.concatenate([lab for _, lab in train]),
        images(x_test),
        y_test,
        n_classes=10,
        description={
            "source": {"kind": "cifar10", "train_batches": batches, "layout": layout},
            "targets": "labels",
        },
    )
