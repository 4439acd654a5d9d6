"""Content hashes of numerical arrays.

The fingerprint of generated or loaded data is its *content hash*; it enters run identity, so it must
depend on exactly what a computation would see: the values, the dtype (including byte order) and the
shape, but not on memory layout (strides, C/F order, views).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["array_fingerprint"]

_FORMAT_TAG = b"eosdsl.array_fingerprint.v1\n"


def _update(h: hashlib._Hash, kind: str, name: str, array: np.ndarray) -> None:
    a = np.asarray(array)
    if a.dtype.hasobject:
        raise TypeError(f"cannot fingerprint an object-dtype array ({kind} {name!r})")
    data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)  # the C-order bytes, hashed without a copy
    name_b = name.encode("utf-8")
    header = f"{kind}|{len(name_b)}|".encode() + name_b + f"|{a.dtype.str}|{a.shape}|{data.size}\n".encode()
    h.update(header)
    h.update(memoryview(data))


def array_fingerprint(*arrays: np.ndarray, **named: np.ndarray) -> str:
    """Hex SHA-256 over arrays: positional ones in order, then named ones sorted by name.

    For each array the digest absorbs a header ``kind|len(name)|name|dtype.str|shape|nbytes`` (``kind`` is
    ``pos`` with the index as name, or ``named`` with the keyword) followed by its C-contiguous bytes. The
    length-prefixed framing makes the encoding unambiguous; the leading format tag versions it.
    Consequences: ``float32`` vs ``float64``, ``<f8`` vs ``>f8``, ``(2, 3)`` vs ``(3, 2)`` and ``0.0`` vs
    ``-0.0`` all hash differently; a Fortran-ordered copy or a non-contiguous view of the same values hashes
    the same. Anything ``np.asarray`` accepts (including JAX arrays) may be passed; object arrays raise.
    """
    h = hashlib.sha256(_FORMAT_TAG)
    for i, a in enumerate(arrays):
        _update(h, "pos", str(i), a)
    for key in sorted(named):
        _update(h, "named", key, named[key])
    return h.hexdigest()
