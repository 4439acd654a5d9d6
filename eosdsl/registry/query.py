"""The query language of ``eosdsl query``, compiled to parameterized SQL over the index.

Grammar (keywords are case-insensitive)::

    query      := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" or ")" | comparison
    comparison := field [op value]          # a bare field means "= true"
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | "string" | 'string' | true | false | null
    field      := segment ("." segment)*
    segment    := name | digits | "*" | `any text`

Fields:

* a dotted spec path: ``optimizer.lr``, ``constants.eps``, ``events.0.when.sharpness.crosses``; a
  ``*`` segment matches any one segment (``measure.*.kind = "sharpness"``). A leaf compared with a
  value of another type (an expression string with a number, say) does not match; ``= null`` also
  matches a spec without that leaf;
* ``final.S``, ``min.S``, ``max.S``, ``argmin.S``, ``argmax.S``, ``count.S`` of a series ``S`` (the
  rest of the field, dots included: ``final.sharpness.residual``, ``final.params.u``);
* ``check.NAME`` (passed, a boolean), ``check.NAME.margin``, ``check.NAME.applicable``; names with
  spaces are backquoted: ``check.`final sharpness` = false``;
* ``checks.failed``, ``checks.passed``, ``checks.total`` (counts);
* run fields: ``status``, ``name``, ``end_step``, ``stop_cause``, ``finished_at``, ``spec_id``,
  ``run_key``, and ``id`` (a key prefix, ``=``/``!=`` only).

Values are always bound as SQL parameters, never spliced into the SQL text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["CompiledQuery", "Field", "QueryError", "compile_query", "parse", "parse_field"]

SUMMARY_FIELDS = ("final", "min", "max", "argmin", "argmax", "count")
CHECK_ATTRS = ("passed", "margin", "applicable")
CHECK_COUNTS = {"failed": "checks_failed", "passed": "checks_passed", "total": "checks_total"}
TEXT_RUN_FIELDS = {
    "status": "status",
    "name": "name",
    "stop_cause": "stop_cause",
    "finished_at": "finished_at",
    "spec_id": "spec_id",
    "run_key": "run_key",
}
NUMBER_RUN_FIELDS = {"end_step": "end_step"}
OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
KEYWORDS = ("and", "or", "not", "true", "false", "null")
_LITERALS = {"true": True, "false": False, "null": None}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\*")
_OPERATOR = re.compile(r"==|!=|<=|>=|=|<|>")


class QueryError(ValueError):
    """A malformed query; ``column`` is 1-based (None when the problem is not at one place)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


# --------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    """``kind``: field, number, string, op, keyword, lparen, rparen, end; ``column`` is 1-based."""

    kind: str
    value: Any
    column: int
    text: str
    quoted: tuple[bool, ...] = ()


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote, pos, chars = text[start], start + 1, []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            chars.append(text[pos + 1])
            pos += 2
            continue
        if char == quote:
            return "".join(chars), pos + 1
        chars.append(char)
        pos += 1
    raise QueryError(f"unterminated string starting at column {start + 1}", start + 1)


def _read_segment(text: str, pos: int) -> tuple[str, bool, int]:
    """One field segment at ``pos``: ``(segment, was_backquoted, end)``."""
    if pos < len(text) and text[pos] == "`":
        end = text.find("`", pos + 1)
        if end < 0:
            raise QueryError(f"unterminated backquoted name starting at column {pos + 1}", pos + 1)
        if end == pos + 1:
            raise QueryError(f"empty backquoted name at column {pos + 1}", pos + 1)
        return text[pos + 1 : end], True, end + 1
    match = _NAME.match(text, pos)
    if not match:
        found = repr(text[pos]) if pos < len(text) else "the end"
        raise QueryError(f"expected a name after '.' at column {pos + 1}, got {found}", pos + 1)
    return match.group(), False, match.end()


def _read_field(text: str, start: int) -> tuple[Token, int]:
    segments, quoted, pos = [], [], start
    while True:
        segment, was_quoted, pos = _read_segment(text, pos)
        segments.append(segment)
        quoted.append(was_quoted)
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        break
    return Token("field", tuple(segments), start + 1, text[start:pos], tuple(quoted)), pos


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; ``QueryError`` on a bad character."""
    tokens, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in "()":
            tokens.append(Token("lparen" if char == "(" else "rparen", char, pos + 1, char))
            pos += 1
        elif char in "\"'":
            value, end = _read_string(text, pos)
            tokens.append(Token("string", value, pos + 1, text[pos:end]))
            pos = end
        elif (op := _OPERATOR.match(text, pos)) is not None:
            tokens.append(Token("op", op.group(), pos + 1, op.group()))
            pos = op.end()
        elif (number := _NUMBER.match(text, pos)) is not None:
            tokens.append(Token("number", float(number.group()), pos + 1, number.group()))
            pos = number.end()
        elif char.isalpha() or char in "_`*":
            token, end = _read_field(text, pos)
            word = token.text.lower()
            if len(token.value) == 1 and not token.quoted[0] and word in KEYWORDS:
                token = Token("keyword", word, token.column, token.text)
            tokens.append(token)
            pos = end
        else:
            raise QueryError(f"unexpected character {char!r} at column {pos + 1}", pos + 1)
    tokens.append(Token("end", None, len(text) + 1, ""))
    return tokens


# --------------------------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Field:
    """What a comparison looks at. ``kind``: leaf, summary, check, count, run, id."""

    kind: str
    name: str  # leaf: dotted path; summary/check: series/check name; count/run: column
    attr: str = ""  # summary: final/min/...; check: passed/margin/applicable
    pattern: str | None = None  # leaf with '*': a regular expression over paths
    text: str = ""
    column: int = 0


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any
    column: int


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple


@lru_cache(maxsize=1)
def spec_keys() -> tuple[str, ...]:
    """Top-level keys of a spec (from the spec model)."""
    from eosdsl.spec.models import Spec

    return tuple(Spec.model_fields)


def known_heads() -> list[str]:
    """Every word a field may start with."""
    extra = [*SUMMARY_FIELDS, "check", "checks", "id", *TEXT_RUN_FIELDS, *NUMBER_RUN_FIELDS]
    return sorted(set(spec_keys()) | set(extra))


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _leaf_field(token: Token) -> Field:
    segments = token.value
    path = ".".join(segments)
    pattern = None
    if any(seg == "*" and not quoted for seg, quoted in zip(segments, token.quoted, strict=True)):
        parts = [
            r"[^.]+" if seg == "*" and not quoted else re.escape(seg)
            for seg, quoted in zip(segments, token.quoted, strict=True)
        ]
        pattern = r"\.".join(parts)
    return Field("leaf", path, pattern=pattern, text=token.text, column=token.column)


def _check_field(token: Token) -> Field:
    rest, quoted = token.value[1:], token.quoted[1:]
    if len(rest) >= 2 and not quoted[-1] and rest[-1] in CHECK_ATTRS:
        return Field("check", ".".join(rest[:-1]), rest[-1], text=token.text, column=token.column)
    return Field("check", ".".join(rest), "passed", text=token.text, column=token.column)


def classify(token: Token) -> Field:
    """The :class:`Field` a field token names; ``QueryError`` for an unknown leading word."""
    segments, column = token.value, token.column
    head, rest = segments[0], segments[1:]
    if head in SUMMARY_FIELDS and rest:
        return Field("summary", ".".join(rest), head, text=token.text, column=column)
    if head == "check":
        if not rest:
            raise QueryError(f"'check' needs a check name at column {column}, e.g. check.lemma6", column)
        return _check_field(token)
    if head == "checks" and len(rest) == 1 and rest[0] in CHECK_COUNTS:
        return Field("count", CHECK_COUNTS[rest[0]], text=token.text, column=column)
    if not rest and head in TEXT_RUN_FIELDS:
        return Field("run", TEXT_RUN_FIELDS[head], "text", text=token.text, column=column)
    if not rest and head in NUMBER_RUN_FIELDS:
        return Field("run", NUMBER_RUN_FIELDS[head], "num", text=token.text, column=column)
    if not rest and head == "id":
        return Field("id", "run_key", text=token.text, column=column)
    if head in spec_keys():
        return _leaf_field(token)
    if head in SUMMARY_FIELDS:
        raise QueryError(f"'{head}' needs a series name at column {column}, e.g. {head}.sharpness", column)
    hint = _suggest(head, known_heads())
    raise QueryError(f"unknown field '{head}' at column {column}{hint}", column)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def at_keyword(self, word: str) -> bool:
        return self.token.kind == "keyword" and self.token.value == word

    def parse(self) -> Any:
        if self.token.kind == "end":
            raise QueryError("empty query", 1)
        node = self.parse_or()
        if self.token.kind != "end":
            raise QueryError(
                f"unexpected {_describe(self.token)} at column {self.token.column}; "
                "expected 'and', 'or' or the end of the query",
                self.token.column,
            )
        return node

    def parse_or(self) -> Any:
        operands = [self.parse_and()]
        while self.at_keyword("or"):
            self.take()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def parse_and(self) -> Any:
        operands = [self.parse_unary()]
        while self.at_keyword("and"):
            self.take()
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def parse_unary(self) -> Any:
        if self.at_keyword("not"):
            self.take()
            return Not(self.parse_unary())
        if self.token.kind == "lparen":
            opening = self.take()
            node = self.parse_or()
            if self.token.kind != "rparen":
                raise QueryError(
                    f"expected ')' at column {self.token.column} to close the '(' at column "
                    f"{opening.column}, got {_describe(self.token)}",
                    self.token.column,
                )
            self.take()
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Compare:
        token = self.token
        if token.kind != "field":
            raise QueryError(
                f"expected a field name at column {token.column}, got {_describe(token)}", token.column
            )
        self.take()
        target = classify(token)
        if self.token.kind != "op":
            if target.kind == "leaf" or (target.kind == "check" and target.attr != "margin"):
                return Compare(target, "=", True, token.column)  # a bare boolean field
            raise QueryError(
                f"expected a comparison operator after '{token.text}' at column {self.token.column}, "
                f"got {_describe(self.token)}",
                self.token.column,
            )
        op = self.take()
        value = self.token
        if value.kind == "field":
            raise QueryError(
                f"expected a value after '{op.value}' at column {value.column}, got the name "
                f"'{value.text}' (quote strings: \"{value.text}\")",
                value.column,
            )
        if value.kind not in ("number", "string") and not (
            value.kind == "keyword" and value.value in ("true", "false", "null")
        ):
            raise QueryError(
                f"expected a value after '{op.value}' at column {value.column}, got {_describe(value)}",
                value.column,
            )
        self.take()
        literal = _LITERALS[value.value] if value.kind == "keyword" else value.value
        return Compare(target, OPERATORS[op.value], literal, value.column)


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the query"
    return f"'{token.text}'"


def parse(text: str) -> Any:
    """The syntax tree of a query; ``QueryError`` (with the column) if it is malformed."""
    if not isinstance(text, str):
        raise QueryError("a query must be a string")
    return _Parser(text).parse()


def parse_field(text: str) -> Field:
    """The :class:`Field` named by ``text`` alone (``final.loss``, ``check.lemma6.margin``); ``QueryError``
    if it is not exactly one field."""
    tokens = tokenize(text)
    if len(tokens) != 2 or tokens[0].kind != "field":
        raise QueryError(f"expected one field such as final.loss or check.lemma6, got {text!r}")
    return classify(tokens[0])


# --------------------------------------------------------------------------------------------- SQL


@dataclass
class CompiledQuery:
    """A ``WHERE`` condition over ``runs r`` with its parameters, and the names the query mentions."""

    sql: str
    params: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float | int):
        return "num"
    return "text"


def _type_error(compare: Compare, expected: str) -> QueryError:
    value = compare.value
    if value is None or isinstance(value, bool):
        shown = "null" if value is None else str(value).lower()
    else:
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
    return QueryError(
        f"'{compare.field.text}' is {expected}; it cannot be compared with {shown} "
        f"(at column {compare.column})",
        compare.column,
    )


class _Compiler:
    def __init__(self) -> None:
        self.params: list[Any] = []
        self.out = CompiledQuery("")

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def node(self, node: Any) -> str:
        if isinstance(node, BoolOp):
            joiner = " AND " if node.op == "and" else " OR "
            return "(" + joiner.join(self.node(part) for part in node.operands) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.operand)})"
        return self.compare(node)

    def compare(self, compare: Compare) -> str:
        kind = compare.field.kind
        if kind == "leaf":
            return self.leaf(compare)
        if kind == "summary":
            return self.summary(compare)
        if kind == "check":
            return self.check(compare)
        return self.run_column(compare)

    def _path_condition(self, target: Field, alias: str) -> str:
        self.out.paths.append(target.name)
        if target.pattern is not None:
            return f"{alias}.path REGEXP {self.bind(target.pattern)}"
        return f"{alias}.path = {self.bind(target.name)}"

    def leaf(self, compare: Compare) -> str:
        target, op, value = compare.field, compare.op, compare.value
        kind = _value_kind(value)
        if kind == "null":
            where = self._path_condition(target, "l")
            if target.pattern is None:  # a dict or list is not null either
                low, high = self.bind(target.name + "."), self.bind(target.name + "/")
                where = f"({where} OR (l.path >= {low} AND l.path < {high}))"
            exists = (
                f"EXISTS (SELECT 1 FROM leaves l WHERE l.run_key = r.run_key AND {where}"
                " AND l.kind != 'null')"
            )
            if op == "=":
                return f"(NOT {exists})"
            if op == "!=":
                return exists
            raise _type_error(compare, "compared with null only by = and !=")
        if kind == "bool" and op not in ("=", "!="):
            raise QueryError(
                f"'{op}' needs a number or a string, not {str(value).lower()} (at column {compare.column})",
                compare.column,
            )
        where = self._path_condition(target, "l")
        column = "text" if kind == "text" else "num"
        bound = self.bind(float(value) if kind in ("num", "bool") else value)
        return (
            f"EXISTS (SELECT 1 FROM leaves l WHERE l.run_key = r.run_key AND {where}"
            f" AND l.kind = '{kind}' AND l.{column} {op} {bound})"
        )

    def summary(self, compare: Compare) -> str:
        target, op, value = compare.field, compare.op, compare.value
        self.out.series.append(target.name)
        column = target.attr  # one of SUMMARY_FIELDS: a fixed column name
        series = self.bind(target.name)
        if value is None:
            exists = (
                f"EXISTS (SELECT 1 FROM summaries s WHERE s.run_key = r.run_key AND s.series = {series}"
                f" AND s.{column} IS NOT NULL)"
            )
            if op in ("=", "!="):
                return f"(NOT {exists})" if op == "=" else exists
            raise _type_error(compare, "compared with null only by = and !=")
        if _value_kind(value) != "num":
            raise _type_error(compare, "a number")
        return (
            f"EXISTS (SELECT 1 FROM summaries s WHERE s.run_key = r.run_key AND s.series = {series}"
            f" AND s.{column} {op} {self.bind(float(value))})"
        )

    def check(self, compare: Compare) -> str:
        target, op, value = compare.field, compare.op, compare.value
        self.out.checks.append(target.name)
        name = self.bind(target.name)
        if target.attr == "margin":
            if _value_kind(value) != "num":
                raise _type_error(compare, "a number")
            condition = f"c.margin {op} {self.bind(float(value))}"
        else:
            if _value_kind(value) != "bool" or op not in ("=", "!="):
                raise _type_error(compare, "true or false (compare it with = or !=)")
            condition = f"c.{target.attr} {op} {self.bind(int(value))}"
        return (
            f"EXISTS (SELECT 1 FROM checks c WHERE c.run_key = r.run_key AND c.name = {name} AND {condition})"
        )

    def run_column(self, compare: Compare) -> str:
        target, op, value = compare.field, compare.op, compare.value
        column = f"r.{target.name}"  # a fixed column name from this module's tables
        if target.kind == "id":
            if not isinstance(value, str) or op not in ("=", "!="):
                raise _type_error(compare, "an id prefix (a string compared with = or !=)")
            prefix = value.strip().lower()
            return f"(substr({column}, 1, {self.bind(len(prefix))}) {op} {self.bind(prefix)})"
        if value is None:
            if op in ("=", "!="):
                return f"({column} IS {'NOT ' if op == '!=' else ''}NULL)"
            raise _type_error(compare, "compared with null only by = and !=")
        expected = "num" if target.kind == "count" or target.attr == "num" else "text"
        if _value_kind(value) != expected:
            raise _type_error(compare, "a number" if expected == "num" else "text")
        bound = self.bind(float(value) if expected == "num" else value)
        return f"({column} IS NOT NULL AND {column} {op} {bound})"


def compile_query(text: str) -> CompiledQuery:
    """Parse ``text`` and translate it to a parameterized condition over ``runs r``."""
    compiler = _Compiler()
    sql = compiler.node(parse(text))
    compiler.out.sql = sql
    compiler.out.params = compiler.params
    return compiler.out
