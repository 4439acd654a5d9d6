"""User-facing spec errors with source positions.

Every problem found in a spec (YAML syntax, unknown keys, wrong types, ...) becomes a
:class:`LocatedError`, and a batch of them is raised as one :class:`SpecError` whose ``str`` is
one ``file:line:col key.path: message`` line per problem. Pydantic's validation errors are translated
into this form by :mod:`eosdsl.spec.pydantic_errors`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

Path_ = tuple[Any, ...]


MAX_REPORTED = 50
"""Most errors a :class:`SpecError` prints; a last line says how many more were found."""


MAX_MESSAGE_CHARS = 400
"""Longest printed message (and, separately, key path) of one error."""


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    """A control (Cc) or format (Cf: bidi overrides, zero-width) character as an escape, else itself."""
    if ch.isprintable() or ch == " ":
        return ch
    if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"):
        return ch
    code = ord(ch)
    return _ESCAPES.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe_text(text: object, limit: int | None = None) -> str:
    """``text`` fit for a terminal: control characters (ESC, BEL, CR, newlines, C1) and format characters
    (bidi overrides, zero-width) shown as escapes like ``\\x1b``, cut to ``limit`` characters (ending
    ``...``) when given."""
    raw = str(text)
    if limit is not None and len(raw) > 4 * limit:
        raw = raw[: 4 * limit]  # escaping at most quadruples a character: enough to fill ``limit``
    out = raw if raw.isprintable() else "".join(_escape(ch) for ch in raw)
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out


def format_key_path(path: Sequence[Any]) -> str:
    """Join a data path with dots (``("events", 0, "when")`` → ``"events.0.when"``)."""
    return ".".join(str(p) for p in path) if path else "(top level)"


@dataclass(frozen=True)
class LocatedError:
    """One problem in a spec, located by data path and (when known) 1-based line/column."""

    path: tuple[str | int, ...]
    message: str
    line: int | None = None
    col: int | None = None

    def format(self, filename: str) -> str:
        """Render as ``file:line:col key.path: message`` (``file: key.path: message`` if unlocated)."""
        if self.line is None:
            where = f"{filename}:"
        elif self.col is None:
            where = f"{filename}:{self.line}"
        else:
            where = f"{filename}:{self.line}:{self.col}"
        path = safe_text(format_key_path(self.path), MAX_MESSAGE_CHARS)
        return f"{safe_text(where)} {path}: {safe_text(self.message, MAX_MESSAGE_CHARS)}"

    def at(self, positions: Mapping[Path_, tuple[int, int]]) -> LocatedError:
        """This error located by ``positions`` (:func:`locate` of its path); its class and other fields
        are kept (e.g. :class:`eosdsl.spec.stages.CycleError`)."""
        line, col = locate(self.path, positions)
        return replace(self, line=line, col=col)

    def sort_key(self) -> tuple[int, int, int, str]:
        """Key ordering errors by position (unlocated errors last)."""
        if self.line is None:
            return (1, 0, 0, format_key_path(self.path))
        return (0, self.line, self.col or 0, format_key_path(self.path))


class SpecError(Exception):
    """A batch of located spec errors; ``str()`` gives one formatted line per error, by position."""

    def __init__(self, errors: list[LocatedError], filename: str = "<spec>") -> None:
        self.errors = list(errors)
        self.filename = filename
        super().__init__(self.__str__())

    def sorted_errors(self) -> list[LocatedError]:
        """The errors ordered by (line, col); unlocated ones last."""
        return sorted(self.errors, key=LocatedError.sort_key)

    def __str__(self) -> str:
        errors = self.sorted_errors()
        lines = [e.format(self.filename) for e in errors[:MAX_REPORTED]]
        if len(errors) > MAX_REPORTED:
            left = len(errors) - MAX_REPORTED
            shown = safe_text(self.filename)
            lines.append(f"{shown}: ... and {left} more errors not shown ({len(errors)} in all)")
        return "\n".join(lines)


def locate(path: Sequence[Any], positions: Mapping[Path_, tuple[int, int]]) -> tuple[int | None, int | None]:
    """Position of the longest prefix of ``path`` that has one in ``positions`` (else ``(None, None)``)."""
    path = tuple(path)
    for n in range(len(path), -1, -1):
        pos = positions.get(path[:n])
        if pos is not None:
            return pos[0], pos[1]
    return None, None


__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_REPORTED",
    "LocatedError",
    "SpecError",
    "format_key_path",
    "locate",
    "safe_text",
]
