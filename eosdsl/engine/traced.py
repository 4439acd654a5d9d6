"""Split a validated spec into its static structure and its traced numbers.

Every ``float`` leaf of a spec model is a hyperparameter: inside the compiled program it is a traced
scalar, so specs that differ only in numbers share one compiled program. Integers, strings, booleans
and the shape of the model tree are static: they decide the program's structure.

A model class with ``__static_floats__ = True`` (e.g. a network's config, whose numbers are baked into
the compiled network) is opaque here: its floats are never traced, and they stay *in* the structure
key, so two specs that differ in them never share a compiled program. A model class may also name
single float fields static with ``__static_float_fields__`` (e.g. a solver's ``tol``, which decides at
trace time whether the solver spends certification products): those floats stay Python numbers inside
the program and join the structure key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel

Skip = Callable[[str], bool]
"""Model field names to leave out (fields the compiled program never reads)."""


def _children(value: Any, skip: Skip = lambda _: False) -> Iterator[tuple[Any, Any]]:
    """(key, child) pairs of a model, list or dict, in a fixed order; model fields in ``skip`` left out."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if not skip(name):
                yield name, getattr(value, name)
    elif isinstance(value, list | tuple):
        yield from enumerate(value)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield key, value[key]


def _is_leaf(value: Any) -> bool:
    return isinstance(value, float) and not isinstance(value, bool)


def _is_static(value: Any) -> bool:
    return isinstance(value, BaseModel) and getattr(type(value), "__static_floats__", False)


def _static_field(parent: Any, name: Any) -> bool:
    """Whether field ``name`` of model ``parent`` is a float kept static (``__static_float_fields__``)."""
    return isinstance(parent, BaseModel) and name in getattr(type(parent), "__static_float_fields__", ())


def float_leaves(model: BaseModel, skip: Skip = lambda _: False) -> list[float]:
    """All float leaves of ``model`` in a fixed traversal order (fields named in ``skip`` excluded)."""
    out: list[float] = []

    def walk(value: Any) -> None:
        if _is_leaf(value):
            out.append(value)
        if _is_static(value):
            return
        for name, child in _children(value, skip):
            if not _static_field(value, name):
                walk(child)

    walk(model)
    return out


def replace_floats(model: BaseModel, values: Sequence[Any], skip: Skip = lambda _: False) -> BaseModel:
    """A copy of ``model`` whose float leaves are ``values`` (order and ``skip`` as in :func:`float_leaves`).

    The copy is built with ``model_copy`` (no validation), so ``values`` may be JAX tracers.
    """
    it = iter(values)

    def rebuild(value: Any) -> Any:
        if _is_leaf(value):
            return next(it)
        if _is_static(value):
            return value
        if isinstance(value, BaseModel):
            update = {k: rebuild(v) for k, v in _children(value, skip) if not _static_field(value, k)}
            return value.model_copy(update=update)
        if isinstance(value, list):
            return [rebuild(v) for _, v in _children(value)]
        if isinstance(value, tuple):
            return tuple(rebuild(v) for _, v in _children(value))
        if isinstance(value, dict):
            return {k: rebuild(v) for k, v in _children(value)}
        return value

    out = rebuild(model)
    if next(it, None) is not None:
        raise ValueError("more values than float leaves")
    return out


def structure_key(model: BaseModel, skip: Skip = lambda _: False) -> str:
    """Canonical JSON of ``model`` with every float replaced by ``null``: equal keys ⇒ same program."""
    import json

    def strip(value: Any) -> Any:
        if _is_leaf(value):
            return None
        if _is_static(value):
            return value.model_dump(mode="json")
        if isinstance(value, BaseModel):
            return {k: v if _static_field(value, k) else strip(v) for k, v in _children(value, skip)}
        if isinstance(value, list | tuple):
            return [strip(v) for v in value]
        if isinstance(value, dict):
            return {str(k): strip(v) for k, v in _children(value)}
        return value

    return json.dumps(strip(model), sort_keys=True, separators=(",", ":"))
