"""Parse, whitelist-check and compile spec expressions into JAX-traceable closures.

A spec expression such as ``"0.5 * u**2 * v**2 * (u >= 0)"`` is parsed with :func:`ast.parse` in
``eval`` mode, every node is checked against a small whitelist, and the tree is compiled once into
nested Python closures that evaluate with ``jax.numpy`` on an environment mapping names to arrays.
Nothing is ever passed to ``eval`` or ``exec``.  The resulting :class:`Expr` is a pure function of its
environment and can be used under ``jax.jit``, ``jax.grad``, ``jax.hessian`` and ``jax.vmap``.

Numeric literals stay Python scalars (weakly typed), so a float32 environment evaluates in float32
and a float64 environment in float64.  Arithmetic among integer literals alone (``2**10``, ``7 // 2``,
``-3 % 2``) is done at compile time with Python's integers, exactly: a result beyond ±(2⁶³−1) and a
division, floor division or remainder by a zero literal are errors located at the operation, never a
silently wrapped value; an expression that is an integer as a whole evaluates as a float (``"(1)"`` is
``1.0``), so it can be a learning rate or a differentiable objective.  Error messages are plain
sentences without location; the 0-based character offset of the offending node is carried by
:class:`ExprError`.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np

from eosdsl.expr.backend import array_op, jnp, numpy_evaluation
from eosdsl.expr.functions import CONSTANTS, FUNCTIONS, arity, coerce, function_signature, power

if TYPE_CHECKING:
    import jax

__all__ = ["MAX_DEPTH", "MAX_SOURCE_CHARS", "Expr", "ExprError", "compile_expr"]

MAX_SOURCE_CHARS = 2000
"""Longest accepted source string."""

MAX_DEPTH = 200
"""Deepest accepted nesting of the syntax tree."""

_KNOWN_LIST_LIMIT = 12
_SNIPPET_LIMIT = 60
_MESSAGE_LIMIT = 300
_INT64_MAX = 2**63 - 1
_EVAL_ERRORS = (TypeError, ValueError, IndexError, OverflowError, ZeroDivisionError)

Evaluator = Callable[[Mapping[str, Any]], Any]


class ExprError(ValueError):
    """An expression that cannot be compiled or evaluated.

    Attributes:
        message: a plain sentence describing the problem (no location, no source line).
        source: the full expression source.
        offset: 0-based character offset within ``source`` of the offending node, or ``None``.
    """

    def __init__(self, message: str, source: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with all three attributes."""
        return (type(self), (self.message, self.source, self.offset))


@dataclass(frozen=True)
class Expr:
    """A compiled expression: call it with an environment mapping names to arrays or scalars."""

    source: str
    names: frozenset[str]
    _fn: Evaluator = field(repr=False, compare=False)

    def __call__(self, env: Mapping[str, Any]) -> jax.Array:
        """Evaluate with ``jax.numpy``; a name missing from ``env`` raises :class:`ExprError`."""
        return jnp.asarray(self._fn(env))

    def with_numpy(self, env: Mapping[str, Any]) -> np.ndarray:
        """Evaluate with NumPy (float64, IEEE like JAX; floating-point warnings silenced): how constant
        expressions are evaluated outside a run (validation, documents), never importing JAX."""
        with numpy_evaluation():
            return np.asarray(self._fn(dict(env)))


def real_number(value: np.ndarray, booleans: bool = True) -> float | None:
    """``value`` as one real number (a 0-d bool, int or float array; bools only if ``booleans``); None
    otherwise."""
    kinds = "biuf" if booleans else "iuf"
    return float(value) if value.shape == () and value.dtype.kind in kinds else None


def compile_expr(source: str, names: Iterable[str] | None = None) -> Expr:
    """Parse, whitelist-check and compile ``source``.

    Args:
        source: the expression text, at most :data:`MAX_SOURCE_CHARS` characters.
        names: if given, the names the expression may use; any other free name is an error, and a
            name that shadows a whitelisted function or builtin constant is refused.

    Raises:
        ExprError: for syntax errors, forbidden constructs, unknown functions or names, wrong arity.
    """
    if not isinstance(source, str):
        raise ExprError(f"an expression must be a string, not {type(source).__name__}", str(source), None)
    known = _check_names(source, names)
    tree, lead = _parse(source)
    compiler = _Compiler(source, lead, known)
    try:
        folded = compiler.fold(tree.body, 0)
        fn = compiler.compile(tree.body, 0)
    except RecursionError:
        raise ExprError("expression is nested too deeply", source, None) from None
    if type(folded) is int:  # an integer as a whole is a number: 1.0, weakly typed like a float literal
        number = float(folded)
        return Expr(source, frozenset(compiler.free), lambda env: number)
    return Expr(source, frozenset(compiler.free), fn)


# --------------------------------------------------------------------------------------------------
# parsing and name checks
# --------------------------------------------------------------------------------------------------


def _check_names(source: str, names: Iterable[str] | None) -> frozenset[str] | None:
    """Validate the allowed ``names``: none may shadow a function or a builtin constant."""
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError("names must be an iterable of strings, not a single string")
    known = frozenset(names)
    for name in sorted(known):
        if name in FUNCTIONS:
            msg = f"name '{name}' shadows the built-in function `{name}`; choose another name"
            raise ExprError(msg, source, None)
        if name in CONSTANTS:
            msg = f"name '{name}' shadows the built-in constant `{name}`; choose another name"
            raise ExprError(msg, source, None)
    return known


def _parse(source: str) -> tuple[ast.Expression, int]:
    """Parse ``source`` in eval mode; return the tree and the number of leading whitespace characters."""
    if len(source) > MAX_SOURCE_CHARS:
        msg = f"expression is too long ({len(source)} characters; the limit is {MAX_SOURCE_CHARS})"
        raise ExprError(msg, source, MAX_SOURCE_CHARS)
    text = source.lstrip()
    lead = len(source) - len(text)
    if not text.strip():
        raise ExprError("expression is empty", source, 0)
    try:
        return ast.parse(text, mode="eval"), lead
    except SyntaxError as exc:
        offset = _syntax_offset(source, text, lead, exc)
        raise ExprError(f"syntax error: {exc.msg}", source, offset) from None
    except ValueError as exc:  # e.g. null bytes
        raise ExprError(f"syntax error: {exc}", source, None) from None
    except (RecursionError, MemoryError):
        raise ExprError("expression is nested too deeply", source, None) from None


def _line_starts(text: str) -> list[int]:
    """Character offsets at which each line of ``text`` starts (lines end at \\n, \\r\\n or \\r)."""
    return [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]


def _syntax_offset(source: str, text: str, lead: int, exc: SyntaxError) -> int | None:
    """Convert a SyntaxError's (1-based line, 1-based column) into a 0-based offset in ``source``."""
    if exc.lineno is None or exc.offset is None:
        return None
    if exc.offset < 1:  # Python reports column 0 for an unexpected end of input
        return len(source.rstrip())
    starts = _line_starts(text)
    line = min(max(exc.lineno, 1), len(starts)) - 1
    offset = lead + starts[line] + max(exc.offset - 1, 0)
    return min(offset, len(source))


def _shorten(text: str, limit: int) -> str:
    """Collapse whitespace in ``text`` and truncate it to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _known_list(known: frozenset[str]) -> str:
    """Describe the known names for an error message, truncated after a dozen entries."""
    if not known:
        return "no names are defined here"
    ordered = sorted(known)
    shown = ", ".join(ordered[:_KNOWN_LIST_LIMIT])
    if len(ordered) > _KNOWN_LIST_LIMIT:
        shown += f", ... ({len(ordered) - _KNOWN_LIST_LIMIT} more)"
    return f"known: {shown}"


def _unknown_name_message(name: str, known: frozenset[str]) -> str:
    """``unknown name 'uu'; did you mean 'u'? (known: u, v)``."""
    match = difflib.get_close_matches(name, sorted(known | CONSTANTS.keys()), n=1)
    hint = f"; did you mean '{match[0]}'?" if match else ""
    return f"unknown name '{name}'{hint} ({_known_list(known)})"


_FUNCTION_ALIASES = {
    "ln": "log",
    "absolute": "abs",
    "fabs": "abs",
    "atan": "arctan",
    "amin": "min",
    "amax": "max",
    "average": "mean",
    "vdot": "dot",
    "clamp": "clip",
}


def _unknown_function_message(name: str) -> str:
    """``unknown function 'foo'`` with a did-you-mean or the list of available functions."""
    if name in ("pow", "power"):
        return f"unknown function '{name}'; use the `**` operator"
    from eosdsl.expr.across import OPERATORS, operator_help  # across-step operators (checks only)

    if name in OPERATORS:
        return operator_help(name)
    matches = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
    match = _FUNCTION_ALIASES.get(name) or (matches[0] if matches else None)
    if match:
        return f"unknown function '{name}'; did you mean '{match}'?"
    return f"unknown function '{name}' (available: {', '.join(FUNCTIONS)})"


def _describe_arity(lo: int, hi: int) -> str:
    """``1 argument``, ``3 arguments`` or ``1 or 2 arguments``."""
    if lo == hi:
        return f"{lo} argument" + ("" if lo == 1 else "s")
    return f"{lo} or {hi} arguments" if hi == lo + 1 else f"{lo} to {hi} arguments"


def _check_index(shape: tuple[int, ...], index: int | slice | tuple[int | slice, ...]) -> str | None:
    """Return why the static ``index`` is invalid for ``shape`` (JAX would silently clamp), or None."""
    items = index if isinstance(index, tuple) else (index,)
    if len(items) > len(shape):
        return f"too many indices ({len(items)}) for a value of shape {tuple(shape)}"
    for axis, (item, size) in enumerate(zip(items, shape, strict=False)):
        if isinstance(item, int) and not -size <= item < size:
            return f"index {item} is out of range for axis {axis} of size {size}"
    return None


# --------------------------------------------------------------------------------------------------
# operator tables
# --------------------------------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: array_op("add"),
    ast.Sub: array_op("subtract"),
    ast.Mult: array_op("multiply"),
    ast.Div: array_op("true_divide"),
    ast.FloorDiv: array_op("floor_divide"),
    ast.Mod: array_op("remainder"),
    ast.Pow: power,
}

_BITWISE: dict[type[ast.AST], tuple[str, str]] = {
    ast.BitAnd: ("&", "use `and` for a logical and"),
    ast.BitOr: ("|", "use `or` for a logical or"),
    ast.BitXor: ("^", "use `!=` between conditions for a logical xor, or `**` for a power"),
    ast.LShift: ("<<", "use `and`, `or` or `not` for logic"),
    ast.RShift: (">>", "use `and`, `or` or `not` for logic"),
    ast.Invert: ("~", "use `not` for a logical not"),
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: array_op("less"),
    ast.LtE: array_op("less_equal"),
    ast.Gt: array_op("greater"),
    ast.GtE: array_op("greater_equal"),
    ast.Eq: array_op("equal"),
    ast.NotEq: array_op("not_equal"),
}

_BAD_COMPARE: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Is: ("is", "use `==`"),
    ast.IsNot: ("is not", "use `!=`"),
    ast.In: ("in", "membership tests are not supported"),
    ast.NotIn: ("not in", "membership tests are not supported"),
}

_FORBIDDEN: dict[str, str] = {
    "Lambda": "lambda expressions are not allowed (`{}`)",
    "ListComp": "list comprehensions are not allowed (`{}`)",
    "SetComp": "set comprehensions are not allowed (`{}`)",
    "DictComp": "dict comprehensions are not allowed (`{}`)",
    "GeneratorExp": "generator expressions are not allowed (`{}`)",
    "NamedExpr": "assignment expressions (`:=`) are not allowed (`{}`)",
    "JoinedStr": "f-strings are not allowed (`{}`)",
    "List": "list literals are not allowed (`{}`)",
    "Tuple": "tuple literals are not allowed (`{}`)",
    "Dict": "dict literals are not allowed (`{}`)",
    "Set": "set literals are not allowed (`{}`)",
    "Starred": "starred expressions are not allowed (`{}`)",
    "Await": "`await` is not allowed (`{}`)",
    "Yield": "`yield` is not allowed (`{}`)",
    "YieldFrom": "`yield from` is not allowed (`{}`)",
    "Slice": "slices are only allowed inside subscripts (`{}`)",
    "Attribute": "attribute access `{}` is not allowed",
}


# --------------------------------------------------------------------------------------------------
# the compiler
# --------------------------------------------------------------------------------------------------


class _Compiler:
    """Turns a checked syntax tree into nested closures ``env -> value``; collects free names."""

    def __init__(self, source: str, lead: int, known: frozenset[str] | None) -> None:
        self.source = source
        self.text = source[lead:]
        self.lead = lead
        self.known = known
        self.free: set[str] = set()
        self.starts = _line_starts(self.text)
        self.lines = [
            self.text[a:b] for a, b in zip(self.starts, [*self.starts[1:], len(self.text)], strict=True)
        ]

    # ---- locations and errors ---------------------------------------------------------------

    def _char_offset(self, lineno: int, col_bytes: int) -> int:
        """Convert an AST (1-based line, UTF-8 byte column) into a 0-based offset in ``source``."""
        line = self.lines[lineno - 1]
        col = len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))
        return self.lead + self.starts[lineno - 1] + col

    def offset(self, node: ast.AST) -> int | None:
        """0-based character offset of ``node`` within the source, if it has a position."""
        if getattr(node, "lineno", None) is None:
            return None
        return self._char_offset(node.lineno, node.col_offset)

    def token_offset(self, left: ast.AST, right: ast.AST, token: str) -> int | None:
        """Offset of ``token`` (an operator) between the end of ``left`` and the start of ``right``."""
        start = self._char_offset(left.end_lineno, left.end_col_offset)
        stop = self.offset(right)
        index = self.source.find(token, start, stop)
        return index if index >= 0 else stop

    def snippet(self, node: ast.AST) -> str:
        """The source text of ``node``, whitespace-collapsed and shortened."""
        text = ast.get_source_segment(self.text, node) or ast.unparse(node)
        return _shorten(text, _SNIPPET_LIMIT)

    def error(self, message: str, node: ast.AST | None = None, offset: int | None = None) -> ExprError:
        """Build an :class:`ExprError` located at ``node`` (or at an explicit ``offset``)."""
        if offset is None and node is not None:
            offset = self.offset(node)
        return ExprError(message, self.source, offset)

    def guarded(self, node: ast.AST, fn: Callable[..., Any], operands: list[Evaluator]) -> Evaluator:
        """Evaluator applying ``fn`` to the operands' values; JAX errors become :class:`ExprError`."""
        source, offset, snippet = self.source, self.offset(node), self.snippet(node)

        def evaluate(env: Mapping[str, Any]) -> Any:
            values = [operand(env) for operand in operands]
            try:
                return fn(*values)
            except _EVAL_ERRORS as exc:
                detail = _shorten(str(exc).strip().split("\n")[0], _MESSAGE_LIMIT)
                raise ExprError(f"cannot evaluate `{snippet}`: {detail}", source, offset) from exc

        return evaluate

    # ---- dispatch -----------------------------------------------------------------------------

    def compile(self, node: ast.AST, depth: int) -> Evaluator:
        """Compile ``node`` (at nesting ``depth``) into an evaluator, or raise :class:`ExprError`."""
        if depth > MAX_DEPTH:
            raise self.error(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", node)
        method = getattr(self, f"_compile_{type(node).__name__}", None)
        if method is None:
            template = _FORBIDDEN.get(type(node).__name__, type(node).__name__ + " `{}` is not allowed")
            raise self.error(template.format(self.snippet(node)), node)
        return method(node, depth + 1)

    # ---- leaves -----------------------------------------------------------------------------

    def _compile_Constant(self, node: ast.Constant, depth: int) -> Evaluator:
        value = node.value
        if isinstance(value, bool | float):
            return lambda env: value
        if isinstance(value, int):
            if abs(value) > _INT64_MAX:
                msg = f"integer literal `{self.snippet(node)}` is too large; write it as a float (e.g. 1e30)"
                raise self.error(msg, node)
            return lambda env: value
        kinds = {str: "string literals", bytes: "bytes literals", complex: "complex literals"}
        if type(value) in kinds:
            raise self.error(f"{kinds[type(value)]} are not allowed (`{self.snippet(node)}`)", node)
        raise self.error(f"`{self.snippet(node)}` is not allowed; only numbers and True/False are", node)

    def _compile_Name(self, node: ast.Name, depth: int) -> Evaluator:
        name = node.id
        if name in FUNCTIONS:
            raise self.error(f"`{name}` is a function; call it as `{function_signature(name)}`", node)
        if name in CONSTANTS:
            constant = CONSTANTS[name]
            return lambda env: constant
        if name.startswith("__"):
            raise self.error(f"names starting with `__` are not allowed (`{name}`)", node)
        if self.known is not None and name not in self.known:
            raise self.error(_unknown_name_message(name, self.known), node)
        self.free.add(name)
        return self._lookup(name, self.offset(node))

    def _lookup(self, name: str, offset: int | None) -> Evaluator:
        """Evaluator reading ``name`` from the environment."""
        source = self.source

        def evaluate(env: Mapping[str, Any]) -> Any:
            try:
                return env[name]
            except KeyError:
                available = _known_list(frozenset(map(str, env)))
                msg = f"name '{name}' is missing from the evaluation environment ({available})"
                raise ExprError(msg, source, offset) from None

        return evaluate

    # ---- operators --------------------------------------------------------------------------

    def _compile_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Evaluator:
        literal = _literal_number(node)
        if literal is not None:
            return lambda env: literal
        if type(node.op) in _BITWISE:
            symbol, advice = _BITWISE[type(node.op)]
            raise self.error(f"bitwise operator `{symbol}` is not allowed; {advice}", node)
        operand = self.compile(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return self.guarded(node, array_op("logical_not"), [operand])
        if isinstance(node.op, ast.USub):
            return self.guarded(node, lambda x: jnp.negative(*coerce(x)), [operand])
        return self.guarded(node, lambda x: coerce(x)[0], [operand])

    def fold(self, node: ast.AST, depth: int) -> int | float | None:
        """The value of ``node`` if it is arithmetic among integer literals only (Python semantics,
        exact), else ``None``; raises :class:`ExprError` at the operation for a division by zero or a
        result beyond ±(2⁶³−1). Booleans are not folded (they follow the float rules)."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(node, ast.Constant):
            return node.value if type(node.value) is int and abs(node.value) <= _INT64_MAX else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.fold(node.operand, depth + 1)
            if type(value) is not int:
                return None
            return -value if isinstance(node.op, ast.USub) else value
        if not isinstance(node, ast.BinOp) or type(node.op) not in _BINARY:
            return None
        left = self.fold(node.left, depth + 1)
        right = self.fold(node.right, depth + 1) if type(left) is int else None
        if type(left) is not int or type(right) is not int:
            return None
        value = self._integer_op(node, left, right)
        if type(value) is int and abs(value) > _INT64_MAX:
            msg = f"`{self.snippet(node)}` is beyond ±(2**63 - 1); write a float literal (e.g. 2.0**100)"
            raise self.error(msg, node)
        return value

    def _integer_op(self, node: ast.BinOp, a: int, b: int) -> int | float:
        """``a op b`` for two integer literals, with Python's semantics and bounds checked first."""
        op = type(node.op)
        if op in (ast.Div, ast.FloorDiv, ast.Mod) and b == 0:
            symbol = {ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}[op]
            offset = self.token_offset(node.left, node.right, symbol)
            raise self.error(f"division by zero in `{self.snippet(node)}`", offset=offset)
        if op is ast.Pow:
            if b < 0:
                if a == 0:
                    raise self.error(f"zero to a negative power in `{self.snippet(node)}`", node)
                return float(a) ** b
            if abs(a) > 1 and (abs(a).bit_length() - 1) * b > 64:  # surely beyond 2**63: do not compute
                msg = f"`{self.snippet(node)}` is beyond ±(2**63 - 1); write a float literal (e.g. 2.0**100)"
                raise self.error(msg, node)
            return a**b
        table: dict[type[ast.operator], Callable[[int, int], int | float]] = {
            ast.Add: lambda x, y: x + y,
            ast.Sub: lambda x, y: x - y,
            ast.Mult: lambda x, y: x * y,
            ast.Div: lambda x, y: x / y,
            ast.FloorDiv: lambda x, y: x // y,
            ast.Mod: lambda x, y: x % y,
        }
        return table[op](a, b)

    def _compile_BinOp(self, node: ast.BinOp, depth: int) -> Evaluator:
        folded = self.fold(node, depth)
        if folded is not None:
            return lambda env: folded
        op = type(node.op)
        if op is ast.MatMult:
            offset = self.token_offset(node.left, node.right, "@")
            msg = f"matrix multiplication `@` is not allowed (`{self.snippet(node)}`); use `dot(a, b)`"
            raise self.error(msg, offset=offset)
        if op in _BITWISE:
            symbol, advice = _BITWISE[op]
            offset = self.token_offset(node.left, node.right, symbol)
            raise self.error(f"bitwise operator `{symbol}` is not allowed; {advice}", offset=offset)
        fn = _BINARY[op]
        operands = [self.compile(node.left, depth), self.compile(node.right, depth)]
        return self.guarded(node, lambda a, b: fn(*coerce(a, b)), operands)

    def _compile_BoolOp(self, node: ast.BoolOp, depth: int) -> Evaluator:
        fn = array_op("logical_and") if isinstance(node.op, ast.And) else array_op("logical_or")
        operands = [self.compile(value, depth) for value in node.values]
        return self.guarded(node, lambda *values: reduce(fn, values), operands)

    def _compile_Compare(self, node: ast.Compare, depth: int) -> Evaluator:
        previous = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) in _BAD_COMPARE:
                keyword, advice = _BAD_COMPARE[type(op)]
                offset = self.token_offset(previous, right, keyword)
                raise self.error(f"`{keyword}` comparisons are not allowed; {advice}", offset=offset)
            previous = right
        fns = [_COMPARE[type(op)] for op in node.ops]
        operands = [self.compile(child, depth) for child in [node.left, *node.comparators]]

        def chain(*values: Any) -> Any:
            results = [fn(a, b) for fn, a, b in zip(fns, values, values[1:], strict=False)]
            return reduce(array_op("logical_and"), results)

        return self.guarded(node, chain, operands)

    def _compile_IfExp(self, node: ast.IfExp, depth: int) -> Evaluator:
        operands = [self.compile(child, depth) for child in (node.test, node.body, node.orelse)]
        return self.guarded(node, lambda c, a, b: jnp.where(c, *coerce(a, b)), operands)

    # ---- calls and subscripts ---------------------------------------------------------------

    def _compile_Call(self, node: ast.Call, depth: int) -> Evaluator:
        name = self._function_name(node, depth)
        signature = function_signature(name)
        for keyword in node.keywords:
            shown = f"**{self.snippet(keyword.value)}" if keyword.arg is None else self.snippet(keyword)
            msg = f"keyword arguments are not allowed (`{shown}`); pass arguments positionally: {signature}"
            raise self.error(msg, keyword)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(f"starred arguments are not allowed (`{self.snippet(arg)}`)", arg)
        lo, hi = arity(name)
        if not lo <= len(node.args) <= hi:
            msg = f"`{name}` takes {_describe_arity(lo, hi)} ({signature}), got {len(node.args)}"
            raise self.error(msg, node)
        operands = [self.compile(arg, depth) for arg in node.args]
        return self.guarded(node, FUNCTIONS[name], operands)

    def _function_name(self, node: ast.Call, depth: int) -> str:
        """The whitelisted function called by ``node``, or raise."""
        func = node.func
        if isinstance(func, ast.Attribute):
            self.compile(func, depth)  # raises the attribute-access error
        if not isinstance(func, ast.Name):
            msg = f"only whitelisted functions can be called by name; `{self.snippet(func)}` is not one"
            raise self.error(msg, func)
        if func.id not in FUNCTIONS:
            raise self.error(_unknown_function_message(func.id), func)
        return func.id

    def _compile_Subscript(self, node: ast.Subscript, depth: int) -> Evaluator:
        value = self.compile(node.value, depth)
        index = self._static_index(node.slice, top=True)

        def take(x: Any) -> Any:
            problem = _check_index(jnp.shape(x), index)
            if problem is not None:
                raise IndexError(problem)
            return jnp.asarray(x)[index]

        return self.guarded(node, take, [value])

    def _static_index(self, node: ast.AST, top: bool) -> int | slice | tuple[int | slice, ...]:
        """An index made of integer literals and slices with integer-literal bounds."""
        if isinstance(node, ast.Tuple) and top and node.elts:
            return tuple(self._static_index(elt, top=False) for elt in node.elts)
        if isinstance(node, ast.Slice):
            bounds = [
                None if b is None else self._literal_int(b) for b in (node.lower, node.upper, node.step)
            ]
            if bounds[2] == 0:
                raise self.error("slice step cannot be zero", node.step)
            return slice(*bounds)
        return self._literal_int(node)

    def _literal_int(self, node: ast.AST) -> int:
        """The value of an integer literal (optionally signed), or raise."""
        value = _literal_number(node)
        if isinstance(value, int):
            return value
        msg = (
            f"subscript index `{self.snippet(node)}` must be an integer literal "
            "(as in `theta[0]`, `theta[-1]` or `theta[1:3]`)"
        )
        raise self.error(msg, node)


def _literal_number(node: ast.AST) -> int | float | None:
    """The value of a numeric literal such as ``2``, ``-1`` or ``+0.5`` (booleans excluded), else None."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if not isinstance(node, ast.Constant) or type(node.value) not in (int, float):
        return None
    if type(node.value) is int and abs(node.value) > _INT64_MAX:
        return None
    return sign * node.value
