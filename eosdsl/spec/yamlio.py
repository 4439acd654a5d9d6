"""Loading YAML specs into plain Python data, with the source position of every key.

YAML 1.2 semantics (ruamel.yaml round-trip loader): ``1e-3`` is a float, ``yes``/``no``/``on``/
``off`` are strings, duplicate keys are errors.  The loaded document is converted to plain
``dict``/``list``/``str``/``int``/``float``/``bool``/``None``; no ruamel types leak out.
Syntax problems are raised as a :class:`~eosdsl.spec.errors.SpecError` with one located error.

Hostile input is bounded before anything is built: a spec may have at most :data:`MAX_BYTES` bytes,
:data:`MAX_NODES` nodes *after alias expansion* (so an alias bomb is refused from its event stream,
never expanded), collections nested at most :data:`MAX_DEPTH` deep, and integers within ±(2⁶³−1).
An explicitly tagged scalar must be valid for its tag (``!!float nan-ish`` is an error).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, MappingStartEvent, NodeEvent, ScalarEvent
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from eosdsl.spec.errors import LocatedError, SpecError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NODES",
    "NOT_A_MAPPING",
    "Path_",
    "check_bounds",
    "load_yaml",
    "load_yaml_file",
    "to_plain",
    "yaml_error",
]

Path_ = tuple[str | int, ...]
Positions = dict[Path_, tuple[int, int]]

NOT_A_MAPPING = "a spec must be a mapping of keys to values"
_CORE = "tag:yaml.org,2002:"
_STRUCTURAL_TAGS = {_CORE + t for t in ("map", "omap", "seq", "set", "str", "int", "float", "bool", "null")}

MAX_BYTES = 256 * 1024
"""Largest spec file, in bytes of UTF-8 (the largest spec in ``specs/`` has about 5 KB)."""
MAX_NODES = 10_000
"""Most YAML nodes (keys, values, items) a spec may have once every alias is expanded."""
MAX_DEPTH = 40
"""Deepest nesting of mappings and sequences."""
MAX_INT = 2**63 - 1
"""Largest magnitude of an integer in a spec (numbers beyond it cannot reach the program)."""

_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_MAPPING_TAGS = {_CORE + "map", _CORE + "set"}
_SEQUENCE_TAGS = {_CORE + "seq", _CORE + "omap"}


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


# ----------------------------------------------------------------------------------------------
# Conversion to plain Python
# ----------------------------------------------------------------------------------------------


def _tag(node: Any) -> str | None:
    """The explicit tag of a ruamel node (``None`` when untagged)."""
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def _scalar(value: Any) -> Any:
    """Plain Python value of a ruamel scalar (``ScalarFloat`` → ``float``, dates → ISO strings ...)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _tagged_scalar(node: TaggedScalar) -> Any:
    """Resolve ``!!str 5`` and friends; ``None`` tag means "unsupported" (raised by the caller)."""
    tag = _tag(node) or ""
    text = str(node.value)
    if tag == _CORE + "str":
        return text
    if tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
        return _scalar(_yaml().load(text))
    raise ValueError(tag)


class _Converter:
    """Recursive ruamel → plain conversion that records key positions and unsupported tags."""

    def __init__(self) -> None:
        self.positions: Positions = {(): (1, 1)}
        self.errors: list[LocatedError] = []

    def _bad_tag(self, tag: str, path: Path_) -> None:
        line, col = self.positions.get(path, (None, None))
        self.errors.append(LocatedError(path, f"unsupported YAML tag '{tag}'", line, col))

    def convert(self, node: Any, path: Path_) -> Any:
        tag = _tag(node)
        if isinstance(node, TaggedScalar):
            try:
                return _tagged_scalar(node)
            except (ValueError, YAMLError):
                self._bad_tag(tag or "?", path)
                return str(node.value)
        if tag is not None and tag not in _STRUCTURAL_TAGS:
            self._bad_tag(tag, path)
        if isinstance(node, dict):
            return self._mapping(node, path)
        if isinstance(node, list | tuple | set):
            return self._sequence(node, path)
        value = _scalar(node)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            line, col = self.positions.get(path, (None, None))
            digits = str(value)
            shown = digits if len(digits) <= 30 else digits[:27] + "..."
            message = f"integer out of range (beyond ±(2**63 - 1)): {shown}; write it as a float"
            self.errors.append(LocatedError(path, message, line, col))
        return value

    def _position(self, node: Any, how: str, key: Any, path: Path_) -> tuple[int, int]:
        try:
            line, col = getattr(node.lc, how)(key)
            return int(line) + 1, int(col) + 1
        except Exception:  # merged keys (<<) and other nodes without position data
            return self.positions.get(path, (1, 1))

    def _mapping(self, node: dict, path: Path_) -> dict:
        out: dict[Any, Any] = {}
        for key, value in node.items():
            plain_key = self.convert(key, path) if isinstance(key, TaggedScalar) else _plain_key(key)
            if not isinstance(plain_key, str | int | float | bool | None):  # `? {a: 1}`, `? [1, 2]`
                where = self._position(node, "key", key, path) if isinstance(node, CommentedMap) else (1, 1)
                self.errors.append(LocatedError(path, "a key must be a string or number", *where))
                plain_key = f"<{type(plain_key).__name__} key>"
            child = (*path, plain_key)
            if isinstance(node, CommentedMap):
                self.positions[child] = self._position(node, "key", key, path)
            else:
                self.positions[child] = self.positions.get(path, (1, 1))
            out[plain_key] = self.convert(value, child)
        return out

    def _sequence(self, node: Any, path: Path_) -> list:
        out = []
        for i, value in enumerate(node):
            child = (*path, i)
            if isinstance(node, CommentedSeq):
                self.positions[child] = self._position(node, "item", i, path)
            else:
                self.positions[child] = self.positions.get(path, (1, 1))
            out.append(self.convert(value, child))
        return out


def _plain_key(key: Any) -> Any:
    if isinstance(key, tuple | list):
        return tuple(_plain_key(k) for k in key)
    return _scalar(key)


def to_plain(obj: Any) -> Any:
    """Convert a ruamel round-trip object to plain Python; unsupported tags raise ``SpecError``."""
    conv = _Converter()
    out = conv.convert(obj, ())
    if conv.errors:
        raise SpecError(conv.errors)
    return out


# ----------------------------------------------------------------------------------------------
# Bounds, checked on the event stream before any node is composed
# ----------------------------------------------------------------------------------------------


class _Refused(Exception):
    """A bound broken at a 1-based (line, col); carries the message."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


@dataclass
class _Frame:
    """An open mapping or sequence: its anchor, the node count and depth when it started."""

    anchor: str | None
    start_count: int
    start_depth: int
    max_depth: int


@dataclass
class _Bounds:
    """Counts nodes (aliases expanded, without expanding them) and nesting depth of an event stream."""

    count: int = 0
    depth: int = 0
    frames: list[_Frame] = field(default_factory=list)
    anchors: dict[str, tuple[int, int]] = field(default_factory=dict)  # anchor -> (nodes, height)

    def _add(self, nodes: int, height: int, event: Any) -> None:
        self.count += nodes
        if self.count > MAX_NODES:
            raise _refusal(f"the spec has more than {MAX_NODES} YAML nodes (aliases expanded)", event)
        if self.depth + height > MAX_DEPTH:
            raise _refusal(f"nesting deeper than {MAX_DEPTH} levels", event)
        if self.frames:
            top = self.frames[-1]
            top.max_depth = max(top.max_depth, self.depth + height)

    def event(self, event: Any) -> None:
        if isinstance(event, AliasEvent):
            anchor = str(event.anchor)
            if any(f.anchor == anchor for f in self.frames):
                raise _refusal(f"alias *{anchor} refers to a collection that contains it", event)
            nodes, height = self.anchors.get(anchor, (1, 0))
            self._add(nodes, height, event)
        elif isinstance(event, ScalarEvent):
            _check_scalar_tag(event)
            self._add(1, 0, event)
            if event.anchor is not None:
                self.anchors[str(event.anchor)] = (1, 0)
        elif isinstance(event, NodeEvent):  # a mapping or sequence starts
            _check_collection_tag(event)
            self._add(1, 1, event)
            self.frames.append(_Frame(event.anchor, self.count - 1, self.depth, self.depth + 1))
            self.depth += 1
        elif isinstance(event, CollectionEndEvent) and self.frames:
            frame = self.frames.pop()
            self.depth -= 1
            if frame.anchor is not None:
                size = self.count - frame.start_count
                self.anchors[str(frame.anchor)] = (size, frame.max_depth - frame.start_depth)
            if self.frames:
                self.frames[-1].max_depth = max(self.frames[-1].max_depth, frame.max_depth)


def _refusal(message: str, event: Any) -> _Refused:
    mark = event.start_mark
    return _Refused(message, mark.line + 1, mark.column + 1)


def _explicit_tag(event: Any) -> str | None:
    tag = getattr(event, "tag", None)
    tag = getattr(tag, "value", tag)
    if tag is None:
        return None
    implicit = getattr(event, "implicit", None)
    if isinstance(event, ScalarEvent) and isinstance(implicit, tuple) and (implicit[0] or implicit[1]):
        return None  # a plain or quoted scalar whose tag was resolved, not written
    return str(tag)


def _check_scalar_tag(event: ScalarEvent) -> None:
    """``!!int``/``!!float``/``!!bool``/``!!null`` must tag a value of that kind; no collection tags."""
    tag = _explicit_tag(event)
    if tag is None or not tag.startswith(_CORE):
        return
    if tag not in _SCALAR_TAGS:
        what = "cannot tag a scalar" if tag in _MAPPING_TAGS | _SEQUENCE_TAGS else "is not supported"
        raise _refusal(f"YAML tag '!!{tag[len(_CORE):]}' {what}", event)
    if tag == _CORE + "str":
        return
    resolved = _yaml().resolver.resolve(ScalarNode, str(event.value), (True, False))
    if resolved != tag and not (tag == _CORE + "float" and resolved == _CORE + "int"):
        shown = str(event.value)[:40]
        raise _refusal(f"'{shown}' is not a valid !!{tag[len(_CORE):]} value", event)


def _check_collection_tag(event: Any) -> None:
    tag = _explicit_tag(event)
    if tag is None or not tag.startswith(_CORE):
        return
    allowed = _MAPPING_TAGS if isinstance(event, MappingStartEvent) else _SEQUENCE_TAGS
    if tag not in allowed:
        kind = "mapping" if isinstance(event, MappingStartEvent) else "sequence"
        raise _refusal(f"YAML tag '!!{tag[len(_CORE):]}' cannot tag a {kind}", event)


def check_bounds(text: str, filename: str = "<string>") -> None:
    """Refuse (``SpecError``, located) a document over :data:`MAX_BYTES`, :data:`MAX_NODES` nodes after
    alias expansion or :data:`MAX_DEPTH` levels, or with an invalid explicit tag; syntax errors are
    left to the loader. Reads events only, so the cost is bounded by the limits themselves."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BYTES:
        message = f"the spec is {size} bytes; the limit is {MAX_BYTES}"
        raise SpecError([LocatedError((), message, 1, 1)], filename)
    bounds = _Bounds()
    try:
        for event in _yaml().parse(text):
            bounds.event(event)
    except _Refused as refused:
        raise SpecError([LocatedError((), refused.message, refused.line, refused.col)], filename) from None
    except YAMLError:
        return  # a syntax error: the loader reports it with its own message
    except RecursionError:
        error = LocatedError((), f"nesting deeper than {MAX_DEPTH} levels", 1, 1)
        raise SpecError([error], filename) from None


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _syntax_message(exc: MarkedYAMLError) -> str:
    problem = _one_line(exc.problem or exc.context or "invalid YAML")
    if "'\\t'" in problem:
        return "found a tab character; YAML indentation must use spaces"
    context, cmark, pmark = exc.context, exc.context_mark, exc.problem_mark
    if type(exc).__name__ == "DuplicateKeyError" or not exc.problem or not context:
        return problem
    if problem.startswith("but "):  # "expected a single document ... but found another document"
        return f"{_one_line(context)} {problem}"
    if cmark is not None and (pmark is None or cmark.line != pmark.line or cmark.column != pmark.column):
        return f"{problem} ({_one_line(context)} at line {cmark.line + 1}, column {cmark.column + 1})"
    return f"{problem} ({_one_line(context)})"


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line/column of a character offset."""
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def yaml_error(exc: YAMLError, filename: str, text: str | None = None) -> SpecError:
    """A ``SpecError`` with one short located message for a ruamel read/scan/parse/compose error."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return SpecError([LocatedError((), _syntax_message(exc), line, col)], filename)
    if isinstance(exc, ReaderError) and text is not None and isinstance(exc.position, int):
        line, col = _line_col(text, exc.position)
        char = exc.character
        single = isinstance(char, str) and len(char) == 1
        what = f"unacceptable character #x{ord(char):04x}: " if single else ""
        return SpecError([LocatedError((), what + _one_line(exc.reason), line, col)], filename)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return SpecError([LocatedError((), lines[0] if lines else "invalid YAML")], filename)


def load_yaml(text: str, filename: str = "<string>") -> tuple[Any, Positions]:
    """Parse a YAML spec; returns ``(data, positions)``.

    ``positions`` maps key paths to 1-based ``(line, col)``: the key token for mapping entries,
    the item for sequence items, and ``()`` → ``(1, 1)``.  Raises ``SpecError`` for malformed
    YAML, unsupported tags, or a document that is not a mapping.
    """
    check_bounds(text, filename)
    try:
        raw = _yaml().load(text)
    except YAMLError as exc:
        raise yaml_error(exc, filename, text) from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # Not expected after check_bounds; a located message rather than a traceback all the same.
        message = f"cannot read the YAML document: {_one_line(exc) or type(exc).__name__}"
        raise SpecError([LocatedError((), message[:300], 1, 1)], filename) from None
    if not isinstance(raw, dict):
        raise SpecError([LocatedError((), NOT_A_MAPPING, 1, 1)], filename)
    conv = _Converter()
    data = conv.convert(raw, ())
    if conv.errors:
        raise SpecError(conv.errors, filename)
    return data, conv.positions


def load_yaml_file(path: str | os.PathLike[str]) -> tuple[Any, Positions, str]:
    """Read and parse a spec file; returns ``(data, positions, filename_as_given)``."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never more: the file may be huge or endless (/dev/zero)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SpecError([LocatedError((), f"cannot read file: {reason}")], filename) from None
    if len(raw) > MAX_BYTES:
        message = f"the spec is larger than {MAX_BYTES} bytes (the limit)"
        raise SpecError([LocatedError((), message, 1, 1)], filename)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8", errors="replace")
        line, col = _line_col(before, len(before))
        message = f"cannot read file: not UTF-8 text ({exc.reason})"
        raise SpecError([LocatedError((), message, line, col)], filename) from None
    data, positions = load_yaml(text, filename)
    return data, positions, filename
