"""Hydra-style command-line overrides and multirun sweeps on raw (unvalidated) spec data.

* ``optimizer.lr=1e-3`` sets one value; the value is YAML 1.2 flow syntax (``0.9``, ``true``,
  ``[1, 2]``, ``{kind: gd, lr: 0.1}``, ``heavy_ball``); numeric path parts index lists
  (``events.0.when.step.at=5``); an empty value is the empty string.
* ``optimizer.lr=0.1,0.2,0.3`` / ``linspace(a, b, n)`` / ``logspace(a, b, n[, base])`` /
  ``range([start,] stop[, step])`` give several values for a sweep; commas inside brackets,
  braces, parentheses or quotes do not split.
* :func:`expand_grid` forms the cartesian product of sweep axes (last axis fastest).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from eosdsl.spec.errors import SpecError
from eosdsl.spec.yamlio import to_plain

__all__ = [
    "OverrideError",
    "Path_",
    "apply_overrides",
    "expand_grid",
    "format_path",
    "parse_multirun",
    "parse_override",
    "parse_sweep_values",
    "parse_value",
    "split_dotted",
    "split_top_level",
]

Path_ = tuple[str | int, ...]

_OPEN = {"[": "]", "{": "}", "(": ")"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_FUNCTION = re.compile(r"^(linspace|logspace|range)\s*\((.*)\)$", re.DOTALL)


class OverrideError(ValueError):
    """A malformed override or sweep, or one that cannot be applied to the data."""


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------


def format_path(path: Sequence[str | int]) -> str:
    """Dotted form of a path: ``("events", 0, "when")`` → ``"events.0.when"``."""
    return ".".join(str(p) for p in path)


def split_dotted(key: str) -> Path_:
    """Split a dotted key into a path; all-digit parts become ints (``"a.0.b"`` → ``("a", 0, "b")``)."""
    key = key.strip()
    if not key:
        raise OverrideError("empty key")
    parts = key.split(".")
    if any(not p.strip() for p in parts):
        raise OverrideError(f"invalid key '{key}': empty component")
    if any(ch.isspace() for ch in key):
        raise OverrideError(f"invalid key '{key}': keys may not contain spaces")
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _split_assignment(text: str) -> tuple[Path_, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise OverrideError(f"invalid override '{text}': expected KEY=VALUE")
    try:
        return split_dotted(key), value.strip()
    except OverrideError as exc:
        raise OverrideError(f"invalid override '{text}': {exc}") from None


# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------


def _flow_style(node: Any) -> bool:
    fa = getattr(node, "fa", None)
    return fa is None or bool(fa.flow_style())


def parse_value(text: str) -> Any:
    """Parse one value as a YAML 1.2 flow scalar or flow collection (``""`` → ``""``)."""
    text = text.strip()
    if not text:
        return ""
    if "\n" in text or "\r" in text:
        raise OverrideError(f"invalid value {text!r}: values must be on one line")
    try:
        node = YAML(typ="rt").load(text)
    except YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OverrideError(f"invalid value {text!r}: {' '.join(str(problem).split())}") from None
    if isinstance(node, dict | list) and node and not _flow_style(node):  # `[]`/`{}` are flow by nature
        raise OverrideError(f"invalid value {text!r}: use flow syntax ([1, 2] or {{a: 1}}) or quote it")
    try:
        return to_plain(node)
    except SpecError as exc:
        raise OverrideError(f"invalid value {text!r}: {exc.errors[0].message}") from None


def parse_override(text: str) -> tuple[Path_, Any]:
    """Parse ``key.path=value`` into ``(path, value)``; raises ``OverrideError`` on bad syntax."""
    path, value = _split_assignment(text)
    try:
        return path, parse_value(value)
    except OverrideError as exc:
        raise OverrideError(f"invalid override '{text}': {exc}") from None


# ----------------------------------------------------------------------------------------------
# Applying overrides
# ----------------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def _not_a_mapping(path: Path_, where: str, value: Any) -> OverrideError:
    return OverrideError(f"cannot set '{format_path(path)}': '{where}' is {_describe(value)}, not a mapping")


def _dict_key(container: dict, part: str | int) -> str | int:
    """The key ``part`` denotes in a mapping (an index-looking part matches a string key)."""
    if part in container or not isinstance(part, int):
        return part
    return str(part)


def _child(container: Any, part: str | int, path: Path_, depth: int) -> Any:
    """Step from ``container`` into ``part`` while setting ``path``, creating missing mappings."""
    where = format_path(path[:depth]) or "the top level"
    if isinstance(container, dict):
        key = _dict_key(container, part)
        if container.get(key) is None:
            container[key] = {}
        return container[key]
    if isinstance(container, list):
        return container[_index(container, part, path, where)]
    raise _not_a_mapping(path, where, container)


def _index(container: list, part: str | int, path: Path_, where: str) -> int:
    if not isinstance(part, int):
        raise OverrideError(f"cannot set '{format_path(path)}': '{where}' is a list; use a numeric index")
    if not 0 <= part < len(container):
        size = len(container)
        target = format_path(path)
        raise OverrideError(f"cannot set '{target}': index {part} out of range ('{where}' has {size} items)")
    return part


def _set(data: dict, path: Path_, value: Any) -> None:
    if not path:
        raise OverrideError("cannot override the whole spec (empty key)")
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        node = _child(node, part, path, depth)
    last, where = path[-1], format_path(path[:-1]) or "the top level"
    if isinstance(node, dict):
        node[_dict_key(node, last)] = copy.deepcopy(value)
    elif isinstance(node, list):
        node[_index(node, last, path, where)] = copy.deepcopy(value)
    else:
        raise _not_a_mapping(path, where, node)


def apply_overrides(data: dict, overrides: Iterable[tuple[Path_, Any]]) -> dict:
    """Deep copy of ``data`` with each ``(path, value)`` set, creating missing intermediate mappings.

    A list index out of range, or a path through a scalar, raises ``OverrideError`` naming the key.
    """
    out = copy.deepcopy(data)
    for path, value in overrides:
        _set(out, tuple(path), value)
    return out


# ----------------------------------------------------------------------------------------------
# Multirun
# ----------------------------------------------------------------------------------------------


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets, braces, parentheses and quotes."""
    parts, stack, current = [], [], []
    quote: str | None = None
    escaped = False
    for ch in text:
        current.append(ch)
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(ch)
        elif ch in _CLOSE:
            if not stack or stack.pop() != _CLOSE[ch]:
                raise OverrideError(f"unbalanced '{ch}' in {text!r}")
        elif ch == sep and not stack:
            current.pop()
            parts.append("".join(current))
            current = []
    if stack or quote is not None:
        raise OverrideError(f"unclosed {quote or stack[-1]!r} in {text!r}")
    parts.append("".join(current))
    return parts


def _number_args(name: str, args_text: str) -> list[int | float]:
    args = []
    for arg in split_top_level(args_text):
        value = parse_value(arg)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OverrideError(f"{name}() arguments must be numbers, got {arg.strip()!r}")
        args.append(value)
    return args


def _count(name: str, value: int | float) -> int:
    if not isinstance(value, int) or value < 1:
        raise OverrideError(f"{name}() needs a positive integer number of points, got {value!r}")
    return value


def _linspace(args: list[int | float]) -> list[Any]:
    if len(args) != 3:
        raise OverrideError("linspace() takes 3 arguments: linspace(start, stop, num)")
    return [float(x) for x in np.linspace(args[0], args[1], _count("linspace", args[2]))]


def _logspace(args: list[int | float]) -> list[Any]:
    if len(args) not in (3, 4):
        raise OverrideError("logspace() takes 3 or 4 arguments: logspace(start, stop, num[, base])")
    base = args[3] if len(args) == 4 else 10.0
    return [float(x) for x in np.logspace(args[0], args[1], _count("logspace", args[2]), base=base)]


def _range(args: list[int | float]) -> list[Any]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
        raise OverrideError("range() takes 1 to 3 integers: range([start,] stop[, step])")
    if len(args) == 3 and args[2] == 0:
        raise OverrideError("range() step must not be zero")
    return list(range(*[int(a) for a in args]))


_FUNCTIONS = {"linspace": _linspace, "logspace": _logspace, "range": _range}


def parse_sweep_values(text: str) -> list[Any]:
    """Values of a sweep: ``a,b,c``, ``linspace(...)``, ``logspace(...)`` or ``range(...)``."""
    text = text.strip()
    match = _FUNCTION.match(text)
    if match:
        values = _FUNCTIONS[match.group(1)](_number_args(match.group(1), match.group(2)))
        if not values:
            raise OverrideError(f"{text} gives no values")
        return values
    parts = split_top_level(text)
    if len(parts) > 1 and any(not p.strip() for p in parts):
        raise OverrideError(f"empty value in {text!r}")
    return [parse_value(p) for p in parts]


def parse_multirun(text: str) -> tuple[Path_, list[Any]]:
    """Parse ``key=v1,v2,...`` (or a ``linspace``/``logspace``/``range`` call) into ``(path, values)``."""
    path, value = _split_assignment(text)
    try:
        return path, parse_sweep_values(value)
    except OverrideError as exc:
        raise OverrideError(f"invalid sweep '{text}': {exc}") from None


def expand_grid(axes: Sequence[tuple[Path_, list[Any]]]) -> list[dict[Path_, Any]]:
    """Cartesian product of sweep axes in the given order (last axis varies fastest).

    Each point maps path → value in axis order; no axes gives one empty point.
    """
    paths = [tuple(p) for p, _ in axes]
    seen: set[Path_] = set()
    for path, (_, values) in zip(paths, axes, strict=True):
        if path in seen:
            raise OverrideError(f"'{format_path(path)}' is swept more than once")
        if not values:
            raise OverrideError(f"sweep over '{format_path(path)}' has no values")
        seen.add(path)
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]
