"""Loading YAML specs into plain Python data, with the source position of every key.

YAML 1.2 semantics (ruamel.yaml round-trip loader): ``1e-3`` is a float, ``yes``/``no``/``on``/
``off`` are strings, duplicate keys are errors.  The loaded document is converted to plain
``dict``/``list``/``str``/``int``/``float``/``bool``/``None``; no ruamel types leak out.
Syntax problems are raised as a :class:`~eosdsl.spec.errors.SpecError` with one located error.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from eosdsl.spec.errors import LocatedError, SpecError

__all__ = ["NOT_A_MAPPING", "Path_", "load_yaml", "load_yaml_file", "to_plain", "yaml_error"]

Path_ = tuple[str | int, ...]
Positions = dict[Path_, tuple[int, int]]

NOT_A_MAPPING = "a spec must be a mapping of keys to values"
_CORE = "tag:yaml.org,2002:"
_STRUCTURAL_TAGS = {_CORE + t for t in ("map", "omap", "seq", "set", "str", "int", "float", "bool", "null")}


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
        return _scalar(node)

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
    try:
        raw = _yaml().load(text)
    except YAMLError as exc:
        raise yaml_error(exc, filename, text) from None
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
        with open(filename, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SpecError([LocatedError((), f"cannot read file: {reason}")], filename) from None
    except UnicodeDecodeError as exc:
        message = f"cannot read file: not UTF-8 text ({exc.reason})"
        raise SpecError([LocatedError((), message)], filename) from None
    data, positions = load_yaml(text, filename)
    return data, positions, filename
