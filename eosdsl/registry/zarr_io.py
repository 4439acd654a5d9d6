"""Time series of a run as one Zarr v3 group (``results.zarr``).

Layout::

    results.zarr/                 root group; attrs = run-level attrs (JSON)
      <key>/                      one subgroup per series; attrs = {"series_name": <original name>, ...}
        step                      int64, shape (T,)
        value                     shape (T, ...), any bool/int/uint/float dtype

A *stacked* group holds the series of several runs at once (the members of a pack, stored as one unit:
:func:`write_stacked`): its root attrs say ``members`` (m), each series subgroup's attrs its
``counts`` (the length of each member's series), and ``step``/``value`` have shapes (m, T_max) and
(m, T_max, ...), member i's series being row i cut to ``counts[i]``; ``step`` is one row, (T_max,),
when every member recorded the same steps (the usual case). Each row is one chunk inside one
shard file per array (zarr's sharding codec), so a member is read without decoding the others and a
pack of m runs writes a handful of files instead of m groups.

``<key>`` is the series name itself when that is a portable node name, so stores stay readable by
other Zarr tools (dots are fine: ``params.u``). Otherwise characters outside ``[A-Za-z0-9._~-]`` are
percent-encoded as UTF-8 (so ``/`` cannot create nesting), a leading ``_`` of a ``__`` name is
encoded (Zarr reserves ``__``-prefixed names) and ``.``/``..`` are encoded. The encoding is injective,
and the original name is kept in the subgroup attrs, which is what :func:`series_names` reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import zarr
import zarr.api.asynchronous
import zarr.codecs
from zarr.core.sync import sync

from eosdsl.registry.identity import jsonable

__all__ = [
    "encode_series_name",
    "read_attrs",
    "read_series",
    "series_names",
    "stackable",
    "write_series",
    "write_stacked",
]

NAME_ATTR = "series_name"
SOURCE_DTYPE_ATTR = "source_dtype"
COUNTS_ATTR = "counts"
MEMBERS_ATTR = "members"
ALL_CHUNKS_ATTR = "all_chunks_written"
"""Set on series written with every chunk present: only there is a missing chunk file damage."""
_VALUE_KINDS = frozenset("biuf")
ONE_CHUNK_BYTES = 16 << 20
"""Arrays up to this size are stored as one chunk: a series is read whole, and each chunk is a file whose
encoding and write cost ~1 ms of fixed overhead (zarr's default would cut 10⁵ float64 values into 4)."""


def encode_series_name(name: str) -> str:
    """Zarr node name for a series name (see module docstring); injective, ``ValueError`` on ``""``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"series name must be a non-empty string, got {name!r}")
    key = quote(name, safe="")  # keeps [A-Za-z0-9._~-], encodes everything else (incl. '/', '%')
    if key.startswith("__"):
        key = "%5F" + key[1:]
    if key in {".", ".."}:
        key = key.replace(".", "%2E")
    return key


def _as_steps(name: str, step: Any) -> np.ndarray:
    steps = np.asarray(step)
    if steps.ndim != 1:
        raise ValueError(f"series {name!r}: step must be 1-D, got shape {steps.shape}")
    if steps.dtype.kind not in "iu":
        raise ValueError(f"series {name!r}: step must have an integer dtype, got {steps.dtype}")
    return steps.astype(np.int64, copy=False)


def _as_values(name: str, value: Any, length: int) -> tuple[np.ndarray, str | None]:
    """Values as a Zarr-storable array, plus the original dtype name if it had to be widened."""
    values = np.asarray(value)
    if values.ndim == 0 or values.shape[0] != length:
        raise ValueError(f"series {name!r}: value shape {values.shape} does not start with T={length}")
    if values.dtype.kind in _VALUE_KINDS:
        return values, None
    if values.dtype.name in {"bfloat16", "float8_e4m3fn", "float8_e5m2"}:  # ml_dtypes, unknown to Zarr
        return values.astype(np.float32), values.dtype.name
    raise ValueError(f"series {name!r}: value dtype {values.dtype} is not bool/int/float")


def _check_case_collisions(keys: list[str]) -> None:
    """Refuse names that would collide on case-insensitive file systems (macOS, Windows)."""
    seen: dict[str, str] = {}
    for key in keys:
        other = seen.setdefault(key.casefold(), key)
        if other != key:
            raise ValueError(f"series keys {other!r} and {key!r} differ only by case; not portable")


def _prepared(series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple]:
    """``(name, key, steps, values, source_dtype)`` of every series, validated (nothing written yet)."""
    prepared = []
    for name, (step, value) in series.items():
        key = encode_series_name(name)
        steps = _as_steps(name, step)
        values, source_dtype = _as_values(name, value, steps.shape[0])
        prepared.append((name, key, steps, values, source_dtype))
    _check_case_collisions([key for _, key, *_ in prepared])
    return prepared


def write_series(
    path: Path,
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Create the group at ``path`` (must not exist) holding every ``name -> (steps, values)`` series.

    Everything is validated before anything is written, so a bad series leaves no partial store.
    """
    prepared = _prepared(series)
    root_attrs = jsonable(dict(attrs or {}))
    sync(_write_group(Path(path), root_attrs, [(*item, None) for item in prepared]))


def stackable(members: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> bool:
    """Whether the series of several runs can be stored as one stacked group (:func:`write_stacked`):
    the same names, value dtypes and per-record shapes, and every array within one chunk
    (``ONE_CHUNK_BYTES``), since a member's row is one chunk."""

    def layout(series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple]:
        return [(name, np.asarray(v).dtype, np.asarray(v).shape[1:]) for name, (_, v) in series.items()]

    fits = all(np.asarray(a).nbytes <= ONE_CHUNK_BYTES for s in members for pair in s.values() for a in pair)
    return fits and len({tuple(layout(series)) for series in members}) == 1


def write_stacked(
    path: Path,
    members: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Create the stacked group at ``path`` (must not exist) holding the series of ``members`` (runs of
    one structure: the same series names, value dtypes and per-step shapes; see the module docstring).

    Member i's ``(steps, values)`` of each series read back bit for bit with ``read_series(path, name,
    member=i)``. ``ValueError`` (nothing written) unless they are :func:`stackable`.
    """
    if not members:
        raise ValueError("write_stacked needs at least one member")
    if not stackable(members):
        raise ValueError("the members' series differ in names, dtypes or shapes, or exceed one chunk")
    each = [_prepared(series) for series in members]
    stacked = []
    for j, (name, key, _, _, source_dtype) in enumerate(each[0]):  # stackable: the same series in order
        steps, values = [prepared[j][2] for prepared in each], [prepared[j][3] for prepared in each]
        counts = [len(s) for s in steps]
        width = max(counts)
        shared = all(np.array_equal(s, steps[0]) for s in steps[1:])  # the usual case: one `every`
        step_rows = steps[0] if shared else np.zeros((len(each), width), np.int64)
        value_rows = np.zeros((len(each), width, *values[0].shape[1:]), values[0].dtype)
        for i, (s, v) in enumerate(zip(steps, values, strict=True)):
            value_rows[i, : len(v)] = v
            if not shared:
                step_rows[i, : len(s)] = s
        stacked.append((name, key, step_rows, value_rows, source_dtype, counts))
    root_attrs = jsonable({**dict(attrs or {}), MEMBERS_ATTR: len(members)})
    sync(_write_group(Path(path), root_attrs, stacked))


async def _write_group(path: Path, root_attrs: dict[str, Any], prepared: list[tuple]) -> None:
    """Write the group and every series concurrently, as one task on Zarr's event loop: a run's many
    small files cost one round trip into that loop rather than three per series."""
    group = await zarr.api.asynchronous.open_group(
        store=str(path), mode="w-", zarr_format=3, attributes=root_attrs
    )

    async def one(
        name: str,
        key: str,
        steps: np.ndarray,
        values: np.ndarray,
        source_dtype: str | None,
        counts: list[int] | None,
    ) -> None:
        sub_attrs: dict[str, Any] = {NAME_ATTR: name, ALL_CHUNKS_ATTR: True}
        if source_dtype is not None:
            sub_attrs[SOURCE_DTYPE_ATTR] = source_dtype
        if counts is not None:
            sub_attrs[COUNTS_ATTR] = counts
        sub = await group.create_group(key, attributes=sub_attrs)
        # every chunk is written, all-zero ones too (zarr skips those by default and serves the fill
        # value): a chunk file that is missing is then damage, which read_series reports
        config = {"write_empty_chunks": True}
        await asyncio.gather(
            *(
                sub.create_array(
                    part,
                    data=array,
                    config=config,
                    compressors=_compressor(),
                    **_layout(array, stacked=counts is not None and (part == "value" or array.ndim == 2)),
                )
                for part, array in (("step", steps), ("value", values))
            )
        )

    await asyncio.gather(*(one(*item) for item in prepared))


def _compressor() -> Any:
    """Zstd at level 1 for every stored array: on the series of runs (slowly varying floats, arithmetic
    step counts) it encodes about twice as fast as zarr's default (Zstd at zstd's default level 3) and
    stores no more (measured on 100 trajectories of 10⁵ steps: 0.10 s against 0.20 s, 36 MB either
    way; their steps 0.15 s and 10 MB against 0.23 s and 14 MB). Blosc (LZ4) is faster still but
    decodes a truncated chunk into garbage without an error; Zstd refuses it."""
    return zarr.codecs.ZstdCodec(level=1)


def _layout(array: np.ndarray, stacked: bool) -> dict[str, Any]:
    """Chunking of a stored array. A run's own array: one chunk up to ``ONE_CHUNK_BYTES`` (and
    non-empty), else zarr's automatic chunking. A stacked array: one chunk per member row, all rows in
    one shard file (one row when the rows are empty: zarr needs a chunk of at least one element)."""
    if stacked:
        row = (1, *array.shape[1:]) if array[0].size else (1, *(1 for _ in array.shape[1:]))
        return {"chunks": row, "shards": array.shape if array.size else row}
    return {"chunks": array.shape if 0 < array.nbytes <= ONE_CHUNK_BYTES else "auto"}


class UnreadableSeries(Exception):
    """A stored series that cannot be read back as written: a missing or undecodable chunk, metadata
    that does not parse. (zarr would serve a missing chunk as its fill value, i.e. zeros.)"""


def _open(path: Path) -> zarr.Group:
    try:
        return zarr.open_group(Path(path), mode="r", zarr_format=3)
    except Exception as error:  # zarr and its codecs raise many types
        raise UnreadableSeries(f"{path} cannot be opened: {type(error).__name__}: {error}") from error


def _index(group: zarr.Group) -> dict[str, str]:
    """Original series name -> node key, for every series subgroup."""
    out = {}
    for key, sub in group.groups():
        out[str(sub.attrs.get(NAME_ATTR, key))] = key
    return out


def series_names(path: Path) -> list[str]:
    """Sorted original names of the series stored at ``path``."""
    return sorted(_index(_open(path)))


def read_series(path: Path, name: str, member: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of series ``name`` (of member ``member`` in a stacked group: see
    :func:`write_stacked`); ``KeyError`` listing the available names if missing."""
    group = _open(path)
    index = _index(group)
    if name not in index:
        raise KeyError(f"no series {name!r} in {path}; available: {sorted(index)}")
    try:
        sub = group[index[name]]
        arrays = sub["step"], sub["value"]
        for array in arrays if sub.attrs.get(ALL_CHUNKS_ATTR) else ():
            missing = array.nchunks - array.nchunks_initialized
            if missing:
                what = f"{missing} chunk(s) of its {array.basename}"
                raise UnreadableSeries(f"series {name!r}: {what} are missing")
        counts = sub.attrs.get(COUNTS_ATTR)
        if (counts is None) != (member is None):
            asked = "no member of a stacked group" if member is None else f"member {member} of one run's"
            raise UnreadableSeries(f"series {name!r}: asked for {asked}")
        if counts is None:
            return np.asarray(arrays[0][...]), np.asarray(arrays[1][...])
        count = int(counts[member])
        steps = arrays[0][:count] if arrays[0].ndim == 1 else arrays[0][member, :count]  # shared, or own
        return np.asarray(steps), np.asarray(arrays[1][member, :count])
    except UnreadableSeries:
        raise
    except Exception as error:  # a chunk that does not decode (truncated, flipped), bad metadata, ...
        raise UnreadableSeries(f"series {name!r} cannot be read: {type(error).__name__}: {error}") from error


def read_attrs(path: Path) -> dict[str, Any]:
    """Root attrs of the store at ``path``, as written by :func:`write_series`."""
    return dict(_open(path).attrs.asdict())
