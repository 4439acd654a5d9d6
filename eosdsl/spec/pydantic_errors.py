"""Pydantic validation errors as located errors (:class:`~eosdsl.spec.errors.LocatedError`).

:func:`from_validation_error` translates a :class:`pydantic.ValidationError` into located errors.  It
is generic over any pydantic v2 model: pydantic's ``loc`` tuples contain union bookkeeping that
is not part of the data (the tag of a discriminated union, the member label of a plain union),
and :func:`resolve_loc` walks the model's type annotations alongside the ``loc`` to drop those
elements and recover the path of the offending value in the user's data.

Observed pydantic 2.13 ``loc`` shapes (``...`` continues inside the member):

* discriminated union ``Annotated[A | B, Field(discriminator="kind")]``: ``(field, <tag>, ...)``,
  where ``<tag>`` is the ``kind`` value (``"heavy_ball"``), or the ``Tag`` of a callable
  ``Discriminator``.  Tag errors (``union_tag_invalid``/``union_tag_not_found``) end at ``field``.
* plain union ``A | B``: ``(field, <label>, ...)`` with one error per member; ``<label>`` is the
  class name for models (``"GD"``, not the model title) and a schema label otherwise
  (``"float"``, ``"str"``, ``"int"``, ``"list[int]"``, ``"literal['x']"``, ``"constrained-float"``).
* ``X | None`` is *not* a union in ``loc``: no label is inserted.  ``A | B | None`` inserts labels.
* ``dict[K, V]``: ``(field, key, ...)``; an invalid key gives ``(field, key, "[key]")``.
* aliases: ``loc`` uses the alias (the key as written in the data).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import re
import types
import typing
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from eosdsl.spec.errors import (
    LocatedError,
    Path_,
    SpecError,
    locate,
)

_GOT_MAX = 60


_MAX_LISTED = 25


@dataclass(frozen=True)
class TypeName:
    """``Annotated`` marker giving a type a human name in error messages.

    ``Expr = Annotated[str, TypeName("an expression string")]`` makes a field ``float | Expr``
    given a list report ``expected a number or an expression string, got [1, 2] (list)``.
    Pydantic ignores this metadata.
    """

    name: str


class _Unknown:
    """Sentinel annotation: the walk lost track of the type."""

    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN: Any = _Unknown()


_NONE_TYPES = (type(None), None)


_SEQ_ORIGINS = (list, set, frozenset, Sequence, typing.Sequence, typing.List, typing.Set)  # noqa: UP006


_MAP_ORIGINS = (dict, Mapping, typing.Mapping, typing.Dict)  # noqa: UP006


@dataclass
class _Walk:
    """Result of walking a loc: data path, model owning the last key, and state at the end."""

    path: list[Any] = dataclasses.field(default_factory=list)
    parent: type | None = None
    annotation: Any = _UNKNOWN
    discriminator: Any = None
    unions: list[tuple[int, str, Any, Any]] = dataclasses.field(default_factory=list)
    key_error: bool = False


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _field_info_discriminator(meta: Any) -> Any:
    if isinstance(meta, FieldInfo) and meta.discriminator is not None:
        return meta.discriminator
    if isinstance(meta, pydantic.Discriminator):
        return meta
    return None


def _strip(tp: Any, disc: Any = None) -> tuple[Any, Any]:
    """Remove ``Annotated`` layers and ``X | None`` wrappers, collecting a discriminator."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            for meta in tp.__metadata__:
                disc = _field_info_discriminator(meta) or disc
            tp = tp.__origin__
            continue
        if _is_union(tp):
            members = [a for a in typing.get_args(tp) if a not in _NONE_TYPES]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, disc


def _model_fields(tp: Any) -> dict[str, FieldInfo] | None:
    """Fields of a pydantic model or pydantic dataclass, else ``None``."""
    if isinstance(tp, type):
        if issubclass(tp, BaseModel):
            return dict(tp.model_fields)
        fields = getattr(tp, "__pydantic_fields__", None)
        if isinstance(fields, dict):
            return fields
    return None


def _input_keys(name: str, info: FieldInfo) -> list[str]:
    """Keys under which a field may appear in input data (alias first)."""
    keys = []
    for alias in (info.validation_alias, info.alias):
        if isinstance(alias, str):
            keys.append(alias)
        elif isinstance(alias, pydantic.AliasChoices):
            keys.extend(c for c in alias.choices if isinstance(c, str))
    keys.append(name)
    return list(dict.fromkeys(keys))


def _find_field(model: type, key: Any) -> FieldInfo | None:
    fields = _model_fields(model) or {}
    for name, info in fields.items():
        if key in _input_keys(name, info):
            return info
    return None


def _field_annotation(info: FieldInfo) -> Any:
    """The field's annotation with its ``Annotated`` metadata re-attached."""
    if info.annotation is None:
        return _UNKNOWN
    if info.metadata:
        return typing.Annotated[(info.annotation, *info.metadata)]
    return info.annotation


def _member_tags(member: Any, disc: Any) -> list[Any]:
    """Tag values selecting ``member`` in a union discriminated by ``disc``."""
    tags: list[Any] = []
    if typing.get_origin(member) is typing.Annotated:
        tags += [m.tag for m in member.__metadata__ if isinstance(m, pydantic.Tag)]
    base, _ = _strip(member)
    if isinstance(disc, str) and _model_fields(base) is not None:
        info = _find_field(base, disc)
        if info is not None and info.annotation is not None:
            lit, _ = _strip(info.annotation)
            if typing.get_origin(lit) is Literal:
                tags += list(typing.get_args(lit))
    return tags


def _tag_text(tag: Any) -> Any:
    return tag.value if isinstance(tag, enum.Enum) else tag


def _union_members(tp: Any) -> list[Any]:
    return [a for a in typing.get_args(tp) if a not in _NONE_TYPES]


def _match_tag(members: list[Any], disc: Any, tag: Any) -> Any:
    for member in members:
        for t in _member_tags(member, disc):
            if t == tag or _tag_text(t) == tag or str(_tag_text(t)) == str(tag):
                return member
    return _UNKNOWN


_FUNCTION_LABEL = re.compile(r"^function-(?:after|before|wrap|plain)\[[^,]*\(\), (.*)\]$")


def _label_matches(member: Any, label: str) -> bool:
    """Heuristic: does pydantic's plain-union member ``label`` denote ``member``?"""
    function = _FUNCTION_LABEL.match(label)
    if function:  # a type with a validator: "function-after[check(), Inner]"
        label = function.group(1)
    base, disc = _strip(member)
    if isinstance(base, type) and base.__name__ == label:
        return True
    head = label.split("[", 1)[0]
    if head in ("union", "tagged-union"):
        return _is_union(base) and (disc is not None) == (head == "tagged-union")
    if head.startswith("constrained-"):
        return isinstance(base, type) and base.__name__ == head[len("constrained-") :]
    origin = typing.get_origin(base)
    if origin is Literal:
        return head == "literal"
    origin_name = getattr(origin, "__name__", None)
    return origin_name is not None and origin_name.lower() == head


def _match_label(members: list[Any], label: Any) -> Any:
    hits = [m for m in members if isinstance(label, str) and _label_matches(m, label)]
    return hits[0] if len(hits) == 1 else _UNKNOWN


def _step_container(walk: _Walk, tp: Any, elt: Any, rest: Sequence[Any]) -> int | None:
    """Step into a list/tuple/dict annotation; returns loc elements consumed, or None if not one."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _SEQ_ORIGINS or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        walk.path.append(elt)
        walk.annotation = args[0] if args else _UNKNOWN
        return 1
    if origin is tuple:
        walk.path.append(elt)
        ok = isinstance(elt, int) and 0 <= elt < len(args)
        walk.annotation = args[elt] if ok else _UNKNOWN
        return 1
    if origin in _MAP_ORIGINS:
        walk.path.append(elt)
        if rest and rest[0] == "[key]":
            walk.key_error = True
            walk.annotation = args[0] if args else _UNKNOWN
            return 2
        walk.annotation = args[1] if len(args) == 2 else _UNKNOWN
        return 1
    return None


def _walk_annotations(model: Any, loc: Sequence[Any], walk: _Walk) -> int:
    """Walk ``loc`` through the annotations from ``model``; returns how many loc elements were used."""
    walk.annotation, walk.discriminator = model, None
    i = 0
    while i < len(loc):
        if walk.annotation is _UNKNOWN:
            return i
        whole = walk.annotation
        tp, disc = _strip(whole, walk.discriminator)
        elt = loc[i]
        if _is_union(tp):
            members = _union_members(tp)
            if disc is not None:
                walk.annotation = _match_tag(members, disc, elt)
            else:
                walk.annotation = _match_label(members, elt)
                walk.unions.append((len(walk.path), str(elt), walk.annotation, whole))
            walk.discriminator = None
            i += 1
            continue
        walk.discriminator = None
        if _model_fields(tp) is not None:
            info = _find_field(tp, elt)
            walk.path.append(elt)
            walk.parent = tp
            walk.annotation = _field_annotation(info) if info is not None else _UNKNOWN
            walk.discriminator = info.discriminator if info is not None else None
            i += 1
            continue
        walk.parent = None
        used = _step_container(walk, tp, elt, loc[i + 1 :])
        if used is None:
            walk.annotation = _UNKNOWN
            return i
        i += used
    return i


def _child_of(data: Any, key: Any) -> tuple[bool, Any]:
    """``(True, data[key])`` if ``key`` is present in a mapping or indexes a list, else ``(False, None)``."""
    if isinstance(data, Mapping):
        return (True, data[key]) if key in data else (False, None)
    if isinstance(data, list | tuple) and isinstance(key, int) and 0 <= key < len(data):
        return True, data[key]
    return False, None


def _data_at(data: Any, path: Sequence[Any]) -> tuple[bool, Any]:
    for p in path:
        found, data = _child_of(data, p)
        if not found:
            return False, None
    return True, data


def _walk_data(data: Any, loc: Sequence[Any], walk: _Walk) -> None:
    """Fallback: follow the remaining ``loc`` through the data, dropping elements that are not in it."""
    found, cur = _data_at(data, walk.path)
    for n, elt in enumerate(loc):
        last = n == len(loc) - 1
        if elt == "[key]" and walk.path:
            walk.key_error = True
            continue
        present, child = _child_of(cur, elt) if found else (False, None)
        if present:
            walk.path.append(elt)
            cur = child
        elif not found or (last and (isinstance(cur, Mapping) or not isinstance(elt, str))):
            walk.path.append(elt)
            found = False


def _walk(model: Any, loc: Sequence[Any], data: Any = None, have_data: bool = False) -> _Walk:
    walk = _Walk()
    try:
        used = _walk_annotations(model, loc, walk)
    except Exception:  # pragma: no cover - defensive: never let error reporting crash
        return _Walk(path=list(loc))
    rest = loc[used:]
    if rest:
        walk.parent = None
        if have_data:
            _walk_data(data, rest, walk)
        else:
            walk.path.extend(rest)
    return walk


def resolve_loc(model: Any, loc: Sequence[Any]) -> tuple[tuple[Any, ...], type | None]:
    """Map a pydantic error ``loc`` to ``(data_path, model_owning_last_key_or_None)``.

    Drops discriminated-union tags and plain-union member labels by walking ``model``'s field
    annotations (through ``Annotated``, ``Optional``, ``list``/``tuple``/``dict`` and unions).
    Where the walk loses track of the types the rest of ``loc`` is kept unchanged.
    """
    walk = _walk(model, tuple(loc))
    return tuple(walk.path), walk.parent


_TYPE_NAMES = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_parsing_size": "an integer",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "string_type": "a string",
    "bytes_type": "a string",
    "none_required": "null",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
    "complex_type": "a complex number",
    "complex_str_parsing": "a complex number",
    "callable_type": "a callable",
}


_CHOICE_TYPES = {"literal_error", "enum"}


_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


_TYPE_ERRORS = set(_TYPE_NAMES) | _CHOICE_TYPES | {"is_instance_of"}


_CONSTRAINT_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "multiple_of",
    "finite_number",
    "too_short",
    "too_long",
    "string_too_short",
    "string_too_long",
    "string_pattern_mismatch",
    "decimal_max_digits",
    "decimal_max_places",
    "decimal_whole_digits",
}


_MSG_PREFIXES = ("Value error, ", "Assertion failed, ")


def _short_repr(value: Any) -> str:
    """``repr`` truncated to 60 characters; ``None`` → ``null``."""
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= _GOT_MAX else text[: _GOT_MAX - 3] + "..."


def _got(value: Any) -> str:
    """An input with its type name, e.g. ``'abc' (str)``; ``None`` → ``null``."""
    return "null" if value is None else f"{_short_repr(value)} ({type(value).__name__})"


def _type_name_marker(tp: Any) -> str | None:
    while typing.get_origin(tp) is typing.Annotated:
        for meta in tp.__metadata__:
            if isinstance(meta, TypeName):
                return meta.name
        tp = tp.__origin__
    return None


def _join_or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _choices_text(values: list[Any]) -> str:
    shown = ", ".join(repr(_tag_text(v)) for v in values)
    return shown if len(values) == 1 else f"one of {shown}"


def _choices_from_annotation(tp: Any) -> list[Any] | None:
    base, _ = _strip(tp)
    if typing.get_origin(base) is Literal:
        return list(typing.get_args(base))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [m.value for m in base]
    return None


def _choices_from_ctx(expected: str) -> str:
    head, sep, tail = expected.rpartition(" or ")
    return f"one of {head}, {tail}" if sep else expected


def _expected(err: Mapping[str, Any], annotation: Any) -> str | None:
    """Human name of what an error's location expected, or ``None`` if not a type error."""
    marker = _type_name_marker(annotation)
    if marker is not None:
        return marker
    kind = err["type"]
    if kind in _CHOICE_TYPES:
        choices = _choices_from_annotation(annotation)
        if choices:
            return _choices_text(choices)
        return _choices_from_ctx(str((err.get("ctx") or {}).get("expected", "")))
    if kind == "is_instance_of":
        return f"an instance of {(err.get('ctx') or {}).get('class', '?')}"
    return _TYPE_NAMES.get(kind)


def _union_tags(walk: _Walk, ctx: Mapping[str, Any]) -> list[Any]:
    """Allowed tags of the discriminated union at the end of ``walk``."""
    tp, disc = _strip(walk.annotation, walk.discriminator)
    tags: list[Any] = []
    if _is_union(tp):
        for member in _union_members(tp):
            tags += [_tag_text(t) for t in _member_tags(member, disc)]
    if not tags and "expected_tags" in ctx:
        try:
            parsed = ast.literal_eval(f"({ctx['expected_tags']},)")
            tags = list(parsed)
        except (ValueError, SyntaxError):
            return [t.strip() for t in str(ctx["expected_tags"]).split(",")]
    return sorted(dict.fromkeys(tags), key=str)


def _listing(options: list[Any]) -> str:
    shown = [str(o) for o in options[:_MAX_LISTED]]
    if len(options) > _MAX_LISTED:
        shown.append("...")
    return ", ".join(shown)


def _did_you_mean(word: Any, options: list[Any]) -> str:
    by_text = {str(o): o for o in options}
    lowered = {t.lower(): t for t in by_text}
    if str(word).lower() in lowered:
        return f"; did you mean '{lowered[str(word).lower()]}'?"
    close = difflib.get_close_matches(str(word), list(by_text), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown_key_message(key: Any, parent: type | None) -> str:
    if parent is None:
        return f"unknown key '{key}'"
    fields = _model_fields(parent) or {}
    options = sorted({_input_keys(n, f)[0] for n, f in fields.items()}, key=str)
    return f"unknown key '{key}'{_did_you_mean(key, options)} (expected one of: {_listing(options)})"


def _tag_message(err: Mapping[str, Any], walk: _Walk) -> str:
    ctx = err.get("ctx") or {}
    tags = _union_tags(walk, ctx)
    disc = str(ctx.get("discriminator", "")).strip("'\"")
    expected = f"(expected one of: {_listing(tags)})"
    if err["type"] == "union_tag_not_found":
        if not isinstance(err.get("input"), Mapping):
            return f"expected a mapping, got {_got(err.get('input'))}"
        return f"missing '{disc}' {expected}"
    tag = ctx.get("tag", "?")
    return f"unknown {disc} '{tag}'{_did_you_mean(tag, tags)} {expected}"


def _strip_prefix(msg: str) -> str:
    for prefix in _MSG_PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _message(err: Mapping[str, Any], walk: _Walk) -> str:
    """User-facing message for one pydantic error at the location found by ``walk``."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_key_message(walk.path[-1] if walk.path else "?", walk.parent)
    if kind in _TAG_ERRORS:
        return _tag_message(err, walk)
    expected = _expected(err, walk.annotation)
    if expected is not None:
        return f"expected {expected}, got {_got(err.get('input'))}"
    msg = _strip_prefix(str(err.get("msg", kind)))
    if kind in _CONSTRAINT_ERRORS:
        return f"{msg}, got {_short_repr(err.get('input'))}"
    return msg


@dataclass
class _Item:
    """One pydantic error, resolved against the model; ``unions`` are the plain unions still to decide."""

    err: Mapping[str, Any]
    walk: _Walk
    unions: list[tuple[int, str, Any, Any]]


def _rejected(items: list[_Item], depth: int) -> bool:
    """Did this union branch reject the value's type outright (only type errors, at the union itself)?"""
    return all(len(it.walk.path) == depth and it.err["type"] in _TYPE_ERRORS for it in items)


def _branch_score(items: list[_Item]) -> tuple[int, int, int]:
    literals = sum(it.err["type"] == "literal_error" for it in items)
    depth = -max(len(it.walk.path) for it in items)
    return (literals, len(items), depth)


def _item_expected(it: _Item) -> str:
    """What one union member expected: a ``TypeName`` on an enclosing member, else from the error."""
    for _, _, member, whole in it.unions:
        marker = _type_name_marker(whole) or _type_name_marker(member)
        if marker is not None:
            return marker
    return _expected(it.err, it.walk.annotation) or str(it.err["type"])


def _combined(items: list[_Item], depth: int) -> LocatedError:
    """One ``expected A, B or C, got ...`` error for a value every union member rejected."""
    expected = _join_or(list(dict.fromkeys(_item_expected(it) for it in items)))
    first = items[0]
    got = _got(first.err.get("input"))
    return LocatedError(tuple(first.walk.path[:depth]), f"expected {expected}, got {got}")


def _collapse(items: list[_Item], positions: Mapping[Path_, tuple[int, int]]) -> list[LocatedError]:
    """Turn items into errors, keeping one branch (or one combined message) per plain union."""
    out = [_to_located(it, positions) for it in items if not it.unions]
    groups: dict[tuple[Any, ...], list[_Item]] = defaultdict(list)
    for it in items:
        if it.unions:
            groups[tuple(it.walk.path[: it.unions[0][0]])].append(it)
    for group in groups.values():
        depth = group[0].unions[0][0]
        branches: dict[str, list[_Item]] = defaultdict(list)
        for it in group:
            branches[it.unions[0][1]].append(it)
        candidates = [b for b in branches.values() if not _rejected(b, depth)]
        if not candidates:
            out.append(_position(_combined(group, depth), positions))
            continue
        best = min(candidates, key=_branch_score)
        out += _collapse([_Item(it.err, it.walk, it.unions[1:]) for it in best], positions)
    return out


def _position(err: LocatedError, positions: Mapping[Path_, tuple[int, int]]) -> LocatedError:
    line, col = locate(err.path, positions)
    return dataclasses.replace(err, line=line, col=col)


def _to_located(it: _Item, positions: Mapping[Path_, tuple[int, int]]) -> LocatedError:
    path = tuple(it.walk.path)
    if it.err["type"] == "missing" and path:
        key = path[-1]
        return _position(LocatedError(path[:-1], f"missing required key '{key}'"), positions)
    message = _message(it.err, it.walk)
    if it.walk.key_error:
        message = f"invalid key: {message}"
    return _position(LocatedError(path, message), positions)


def from_validation_error(
    exc: pydantic.ValidationError,
    model: type[BaseModel],
    data: Any,
    positions: Mapping[Path_, tuple[int, int]],
    filename: str,
) -> SpecError:
    """Translate a pydantic ``ValidationError`` for ``model`` on ``data`` into a :class:`SpecError`.

    Each error gets the data path (union tags/labels removed), a readable message and the
    line/column of its key from ``positions`` (nearest ancestor when the key itself is absent).
    Duplicates are collapsed and failures of every member of a plain union become one message.
    """
    raw = exc.errors(include_url=False)
    try:
        items = []
        for err in raw:
            walk = _walk(model, tuple(err.get("loc", ())), data, have_data=True)
            items.append(_Item(err, walk, list(walk.unions)))
        errors = _collapse(items, positions)
    except Exception:  # pragma: no cover - defensive: report pydantic's own view rather than crash
        errors = [_position(LocatedError(tuple(e["loc"]), _strip_prefix(e["msg"])), positions) for e in raw]
    return SpecError(sorted(dict.fromkeys(errors), key=LocatedError.sort_key), filename)


M = typing.TypeVar("M", bound=BaseModel)


def validate_model(
    model: type[M],
    data: Any,
    positions: Mapping[Path_, tuple[int, int]] | None = None,
    filename: str = "<spec>",
) -> M:
    """``model.model_validate(data)``, raising :class:`SpecError` instead of ``ValidationError``."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_validation_error(exc, model, data, positions or {}, filename) from None


__all__ = ["TypeName", "from_validation_error", "resolve_loc", "validate_model"]
